//! What a receiver's SRTCP says that the SFU acts on itself, past str0m: the generic NACKs
//! (RFC 4585 §6.2.1) and the report blocks (RFC 3550 §6.4) on the streams the egress sends it,
//! and the sender reports of the streams it sends, which the ingress's receiver reports answer.

use crate::rtcp::header;

/// Packets asked for in one RTCP datagram, at most (a NACK item asks for up to 17).
pub(crate) const MAX_NACKS: usize = 128;

/// What a participant's SRTCP says (`Egress::feedback`).
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    /// (SSRC, sequence number) asked for again.
    pub nacks: Vec<(u32, u16)>,
    /// SSRCs reported on.
    pub reported: Vec<u32>,
    /// Sender reports: (SSRC, NTP time).
    pub senders: Vec<(u32, u64)>,
}

impl Feedback {
    /// Empty, for the next datagram (the vectors are reused).
    pub fn clear(&mut self) {
        self.nacks.clear();
        self.reported.clear();
        self.senders.clear();
    }

    /// Read the compound RTCP packet `plain` (opened): of the streams the participant gets, the
    /// (SSRC, sequence number) pairs it asks to be sent again (generic NACK, at most
    /// [`MAX_NACKS`]) and the SSRCs it reports on (report blocks); of the streams it sends, its
    /// sender reports (SSRC and NTP time). Appended to what is there.
    pub fn read(&mut self, plain: &[u8]) {
        let Feedback {
            nacks: out,
            reported,
            senders,
        } = self;
        let mut at = 0;
        while let Some((pt, fmt, len)) = header(&plain[at..]) {
            let block = &plain[at..at + len];
            // Report blocks of 24 bytes after the sender info (SR) or the sender SSRC (RR).
            let blocks_at = match pt {
                200 => Some(28),
                201 => Some(8),
                _ => None,
            };
            if pt == 200 && len >= 16 {
                let ssrc = u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                let ntp = u64::from_be_bytes(block[8..16].try_into().expect("8 bytes"));
                senders.push((ssrc, ntp));
            }
            if let Some(first) = blocks_at {
                reported.extend(
                    block
                        .get(first..)
                        .unwrap_or_default()
                        .chunks_exact(24)
                        .take(fmt as usize)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            if pt == 205 && fmt == 1 && len >= 12 {
                let ssrc = u32::from_be_bytes([block[8], block[9], block[10], block[11]]);
                for fci in block[12..].chunks_exact(4) {
                    if out.len() >= MAX_NACKS {
                        break;
                    }
                    let pid = u16::from_be_bytes([fci[0], fci[1]]);
                    let blp = u16::from_be_bytes([fci[2], fci[3]]);
                    out.push((ssrc, pid));
                    out.extend(
                        (0..16)
                            .filter(|bit| blp & (1 << bit) != 0)
                            .map(|bit| (ssrc, pid.wrapping_add(bit + 1))),
                    );
                    out.truncate(MAX_NACKS);
                }
            }
            at += len;
        }
    }
}
