//! Frames from forwarded RTP packets, for the recorder.
//!
//! The SFU forwards packets as they come (str0m's RTP mode): a receiver's own jitter buffer puts
//! them in order. The recorder takes whole frames, so while a room is recorded each of its tracks
//! has a [`FrameAssembler`]: a small reorder buffer that waits for late and retransmitted packets,
//! and a depacketizer (Opus: the payload is the frame; VP8 per RFC 7741; H.264 per RFC 6184).
//! A gap that is not filled in time is skipped and the next frame is marked not contiguous (a
//! video recorder then waits for a keyframe).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::CodecExtra;
use str0m::unversioned::{Depacketizer, H264Depacketizer, Vp8Depacketizer};

use crate::recording::TapCodec;

/// How long a gap in video is waited for (a retransmission takes a round trip or two).
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Audio is not retransmitted: a gap is only waited for in case of reordering.
const MAX_WAIT_AUDIO: Duration = Duration::from_millis(60);
/// Packets held at most (~2 s of 1.5 Mbit/s video); more and the oldest gap is given up.
const MAX_PACKETS: usize = 400;

/// One RTP packet of a track, as received (sequence number and media time extended).
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    pub seq: u64,
    pub time: u64,
    pub marker: bool,
    pub arrival: Instant,
    pub payload: Arc<[u8]>,
}

/// One whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub time: u64,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// False when packets before it were given up.
    pub contiguous: bool,
    pub keyframe: bool,
    pub data: Arc<[u8]>,
}

#[derive(Debug)]
pub(crate) struct FrameAssembler {
    /// Opus (one packet is one frame), VP8 or H.264.
    codec: TapCodec,
    /// Ordered by sequence number, no duplicates.
    packets: VecDeque<Packet>,
    /// The first sequence number not yet consumed.
    next: Option<u64>,
    /// Packets were given up since the last frame.
    gap: bool,
}

impl FrameAssembler {
    /// An assembler for a codec the recorder takes; `None` for others.
    pub fn new(codec: TapCodec) -> Option<Self> {
        if codec == TapCodec::Other {
            return None;
        }
        Some(FrameAssembler {
            codec,
            packets: VecDeque::new(),
            next: None,
            // What came before the first frame is unknown.
            gap: true,
        })
    }

    pub fn codec(&self) -> TapCodec {
        self.codec
    }

    /// Take one packet; returns the frames it completes, in order.
    pub fn push(&mut self, packet: Packet, out: &mut Vec<Frame>) {
        if self.next.is_some_and(|next| packet.seq < next) {
            // Late: its frame was emitted or given up.
            return;
        }
        if self.next.is_none() && self.packets.is_empty() && !self.is_head(&packet) {
            // Joined mid-frame: start with the next frame.
            return;
        }
        let now = packet.arrival;
        match self.packets.binary_search_by_key(&packet.seq, |p| p.seq) {
            Ok(_) => return,
            Err(i) => self.packets.insert(i, packet),
        }
        self.emit(Some(now), out);
    }

    /// The track ends (the recording stops, the sender leaves or replaces its stream): give up
    /// every gap still awaited and hand over the whole frames held behind it.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        self.emit(None, out);
    }

    /// Hand over the frames complete at the head of the buffer; give up a gap at the head that
    /// waited too long at `now` (`None`: whatever it waited).
    fn emit(&mut self, now: Option<Instant>, out: &mut Vec<Frame>) {
        loop {
            let held = self.packets.len();
            if let Some(frame) = self.pop_frame() {
                out.push(frame);
                continue;
            }
            if self.packets.len() != held {
                // A malformed frame was dropped: what follows may be complete.
                continue;
            }
            // Nothing complete at the head: give up its gap if it waited too long.
            let Some(head) = self.packets.front() else {
                break;
            };
            let wait = match self.codec {
                TapCodec::Opus => MAX_WAIT_AUDIO,
                _ => MAX_WAIT,
            };
            let overdue = now.is_none_or(|now| {
                now.saturating_duration_since(head.arrival) >= wait
                    || self.packets.len() > MAX_PACKETS
            });
            if !overdue {
                break;
            }
            self.skip_to_next_frame();
        }
    }

    /// Whether a packet can start a frame. VP8: the start of partition 0 (RFC 7741 §4.2: S set,
    /// PID 0). H.264 has no frame start in the payload: any NAL unit or fragment start may be
    /// one (after a gap such a frame may lack its first NAL units; it is marked as following a
    /// gap).
    fn is_head(&self, p: &Packet) -> bool {
        match self.codec {
            TapCodec::Vp8 => p
                .payload
                .first()
                .is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0),
            TapCodec::H264 => H264Depacketizer::default().is_partition_head(&p.payload),
            _ => true,
        }
    }

    fn is_tail(&self, p: &Packet) -> bool {
        // VP8 and H.264 alike: the marker bit ends a frame.
        self.codec == TapCodec::Opus || p.marker
    }

    /// The frame at the head of the buffer, if it is complete and nothing before it is missing.
    fn pop_frame(&mut self) -> Option<Frame> {
        let head = self.packets.front()?;
        if self.next.is_some_and(|next| head.seq != next) || !self.is_head(head) {
            return None;
        }
        let mut end = None;
        for (i, p) in self.packets.iter().enumerate() {
            if p.seq != head.seq + i as u64 || p.time != head.time {
                return None;
            }
            if self.is_tail(p) {
                end = Some(i);
                break;
            }
        }
        let end = end?;
        let packets: Vec<Packet> = self.packets.drain(..=end).collect();
        self.next = Some(packets[end].seq + 1);
        let first = &packets[0];
        // A depacketizer per frame: no state (a half-read H.264 fragment) crosses frames.
        let depacketized = match self.codec {
            TapCodec::Vp8 => depacketize(&mut Vp8Depacketizer::default(), &packets),
            TapCodec::H264 => depacketize(&mut H264Depacketizer::default(), &packets),
            _ => Some((first.payload.clone(), false)),
        };
        let Some((data, keyframe)) = depacketized else {
            // A malformed frame is dropped: the next one follows a gap.
            self.gap = true;
            return None;
        };
        Some(Frame {
            time: first.time,
            arrival: first.arrival,
            contiguous: !std::mem::take(&mut self.gap),
            keyframe,
            data,
        })
    }

    /// Give up what is missing at the head of the buffer: the packets before the first buffered
    /// frame start, or the broken frame at the head.
    fn skip_to_next_frame(&mut self) {
        self.gap = true;
        let Some(head) = self.packets.front() else {
            return;
        };
        if self.next != Some(head.seq) && self.is_head(head) {
            // What is missing lies before this frame: give that up, keep the frame.
            self.next = Some(head.seq);
            return;
        }
        // The head's frame misses a packet: drop it, and everything up to the start of a frame
        // with another timestamp.
        let broken = head.time;
        while let Some(p) = self.packets.pop_front() {
            self.next = Some(p.seq + 1);
            if self
                .packets
                .front()
                .is_some_and(|p| p.time != broken && self.is_head(p))
            {
                break;
            }
        }
    }
}

/// A frame from its packets; `None` (the frame is dropped, the next marked) if one is malformed.
fn depacketize(d: &mut dyn Depacketizer, packets: &[Packet]) -> Option<(Arc<[u8]>, bool)> {
    let size: usize = packets.iter().map(|p| p.payload.len()).sum();
    let mut data = Vec::with_capacity(d.out_size_hint(size).unwrap_or(size));
    let mut extra = CodecExtra::None;
    for p in packets {
        d.depacketize(&p.payload, &mut data, &mut extra).ok()?;
    }
    let keyframe = match extra {
        CodecExtra::Vp8(e) => e.is_keyframe,
        CodecExtra::H264(e) => e.is_keyframe,
        _ => false,
    };
    Some((data.into(), keyframe))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VP8 payload descriptor (RFC 7741 §4.2): S bit on the first packet of a frame, partition 0.
    /// The first payload byte of a keyframe's first packet has the P bit (0x01) clear.
    fn vp8(start: bool, key: bool, body: &[u8]) -> Arc<[u8]> {
        let mut p = vec![if start { 0x10 } else { 0x00 }];
        if start {
            // A VP8 frame header: P bit clear for a keyframe, then the start code.
            p.extend_from_slice(&[if key { 0x00 } else { 0x01 }, 0, 0, 0x9d, 0x01, 0x2a]);
        }
        p.extend_from_slice(body);
        p.into()
    }

    fn packet(seq: u64, time: u64, marker: bool, at: Instant, payload: Arc<[u8]>) -> Packet {
        Packet {
            seq,
            time,
            marker,
            arrival: at,
            payload,
        }
    }

    /// Three packets of one VP8 frame at `seq`, with `time`.
    fn frame(seq: u64, time: u64, key: bool, at: Instant) -> Vec<Packet> {
        vec![
            packet(seq, time, false, at, vp8(true, key, b"a")),
            packet(seq + 1, time, false, at, vp8(false, false, b"b")),
            packet(seq + 2, time, true, at, vp8(false, false, b"c")),
        ]
    }

    #[test]
    fn vp8_frames_are_put_together_in_order_even_from_reordered_packets() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Vp8).unwrap();
        let mut out = Vec::new();
        let mut packets = frame(100, 9000, true, t0);
        packets.extend(frame(103, 12000, false, t0));
        // 101 and 104 arrive last.
        let order = [0, 2, 3, 5, 1, 4];
        for i in order {
            a.push(packets[i].clone(), &mut out);
            if i == 1 {
                assert_eq!(out.len(), 1, "the first frame completes when 101 arrives");
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].time, 9000);
        // What came before the first frame is unknown.
        assert!(out[0].keyframe && !out[0].contiguous);
        assert_eq!(
            &out[0].data[..],
            &[0x00, 0, 0, 0x9d, 0x01, 0x2a, b'a', b'b', b'c']
        );
        assert_eq!(out[1].time, 12000);
        assert!(!out[1].keyframe && out[1].contiguous);
        // A duplicate or a packet of an emitted frame changes nothing.
        a.push(packets[1].clone(), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_gap_not_filled_in_time_is_skipped_and_the_next_frame_says_so() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Vp8).unwrap();
        let mut out = Vec::new();
        let mut packets = frame(65_534, 0, true, t0);
        packets.extend(frame(65_537, 3000, false, t0));
        packets.extend(frame(65_540, 6000, false, t0 + MAX_WAIT));
        // 65_535 (middle of the first frame) is lost.
        for (i, p) in packets.iter().enumerate() {
            if i != 1 {
                a.push(p.clone(), &mut out);
            }
        }
        // The first frame is broken and dropped; the second is not contiguous; the third is.
        let times: Vec<_> = out.iter().map(|f| (f.time, f.contiguous)).collect();
        assert_eq!(times, vec![(3000, false), (6000, true)]);
        // The lost packet arriving now is too late.
        a.push(packets[1].clone(), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn while_a_gap_is_awaited_nothing_after_it_is_emitted() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Vp8).unwrap();
        let mut out = Vec::new();
        let packets: Vec<Packet> = frame(10, 0, true, t0)
            .into_iter()
            .chain(frame(13, 3000, false, t0 + Duration::from_millis(30)))
            .collect();
        a.push(packets[0].clone(), &mut out);
        // The retransmission of 11 is awaited; 13..15 wait behind it.
        for p in &packets[2..] {
            a.push(p.clone(), &mut out);
        }
        assert!(out.is_empty());
        a.push(packets[1].clone(), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].contiguous);
    }

    #[test]
    fn when_the_track_ends_the_frames_behind_an_awaited_gap_are_handed_over() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Vp8).unwrap();
        let mut out = Vec::new();
        // Frame 0 misses its middle packet (11); frames 3000 and 6000 are whole behind it; the
        // last frame (9000) never got its tail.
        let mut packets: Vec<Packet> = frame(10, 0, true, t0);
        packets.remove(1);
        packets.extend(frame(13, 3000, false, t0));
        packets.extend(frame(16, 6000, false, t0));
        packets.extend(frame(19, 9000, false, t0).into_iter().take(2));
        for p in packets {
            a.push(p, &mut out);
        }
        assert!(out.is_empty(), "the gap is still awaited");
        a.finish(&mut out);
        let got: Vec<_> = out.iter().map(|f| (f.time, f.contiguous)).collect();
        assert_eq!(got, vec![(3000, false), (6000, true)]);
        // Nothing is held any more: a late packet of a finished frame is dropped.
        a.finish(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_malformed_frame_is_dropped_and_the_next_one_follows_a_gap() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Vp8).unwrap();
        let mut out = Vec::new();
        for p in frame(1, 0, true, t0) {
            a.push(p, &mut out);
        }
        // A frame whose middle packet is only a descriptor byte (no payload): malformed.
        let mut bad = frame(4, 3000, false, t0);
        bad[1].payload = Arc::from(&[0x00u8][..]);
        for p in bad {
            a.push(p, &mut out);
        }
        for p in frame(7, 6000, false, t0)
            .into_iter()
            .chain(frame(10, 9000, false, t0))
        {
            a.push(p, &mut out);
        }
        let got: Vec<_> = out.iter().map(|f| (f.time, f.contiguous)).collect();
        assert_eq!(got, vec![(0, false), (6000, false), (9000, true)]);
    }

    #[test]
    fn a_full_buffer_gives_up_the_gap_without_waiting() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Vp8).unwrap();
        let mut out = Vec::new();
        for p in frame(0, 0, true, t0) {
            a.push(p, &mut out);
        }
        // Packet 3 never comes; the frames behind it pile up, all arriving at once.
        let mut seq = 4;
        let mut time = 6000;
        while seq < 4 + MAX_PACKETS as u64 + 3 {
            for p in frame(seq, time, false, t0) {
                a.push(p, &mut out);
            }
            seq += 3;
            time += 3000;
        }
        assert!(
            out.len() > 2,
            "the gap was given up once the buffer was full"
        );
        // Frame 3000 (packets 3..5) was broken; the first after it follows a gap.
        assert_eq!((out[1].time, out[1].contiguous), (6000, false));
        assert!(out[2..].iter().all(|f| f.contiguous));
        assert!(a.packets.len() <= MAX_PACKETS);
    }

    #[test]
    fn a_lost_opus_packet_is_waited_for_only_briefly() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Opus).unwrap();
        let mut out = Vec::new();
        a.push(packet(1, 0, true, t0, Arc::from(&b"a"[..])), &mut out);
        // 2 is lost; 3 arrives 20 ms later and waits; 4, 60 ms after 3, gives up the gap.
        let t3 = t0 + Duration::from_millis(20);
        a.push(packet(3, 1920, false, t3, Arc::from(&b"c"[..])), &mut out);
        assert_eq!(out.len(), 1);
        a.push(
            packet(4, 2880, false, t3 + MAX_WAIT_AUDIO, Arc::from(&b"d"[..])),
            &mut out,
        );
        let got: Vec<_> = out.iter().map(|f| (f.time, f.contiguous)).collect();
        assert_eq!(got, vec![(0, false), (1920, false), (2880, true)]);
    }

    #[test]
    fn opus_packets_are_frames() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new(TapCodec::Opus).unwrap();
        let mut out = Vec::new();
        a.push(packet(7, 960, true, t0, Arc::from(&b"x"[..])), &mut out);
        a.push(packet(9, 2880, false, t0, Arc::from(&b"z"[..])), &mut out);
        a.push(packet(8, 1920, false, t0, Arc::from(&b"y"[..])), &mut out);
        let got: Vec<_> = out.iter().map(|f| (f.time, f.data.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (960, b"x".to_vec()),
                (1920, b"y".to_vec()),
                (2880, b"z".to_vec())
            ]
        );
        assert!(FrameAssembler::new(TapCodec::Other).is_none());
    }
}
