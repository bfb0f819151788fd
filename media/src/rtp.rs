//! RTP as the SFU reads it past str0m: the header in the clear ([`Header`], which the load
//! generator reads too), the header extension elements a sender negotiated ([`InExts`]), and
//! 16-bit sequence numbers and 32-bit times extended to 64 bits.
//!
//! Everything here runs for every received packet, hence the `#[inline]`s: the callers live in
//! another module (`ingress.rs`).

use str0m::media::{Frequency, MediaTime, Mid};
use str0m::rtp::{Extension, ExtensionMap, ExtensionValues, VideoOrientation};

/// What an RTP header says in the clear (RFC 3550 §5.1, RFC 8285). Also the load generator's
/// (`vizit-bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Bytes of header: fixed part, CSRCs and extensions.
    pub len: usize,
    pub padding: bool,
    /// Where the extension elements are (after the 4-byte extension header), and whether they
    /// are of the two-byte form.
    exts: Option<(usize, usize, bool)>,
}

impl Header {
    /// `None` for anything that is not RTP: RTCP (payload types 64–95 with the marker bit, RFC
    /// 5761 §4), STUN, DTLS, or a header longer than the packet.
    #[inline]
    pub fn parse(packet: &[u8]) -> Option<Header> {
        if packet.len() < 12 || packet[0] >> 6 != 2 || (192..=223).contains(&packet[1]) {
            return None;
        }
        let csrcs = (packet[0] & 0x0f) as usize;
        let mut len = 12 + 4 * csrcs;
        let mut exts = None;
        if packet[0] & 0x10 != 0 {
            let ext = packet.get(len..len + 4)?;
            let profile = u16::from_be_bytes([ext[0], ext[1]]);
            let words = u16::from_be_bytes([ext[2], ext[3]]) as usize;
            let start = len + 4;
            len = start + 4 * words;
            if len > packet.len() {
                return None;
            }
            exts = match profile {
                0xbede => Some((start, len, false)),
                p if p & 0xfff0 == 0x1000 => Some((start, len, true)),
                _ => None,
            };
        }
        (len <= packet.len()).then_some(Header {
            marker: packet[1] & 0x80 != 0,
            pt: packet[1] & 0x7f,
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            len,
            padding: packet[0] & 0x20 != 0,
            exts,
        })
    }

    /// The header extension elements of `packet` (whose header this is): (id, value).
    #[inline]
    fn elements<'a>(&self, packet: &'a [u8]) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let (mut at, end, two_byte) = self.exts.unwrap_or((0, 0, false));
        std::iter::from_fn(move || {
            loop {
                let &first = packet.get(at).filter(|_| at < end)?;
                if first == 0 {
                    // Padding between elements.
                    at += 1;
                    continue;
                }
                let (id, len, value_at) = if two_byte {
                    (first, *packet.get(at + 1)? as usize, at + 2)
                } else if first >> 4 == 15 {
                    // The one-byte form's "stop here" id (RFC 8285 §4.2).
                    return None;
                } else {
                    (first >> 4, (first & 0x0f) as usize + 1, at + 1)
                };
                at = value_at + len;
                if at > end {
                    return None;
                }
                return Some((id, &packet[value_at..at]));
            }
        })
    }
}

/// The header extension ids (RFC 8285) a sender negotiated, for what the SFU reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InExts {
    pub mid: Option<u8>,
    pub transport_cc: Option<u8>,
    pub audio_level: Option<u8>,
    pub video_orientation: Option<u8>,
    pub video_content_type: Option<u8>,
    pub playout_delay: Option<u8>,
}

impl InExts {
    pub fn new(exts: &ExtensionMap) -> InExts {
        InExts {
            mid: exts.id_of(Extension::RtpMid),
            transport_cc: exts.id_of(Extension::TransportSequenceNumber),
            audio_level: exts.id_of(Extension::AudioLevel),
            video_orientation: exts.id_of(Extension::VideoOrientation),
            video_content_type: exts.id_of(Extension::VideoContentType),
            playout_delay: exts.id_of(Extension::PlayoutDelay),
        }
    }

    /// The MID a packet names, if it carries one.
    pub fn mid_of(&self, header: &Header, packet: &[u8]) -> Option<Mid> {
        let id = self.mid?;
        let (_, value) = header.elements(packet).find(|(i, _)| *i == id)?;
        let mid = std::str::from_utf8(value).ok()?;
        (!mid.is_empty()).then(|| Mid::from(mid))
    }

    /// The values forwarding passes on, and the transport-wide number.
    #[inline]
    pub fn read(&self, header: &Header, packet: &[u8]) -> (ExtensionValues, Option<u16>) {
        let mut ev = ExtensionValues::default();
        let mut twcc = None;
        for (id, v) in header.elements(packet) {
            // Zero-length elements are allowed in the two-byte form (RFC 8285 §4.3).
            let Some(&first) = v.first() else {
                continue;
            };
            let id = Some(id);
            if id == self.transport_cc && v.len() >= 2 {
                twcc = Some(u16::from_be_bytes([v[0], v[1]]));
            } else if id == self.audio_level {
                ev.audio_level = Some(-((first & 0x7f) as i8));
                ev.voice_activity = Some(first & 0x80 != 0);
            } else if id == self.video_orientation {
                ev.video_orientation = Some(VideoOrientation::from(first & 3));
            } else if id == self.video_content_type {
                ev.video_content_type = Some(first);
            } else if id == self.playout_delay && v.len() >= 3 {
                let min = (v[0] as u64) << 4 | (v[1] as u64) >> 4;
                let max = ((v[1] & 0x0f) as u64) << 8 | v[2] as u64;
                ev.play_delay_min = Some(MediaTime::new(min, Frequency::HUNDREDTHS));
                ev.play_delay_max = Some(MediaTime::new(max, Frequency::HUNDREDTHS));
            }
        }
        (ev, twcc)
    }
}

/// The packet index (roll-over counter and sequence number) of `seq` next to the highest so
/// far (RFC 3711 Appendix A); also the transport-wide numbers. A 16-bit number extended to 64
/// bits next to `highest`.
#[inline]
pub(crate) fn extend_seq(highest: Option<u64>, seq: u16) -> u64 {
    let Some(h) = highest else {
        return seq as u64;
    };
    let roc = h >> 16;
    let candidates = [roc.wrapping_sub(1), roc, roc + 1];
    candidates
        .into_iter()
        .filter(|r| *r <= u64::MAX >> 16)
        .map(|r| r << 16 | seq as u64)
        .min_by_key(|i| i.abs_diff(h))
        .unwrap_or(seq as u64)
}

/// A 32-bit RTP time extended to 64 bits next to the highest so far.
#[inline]
pub(crate) fn extend_time(highest: Option<u64>, time: u32) -> u64 {
    let Some(h) = highest else {
        return time as u64;
    };
    let cycle = h >> 32;
    [cycle.wrapping_sub(1), cycle, cycle + 1]
        .into_iter()
        .filter(|c| *c <= u64::MAX >> 32)
        .map(|c| c << 32 | time as u64)
        .min_by_key(|t| t.abs_diff(h))
        .unwrap_or(time as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_extensions_are_read_in_both_forms() {
        let exts = InExts {
            mid: Some(3),
            audio_level: Some(1),
            playout_delay: Some(6),
            transport_cc: Some(5),
            ..InExts::default()
        };
        // One-byte form, with a CSRC and padding between elements.
        let mut packet = vec![0x91, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9];
        packet.extend([0xbe, 0xde, 0, 4]);
        packet.extend([0x10, 0x80 | 30, 0, 0x31, b'a', b'1', 0x51, 0x01, 0x02]);
        packet.extend([0x62, 0x01, 0x00, 0x64, 0, 0, 0]);
        packet.extend(b"payload");
        let header = Header::parse(&packet).unwrap();
        assert_eq!((header.len, header.ssrc, header.pt), (36, 2, 111));
        let (ev, twcc) = exts.read(&header, &packet);
        assert_eq!((ev.audio_level, ev.voice_activity), (Some(-30), Some(true)));
        assert_eq!(twcc, Some(0x0102));
        assert_eq!(ev.play_delay_min.map(|t| t.numer()), Some(16));
        assert_eq!(ev.play_delay_max.map(|t| t.numer()), Some(100));
        assert_eq!(exts.mid_of(&header, &packet), Some(Mid::from("a1")));
        // Two-byte form.
        let mut two = vec![0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0x10, 0x00, 0, 2];
        two.extend([5, 2, 0xab, 0xcd, 3, 1, b'v', 0]);
        let header = Header::parse(&two).unwrap();
        assert_eq!(exts.read(&header, &two).1, Some(0xabcd));
        assert_eq!(exts.mid_of(&header, &two), Some(Mid::from("v")));
        // A zero-length element (allowed in this form).
        let mut empty = vec![0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0x10, 0x00, 0, 1];
        empty.extend([1, 0, 5, 0]);
        let header = Header::parse(&empty).unwrap();
        let (ev, twcc) = exts.read(&header, &empty);
        assert_eq!((ev.audio_level, twcc), (None, None));
        // An extension longer than the packet.
        let mut bad = two.clone();
        bad[15] = 9;
        assert_eq!(Header::parse(&bad), None);
    }

    #[test]
    fn numbers_extend_across_wraps_both_ways() {
        assert_eq!(extend_seq(None, 5), 5);
        assert_eq!(extend_seq(Some(65_535), 2), 65_538);
        assert_eq!(extend_seq(Some(65_538), 65_534), 65_534);
        assert_eq!(extend_seq(Some(3), 65_535), 65_535);
        assert_eq!(extend_time(Some(u32::MAX as u64), 10), (1 << 32) + 10);
        assert_eq!(extend_time(Some((1 << 32) + 10), u32::MAX), u32::MAX as u64);
    }
}
