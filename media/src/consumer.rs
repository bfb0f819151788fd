//! A Consumer: a Producer of another participant, forwarded to this one; its m-line's
//! negotiation state, how the source's numbers map onto the receiver's stream ([`SeqMap`]),
//! and its egress stream.

use str0m::media::{MediaKind, Mid, Pt};

use crate::clock::StreamClock;
use crate::egress::EgressStream;
use crate::ids::ParticipantKey;

/// Negotiation state of one Consumer's m-line in the receiver's session.
///
/// A line whose source is gone is turned `inactive`, not stopped: the same participant's next
/// track of that kind (after a rejoin) takes it over, so any number of rejoins leave the
/// receiver's SDP the size of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerState {
    /// Wanted, no m-line yet.
    ToOpen,
    /// Took over the m-line of an earlier source of the same stream: made `sendonly` again
    /// in the next offer.
    ToResume(Mid),
    /// A new m-line in our outstanding offer.
    Negotiating(Mid),
    /// A taken-over m-line made `sendonly` in our outstanding offer.
    NegotiatingResume(Mid),
    /// Negotiated: media is forwarded on this mid.
    Open(Mid),
    /// The source is gone: the m-line is turned `inactive` in the next offer.
    ToStop(Mid),
    /// `inactive` is in our outstanding offer.
    NegotiatingStop(Mid),
    /// An `inactive` m-line, kept for the next track of its stream and kind.
    Idle(Mid),
}

impl ConsumerState {
    /// The m-line the consumer holds, if any.
    pub fn mid(self) -> Option<Mid> {
        match self {
            ConsumerState::ToOpen => None,
            ConsumerState::ToResume(mid)
            | ConsumerState::Negotiating(mid)
            | ConsumerState::NegotiatingResume(mid)
            | ConsumerState::Open(mid)
            | ConsumerState::ToStop(mid)
            | ConsumerState::NegotiatingStop(mid)
            | ConsumerState::Idle(mid) => Some(mid),
        }
    }
}

/// A Producer of another participant, forwarded to this one.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub source: ParticipantKey,
    pub source_mid: Mid,
    pub kind: MediaKind,
    pub state: ConsumerState,
    /// The media stream id the m-line was made with (`a=msid`): only a source of that stream
    /// may take the line over.
    pub line_stream: Option<String>,
    /// How the source's sequence numbers map onto the receiver's stream.
    pub seq: Option<SeqMap>,
    /// The receiver's payload type for the source's last one; `None` if the receiver did not
    /// accept its codec (nothing is forwarded; both were told once).
    pub pt_map: Option<(Pt, Option<Pt>)>,
    /// RTP time against wall clock of the receiver's stream, for its sender reports.
    pub clock: StreamClock,
    /// Sent past str0m: the receiver's stream (`egress.rs`).
    pub egress: Option<EgressStream>,
}

impl Consumer {
    pub fn new(source: ParticipantKey, source_mid: Mid, kind: MediaKind) -> Self {
        Consumer {
            source,
            source_mid,
            kind,
            state: ConsumerState::ToOpen,
            line_stream: None,
            seq: None,
            pt_map: None,
            clock: StreamClock::default(),
            egress: None,
        }
    }

    /// Take over `line`'s m-line (its source is gone, its stream is this one's): the receiver's
    /// stream goes on where the line's left off (the same SSRC, numbers after its highest).
    pub fn take_over(&mut self, line: Consumer) {
        self.line_stream = line.line_stream;
        self.seq = line.seq.map(SeqMap::detached);
        self.clock = line.clock;
        self.egress = line.egress;
        self.pt_map = None;
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
    /// The source is gone: the next packet begins a new stream whatever its SSRC.
    detached: bool,
}

impl SeqMap {
    /// The map of a receiver stream whose source is gone, for the next source on it (another
    /// session, which may even have picked the same SSRC): numbering goes on after the highest.
    pub(crate) fn detached(self) -> SeqMap {
        SeqMap {
            detached: true,
            ..self
        }
    }

    /// The receiver's sequence number for a source packet; `None` for a packet from before the
    /// receiver's stream began (a late retransmission) or a late one of a replaced stream.
    pub fn map(this: &mut Option<SeqMap>, ssrc: u32, seq: u64) -> Option<u64> {
        let next = match *this {
            Some(m) if m.ssrc == ssrc && !m.detached => SeqMap {
                source_highest: m.source_highest.max(seq),
                ..m
            },
            Some(m)
                if !m.detached
                    && m.replaced
                        .is_some_and(|(old, highest)| old == ssrc && seq <= highest) =>
            {
                return None;
            }
            // A new stream (or back to the one before, with newer packets): number on.
            Some(m) => SeqMap {
                ssrc,
                source_highest: seq,
                // The stream of a source that is gone sends no more.
                replaced: (!m.detached).then_some((m.ssrc, m.source_highest)),
                offset: seq as i64 - (m.highest as i64 + 1),
                highest: m.highest,
                floor: Some(m.highest),
                detached: false,
            },
            None => SeqMap {
                ssrc,
                source_highest: seq,
                replaced: None,
                offset: (seq & !0xffff) as i64,
                highest: 0,
                floor: None,
                detached: false,
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
    fn a_new_source_on_a_taken_over_line_numbers_on_even_with_the_same_ssrc() {
        let mut map = None;
        assert_eq!(SeqMap::map(&mut map, 7, 5_000), Some(5_000));
        assert_eq!(SeqMap::map(&mut map, 7, 5_001), Some(5_001));
        // The source left; a new session of the same participant picked SSRC 7 again and
        // starts lower: its packets go on after 5 001, never reusing a number.
        map = map.map(SeqMap::detached);
        assert_eq!(SeqMap::map(&mut map, 7, 100), Some(5_002));
        assert_eq!(SeqMap::map(&mut map, 7, 101), Some(5_003));
        assert_eq!(SeqMap::map(&mut map, 7, 99), None);
        // Another SSRC after a take-over: the same.
        map = map.map(SeqMap::detached);
        assert_eq!(SeqMap::map(&mut map, 9, 70_000), Some(5_004));
    }
}
