//! A Participant: one joined identity in a Room, its Transport (a [`Rtc`]), its Producers (inbound
//! tracks) and its Consumers (the other participants' tracks forwarded to it).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};

use crate::assembler::FrameAssembler;
use crate::egress::{Egress, EgressStream};
use crate::srtp::KeySlot;

use crate::{ParticipantId, RoomId};

/// Who a participant is in the call. `Recorder` is a server-side consumer (later issues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Doctor,
    Patient,
    Recorder,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Patient => "patient",
            Role::Recorder => "recorder",
        }
    }
}

/// The kind of a track, as the signaling protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackKind {
    Audio,
    Video,
}

impl From<MediaKind> for TrackKind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Video => TrackKind::Video,
        }
    }
}

/// What the others see of a participant.
#[derive(Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    /// Display name: personal data, so `Debug` redacts it.
    pub name: String,
    pub role: Role,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// Joined a room that may be recorded (a consultation's). A room is recordable while every
    /// person in it joined so.
    pub recordable: bool,
}

impl fmt::Debug for ParticipantInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParticipantInfo")
            .field("id", &self.id)
            .field("name", &"<redacted>")
            .field("role", &self.role)
            .field("audio_muted", &self.audio_muted)
            .field("video_muted", &self.video_muted)
            .field("recordable", &self.recordable)
            .finish()
    }
}

/// Handle of one participant session inside the SFU. Unlike [`ParticipantId`] it is never reused:
/// a participant that rejoins gets a new key, so late messages for the old session cannot leak
/// into the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantKey(pub(crate) u64);

impl ParticipantKey {
    /// A key for tests of code above the SFU; real keys come from [`crate::Sfu::join`].
    #[doc(hidden)]
    pub fn test(n: u64) -> Self {
        ParticipantKey(n)
    }
}

impl fmt::Display for ParticipantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One inbound track of a participant.
#[derive(Debug)]
pub(crate) struct Producer {
    pub mid: Mid,
    pub kind: MediaKind,
    pub last_keyframe_request: Option<Instant>,
    /// Lowest and highest RTP sequence number seen, and how many packets arrived.
    pub first_seq: Option<u64>,
    pub highest_seq: u64,
    pub received: u64,
    /// Loss already reported into the room counters.
    pub reported_lost: u64,
    /// While the room is recorded: a keyframe of this track reached the recorder (until then
    /// the recorder cannot start the video, and keyframes are asked for).
    pub recorded_keyframe: bool,
    /// While the room is recorded: puts the forwarded packets together into frames.
    pub assembler: Option<FrameAssembler>,
    /// The codec of the last payload type seen (the sender's negotiation), so the codec list is
    /// not searched for every packet.
    pub last_params: Option<PayloadParams>,
    /// The SSRC of the sender's current stream on this track.
    pub ssrc: Option<u32>,
}

impl Producer {
    pub fn new(mid: Mid, kind: MediaKind) -> Self {
        Producer {
            mid,
            kind,
            last_keyframe_request: None,
            first_seq: None,
            highest_seq: 0,
            received: 0,
            reported_lost: 0,
            recorded_keyframe: false,
            assembler: None,
            last_params: None,
            ssrc: None,
        }
    }

    /// The sender's stream is (re)started with a new SSRC: sequence numbers start anew, and
    /// everything counted or assembled of the old stream goes; the codec cache and the keyframe
    /// request throttle stay.
    pub fn restart(&mut self, ssrc: u32) {
        *self = Producer {
            ssrc: Some(ssrc),
            last_keyframe_request: self.last_keyframe_request,
            last_params: self.last_params,
            ..Producer::new(self.mid, self.kind)
        };
    }

    /// The codec of a payload type of this track, as the sender negotiated it.
    pub fn params(&mut self, rtc: &Rtc, pt: Pt) -> Option<PayloadParams> {
        if let Some(params) = self.last_params.filter(|p| p.pt() == pt) {
            return Some(params);
        }
        let params = rtc.codec_config().params().iter().find(|p| p.pt() == pt)?;
        self.last_params = Some(*params);
        Some(*params)
    }

    /// Account for one received packet; returns newly detected lost packets. A reordered packet
    /// counts as lost until it arrives, and the count never goes back: a later gap is absorbed
    /// instead.
    pub fn account(&mut self, seq: u64) -> u64 {
        let first_seen = *self.first_seq.get_or_insert(seq);
        self.received += 1;
        self.highest_seq = self.highest_seq.max(seq);
        let expected = self.highest_seq.saturating_sub(first_seen) + 1;
        let lost = expected.saturating_sub(self.received);
        let new = lost.saturating_sub(self.reported_lost);
        self.reported_lost = self.reported_lost.max(lost);
        new
    }
}

/// Negotiation state of one Consumer's m-line in the receiver's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerState {
    /// Wanted, not yet in any offer.
    ToOpen,
    /// In our outstanding offer.
    Negotiating(Mid),
    /// Negotiated: media is forwarded on this mid.
    Open(Mid),
    /// The source is gone: the m-line must be stopped in the next offer.
    ToStop(Mid),
    /// Stop is in our outstanding offer.
    NegotiatingStop(Mid),
}

/// A Producer of another participant, forwarded to this one.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub source: ParticipantKey,
    pub source_mid: Mid,
    pub kind: MediaKind,
    pub state: ConsumerState,
    /// How the source's sequence numbers map onto the receiver's stream.
    pub seq: Option<SeqMap>,
    /// The receiver's payload type for the source's last one.
    pub pt_map: Option<(Pt, Pt)>,
    /// RTP time against wall clock of the receiver's stream, for its sender reports.
    pub clock: StreamClock,
    /// Sent past str0m: the receiver's stream (`egress.rs`).
    pub egress: Option<EgressStream>,
}

/// The RTP-time-to-wall-clock mapping of a forwarded stream, as its newest packet set it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamClock {
    newest: Option<(u64, u32, Instant)>,
}

impl StreamClock {
    /// The wall-clock time to write a packet with: its arrival if it is newer than any so far;
    /// for a late one (reordered, retransmitted, a duplicate) the time the newest packet's
    /// mapping gives its RTP time, so the sender reports built from the mapping do not jump back
    /// and forth.
    pub fn wallclock(
        &mut self,
        seq: u64,
        rtp_time: u32,
        arrival: Instant,
        clock_rate: u32,
    ) -> Instant {
        match self.newest {
            Some((newest_seq, newest_time, at)) if seq <= newest_seq => {
                let behind = newest_time.wrapping_sub(rtp_time);
                if behind > u32::MAX / 2 || clock_rate == 0 {
                    // Not behind in RTP time after all (a timestamp jump): keep the newest's.
                    return at;
                }
                let behind = std::time::Duration::from_secs_f64(behind as f64 / clock_rate as f64);
                at.checked_sub(behind).unwrap_or(at)
            }
            _ => {
                self.newest = Some((seq, rtp_time, arrival));
                arrival
            }
        }
    }

    /// The stream's RTP time at wall-clock time `at`, from the newest packet's mapping; `None`
    /// before the first packet.
    pub fn rtp_time_at(&self, at: Instant, clock_rate: u32) -> Option<u32> {
        let (_, time, wallclock) = self.newest?;
        let ticks =
            |d: std::time::Duration| (d.as_secs_f64() * clock_rate as f64).round() as i64 as u32;
        Some(if at >= wallclock {
            time.wrapping_add(ticks(at - wallclock))
        } else {
            time.wrapping_sub(ticks(wallclock - at))
        })
    }
}

/// The receiver's stream of a consumer numbers its packets on from the source's: it starts in the
/// first roll-over period (the receiver's SRTP context assumes so), however long the source ran,
/// and continues without a jump if the source's stream is replaced (a new SSRC, new numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqMap {
    ssrc: u32,
    /// The highest source number of the current stream.
    source_highest: u64,
    /// The source's stream before this one, and its highest number: its late packets are
    /// dropped; a newer one means the sender went back to it.
    replaced: Option<(u32, u64)>,
    /// Receiver's number = source's extended number − offset.
    offset: i64,
    /// Highest number sent to the receiver.
    highest: u64,
    /// The highest number sent before the current stream began: a number the receiver has
    /// seen, or may see, from an earlier stream. The current stream's packets map above it (a
    /// number is never used twice: it is the SRTP packet index, with the same key).
    floor: Option<u64>,
}

impl SeqMap {
    /// The receiver's sequence number for a source packet; `None` for a packet from before the
    /// receiver's stream began (a late retransmission) or a late one of a replaced stream.
    pub fn map(this: &mut Option<SeqMap>, ssrc: u32, seq: u64) -> Option<u64> {
        let next = match *this {
            Some(m) if m.ssrc == ssrc => SeqMap {
                source_highest: m.source_highest.max(seq),
                ..m
            },
            Some(m)
                if m.replaced
                    .is_some_and(|(old, highest)| old == ssrc && seq <= highest) =>
            {
                return None;
            }
            // A new stream (or back to the one before, with newer packets): number on.
            Some(m) => SeqMap {
                ssrc,
                source_highest: seq,
                replaced: Some((m.ssrc, m.source_highest)),
                offset: seq as i64 - (m.highest as i64 + 1),
                highest: m.highest,
                floor: Some(m.highest),
            },
            None => SeqMap {
                ssrc,
                source_highest: seq,
                replaced: None,
                offset: (seq & !0xffff) as i64,
                highest: 0,
                floor: None,
            },
        };
        let out = u64::try_from(seq as i64 - next.offset).ok()?;
        if next.floor.is_some_and(|floor| out <= floor) {
            // A late packet of the new stream, from before its first one here: its number
            // belongs to the stream before.
            *this = Some(next);
            return None;
        }
        *this = Some(SeqMap {
            highest: next.highest.max(out),
            ..next
        });
        Some(out)
    }
}

impl Consumer {
    pub fn new(source: ParticipantKey, source_mid: Mid, kind: MediaKind) -> Self {
        Consumer {
            source,
            source_mid,
            kind,
            state: ConsumerState::ToOpen,
            seq: None,
            pt_map: None,
            clock: StreamClock::default(),
            egress: None,
        }
    }
}

pub(crate) struct Participant {
    pub key: ParticipantKey,
    pub room: RoomId,
    pub info: ParticipantInfo,
    pub rtc: Rtc,
    pub producers: Vec<Producer>,
    pub consumers: Vec<Consumer>,
    /// Our outstanding offer, if any.
    pub pending: Option<SdpPendingOffer>,
    /// The client's first offer has been accepted: from then on the server may offer.
    pub negotiated: bool,
    /// Consumers changed since our last offer was made: make another when none is in flight.
    pub renegotiate: bool,
    pub joined_at: Instant,
    /// Last UDP datagram from this participant: its liveness.
    pub last_seen: Option<Instant>,
    /// When the Rtc wants its next `Input::Timeout`.
    pub next_timeout: Instant,
    /// Filled by the DTLS handshake with the SRTP keys (fast forwarding).
    pub keys: Arc<KeySlot>,
    pub egress: EgressState,
    /// Opens the participant's media past str0m (`ingress.rs`), once the keys are there.
    pub ingress: Option<Box<crate::ingress::Ingress>>,
    /// Where str0m sends RTP and RTCP (the selected candidate pair): (from, to).
    pub media_to: Option<(SocketAddr, SocketAddr)>,
}

/// The egress of one receiver's transport (`egress.rs`), once it can be made.
pub(crate) enum EgressState {
    /// The SRTP keys are not there yet (or fast forwarding is off).
    Pending,
    Ready(Box<Egress>),
    /// The keys' profile is not supported: str0m sends.
    Off,
}

impl Participant {
    pub fn producer_mut(&mut self, mid: Mid) -> Option<&mut Producer> {
        self.producers.iter_mut().find(|p| p.mid == mid)
    }

    /// Send a keyframe request to the remote producer of `mid`, at most once per `min_interval`.
    /// Returns whether a request was sent.
    pub fn request_keyframe(
        &mut self,
        mid: Mid,
        now: Instant,
        min_interval: std::time::Duration,
    ) -> bool {
        let Some(producer) = self.producers.iter_mut().find(|p| p.mid == mid) else {
            return false;
        };
        if producer.kind != MediaKind::Video {
            return false;
        }
        if producer
            .last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at) < min_interval)
        {
            return false;
        }
        // PLI where negotiated, else FIR (RFC 4585, RFC 5104), as str0m's writer chooses.
        let params = self.rtc.codec_config().params();
        let kind = if params.iter().any(|p| p.fb_pli()) {
            KeyframeRequestKind::Pli
        } else if params.iter().any(|p| p.fb_fir()) {
            KeyframeRequestKind::Fir
        } else {
            return false;
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, None) else {
            return false;
        };
        stream.request_keyframe(kind);
        producer.last_keyframe_request = Some(now);
        true
    }

    /// Roll back our outstanding offer (the client's offer won a collision, or its answer was bad):
    /// everything that was in it goes back to "to do".
    pub fn roll_back_pending(&mut self) {
        self.pending = None;
        self.renegotiate = true;
        for consumer in &mut self.consumers {
            consumer.state = match consumer.state {
                ConsumerState::Negotiating(_) => ConsumerState::ToOpen,
                ConsumerState::NegotiatingStop(mid) => ConsumerState::ToStop(mid),
                other => other,
            };
        }
    }

    /// Our offer was answered: its changes are now in effect.
    pub fn commit_pending(&mut self) -> Vec<(ParticipantKey, Mid)> {
        let mut opened = Vec::new();
        for consumer in &mut self.consumers {
            if let ConsumerState::Negotiating(mid) = consumer.state {
                consumer.state = ConsumerState::Open(mid);
                opened.push((consumer.source, consumer.source_mid));
            }
        }
        self.consumers
            .retain(|c| !matches!(c.state, ConsumerState::NegotiatingStop(_)));
        opened
    }

    /// Build our next offer if there are consumer changes and no exchange is in flight.
    /// `alive(source, mid)` says whether a source producer still exists.
    pub fn make_offer(
        &mut self,
        alive: impl Fn(ParticipantKey, Mid) -> bool,
        stream_id: impl Fn(ParticipantKey) -> Option<String>,
    ) -> Option<String> {
        if !self.negotiated || self.pending.is_some() {
            return None;
        }
        // A consumer whose source is gone is dropped if it was never negotiated, stopped if it was.
        self.consumers
            .retain(|c| c.state != ConsumerState::ToOpen || alive(c.source, c.source_mid));
        for consumer in &mut self.consumers {
            if let ConsumerState::Open(mid) = consumer.state
                && !alive(consumer.source, consumer.source_mid)
            {
                consumer.state = ConsumerState::ToStop(mid);
            }
        }
        if !self
            .consumers
            .iter()
            .any(|c| matches!(c.state, ConsumerState::ToOpen | ConsumerState::ToStop(_)))
        {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for consumer in &mut self.consumers {
            match consumer.state {
                ConsumerState::ToOpen => {
                    let stream = stream_id(consumer.source);
                    let track = stream
                        .as_ref()
                        .map(|s| format!("{s}-{}", TrackKind::from(consumer.kind).as_str()));
                    let mid =
                        change.add_media(consumer.kind, Direction::SendOnly, stream, track, None);
                    consumer.state = ConsumerState::Negotiating(mid);
                }
                ConsumerState::ToStop(mid) => {
                    change.stop_media(mid);
                    consumer.state = ConsumerState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }
}

impl TrackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_stream_starts_in_the_first_rollover_and_survives_a_new_source_stream() {
        let mut map = None;
        // The source ran past two roll-overs before this receiver joined.
        assert_eq!(SeqMap::map(&mut map, 7, 2 * 65_536 + 100), Some(100));
        assert_eq!(SeqMap::map(&mut map, 7, 2 * 65_536 + 102), Some(102));
        // A late retransmission from before the receiver's first packet cannot be numbered.
        assert_eq!(SeqMap::map(&mut map, 7, 2 * 65_536 - 5), None);
        assert_eq!(SeqMap::map(&mut map, 7, 2 * 65_536 + 101), Some(101));
        // The source's stream is replaced: numbering continues after the highest sent.
        assert_eq!(SeqMap::map(&mut map, 9, 40_000), Some(103));
        assert_eq!(SeqMap::map(&mut map, 9, 40_001), Some(104));
        // A packet of the new stream from before its first one here (reordered at the switch)
        // would get 102, a number (an SRTP index) the first stream used: dropped.
        assert_eq!(SeqMap::map(&mut map, 9, 39_999), None);
        // A late packet of the replaced stream is dropped, not numbered anew.
        assert_eq!(SeqMap::map(&mut map, 7, 2 * 65_536 + 102), None);
        assert_eq!(SeqMap::map(&mut map, 9, 40_002), Some(105));
        // The sender goes back to the first stream, which has moved on: numbering goes on.
        assert_eq!(SeqMap::map(&mut map, 7, 2 * 65_536 + 500), Some(106));
        assert_eq!(SeqMap::map(&mut map, 7, 2 * 65_536 + 501), Some(107));
        // …and a late packet of the second one is dropped.
        assert_eq!(SeqMap::map(&mut map, 9, 40_001), None);
    }

    #[test]
    fn a_late_packet_maps_onto_the_newest_packets_clock() {
        let t0 = Instant::now();
        let mut clock = StreamClock::default();
        assert_eq!(clock.wallclock(10, 90_000, t0, 90_000), t0);
        let t1 = t0 + std::time::Duration::from_millis(500);
        assert_eq!(clock.wallclock(12, 135_000, t1, 90_000), t1);
        // Packet 11 (RTP time 0.25 s before 12's) arrives 200 ms after 12: it is written with
        // the time 12's mapping gives it, not its arrival.
        let late = clock.wallclock(
            11,
            112_500,
            t1 + std::time::Duration::from_millis(200),
            90_000,
        );
        assert_eq!(late, t1 - std::time::Duration::from_millis(250));
        // A duplicate of the newest keeps the newest's time, not its own later arrival.
        let again = t1 + std::time::Duration::from_millis(100);
        assert_eq!(clock.wallclock(12, 135_000, again, 90_000), t1);
        assert_eq!(clock.rtp_time_at(t1, 90_000), Some(135_000));
        // The newest still sets the mapping.
        let t2 = t1 + std::time::Duration::from_millis(300);
        assert_eq!(clock.wallclock(13, 162_000, t2, 90_000), t2);
    }

    #[test]
    fn loss_is_counted_once_per_missing_packet() {
        let mid = Mid::from("0");
        let mut p = Producer::new(mid, MediaKind::Video);
        // Packets `first..=last`, one by one: the loss they reveal.
        let mut account = |first: u64, last: u64| (first..=last).map(|s| p.account(s)).sum::<u64>();
        assert_eq!(account(100, 102), 0);
        // 103 and 104 never arrive.
        assert_eq!(account(105, 105), 2);
        assert_eq!(account(106, 110), 0);
        // A late retransmission of 103 fills part of the gap; the counter never goes back, and
        // the next gap (111) is absorbed by the earlier over-count instead of counted twice.
        assert_eq!(account(103, 103), 0);
        assert_eq!(account(112, 112), 0);
        // 113 and 114 lost: 104, 111, 113, 114 missing in all, 2 already reported.
        assert_eq!(account(115, 115), 2);
    }
}
