//! Fast forwarding: the SFU protects and sends forwarded media itself, past str0m's send path.
//!
//! Writing a packet into str0m costs a queue, its pacer, its retransmission buffer, a timer pass
//! over the whole transport to release it and a poll per packet: more than a quarter of the
//! SFU's CPU (bench/README.md). With the keys of the transport's DTLS handshake
//! ([`crate::srtp`]) the SFU writes the RTP header, protects the packet and sends it at once.
//! str0m keeps everything else: ICE, DTLS, the SDP (the send stream it declared, whose SSRC the
//! receiver knows), receiving, keyframe requests, receiver reports. Two things str0m would do
//! for the packets it no longer sees are done here:
//!
//! - **Sender reports.** str0m still sends one for each of its send streams, but it knows
//!   nothing of the packets: its RTP time and counts would be wrong, and the receiver
//!   synchronises audio and video by them. Each outgoing SRTCP packet of a transport with fast
//!   streams is opened, the sender info of their reports is written from the packets really
//!   sent, and the packet is sealed again under its own SRTCP index (the original never leaves,
//!   so no nonce is used twice).
//! - **Retransmissions.** Video packets are kept (the last [`RESEND_SLOTS`]); a receiver's
//!   generic NACK for a fast stream is read from its SRTCP (str0m reads it too, for the packets
//!   it sent itself) and the packet is sent again as it was, at most once per
//!   [`RESEND_INTERVAL`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::media::{MediaKind, Mid};
use str0m::rtp::{Extension, ExtensionMap, ExtensionValues};

use crate::srtp::{Direction, Keys, Srtp};

/// Video packets kept for retransmission: about 2 s of 1.5 Mbit/s video.
pub(crate) const RESEND_SLOTS: usize = 512;
/// A packet is not sent again sooner than this after its last sending: a receiver repeats its
/// NACK until the packet arrives, and one round trip is the least that takes.
pub(crate) const RESEND_INTERVAL: Duration = Duration::from_millis(10);

/// The longest header written: 12 bytes, the extension header, a MID of 16 bytes and three
/// one-byte elements, padded.
const HEADER_MAX: usize = 12 + 4 + 17 + 3 * 2 + 3;

/// The largest datagram kept for retransmission without growing its slot (an Ethernet MTU).
const MAX_DATAGRAM: usize = 1500;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A receiving transport's SRTP contexts for fast forwarding.
pub(crate) struct FastTransport {
    rtp: Srtp,
    /// Opens and seals again what str0m sends (its sender reports).
    rtcp_open: Srtp,
    rtcp_seal: Srtp,
    /// Opens what the receiver sends (its NACKs).
    rtcp_in: Srtp,
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

/// One fast stream: a consumer's packets as the receiver gets them.
pub(crate) struct FastStream {
    /// The receiver's m-line and str0m's send stream on it.
    pub mid: Mid,
    pub ssrc: u32,
    exts: Exts,
    /// Packets and payload octets sent, for sender reports.
    packets: u32,
    octets: u32,
    /// The newest packet sent: its index, RTP time and the wall-clock time it stands for.
    newest: Option<(u64, u32, Instant)>,
    clock_rate: u32,
    resend: Option<Box<[Option<Kept>]>>,
    /// The receiver reported on this stream: it knows the SSRC, the MID need not be sent.
    acknowledged: bool,
}

impl std::fmt::Debug for FastStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastStream")
            .field("mid", &self.mid)
            .field("ssrc", &self.ssrc)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

/// A sent video packet, kept for retransmission.
struct Kept {
    index: u64,
    sent: Instant,
    datagram: Vec<u8>,
}

/// The one-byte header extension ids (RFC 8285) the receiver negotiated for what forwarding
/// writes.
#[derive(Debug, Clone, Copy, Default)]
struct Exts {
    mid: Option<u8>,
    audio_level: Option<u8>,
    video_orientation: Option<u8>,
    video_content_type: Option<u8>,
}

/// The parts of a forwarded RTP packet that go into the receiver's header.
pub(crate) struct Outgoing<'a> {
    pub pt: u8,
    pub marker: bool,
    /// Roll-over counter and sequence number in the receiver's stream.
    pub index: u64,
    pub time: u32,
    /// The wall-clock time the packet's RTP time stands for.
    pub wallclock: Instant,
    pub exts: &'a ExtensionValues,
    pub payload: &'a [u8],
}

impl FastTransport {
    /// `None` for keys whose profile [`Srtp`] does not know.
    pub fn new(keys: &Keys) -> Option<FastTransport> {
        Some(FastTransport {
            rtp: Srtp::rtp(keys, Direction::Outbound, true)?,
            rtcp_open: Srtp::rtcp(keys, Direction::Outbound, false)?,
            rtcp_seal: Srtp::rtcp(keys, Direction::Outbound, true)?,
            rtcp_in: Srtp::rtcp(keys, Direction::Inbound, false)?,
            plain: Vec::new(),
            sealed: Vec::new(),
        })
    }

    /// The protected datagram of one forwarded packet on `stream`; video is kept for NACKs.
    pub fn packet(
        &mut self,
        stream: &mut FastStream,
        packet: Outgoing<'_>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let mut header = [0u8; HEADER_MAX];
        let len = stream.header(&packet, &mut header);
        let mut datagram = Vec::with_capacity(len + packet.payload.len() + self.rtp.overhead());
        self.rtp
            .protect(
                &header[..len],
                packet.payload,
                stream.ssrc,
                packet.index,
                &mut datagram,
            )
            .ok()?;
        stream.packets = stream.packets.wrapping_add(1);
        stream.octets = stream.octets.wrapping_add(packet.payload.len() as u32);
        if stream
            .newest
            .is_none_or(|(index, _, _)| packet.index > index)
        {
            stream.newest = Some((packet.index, packet.time, packet.wallclock));
        }
        if let Some(slots) = stream.resend.as_mut() {
            let slot = &mut slots[packet.index as usize % RESEND_SLOTS];
            // Room for the largest datagram from the start: sizes vary within a frame, and a
            // slot that grew packet by packet would reallocate all the time.
            let kept = slot.get_or_insert_with(|| Kept {
                index: packet.index,
                sent: now,
                datagram: Vec::with_capacity(MAX_DATAGRAM),
            });
            kept.index = packet.index;
            kept.sent = now;
            kept.datagram.clear();
            kept.datagram.extend_from_slice(&datagram);
        }
        Some(datagram)
    }

    /// Write the sender info of every sender report for a fast stream in the outgoing SRTCP
    /// `datagram` (from str0m) from the packets really sent. Returns whether it changed.
    pub fn rewrite_reports<'s>(
        &mut self,
        datagram: &mut Vec<u8>,
        stream: impl Fn(u32) -> Option<&'s FastStream>,
        clock: &WallClock,
    ) -> bool {
        let Some(index) = self.rtcp_open.unprotect_rtcp(datagram, &mut self.plain) else {
            return false;
        };
        let mut changed = false;
        let mut at = 0;
        while let Some((pt, _, len)) = rtcp_header(&self.plain[at..]) {
            let block = &mut self.plain[at..at + len];
            if pt == 200 && len >= 28 {
                let ssrc = u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                if let Some(s) = stream(ssrc) {
                    let word = |at: usize| {
                        u32::from_be_bytes(block[at..at + 4].try_into().expect("4 bytes"))
                    };
                    let ntp = u64::from_be_bytes(block[8..16].try_into().expect("8 bytes"));
                    if let Some(time) = s.rtp_time_at(clock.instant_of_ntp(ntp)) {
                        // str0m counts what it sent itself on the stream (before the keys were
                        // there, or retransmitted from its own buffer).
                        let packets = word(20).wrapping_add(s.packets);
                        let octets = word(24).wrapping_add(s.octets);
                        block[16..20].copy_from_slice(&time.to_be_bytes());
                        block[20..24].copy_from_slice(&packets.to_be_bytes());
                        block[24..28].copy_from_slice(&octets.to_be_bytes());
                        changed = true;
                    }
                }
            }
            at += len;
        }
        if !changed
            || self
                .rtcp_seal
                .protect_rtcp(&self.plain, index, &mut self.sealed)
                .is_err()
        {
            return false;
        }
        std::mem::swap(datagram, &mut self.sealed);
        true
    }

    /// What the receiver's SRTCP `datagram` says of the streams it gets: the (SSRC, sequence
    /// number) pairs it asks to be sent again (generic NACK, RFC 4585 §6.2.1) into `nacks`, the
    /// SSRCs it reports on (report blocks, RFC 3550 §6.4) into `reported`.
    pub fn feedback(
        &mut self,
        datagram: &[u8],
        nacks: &mut Vec<(u32, u16)>,
        reported: &mut Vec<u32>,
    ) {
        if self
            .rtcp_in
            .unprotect_rtcp(datagram, &mut self.plain)
            .is_none()
        {
            return;
        }
        let out = nacks;
        let mut at = 0;
        while let Some((pt, fmt, len)) = rtcp_header(&self.plain[at..]) {
            let block = &self.plain[at..at + len];
            // Report blocks of 24 bytes after the sender info (SR) or the sender SSRC (RR).
            let blocks_at = match pt {
                200 => Some(28),
                201 => Some(8),
                _ => None,
            };
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
                    let pid = u16::from_be_bytes([fci[0], fci[1]]);
                    let blp = u16::from_be_bytes([fci[2], fci[3]]);
                    out.push((ssrc, pid));
                    out.extend(
                        (0..16)
                            .filter(|bit| blp & (1 << bit) != 0)
                            .map(|bit| (ssrc, pid.wrapping_add(bit + 1))),
                    );
                }
            }
            at += len;
        }
    }
}

/// Packet type, count/format field and length in bytes of the RTCP packet at the start of
/// `buf`, if a whole one is there.
fn rtcp_header(buf: &[u8]) -> Option<(u8, u8, usize)> {
    if buf.len() < 4 || buf[0] >> 6 != 2 {
        return None;
    }
    let len = (u16::from_be_bytes([buf[2], buf[3]]) as usize + 1) * 4;
    (len <= buf.len()).then_some((buf[1], buf[0] & 0x1f, len))
}

impl FastStream {
    /// The fast stream of str0m's send stream `ssrc` on the receiver's m-line `mid`, whose
    /// header extensions the receiver negotiated in `exts`.
    pub fn new(mid: Mid, ssrc: u32, kind: MediaKind, clock_rate: u32, exts: &ExtensionMap) -> Self {
        let one_byte = |e| exts.id_of(e).filter(|id| (1..=14).contains(id));
        FastStream {
            mid,
            ssrc,
            exts: Exts {
                mid: one_byte(Extension::RtpMid),
                audio_level: one_byte(Extension::AudioLevel),
                video_orientation: one_byte(Extension::VideoOrientation),
                video_content_type: one_byte(Extension::VideoContentType),
            },
            packets: 0,
            octets: 0,
            newest: None,
            clock_rate,
            acknowledged: false,
            resend: (kind == MediaKind::Video)
                .then(|| std::iter::repeat_with(|| None).take(RESEND_SLOTS).collect()),
        }
    }

    /// The receiver reported on this stream: from now on it is known by its SSRC.
    pub fn acknowledge(&mut self) {
        self.acknowledged = true;
    }

    /// The kept datagram of sequence number `seq`, if it may be sent again now.
    pub fn resend(&mut self, seq: u16, now: Instant) -> Option<&[u8]> {
        let kept = self.resend.as_mut()?[seq as usize % RESEND_SLOTS].as_mut()?;
        if kept.index as u16 != seq || now.saturating_duration_since(kept.sent) < RESEND_INTERVAL {
            return None;
        }
        kept.sent = now;
        Some(&kept.datagram)
    }

    /// The RTP header of `packet` in this stream, into `buf`; returns its length.
    fn header(&self, packet: &Outgoing<'_>, buf: &mut [u8; HEADER_MAX]) -> usize {
        buf[1] = packet.pt & 0x7f | if packet.marker { 0x80 } else { 0 };
        buf[2..4].copy_from_slice(&(packet.index as u16).to_be_bytes());
        buf[4..8].copy_from_slice(&packet.time.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        // One-byte header extensions (RFC 8285 §4.2), as str0m writes them.
        let ev = packet.exts;
        let mut at = 16;
        // The receiver's MID until it reports on the stream (RFC 8843 §9.2), as str0m does:
        // a receiver that demultiplexes by MID first then knows the SSRC.
        let mid = self.mid.as_bytes();
        if let (false, Some(id), 1..=16) = (self.acknowledged, self.exts.mid, mid.len()) {
            buf[at] = id << 4 | (mid.len() - 1) as u8;
            buf[at + 1..at + 1 + mid.len()].copy_from_slice(mid);
            at += 1 + mid.len();
        }
        let mut element = |id: Option<u8>, value: Option<u8>| {
            if let (Some(id), Some(value)) = (id, value) {
                buf[at] = id << 4;
                buf[at + 1] = value;
                at += 2;
            }
        };
        let level = ev
            .audio_level
            .zip(ev.voice_activity)
            .map(|(level, voice)| if voice { 0x80 } else { 0 } | (level.unsigned_abs() & 0x7f));
        element(self.exts.audio_level, level);
        element(
            self.exts.video_orientation,
            ev.video_orientation.map(|o| o as u8),
        );
        element(self.exts.video_content_type, ev.video_content_type);
        if at == 16 {
            buf[0] = 0x80;
            return 12;
        }
        let words = (at - 16).div_ceil(4);
        buf[at..16 + words * 4].fill(0);
        buf[0] = 0x90;
        buf[12..14].copy_from_slice(&[0xbe, 0xde]);
        buf[14..16].copy_from_slice(&(words as u16).to_be_bytes());
        16 + words * 4
    }

    /// The RTP time of this stream at wall-clock time `at`, from its newest packet; `None`
    /// before the first.
    fn rtp_time_at(&self, at: Instant) -> Option<u32> {
        let (_, time, wallclock) = self.newest?;
        let ticks = |d: Duration| (d.as_secs_f64() * self.clock_rate as f64).round() as i64 as u32;
        Some(if at >= wallclock {
            time.wrapping_add(ticks(at - wallclock))
        } else {
            time.wrapping_sub(ticks(wallclock - at))
        })
    }
}

/// The process's wall clock against its monotonic one, to read the NTP time of str0m's
/// sender reports as an `Instant`.
pub(crate) struct WallClock {
    instant: Instant,
    system: SystemTime,
}

impl WallClock {
    pub fn new() -> WallClock {
        WallClock {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// The `Instant` of a 64-bit NTP timestamp (RFC 3550 §4).
    fn instant_of_ntp(&self, ntp: u64) -> Instant {
        let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET);
        let nanos = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
        let at = UNIX_EPOCH + Duration::new(secs, nanos as u32);
        match at.duration_since(self.system) {
            Ok(later) => self.instant + later,
            Err(e) => self
                .instant
                .checked_sub(e.duration())
                .unwrap_or(self.instant),
        }
    }
}
