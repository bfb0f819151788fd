//! The sending half of a transport, [`Egress`] (fast forwarding; [`crate::ingress`] is the
//! receiving half): the SFU protects and sends forwarded media itself, past str0m's send path.
//!
//! Writing a packet into str0m costs a queue, its pacer, its retransmission buffer, a timer pass
//! over the whole transport to release it and a poll per packet: more than a quarter of the
//! SFU's CPU (bench/README.md). With the keys of the transport's DTLS handshake
//! ([`crate::srtp`]) the SFU writes the RTP header, protects the packet and sends it at once.
//! str0m keeps everything else: ICE, DTLS, the SDP (the send stream it declared, whose SSRC the
//! receiver knows), its RTCP, keyframe requests, and receiving (unless [`crate::ingress`] takes
//! received media too). Two things str0m would do for the packets it no longer sees are done
//! here:
//!
//! - **Sender reports.** str0m still sends one for each of its send streams, but it knows
//!   nothing of the packets: its RTP time and counts would be wrong, and the receiver
//!   synchronises audio and video by them. Each outgoing SRTCP packet of a transport with egress
//!   streams is opened, the sender info of their reports is written from the packets really
//!   sent (`rtcp/report.rs`), and the packet is sealed again under its own SRTCP index (the
//!   original never leaves, so no nonce is used twice).
//! - **Retransmissions.** Video packets are kept ([`crate::resend`]: the last second, in
//!   memory that follows the bitrate); a receiver's
//!   generic NACK for an egress stream is read from its SRTCP (`rtcp/feedback.rs`) and the
//!   packet is sent again as it was (the same bytes: no index is protected twice). Bounded: at
//!   most [`MAX_NACKS`](crate::rtcp::feedback::MAX_NACKS) packets per RTCP datagram, none older
//!   than [`MAX_RESEND_AGE`], each at most once per [`RESEND_INTERVAL`], and no more bytes than
//!   a quarter of what the stream sent (a budget). str0m's own retransmission buffer for the
//!   stream is emptied when fast forwarding takes it over: it would answer a NACK for a new
//!   packet with an old one of the same number.
//!
//! An SRTP packet index (roll-over counter and sequence number) is protected at most once per
//! stream: a window of the last [`SENT_WINDOW`] indices refuses a second packet under the same
//! one (with AES-GCM that would reuse a nonce).

use std::time::Instant;

use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::rtp::{Extension, ExtensionMap, ExtensionValues};

use crate::clock::StreamClock;
use crate::resend::ResendBuffer;
use crate::rtcp::feedback::Feedback;
use crate::rtcp::report::rewrite_sender_info;
use crate::srtp::{Direction, Keys, Srtp};

/// Resent bytes per byte sent, and the allowance a stream starts with.
const RESEND_SHARE: u64 = 4;
const RESEND_START: u64 = 64 * 1024;
const RESEND_MAX: u64 = 512 * 1024;
/// Packet indices remembered per stream, to protect each at most once.
pub(crate) const SENT_WINDOW: u64 = 1024;

/// The longest header written: 12 bytes, the extension header, a MID of 16 bytes, three
/// one-byte elements and the playout delay, padded.
const HEADER_MAX: usize = 12 + 4 + 17 + 3 * 2 + 4 + 3;

/// The egress of a receiver's transport: its SRTP contexts for fast forwarding.
pub(crate) struct Egress {
    rtp: Srtp,
    /// Opens and seals again what str0m sends (its sender reports).
    rtcp_open: Srtp,
    rtcp_seal: Srtp,
    /// Opens what the receiver sends (its NACKs).
    rtcp_in: Srtp,
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

/// The packet indices a stream protected lately: a bit per index, the newest
/// [`SENT_WINDOW`].
#[derive(Debug, Default)]
struct SentWindow {
    newest: Option<u64>,
    bits: [u64; (SENT_WINDOW / 64) as usize],
}

impl SentWindow {
    /// Whether `index` may be protected: not protected before, and not too old to tell. Marks
    /// it protected.
    fn take(&mut self, index: u64) -> bool {
        let newest = match self.newest {
            None => {
                self.newest = Some(index);
                self.set(index);
                return true;
            }
            Some(newest) => newest,
        };
        if index > newest {
            if index - newest >= SENT_WINDOW {
                self.bits = [0; (SENT_WINDOW / 64) as usize];
            } else {
                for i in newest + 1..index {
                    self.clear(i);
                }
            }
            self.newest = Some(index);
            self.set(index);
            return true;
        }
        if newest - index >= SENT_WINDOW || self.is_set(index) {
            return false;
        }
        self.set(index);
        true
    }

    fn slot(index: u64) -> (usize, u64) {
        let i = index % SENT_WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn set(&mut self, index: u64) {
        let (word, bit) = Self::slot(index);
        self.bits[word] |= bit;
    }

    fn clear(&mut self, index: u64) {
        let (word, bit) = Self::slot(index);
        self.bits[word] &= !bit;
    }

    fn is_set(&self, index: u64) -> bool {
        let (word, bit) = Self::slot(index);
        self.bits[word] & bit != 0
    }
}

/// One egress stream: a consumer's packets as the receiver gets them.
pub(crate) struct EgressStream {
    /// The receiver's m-line and str0m's send stream on it.
    pub mid: Mid,
    pub ssrc: u32,
    exts: OutExts,
    /// Packets and payload octets sent, for sender reports.
    packets: u32,
    octets: u32,
    clock_rate: u32,
    /// Video only: `keep` and, from the first packet, its kept packets.
    keep: bool,
    resend: Option<Box<ResendBuffer>>,
    /// Bytes that may still be resent (grows with what is sent).
    resend_budget: u64,
    sent: SentWindow,
    /// The receiver reported on this stream: it knows the SSRC, the MID need not be sent.
    acknowledged: bool,
}

impl std::fmt::Debug for EgressStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressStream")
            .field("mid", &self.mid)
            .field("ssrc", &self.ssrc)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

/// The one-byte header extension ids (RFC 8285) the receiver negotiated for what forwarding
/// writes.
#[derive(Debug, Clone, Copy, Default)]
struct OutExts {
    mid: Option<u8>,
    audio_level: Option<u8>,
    video_orientation: Option<u8>,
    video_content_type: Option<u8>,
    playout_delay: Option<u8>,
}

/// The parts of a forwarded RTP packet that go into the receiver's header.
pub(crate) struct Outgoing<'a> {
    pub pt: u8,
    pub marker: bool,
    /// Roll-over counter and sequence number in the receiver's stream.
    pub index: u64,
    pub time: u32,
    pub exts: &'a ExtensionValues,
    pub payload: &'a [u8],
}

impl Egress {
    /// `None` for keys whose profile [`Srtp`] does not know.
    pub fn new(keys: &Keys) -> Option<Egress> {
        Some(Egress {
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
        stream: &mut EgressStream,
        packet: Outgoing<'_>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if !stream.sent.take(packet.index) {
            // Protected before (or too old to tell): never twice under one index.
            return None;
        }
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
        stream.resend_budget =
            (stream.resend_budget + datagram.len() as u64 / RESEND_SHARE).min(RESEND_MAX);
        if stream.keep {
            stream
                .resend
                .get_or_insert_with(|| Box::new(ResendBuffer::new(now)))
                .keep(packet.index, &datagram, now);
        }
        Some(datagram)
    }

    /// Write the sender info of every sender report for an egress stream in the outgoing SRTCP
    /// `datagram` (from str0m) from the packets really sent and the stream's clock (`stream`
    /// gives both for an SSRC), and let `blocks` rewrite the report blocks of the opened packet
    /// (the ingress's, on what the SFU receives itself). str0m made its reports at `now` (the
    /// time of the run that drains them), which is the NTP time they carry. Returns whether it
    /// changed.
    pub fn rewrite_reports<'s>(
        &mut self,
        datagram: &mut Vec<u8>,
        stream: impl Fn(u32) -> Option<(&'s EgressStream, &'s StreamClock)>,
        blocks: impl FnOnce(&mut [u8]) -> bool,
        now: Instant,
    ) -> bool {
        let Some(index) = self.rtcp_open.unprotect_rtcp(datagram, &mut self.plain) else {
            return false;
        };
        let mut changed = rewrite_sender_info(&mut self.plain, |ssrc| {
            let (s, clock) = stream(ssrc)?;
            // Only once this stream sent a packet itself; before, str0m's report is its own.
            s.sent.newest?;
            let time = clock.rtp_time_at(now, s.clock_rate)?;
            Some((time, s.packets, s.octets))
        });
        // Report blocks on what the SFU receives itself: its own numbers.
        changed |= blocks(&mut self.plain);
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

    /// What the participant's SRTCP `datagram` says ([`Feedback`]), if it is authentic:
    /// appended to `feedback`.
    pub fn feedback(&mut self, datagram: &[u8], feedback: &mut Feedback) {
        if self
            .rtcp_in
            .unprotect_rtcp(datagram, &mut self.plain)
            .is_none()
        {
            return;
        }
        feedback.read(&self.plain);
    }
}

impl EgressStream {
    /// The egress stream of str0m's send stream `ssrc` on the receiver's m-line `mid`, whose
    /// header extensions the receiver negotiated in `exts`.
    pub fn new(mid: Mid, ssrc: u32, kind: MediaKind, clock_rate: u32, exts: &ExtensionMap) -> Self {
        let one_byte = |e| exts.id_of(e).filter(|id| (1..=14).contains(id));
        EgressStream {
            mid,
            ssrc,
            exts: OutExts {
                mid: one_byte(Extension::RtpMid),
                audio_level: one_byte(Extension::AudioLevel),
                video_orientation: one_byte(Extension::VideoOrientation),
                video_content_type: one_byte(Extension::VideoContentType),
                playout_delay: one_byte(Extension::PlayoutDelay),
            },
            packets: 0,
            octets: 0,
            clock_rate,
            resend_budget: RESEND_START,
            sent: SentWindow::default(),
            acknowledged: false,
            keep: kind == MediaKind::Video,
            resend: None,
        }
    }

    /// The receiver reported on this stream: from now on it is known by its SSRC.
    pub fn acknowledge(&mut self) {
        self.acknowledged = true;
    }

    /// The m-line went `inactive`: nothing is resent from it, and when a new source takes it
    /// over, its packets name the MID again until the receiver reports on the stream.
    pub fn release(&mut self) {
        self.resend = None;
        self.acknowledged = false;
    }

    /// The kept datagram of sequence number `seq`, if it may be sent again now.
    pub fn resend(&mut self, seq: u16, now: Instant) -> Option<&[u8]> {
        self.resend
            .as_mut()?
            .resend(seq, now, &mut self.resend_budget)
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
        // Playout delay: 12-bit minimum and maximum in 10 ms units, 3 bytes.
        let delay = ev.play_delay_min.zip(ev.play_delay_max).map(|(min, max)| {
            let ten_ms = |t: MediaTime| (t.rebase(Frequency::HUNDREDTHS).numer().min(0xfff)) as u32;
            (ten_ms(min) << 12 | ten_ms(max)).to_be_bytes()
        });
        if let (Some(id), Some(delay)) = (self.exts.playout_delay, delay) {
            buf[at] = id << 4 | 2;
            buf[at + 1..at + 4].copy_from_slice(&delay[1..]);
            at += 4;
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resend::{MAX_RESEND_AGE, RESEND_INTERVAL};
    use crate::rtcp::feedback::MAX_NACKS;
    use crate::srtp::test_keys;
    use std::time::Duration;
    use str0m::crypto::dtls::SrtpProfile;

    fn exts() -> ExtensionMap {
        let mut map = ExtensionMap::empty();
        map.set(1, Extension::AudioLevel);
        map.set(3, Extension::RtpMid);
        map.set(4, Extension::VideoOrientation);
        map.set(6, Extension::PlayoutDelay);
        map
    }

    fn transport() -> Egress {
        let (_, server) = test_keys(SrtpProfile::AEAD_AES_128_GCM, 56);
        Egress::new(&server).unwrap()
    }

    fn send(
        egress: &mut Egress,
        stream: &mut EgressStream,
        index: u64,
        ev: &ExtensionValues,
        at: Instant,
    ) -> Option<Vec<u8>> {
        send_sized(egress, stream, index, ev, at, 100)
    }

    fn send_sized(
        egress: &mut Egress,
        stream: &mut EgressStream,
        index: u64,
        ev: &ExtensionValues,
        at: Instant,
        size: usize,
    ) -> Option<Vec<u8>> {
        let payload = vec![index as u8; size];
        let packet = Outgoing {
            pt: 96,
            marker: true,
            index,
            time: 9000,
            exts: ev,
            payload: &payload,
        };
        egress.packet(stream, packet, at)
    }

    /// The one-byte extension elements (id, data) of an RTP header.
    fn elements(datagram: &[u8]) -> Vec<(u8, Vec<u8>)> {
        if datagram[0] & 0x10 == 0 {
            return Vec::new();
        }
        assert_eq!(
            &datagram[12..14],
            &[0xbe, 0xde],
            "one-byte header extensions"
        );
        let words = u16::from_be_bytes([datagram[14], datagram[15]]) as usize;
        let body = &datagram[16..16 + words * 4];
        let mut out = Vec::new();
        let mut at = 0;
        while at < body.len() {
            if body[at] == 0 {
                at += 1;
                continue;
            }
            let (id, len) = (body[at] >> 4, (body[at] & 0x0f) as usize + 1);
            out.push((id, body[at + 1..at + 1 + len].to_vec()));
            at += 1 + len;
        }
        out
    }

    /// An index is protected once: a second packet under it (a late packet mapped onto a number
    /// already used) is refused, so is one too old to tell; newer and reordered ones pass.
    #[test]
    fn no_packet_index_is_protected_twice() {
        let mut egress = transport();
        let mut stream = EgressStream::new(Mid::from("1"), 7, MediaKind::Audio, 48_000, &exts());
        let ev = ExtensionValues::default();
        let t0 = Instant::now();
        assert!(send(&mut egress, &mut stream, 100, &ev, t0).is_some());
        assert!(send(&mut egress, &mut stream, 102, &ev, t0).is_some());
        assert!(
            send(&mut egress, &mut stream, 101, &ev, t0).is_some(),
            "reordered"
        );
        assert!(
            send(&mut egress, &mut stream, 101, &ev, t0).is_none(),
            "101 again"
        );
        assert!(
            send(&mut egress, &mut stream, 100, &ev, t0).is_none(),
            "100 again"
        );
        let far = 102 + SENT_WINDOW;
        assert!(send(&mut egress, &mut stream, far, &ev, t0).is_some());
        assert!(
            send(&mut egress, &mut stream, 102, &ev, t0).is_none(),
            "older than the window"
        );
        assert!(
            send(&mut egress, &mut stream, far - 5, &ev, t0).is_some(),
            "in the window"
        );
        assert_eq!(stream.packets, 5);
    }

    /// The header names the receiver's MID until the receiver reports on the stream, and
    /// carries audio level, orientation and playout delay under the receiver's ids.
    #[test]
    fn the_header_carries_the_receivers_extension_ids_and_its_mid_until_acknowledged() {
        let mut egress = transport();
        let mut stream = EgressStream::new(Mid::from("12"), 7, MediaKind::Video, 90_000, &exts());
        let ev = ExtensionValues {
            audio_level: Some(-30),
            voice_activity: Some(true),
            video_orientation: Some(str0m::rtp::VideoOrientation::Deg90),
            play_delay_min: Some(MediaTime::from_millis(100)),
            play_delay_max: Some(MediaTime::from_millis(2000)),
            ..Default::default()
        };
        let t0 = Instant::now();
        let first = send(&mut egress, &mut stream, 1, &ev, t0).unwrap();
        assert_eq!(first[1], 0x80 | 96, "marker and payload type");
        assert_eq!(&first[8..12], &7u32.to_be_bytes());
        assert_eq!(
            elements(&first),
            vec![
                (3, b"12".to_vec()),
                (1, vec![0x80 | 30]),
                (4, vec![str0m::rtp::VideoOrientation::Deg90 as u8]),
                (6, vec![0x00, 0xa0, 0xc8]),
            ]
        );
        stream.acknowledge();
        let later = send(&mut egress, &mut stream, 2, &ev, t0).unwrap();
        assert!(
            elements(&later).iter().all(|(id, _)| *id != 3),
            "no MID once known"
        );
        let plain = send(&mut egress, &mut stream, 3, &ExtensionValues::default(), t0).unwrap();
        assert_eq!(plain[0], 0x80, "no extension header without extensions");
    }

    /// A kept video packet is resent byte for byte on the first request, not again within the
    /// resend interval, not once older than the resend age, and never past the stream's budget.
    #[test]
    fn resends_are_bounded_by_interval_age_and_budget() {
        let mut egress = transport();
        let mut stream = EgressStream::new(Mid::from("1"), 7, MediaKind::Video, 90_000, &exts());
        let ev = ExtensionValues::default();
        let t0 = Instant::now();
        let sent = send_sized(&mut egress, &mut stream, 70_000, &ev, t0, 1100).unwrap();
        let seq = 70_000u64 as u16;
        assert_eq!(
            stream.resend(seq, t0),
            Some(&sent[..]),
            "at once, the same bytes"
        );
        assert_eq!(stream.resend(seq, t0 + RESEND_INTERVAL / 2), None);
        assert!(stream.resend(seq, t0 + RESEND_INTERVAL).is_some());
        assert_eq!(stream.resend(seq.wrapping_add(1), t0), None, "never sent");
        assert_eq!(
            stream.resend(seq, t0 + MAX_RESEND_AGE + Duration::from_millis(1)),
            None,
            "too old"
        );
        // A receiver that keeps asking for the same packet, every resend interval for the
        // packet's whole resend age, runs the stream out of budget: 100 resends of 1.1 kB were
        // asked for, the budget (the start allowance and a quarter of what was sent) allows
        // fewer.
        let mut resent = 0u64;
        for i in 2..100u32 {
            if let Some(d) = stream.resend(seq, t0 + RESEND_INTERVAL * i) {
                resent += d.len() as u64;
            }
        }
        let budget = RESEND_START + sent.len() as u64 / RESEND_SHARE;
        assert!(resent <= budget, "{resent} bytes resent, budget {budget}");
        // Two resends came before the loop; the last one that did not fit is at most a packet.
        assert!(
            resent + 3 * sent.len() as u64 > budget,
            "{resent}: the budget, not less"
        );
        // Audio is not kept.
        let mut audio = EgressStream::new(Mid::from("0"), 8, MediaKind::Audio, 48_000, &exts());
        send(&mut egress, &mut audio, 5, &ev, t0).unwrap();
        assert_eq!(audio.resend(5, t0), None);
    }

    /// A sender report of an egress stream gets the stream's RTP time at the report's time and
    /// the packets sent; str0m's own count is added; other streams' reports are left alone; the
    /// packet is sealed again under its own index and the receiver can open it.
    #[test]
    fn sender_reports_of_fast_streams_are_rewritten_and_resealed() {
        let (client, server) = test_keys(SrtpProfile::AEAD_AES_128_GCM, 56);
        let mut egress = Egress::new(&server).unwrap();
        let mut stream = EgressStream::new(Mid::from("1"), 7, MediaKind::Audio, 48_000, &exts());
        let t0 = Instant::now();
        let ev = ExtensionValues::default();
        // The consumer's clock maps RTP time 9000 to t0 (both packets carry it).
        let mut clock = StreamClock::default();
        for index in [10, 11] {
            clock.wallclock(index, 9000, t0, 48_000);
            send(&mut egress, &mut stream, index, &ev, t0).unwrap();
        }
        // str0m's compound packet: a report on SSRC 7 (it sent 3 packets itself, 300 octets)
        // and one on SSRC 8, which is not an egress stream.
        let report = |ssrc: u32, packets: u32, octets: u32| {
            let mut sr = vec![0x80, 200, 0, 6];
            sr.extend(ssrc.to_be_bytes());
            sr.extend([0xe0, 0, 0, 0, 0, 0, 0, 0]); // NTP time: not read
            sr.extend(0u32.to_be_bytes());
            sr.extend(packets.to_be_bytes());
            sr.extend(octets.to_be_bytes());
            sr
        };
        let mut plain = report(7, 3, 300);
        plain.extend(report(8, 1, 50));
        let mut datagram = Vec::new();
        Srtp::rtcp(&server, Direction::Outbound, true)
            .unwrap()
            .protect_rtcp(&plain, 42, &mut datagram)
            .unwrap();
        let at = t0 + Duration::from_millis(500);
        let by_ssrc = |ssrc| (ssrc == 7).then_some((&stream, &clock));
        assert!(egress.rewrite_reports(&mut datagram, by_ssrc, |_| false, at));
        let mut opened = Vec::new();
        let mut receiver = Srtp::rtcp(&client, Direction::Inbound, false).unwrap();
        assert_eq!(receiver.unprotect_rtcp(&datagram, &mut opened), Some(42));
        let word = |at: usize| u32::from_be_bytes(opened[at..at + 4].try_into().unwrap());
        assert_eq!(
            word(16),
            9000 + 24_000,
            "RTP time half a second after the newest packet"
        );
        assert_eq!((word(20), word(24)), (3 + 2, 300 + 200));
        assert_eq!(
            &opened[28..],
            &plain[28..],
            "the other stream's report unchanged"
        );
        // A datagram without an egress stream's report is left as it was.
        let mut other = Vec::new();
        Srtp::rtcp(&server, Direction::Outbound, true)
            .unwrap()
            .protect_rtcp(&report(8, 1, 50), 43, &mut other)
            .unwrap();
        let before = other.clone();
        assert!(!egress.rewrite_reports(&mut other, by_ssrc, |_| false, at));
        assert_eq!(other, before);
    }

    /// Generic NACKs are read from the receiver's SRTCP (packet id and the bitmask of the 16
    /// after it), reports too; a datagram asks for at most MAX_NACKS packets.
    #[test]
    fn nacks_and_reports_are_read_from_the_receivers_rtcp() {
        let (client, server) = test_keys(SrtpProfile::AES128_CM_SHA1_80, 60);
        let mut egress = Egress::new(&server).unwrap();
        // A sender report of SSRC 9, a receiver report on SSRC 7, then a NACK on SSRC 7: 1000,
        // and 1002 (bit 1).
        let mut plain = vec![0x80, 200, 0, 6, 0, 0, 0, 9];
        plain.extend(0x0102_0304_0506_0708u64.to_be_bytes());
        plain.extend([0u8; 12]);
        plain.extend([0x81, 201, 0, 7, 0, 0, 0, 1]);
        plain.extend(7u32.to_be_bytes());
        plain.extend([0u8; 20]);
        plain.extend([0x81, 205, 0, 3, 0, 0, 0, 1]);
        plain.extend(7u32.to_be_bytes());
        plain.extend([0x03, 0xe8, 0x00, 0x02]);
        let mut sealed = Vec::new();
        Srtp::rtcp(&client, Direction::Outbound, true)
            .unwrap()
            .protect_rtcp(&plain, 5, &mut sealed)
            .unwrap();
        let mut feedback = Feedback::default();
        egress.feedback(&sealed, &mut feedback);
        assert_eq!(feedback.nacks, vec![(7, 1000), (7, 1002)]);
        assert_eq!(feedback.reported, vec![7]);
        assert_eq!(feedback.senders, vec![(9, 0x0102_0304_0506_0708)]);
        // Forty items asking for all 17 packets each: capped.
        let mut many = vec![0x81, 205, 0, 2 + 40, 0, 0, 0, 1];
        many.extend(7u32.to_be_bytes());
        for i in 0..40u16 {
            many.extend((i * 17).to_be_bytes());
            many.extend([0xff, 0xff]);
        }
        Srtp::rtcp(&client, Direction::Outbound, true)
            .unwrap()
            .protect_rtcp(&many, 6, &mut sealed)
            .unwrap();
        feedback.nacks.clear();
        egress.feedback(&sealed, &mut feedback);
        assert_eq!(feedback.nacks.len(), MAX_NACKS);
        // Not authentic: nothing.
        sealed[12] ^= 1;
        feedback.nacks.clear();
        egress.feedback(&sealed, &mut feedback);
        assert!(feedback.nacks.is_empty());
    }
}
