//! A Consumer: a Producer of another participant, forwarded to this one; its m-line's
//! negotiation state, how the source's numbers map onto the receiver's stream ([`SeqMap`]),
//! and its egress stream.

use str0m::media::{MediaKind, Mid, Pt};

use crate::clock::StreamClock;
use crate::egress::EgressStream;
use crate::ids::ParticipantKey;

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
}
