//! Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01): the arrival time of every packet a sender numbered with the transport-wide
//! sequence number extension, reported every [`TWCC_INTERVAL`]. The sender's bandwidth
//! estimate depends on it: without feedback Chrome stops sending video.

use std::time::{Duration, Instant};

use crate::rtp::extend_seq;

/// Transport-wide feedback is sent this often while packets arrive.
pub(crate) const TWCC_INTERVAL: Duration = Duration::from_millis(50);
/// Statuses per transport-wide feedback packet, at most.
const TWCC_MAX_STATUSES: u64 = 2048;
/// Arrivals kept for transport-wide feedback, at most (a second of 2 Mbit/s video).
const TWCC_MAX_PENDING: usize = 4096;

/// The transport-wide feedback of one sender's transport: the arrivals not yet reported, and
/// the numbering of the feedback packets.
#[derive(Debug, Default)]
pub(crate) struct TwccWriter {
    /// Arrivals not yet reported: (transport-wide number, extended; arrival).
    arrivals: Vec<(u64, Instant)>,
    highest: Option<u64>,
    /// The first number the next feedback reports.
    next: Option<u64>,
    count: u8,
}

impl TwccWriter {
    /// A transport-wide number arrived (on every packet that carries one).
    #[inline]
    pub fn arrived(&mut self, seq: u16, now: Instant) {
        let seq = extend_seq(self.highest, seq);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        if self.arrivals.len() >= TWCC_MAX_PENDING {
            self.arrivals.remove(0);
        }
        self.arrivals.push((seq, now));
    }

    /// No arrival waits to be reported.
    pub fn is_empty(&self) -> bool {
        self.arrivals.is_empty()
    }

    /// One transport-wide feedback packet from `sender` for the arrivals since the last,
    /// appended to `out`; arrival times count from `zero`. `media` is one of the SSRCs the
    /// sender sends: Chrome drops transport-wide feedback whose media SSRC is none of its own.
    /// Only while arrivals wait ([`TwccWriter::is_empty`] is false).
    pub fn write(&mut self, sender: u32, media: u32, zero: Instant, out: &mut Vec<u8>) {
        self.arrivals.sort_unstable_by_key(|(seq, _)| *seq);
        self.arrivals.dedup_by_key(|(seq, _)| *seq);
        // Numbers already reported (as lost) are not reported again.
        let next = self.next.unwrap_or(self.arrivals[0].0);
        self.arrivals.retain(|(seq, _)| *seq >= next);
        let Some(&(first, first_at)) = self.arrivals.first() else {
            return;
        };
        // A long gap (the sender restarted its numbers): report from the first arrival.
        let base = if first - next >= TWCC_MAX_STATUSES {
            first
        } else {
            next
        };
        let elapsed = first_at.saturating_duration_since(zero);
        // 64 ms units (24 bits); deltas in 250 µs ticks from it.
        let reference = (elapsed.as_micros() / 64_000) as u64;
        let mut ticks = reference as i64 * 256;
        let mut statuses: Vec<u8> = Vec::new();
        let mut deltas: Vec<u8> = Vec::new();
        let mut taken = 0;
        for &(seq, at) in &self.arrivals {
            if seq - base >= TWCC_MAX_STATUSES {
                break;
            }
            let t = (at.saturating_duration_since(zero).as_micros() / 250) as i64;
            let delta = t - ticks;
            if !(-32768..=32767).contains(&delta) {
                // Too far from the previous arrival for one feedback packet.
                break;
            }
            statuses.resize((seq - base) as usize, 0);
            if (0..=255).contains(&delta) {
                statuses.push(1);
                deltas.push(delta as u8);
            } else {
                statuses.push(2);
                deltas.extend_from_slice(&(delta as i16).to_be_bytes());
            }
            ticks = t;
            taken += 1;
        }
        if taken == 0 {
            // The first arrival itself is too far from the reference: start anew next time.
            self.arrivals.clear();
            self.next = None;
            return;
        }
        self.arrivals.drain(..taken);
        self.next = Some(base + statuses.len() as u64);
        let start = out.len();
        out.extend_from_slice(&[0x80 | 15, 205, 0, 0]);
        out.extend_from_slice(&sender.to_be_bytes());
        out.extend_from_slice(&media.to_be_bytes());
        out.extend_from_slice(&(base as u16).to_be_bytes());
        out.extend_from_slice(&(statuses.len() as u16).to_be_bytes());
        out.extend_from_slice(
            &((reference as u32 & 0xff_ffff) << 8 | self.count as u32).to_be_bytes(),
        );
        self.count = self.count.wrapping_add(1);
        write_chunks(&statuses, out);
        out.extend_from_slice(&deltas);
        // Padded to 32 bits, the last byte counting the padding (RFC 3550 §6.4.1).
        let pad = (4 - (out.len() - start) % 4) % 4;
        if pad > 0 {
            out.extend(std::iter::repeat_n(0, pad - 1));
            out.push(pad as u8);
            out[start] |= 0x20;
        }
        let words = (out.len() - start) / 4 - 1;
        out[start + 2..start + 4].copy_from_slice(&(words as u16).to_be_bytes());
    }
}

/// Packet status chunks for `statuses` (0 not received, 1 small delta, 2 large delta): a run
/// length chunk for a run of 7 or more, else a two-bit status vector of 7.
fn write_chunks(statuses: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < statuses.len() {
        let symbol = statuses[i];
        let run = statuses[i..]
            .iter()
            .take(0x1fff)
            .take_while(|s| **s == symbol)
            .count();
        if run >= 7 || i + run == statuses.len() {
            out.extend_from_slice(&((symbol as u16) << 13 | run as u16).to_be_bytes());
            i += run;
        } else {
            let mut chunk: u16 = 0b11 << 14;
            for k in 0..7 {
                let s = statuses.get(i + k).copied().unwrap_or(0) as u16;
                chunk |= s << (12 - 2 * k);
            }
            out.extend_from_slice(&chunk.to_be_bytes());
            i += 7;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::testing::{AUDIO, VIDEO, setup, twcc_of};
    use str0m::crypto::dtls::SrtpProfile;

    #[test]
    fn transport_wide_feedback_reports_every_number_with_its_arrival() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        // Numbers 10..=30 but 13 and 20..=27 lost; 100 ms apart at first (large deltas), then
        // 1 ms.
        let mut arrivals = Vec::new();
        let mut ms = 1000;
        for n in (10u16..=30).filter(|n| *n != 13 && !(20..=27).contains(n)) {
            ms += if n < 13 { 100 } else { 1 };
            let ssrc = if n % 2 == 0 { AUDIO } else { VIDEO };
            let p = s.packet(ssrc, n as u64, Some(n), b"x");
            s.ingress.open(&p, s.at(ms)).unwrap();
            arrivals.push((n as u64, s.at(ms)));
        }
        let reported = twcc_of(&s.feedback(s.at(ms)), s.zero);
        assert_eq!(
            reported.len(),
            21,
            "every number from the first to the last"
        );
        for (seq, at) in reported {
            match arrivals.iter().find(|(n, _)| *n == seq) {
                Some((_, arrived)) => {
                    let at = at.expect("reported received");
                    assert!(at.max(*arrived) - at.min(*arrived) < Duration::from_micros(250));
                }
                None => assert_eq!(at, None, "{seq} was lost"),
            }
        }
        // The next feedback goes on from 31; 29 arriving late is not reported again.
        let late = s.packet(AUDIO, 40, Some(29), b"x");
        s.ingress.open(&late, s.at(ms + 60)).unwrap();
        let p = s.packet(VIDEO, 32, Some(32), b"x");
        s.ingress.open(&p, s.at(ms + 61)).unwrap();
        let next = twcc_of(&s.feedback(s.at(ms + 61)), s.zero);
        assert_eq!(
            next.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![31, 32]
        );
        assert_eq!(next[0].1, None);
        assert!(next[1].1.is_some());
        // Nothing new: no transport-wide feedback.
        let later = s.feedback(s.at(ms + 200));
        assert!(!later.iter().any(|(pt, fmt, _)| (*pt, *fmt) == (205, 15)));
    }

    #[test]
    fn status_chunks_use_runs_and_vectors() {
        let mut out = Vec::new();
        let mut statuses = vec![1u8; 9];
        statuses.extend([0, 2, 1]);
        write_chunks(&statuses, &mut out);
        // A run of nine small deltas, then a two-bit vector of 0, 2, 1 (and padding).
        assert_eq!(out, vec![0x20, 9, 0b1100_1001, 0]);
    }
}
