//! Receiver reports (RFC 3550 §6.4.2) on the streams the SFU receives itself: every
//! [`REPORT_INTERVAL`], from its own statistics ([`ReceiveStats`]: loss, highest number,
//! jitter) and the last sender report's time. The report blocks str0m still writes for these
//! streams (from the packets it saw before) are overwritten with the same numbers in its
//! outgoing SRTCP ([`rewrite_blocks`]), so the sender never reads two different accounts of one
//! stream.

use std::time::{Duration, Instant};

use crate::rtcp::header;

/// Receiver reports are sent this often.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Receive statistics of RFC 3550 Appendix A.3 and A.8.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReceiveStats {
    first: Option<u64>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in RTP units, ×16 (A.8).
    jitter: u64,
    transit: Option<u32>,
}

impl ReceiveStats {
    /// A packet of the stream arrived: there is something to report.
    pub fn started(&self) -> bool {
        self.first.is_some()
    }

    /// A packet of the stream arrived (or was recovered by retransmission: it counts as
    /// received, not for jitter).
    #[inline]
    pub fn recovered(&mut self, index: u64) {
        self.first = Some(self.first.map_or(index, |f| f.min(index)));
        self.received += 1;
    }

    #[inline]
    pub fn received(&mut self, index: u64, timestamp: u32, elapsed: Duration, clock_rate: u32) {
        self.recovered(index);
        // Jitter (A.8): transit times in RTP units, modulo 2^32 as the timestamps wrap.
        let arrival = (elapsed.as_micros() as u64 * clock_rate as u64 / 1_000_000) as u32;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            let d = (transit.wrapping_sub(previous) as i32).unsigned_abs() as u64;
            // J += (|D| - J) / 16, kept ×16.
            self.jitter = self.jitter + d - (self.jitter + 8) / 16;
        }
        self.transit = Some(transit);
    }

    /// The report block (RFC 3550 §6.4.1) of stream `ssrc`, whose highest number is `highest`
    /// and whose last sender report (the middle 32 bits of its NTP time, and when it came) is
    /// `sender_report`; `interval_ends` starts a new interval for the fraction lost.
    pub fn block(
        &mut self,
        ssrc: u32,
        highest: Option<u64>,
        sender_report: Option<(u32, Instant)>,
        now: Instant,
        interval_ends: bool,
    ) -> [u8; 24] {
        let s = self;
        let first = s.first.unwrap_or(0);
        let highest = highest.unwrap_or(first).max(first);
        let expected = highest + 1 - first;
        let lost = expected as i64 - s.received as i64;
        let expected_interval = expected - s.expected_prior;
        let received_interval = s.received - s.received_prior;
        if interval_ends {
            s.expected_prior = expected;
            s.received_prior = s.received;
        }
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u32
        };
        let cumulative = lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0xff_ffff;
        let (lsr, dlsr) = match sender_report {
            Some((lsr, at)) => (
                lsr,
                (now.saturating_duration_since(at).as_secs_f64() * 65536.0) as u32,
            ),
            None => (0, 0),
        };
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&ssrc.to_be_bytes());
        b[4..8].copy_from_slice(&(fraction << 24 | cumulative).to_be_bytes());
        b[8..12].copy_from_slice(&(highest as u32).to_be_bytes());
        b[12..16].copy_from_slice(&((s.jitter >> 4) as u32).to_be_bytes());
        b[16..20].copy_from_slice(&lsr.to_be_bytes());
        b[20..24].copy_from_slice(&dlsr.to_be_bytes());
        b
    }
}

/// An RR from `sender` with the report `blocks` (the first 31: a report counts them in five
/// bits, RFC 3550 §6.4.2), appended to `out`; with none it only starts a compound packet, as
/// every compound packet starts with a report (§6.1).
pub(crate) fn write_receiver_report(
    sender: u32,
    blocks: impl Iterator<Item = [u8; 24]>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(&[0x80, 201, 0, 0]);
    out.extend_from_slice(&sender.to_be_bytes());
    let mut count = 0u8;
    for block in blocks.take(31) {
        out.extend_from_slice(&block);
        count += 1;
    }
    out[start] |= count;
    let words = (out.len() - start) / 4 - 1;
    out[start + 2..start + 4].copy_from_slice(&(words as u16).to_be_bytes());
}

/// Overwrite the report blocks in a compound RTCP packet str0m made (`plain`, opened) on the
/// streams `ours` has a block for (by SSRC) with its numbers (loss, highest number, jitter);
/// keeps str0m's LSR and DLSR. Returns whether it changed.
pub(crate) fn rewrite_blocks(
    plain: &mut [u8],
    mut ours: impl FnMut(u32) -> Option<[u8; 24]>,
) -> bool {
    let mut changed = false;
    let mut at = 0;
    while let Some((pt, count, len)) = header(&plain[at..]) {
        let first = match pt {
            200 => Some(28),
            201 => Some(8),
            _ => None,
        };
        if let Some(first) = first {
            let packet = &mut plain[at..at + len];
            for b in packet
                .get_mut(first..)
                .unwrap_or_default()
                .chunks_exact_mut(24)
                .take(count as usize)
            {
                let ssrc = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if let Some(ours) = ours(ssrc) {
                    b[4..16].copy_from_slice(&ours[4..16]);
                    changed = true;
                }
            }
        }
        at += len;
    }
    changed
}

/// Write the sender info (RTP time, packet and octet counts) of the sender reports in a
/// compound RTCP packet str0m made (`plain`, opened) for the streams `sent` knows: by SSRC,
/// the RTP time at the report's time and the packets and payload octets sent past str0m.
/// str0m's counts are of what it sent itself on the stream (before the keys were there, or
/// retransmitted from its own buffer): the two are added. Returns whether it changed.
pub(crate) fn rewrite_sender_info(
    plain: &mut [u8],
    mut sent: impl FnMut(u32) -> Option<(u32, u32, u32)>,
) -> bool {
    let mut changed = false;
    let mut at = 0;
    while let Some((pt, _, len)) = header(&plain[at..]) {
        let block = &mut plain[at..at + len];
        if pt == 200 && len >= 28 {
            let ssrc = u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
            if let Some((time, packets, octets)) = sent(ssrc) {
                let word =
                    |at: usize| u32::from_be_bytes(block[at..at + 4].try_into().expect("4 bytes"));
                let packets = word(20).wrapping_add(packets);
                let octets = word(24).wrapping_add(octets);
                block[16..20].copy_from_slice(&time.to_be_bytes());
                block[20..24].copy_from_slice(&packets.to_be_bytes());
                block[24..28].copy_from_slice(&octets.to_be_bytes());
                changed = true;
            }
        }
        at += len;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::testing::{AUDIO, RTX, VIDEO, setup};
    use str0m::crypto::dtls::SrtpProfile;

    #[test]
    fn jitter_stays_small_across_a_timestamp_wrap() {
        let mut stats = ReceiveStats::default();
        // 20 ms audio frames at 48 kHz, on time, across 2^32.
        for i in 0..20u64 {
            let time = (u32::MAX - 5 * 960).wrapping_add(i as u32 * 960);
            stats.received(i, time, Duration::from_millis(1000 + 20 * i), 48_000);
        }
        assert!(stats.jitter >> 4 < 48, "jitter {} ticks", stats.jitter >> 4);
    }

    #[test]
    fn receiver_reports_count_loss_and_answer_the_last_sender_report() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        for index in (1000..1010).filter(|i| *i != 1004) {
            let p = s.packet(AUDIO, index, None, b"a");
            s.ingress.open(&p, s.at(0)).unwrap();
        }
        s.ingress
            .sender_report(AUDIO, 0x1234_5678_9abc_def0, s.at(0));
        let packets = s.feedback(s.at(500));
        let (_, count, rr) = &packets[0];
        assert_eq!((*count, rr.len()), (1, 8 + 24), "one block: audio's");
        let block = &rr[8..];
        let word = |at: usize| u32::from_be_bytes(block[at..at + 4].try_into().unwrap());
        assert_eq!(word(0), AUDIO);
        assert_eq!(word(4) >> 24, 256 / 10, "fraction lost: 1 of 10");
        assert_eq!(word(4) & 0xff_ffff, 1, "cumulative lost");
        assert_eq!(word(8), 1009, "highest number");
        assert_eq!(word(16), 0x5678_9abc, "the middle of the report's NTP time");
        assert_eq!(word(20), 65536 / 2, "half a second since");
        // str0m's report block on the stream gets the same numbers, its LSR and DLSR stay.
        let mut theirs = vec![0x81, 201, 0, 7, 0, 0, 0, 1];
        theirs.extend(AUDIO.to_be_bytes());
        theirs.extend([0xaa; 20]);
        assert!(s.ingress.rewrite_report_blocks(&mut theirs, s.at(600)));
        assert_eq!(
            &theirs[12..16],
            &[0, 0, 0, 1],
            "no loss since the last report"
        );
        assert_eq!(&theirs[16..20], &1009u32.to_be_bytes());
        assert_eq!(&theirs[24..32], &[0xaa; 8]);
        // A repair stream is reported by its own numbers.
        for index in [5000, 5001] {
            let p = s.packet(VIDEO, index, None, b"v");
            s.ingress.open(&p, s.at(700)).unwrap();
        }
        let rtx = s.packet(RTX, 40, None, &[0x13, 0x8a, b'v']);
        assert_eq!(s.ingress.open(&rtx, s.at(701)).unwrap().seq, 5002);
        let packets = s.feedback(s.at(1600));
        let blocks = &packets[0].2[8..];
        let rtx_block = blocks
            .chunks_exact(24)
            .find(|b| u32::from_be_bytes(b[0..4].try_into().unwrap()) == RTX)
            .expect("a block on the repair stream");
        assert_eq!(&rtx_block[4..12], &[0, 0, 0, 0, 0, 0, 0, 40]);
        let mut other = vec![0x81, 201, 0, 7, 0, 0, 0, 1];
        other.extend(0x7777u32.to_be_bytes());
        other.extend([0xaa; 20]);
        assert!(!s.ingress.rewrite_report_blocks(&mut other, s.at(600)));
    }
}
