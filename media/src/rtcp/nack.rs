//! Generic NACKs (RFC 4585 §6.2.1) for the lost video packets of one stream: at once, then
//! every [`NACK_INTERVAL`], at most [`NACK_TRIES`] times and for no longer than
//! [`NACK_GIVE_UP`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A missing video packet is asked for again this often.
pub(crate) const NACK_INTERVAL: Duration = Duration::from_millis(30);
/// A missing packet is asked for at most this many times.
pub(crate) const NACK_TRIES: u8 = 8;
/// A missing packet older than this is no longer asked for (its frame is lost; the receivers
/// ask for a keyframe).
pub(crate) const NACK_GIVE_UP: Duration = Duration::from_secs(1);
/// Missing packets remembered per stream, at most.
const NACK_MAX: usize = 512;

/// The missing packets of one stream, oldest first, and the NACKs that ask for them.
#[derive(Debug, Default)]
pub(crate) struct NackWriter {
    missing: VecDeque<Missing>,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u64,
    since: Instant,
    asked: Option<Instant>,
    tries: u8,
}

impl NackWriter {
    /// Track what is missing after `seq` arrived on this (main) stream, whose highest number
    /// was `previous`; returns whether packets went missing (to be asked for at once).
    #[inline]
    pub fn track(&mut self, seq: u64, previous: Option<u64>, now: Instant) -> bool {
        match previous {
            Some(h) if seq > h + 1 => {
                for missing in (h + 1).max(seq.saturating_sub(NACK_MAX as u64))..seq {
                    self.missing.push_back(Missing {
                        seq: missing,
                        since: now,
                        asked: None,
                        tries: 0,
                    });
                }
                while self.missing.len() > NACK_MAX {
                    self.missing.pop_front();
                }
                true
            }
            Some(h) if seq <= h => {
                if let Ok(i) = self.missing.binary_search_by_key(&seq, |m| m.seq) {
                    self.missing.remove(i);
                }
                false
            }
            _ => false,
        }
    }

    /// Append a generic NACK from `sender` for the missing packets of `media` due to be asked
    /// for; returns whether some are still missing.
    pub fn write(&mut self, sender: u32, media: u32, now: Instant, out: &mut Vec<u8>) -> bool {
        self.missing.retain(|m| {
            m.tries < NACK_TRIES && now.saturating_duration_since(m.since) < NACK_GIVE_UP
        });
        let start = out.len();
        let mut fci: Option<(u16, u16)> = None;
        for m in self.missing.iter_mut() {
            if m.asked.is_some_and(|a| now < a + NACK_INTERVAL) {
                continue;
            }
            m.asked = Some(now);
            m.tries += 1;
            let seq = m.seq as u16;
            fci = match fci {
                Some((pid, blp)) if seq.wrapping_sub(pid).wrapping_sub(1) < 16 => {
                    Some((pid, blp | 1 << seq.wrapping_sub(pid).wrapping_sub(1)))
                }
                previous => {
                    if let Some((pid, blp)) = previous {
                        push_fci(out, start, sender, media, pid, blp);
                    }
                    Some((seq, 0))
                }
            };
        }
        if let Some((pid, blp)) = fci {
            push_fci(out, start, sender, media, pid, blp);
        }
        if out.len() > start {
            let words = (out.len() - start) / 4 - 1;
            out[start + 2..start + 4].copy_from_slice(&(words as u16).to_be_bytes());
        }
        !self.missing.is_empty()
    }

    /// When a missing packet is to be asked for next, if one is missing.
    pub fn next_due(&self) -> Option<Instant> {
        self.missing
            .iter()
            .map(|m| m.asked.map_or(m.since, |a| a + NACK_INTERVAL))
            .min()
    }
}

fn push_fci(out: &mut Vec<u8>, start: usize, sender: u32, media: u32, pid: u16, blp: u16) {
    if out.len() == start {
        out.extend_from_slice(&[0x80 | 1, 205, 0, 0]);
        out.extend_from_slice(&sender.to_be_bytes());
        out.extend_from_slice(&media.to_be_bytes());
    }
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(&blp.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::testing::{AUDIO, OURS, RTX, VIDEO, setup};
    use str0m::crypto::dtls::SrtpProfile;

    #[test]
    fn lost_video_is_asked_for_until_it_comes_or_too_often() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        for index in [1, 2, 5, 6] {
            let p = s.packet(VIDEO, index, None, b"v");
            s.ingress.open(&p, s.at(0)).unwrap();
        }
        let nacks = |packets: Vec<(u8, u8, Vec<u8>)>| -> Vec<(u32, u16, u16)> {
            packets
                .iter()
                .filter(|(pt, fmt, _)| *pt == 205 && *fmt == 1)
                .flat_map(|(_, _, b)| {
                    let media = u32::from_be_bytes(b[8..12].try_into().unwrap());
                    assert_eq!(u32::from_be_bytes(b[4..8].try_into().unwrap()), OURS);
                    b[12..]
                        .chunks_exact(4)
                        .map(move |f| {
                            let pid = u16::from_be_bytes([f[0], f[1]]);
                            (media, pid, u16::from_be_bytes([f[2], f[3]]))
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        // 3 and 4: one item, 4 in the bitmask.
        assert_eq!(nacks(s.feedback(s.at(0))), vec![(VIDEO, 3, 0b1)]);
        assert!(nacks(s.feedback(s.at(1))).is_empty(), "not again so soon");
        // 3 comes as a retransmission: 4 alone is asked for again.
        let rtx = s.packet(RTX, 1, None, &[0, 3, b'v']);
        s.ingress.open(&rtx, s.at(5)).unwrap();
        let again = NACK_INTERVAL.as_millis() as u64;
        assert_eq!(nacks(s.feedback(s.at(again))), vec![(VIDEO, 4, 0)]);
        let mut asked = 2;
        let mut ms = again;
        loop {
            ms += again;
            if nacks(s.feedback(s.at(ms))).is_empty() {
                break;
            }
            asked += 1;
        }
        assert_eq!(asked, NACK_TRIES as usize, "then given up");
        // Audio is not asked for.
        for index in [1, 4] {
            let p = s.packet(AUDIO, index, None, b"a");
            s.ingress.open(&p, s.at(ms)).unwrap();
        }
        assert!(nacks(s.feedback(s.at(ms + 1000))).is_empty());
    }
}
