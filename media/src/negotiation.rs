//! SDP negotiation of one participant's session through str0m's SDP API (offer/answer,
//! RFC 3264): the client offers first; from then on the server offers whenever the
//! participant's consumers change, one offer at a time. On a collision the client's offer wins:
//! ours is rolled back and made again after the exchange.

use std::collections::HashMap;

use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};

use crate::consumer::{Consumer, ConsumerState};
use crate::ids::ParticipantKey;
use crate::info::TrackKind;
use crate::recording::RecordingError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("invalid SDP: {0}")]
    BadSdp(String),
    #[error("no offer of the server is awaiting an answer")]
    NoPendingOffer,
    #[error("invalid ICE candidate: {0}")]
    BadCandidate(String),
    #[error("more than {max} ICE candidates")]
    TooManyCandidates { max: usize },
    #[error("the participant is no longer in the room")]
    Gone,
    #[error("{0}")]
    Recording(#[from] RecordingError),
}

/// Where the SDP exchange of one participant's session stands. The consumers it negotiates are
/// the participant's (each carries the state of its m-line).
#[derive(Debug)]
pub(crate) struct Negotiation {
    /// Our outstanding offer, if any.
    pending: Option<SdpPendingOffer>,
    /// The client's first offer has been accepted: from then on the server may offer.
    negotiated: bool,
    /// Consumers changed since our last offer was made: make another when none is in flight.
    renegotiate: bool,
    /// The payload types the client last gave each m-line (in its latest offer or answer):
    /// our offers list no others on those lines (see [`narrow`]).
    formats: Vec<Vec<u8>>,
}

impl Negotiation {
    /// A new session: nothing negotiated yet, the client's first offer awaited.
    pub fn new() -> Self {
        Negotiation {
            pending: None,
            negotiated: false,
            renegotiate: true,
            formats: Vec::new(),
        }
    }

    /// Our offer awaits the client's answer.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The participant's consumers changed: the next offer carries the change.
    pub fn needs_offer(&mut self) {
        self.renegotiate = true;
    }

    /// An offer of ours is due: consumers changed since the last, the client has offered, and
    /// no exchange is in flight.
    pub fn wants_offer(&self) -> bool {
        self.renegotiate && self.negotiated && self.pending.is_none()
    }

    /// The client's `offer` (with the payload types of its m-lines, [`formats_of`]), applied to
    /// `rtc`: the answer's SDP, listing only formats of the offer ([`narrow`]). Our outstanding
    /// offer, if any, is rolled back first.
    pub fn accept_offer(
        &mut self,
        rtc: &mut Rtc,
        consumers: &mut [Consumer],
        offer: SdpOffer,
        formats: Vec<Vec<u8>>,
    ) -> Result<String, NegotiationError> {
        self.roll_back(consumers);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| NegotiationError::BadSdp(e.to_string()))?;
        self.negotiated = true;
        self.formats = formats;
        Ok(narrow(&answer.to_sdp_string(), &self.formats))
    }

    /// The client's `answer` to our offer, applied to `rtc`: its changes take effect; returns
    /// the consumers it opened (source and source mid). An answer str0m refuses rolls our offer
    /// back ([`NegotiationError::BadSdp`]): everything in it is offered again.
    pub fn accept_answer(
        &mut self,
        rtc: &mut Rtc,
        consumers: &mut [Consumer],
        answer: SdpAnswer,
        formats: Vec<Vec<u8>>,
    ) -> Result<Vec<(ParticipantKey, Mid)>, NegotiationError> {
        let pending = self
            .pending
            .take()
            .ok_or(NegotiationError::NoPendingOffer)?;
        if let Err(e) = rtc.sdp_api().accept_answer(pending, answer) {
            // Everything in the rejected offer is offered again.
            self.roll_back(consumers);
            return Err(NegotiationError::BadSdp(e.to_string()));
        }
        self.formats = formats;
        Ok(Self::commit(consumers))
    }

    /// Roll back our outstanding offer (the client's offer won a collision, or its answer was bad):
    /// everything that was in it goes back to "to do". (A direction str0m set takes effect in
    /// its next SDP anyway; offered again, it is simply unchanged.)
    fn roll_back(&mut self, consumers: &mut [Consumer]) {
        self.pending = None;
        self.renegotiate = true;
        for consumer in consumers {
            consumer.state = match consumer.state {
                ConsumerState::Negotiating(_) => ConsumerState::ToOpen,
                ConsumerState::NegotiatingResume(mid) => ConsumerState::ToResume(mid),
                ConsumerState::NegotiatingStop(mid) => ConsumerState::ToStop(mid),
                other => other,
            };
        }
    }

    /// Our offer was answered (or needed no answer): its changes are now in effect. Returns the
    /// consumers it opened.
    fn commit(consumers: &mut [Consumer]) -> Vec<(ParticipantKey, Mid)> {
        let mut opened = Vec::new();
        for consumer in consumers.iter_mut() {
            match consumer.state {
                ConsumerState::Negotiating(mid) | ConsumerState::NegotiatingResume(mid) => {
                    consumer.state = ConsumerState::Open(mid);
                    opened.push((consumer.source, consumer.source_mid));
                }
                ConsumerState::NegotiatingStop(mid) => {
                    consumer.state = ConsumerState::Idle(mid);
                    if let Some(egress) = consumer.egress.as_mut() {
                        egress.release();
                    }
                }
                _ => {}
            }
        }
        opened
    }

    /// Build our next offer (in `rtc`, of the changes in `consumers`) if there are consumer
    /// changes and no exchange is in flight; the changes are offered then, not again.
    /// `alive(source, mid)` says whether a source producer still exists; `stream_id(source)`
    /// names the media stream of a source's tracks.
    ///
    /// A consumer whose source is gone has its m-line turned `inactive`; a new consumer takes
    /// over a line of its kind that was made for its stream (the same participant, rejoined)
    /// before any new m-line is added. Changes str0m applies without an offer (a line already
    /// in the direction wanted) take effect at once: those consumers are in `opened`.
    pub fn make_offer(
        &mut self,
        rtc: &mut Rtc,
        consumers: &mut Vec<Consumer>,
        alive: impl Fn(ParticipantKey, Mid) -> bool,
        stream_id: impl Fn(ParticipantKey) -> Option<String>,
    ) -> MadeOffer {
        self.renegotiate = false;
        if !self.negotiated || self.pending.is_some() {
            return MadeOffer::default();
        }
        // A consumer whose source is gone is dropped if it has no m-line, else its line is
        // turned off.
        consumers.retain(|c| c.state != ConsumerState::ToOpen || alive(c.source, c.source_mid));
        for consumer in consumers.iter_mut() {
            if let ConsumerState::Open(mid) | ConsumerState::ToResume(mid) = consumer.state
                && !alive(consumer.source, consumer.source_mid)
            {
                consumer.state = ConsumerState::ToStop(mid);
            }
        }
        Self::recycle(consumers, &stream_id);
        if !consumers.iter().any(|c| {
            matches!(
                c.state,
                ConsumerState::ToOpen | ConsumerState::ToResume(_) | ConsumerState::ToStop(_)
            )
        }) {
            return MadeOffer::default();
        }
        // Lines made so far per stream and kind: a stream's second video line (a screen besides
        // the camera) needs a track id of its own (browsers refuse a repeated `a=msid`).
        let mut lines: HashMap<(Option<String>, MediaKind), usize> = HashMap::new();
        for c in consumers.iter().filter(|c| c.state.mid().is_some()) {
            *lines.entry((c.line_stream.clone(), c.kind)).or_default() += 1;
        }
        let mut change = rtc.sdp_api();
        for consumer in consumers.iter_mut() {
            match consumer.state {
                ConsumerState::ToOpen => {
                    let stream = stream_id(consumer.source);
                    let made = lines.entry((stream.clone(), consumer.kind)).or_default();
                    let kind = TrackKind::from(consumer.kind).as_str();
                    let track = stream.as_ref().map(|s| match *made {
                        0 => format!("{s}-{kind}"),
                        n => format!("{s}-{kind}-{n}"),
                    });
                    *made += 1;
                    let mid = change.add_media(
                        consumer.kind,
                        Direction::SendOnly,
                        stream.clone(),
                        track,
                        None,
                    );
                    consumer.line_stream = stream;
                    consumer.state = ConsumerState::Negotiating(mid);
                }
                ConsumerState::ToResume(mid) => {
                    change.set_direction(mid, Direction::SendOnly);
                    consumer.state = ConsumerState::NegotiatingResume(mid);
                }
                ConsumerState::ToStop(mid) => {
                    change.set_direction(mid, Direction::Inactive);
                    consumer.state = ConsumerState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        match change.apply() {
            Some((offer, pending)) => {
                self.pending = Some(pending);
                MadeOffer {
                    // The client's lines as it last gave them (str0m would list every format
                    // they were first negotiated with); the new lines as str0m made them.
                    sdp: Some(narrow(&offer.to_sdp_string(), &self.formats)),
                    opened: Vec::new(),
                }
            }
            // Every line was in the direction wanted already (set before a rolled-back offer:
            // str0m's answer to the client's offer carried it).
            None => MadeOffer {
                sdp: None,
                opened: Self::commit(consumers),
            },
        }
    }

    /// Each new consumer takes over a free m-line (its source gone) of its kind made for its
    /// source's stream, if there is one; the line's old consumer goes.
    fn recycle(
        consumers: &mut Vec<Consumer>,
        stream_id: &impl Fn(ParticipantKey) -> Option<String>,
    ) {
        let mut i = 0;
        while i < consumers.len() {
            if consumers[i].state != ConsumerState::ToOpen {
                i += 1;
                continue;
            }
            let stream = stream_id(consumers[i].source);
            let kind = consumers[i].kind;
            let free = consumers.iter().position(|c| {
                matches!(c.state, ConsumerState::Idle(_) | ConsumerState::ToStop(_))
                    && c.kind == kind
                    && stream.is_some()
                    && c.line_stream == stream
            });
            let Some(free) = free else {
                i += 1;
                continue;
            };
            let line = consumers.remove(free);
            if free < i {
                i -= 1;
            }
            let mid = line.state.mid().expect("a free line has a mid");
            consumers[i].take_over(line);
            consumers[i].state = ConsumerState::ToResume(mid);
            i += 1;
        }
    }
}

/// What [`Negotiation::make_offer`] made: an offer for the client, and the consumers opened
/// without one.
#[derive(Debug, Default)]
pub(crate) struct MadeOffer {
    pub sdp: Option<String>,
    pub opened: Vec<(ParticipantKey, Mid)>,
}

/// The payload types of each m-line of `sdp`, in order (non-numeric formats, such as a data
/// channel's, are left out).
pub(crate) fn formats_of(sdp: &str) -> Vec<Vec<u8>> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("m="))
        .map(|m| {
            m.split(' ')
                .skip(3)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .collect()
}

/// `answer` with each m-line narrowed to the payload types of the offer's m-line at its place
/// (`offered`, from [`formats_of`]); m-lines past the end of `offered` are left as they are.
/// Also used on our own offers, with the formats the client last gave each m-line.
///
/// str0m fixes an m-line's payload types at its first negotiation and answers every later
/// offer with all of them, even those the offer left out, which RFC 3264 §6.1 forbids. A
/// browser then keeps sending the first listed: a client could never switch codecs by
/// offering again (as the call page does when the other party cannot decode its video). The
/// m-line and the `rtpmap`, `fmtp` and `rtcp-fb` lines of the formats left out are removed; an
/// m-line that would keep none is left as it is.
pub(crate) fn narrow(answer: &str, offered: &[Vec<u8>]) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut section: Option<usize> = None;
    let mut dropped: Vec<u8> = Vec::new();
    for line in answer.split_inclusive('\n') {
        let text = line.trim_end();
        if let Some(m) = text.strip_prefix("m=") {
            let index = section.map_or(0, |i| i + 1);
            section = Some(index);
            dropped.clear();
            let mut fields = m.split(' ');
            let head: Vec<&str> = fields.by_ref().take(3).collect();
            let formats: Vec<&str> = fields.collect();
            let allowed = |f: &&str| {
                f.parse::<u8>().map_or(true, |pt| {
                    offered.get(index).is_none_or(|o| o.contains(&pt))
                })
            };
            let kept: Vec<&str> = formats.iter().copied().filter(allowed).collect();
            if kept.is_empty() || kept.len() == formats.len() {
                out.push_str(line);
                continue;
            }
            dropped = formats
                .iter()
                .filter(|f| !allowed(f))
                .filter_map(|f| f.parse().ok())
                .collect();
            out.push_str("m=");
            out.push_str(&head.join(" "));
            for f in kept {
                out.push(' ');
                out.push_str(f);
            }
            out.push_str(&line[text.len()..]);
            continue;
        }
        if !dropped.is_empty() && format_of(text).is_some_and(|pt| dropped.contains(&pt)) {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// The payload type an `rtpmap`, `fmtp` or `rtcp-fb` line is about.
fn format_of(line: &str) -> Option<u8> {
    ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|prefix| line.strip_prefix(prefix))?
        .split([' ', '\t'])
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_lists_only_the_formats_of_the_offer() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:0\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=mid:1\r\n\
                     m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        let offered = formats_of(offer);
        assert_eq!(offered, vec![vec![111, 63], vec![102, 103], vec![]]);
        let answer = "v=0\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\na=mid:1\r\n\
                      a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\n\
                      a=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\n\
                      a=fmtp:102 packetization-mode=1\r\na=rtpmap:103 rtx/90000\r\n\
                      a=fmtp:103 apt=102\r\na=rtcp-fb:* transport-cc\r\n\
                      m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n";
        let narrowed = narrow(answer, &offered);
        assert_eq!(
            narrowed,
            "v=0\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=mid:1\r\n\
             a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\n\
             a=fmtp:102 packetization-mode=1\r\na=rtpmap:103 rtx/90000\r\n\
             a=fmtp:103 apt=102\r\na=rtcp-fb:* transport-cc\r\n\
             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n"
        );
        // An answer already within the offer is returned as it was.
        assert_eq!(narrow(&narrowed, &offered), narrowed);
        // An m-line the offer shares nothing with is not emptied.
        let lone = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(narrow(lone, &[vec![102]]), lone);
    }
}
