//! A Producer: one inbound track of a participant, as the SFU accounts for it and, while its
//! room is recorded, puts its packets together into frames.

use std::time::Instant;

use str0m::Rtc;
use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt};

use crate::assembler::FrameAssembler;

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

#[cfg(test)]
mod tests {
    use super::*;

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
