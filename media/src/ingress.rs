//! The receiving half of a transport, [`Ingress`] (fast receiving; [`crate::egress`] is the
//! sending half): the SFU opens a sender's SRTP itself, past str0m's receive path.
//!
//! Handing a media packet to str0m costs its SRTP and receive bookkeeping, a timer pass over
//! the whole transport that str0m runs inside every input, and an event per packet polled out
//! by value: about 40 % of the SFU's CPU (bench/README.md). With the keys of the transport's
//! DTLS handshake ([`crate::srtp`]) the SFU decrypts the packet and forwards it at once.
//! str0m keeps ICE, DTLS, the SDP, the RTCP it receives and sends, and keyframe requests. What
//! str0m's receive path did for the packets it no longer sees is done here, per transport:
//!
//! - **Replay protection** (RFC 3711 §3.3.2): the packet index is estimated from the stream's
//!   highest one, and an index already seen, or too old to tell, is dropped.
//! - **Retransmissions** (RFC 4588): a repair (RTX) stream's packets become the original
//!   packets again; padding-only packets are dropped.
//! - **Transport-wide congestion control feedback** (`rtcp/twcc.rs`): the arrival time of
//!   every packet, by its transport-wide number, is reported every [`TWCC_INTERVAL`]. The
//!   sender's bandwidth estimate depends on it: without feedback Chrome stops sending video.
//! - **NACKs** (RFC 4585 §6.2.1, `rtcp/nack.rs`) for lost video packets: at once, then every
//!   [`NACK_INTERVAL`](crate::rtcp::nack::NACK_INTERVAL), at most
//!   [`NACK_TRIES`](crate::rtcp::nack::NACK_TRIES) times and for no longer than
//!   [`NACK_GIVE_UP`](crate::rtcp::nack::NACK_GIVE_UP).
//! - **Receiver reports** (RFC 3550 §6.4.2, `rtcp/report.rs`): every [`REPORT_INTERVAL`], from
//!   the SFU's own statistics (loss, highest number, jitter; the last sender report's time). The
//!   report blocks str0m still writes for these streams (from the packets it saw before) are
//!   overwritten with the same numbers in its outgoing SRTCP, so the sender never reads two
//!   different accounts of one stream.
//!
//! The ingress keeps the state of each stream and decides when feedback is due; the `rtcp`
//! modules write the packets.
//!
//! The SFU's own RTCP goes out under an SSRC of its own ([`Ingress::new`]), whose SRTCP index
//! starts at 0: the nonce includes the SSRC, so it never meets one of str0m's.
//!
//! All feedback is made when a packet arrives (media arrives many times per
//! [`TWCC_INTERVAL`]), so the media loop needs no timer for it.

use std::ops::Range;
use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid};
use str0m::rtp::ExtensionValues;

use crate::deadline::lower;
use crate::rtcp::nack::NackWriter;
use crate::rtcp::report::{REPORT_INTERVAL, ReceiveStats, rewrite_blocks, write_receiver_report};
use crate::rtcp::twcc::{TWCC_INTERVAL, TwccWriter};
use crate::rtp::{Header, InExts, extend_seq, extend_time};
use crate::srtp::{Direction, Keys, Srtp};

/// SSRCs kept per sender, at most (the one silent the longest goes first).
const MAX_STREAMS: usize = 16;
/// The replay window (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: u64 = 128;

/// What the SFU knows of a sender's SSRC when it first sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamInfo {
    pub mid: Mid,
    pub kind: MediaKind,
    /// For a repair (RTX) stream, the SSRC it repairs.
    pub repairs: Option<u32>,
    pub clock_rate: u32,
    pub exts: InExts,
    /// The highest packet index str0m received on the stream before, if any (its roll-over
    /// counter).
    pub highest: Option<u64>,
}

/// One SSRC a sender sends: its numbers, replay window and statistics.
struct IngressStream {
    ssrc: u32,
    info: StreamInfo,
    /// The SRTP packets of this SSRC seen (the replay window).
    srtp: Window,
    /// The media packets of this stream there: its own, and those its repair stream brought.
    media: Window,
    /// Highest extended RTP time.
    time: Option<u64>,
    stats: ReceiveStats,
    /// Missing video packets (main streams only) and the NACKs for them.
    nacks: NackWriter,
    /// The last sender report: the middle 32 bits of its NTP time and when it came.
    sender_report: Option<(u32, Instant)>,
    /// When its last packet came.
    last_at: Option<Instant>,
}

/// A packet opened by [`Ingress::open`]: the original media packet (a repair stream's packet
/// made the original again). The payload is in [`Ingress::payload`].
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub mid: Mid,
    /// The media SSRC (the repaired one for a retransmission).
    pub ssrc: u32,
    /// Extended sequence number in the media stream.
    pub seq: u64,
    /// A retransmission: `pt` is the repair stream's payload type (the caller maps it).
    pub repaired: bool,
    pub pt: u8,
    pub marker: bool,
    pub timestamp: u32,
    /// Extended RTP time.
    pub time: u64,
    pub exts: ExtensionValues,
}

/// Why a packet was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not an RTP header.
    Malformed,
    /// An SSRC the caller must first describe ([`Ingress::open_new`]).
    Unknown(u32),
    /// A repair stream whose media stream is not known (yet): nothing is described from it.
    UnknownMedia(u32),
    /// Did not authenticate.
    Forged,
    /// Seen before, or too old to tell.
    Replayed,
    /// Padding only: nothing to forward (still counted for congestion control).
    Padding,
}

/// A sending transport's SRTP context and feedback (see the module documentation).
pub(crate) struct Ingress {
    rtp: Srtp,
    rtcp: Srtp,
    /// The SSRC of the SFU's own RTCP, and its SRTCP index.
    ssrc: u32,
    rtcp_index: u32,
    streams: Vec<IngressStream>,
    /// Arrivals not yet reported.
    twcc: TwccWriter,
    last_twcc: Option<Instant>,
    last_report: Option<Instant>,
    /// Some stream has missing packets to ask for.
    nack_pending: bool,
    /// When feedback is due next (kept up to date cheaply as packets arrive).
    due: Option<Instant>,
    /// Arrival times are counted from here (the reference time of the feedback).
    zero: Instant,
    /// The last packet opened, and where its payload is in it.
    plain: Vec<u8>,
    payload: Range<usize>,
}

impl Ingress {
    /// `None` for keys whose profile [`Srtp`] does not know. `ssrc` is the SSRC of the SFU's own
    /// RTCP: one no other stream of the transport uses.
    pub fn new(keys: &Keys, ssrc: u32, now: Instant) -> Option<Ingress> {
        Some(Ingress {
            rtp: Srtp::rtp(keys, Direction::Inbound, false)?,
            rtcp: Srtp::rtcp(keys, Direction::Outbound, true)?,
            ssrc,
            rtcp_index: 0,
            streams: Vec::new(),
            twcc: TwccWriter::default(),
            last_twcc: None,
            last_report: None,
            nack_pending: false,
            due: None,
            zero: now,
            plain: Vec::new(),
            payload: 0..0,
        })
    }

    /// Describe a new SSRC of the sender.
    fn add(&mut self, ssrc: u32, info: StreamInfo) {
        self.streams.retain(|s| s.ssrc != ssrc);
        self.streams.push(IngressStream {
            ssrc,
            info,
            // str0m saw the packets before: none of them again.
            srtp: Window::seen_up_to(info.highest),
            media: Window::seen_up_to(info.highest),
            last_at: None,
            time: None,
            stats: ReceiveStats::default(),
            nacks: NackWriter::default(),
            sender_report: None,
        });
        lower(
            &mut self.due,
            after(self.last_report, REPORT_INTERVAL, self.zero),
        );
    }

    /// Swap the last opened packet out (to forward it while the ingress is borrowed no more):
    /// its payload is `into[range]`, the range returned.
    pub fn take_payload(&mut self, into: &mut Vec<u8>) -> Range<usize> {
        std::mem::swap(&mut self.plain, into);
        self.payload.clone()
    }

    /// Verify, decrypt and account for the SRTP packet `packet` that arrived at `now`.
    pub fn open(&mut self, packet: &[u8], now: Instant) -> Result<Opened, Refused> {
        let header = Header::parse(packet).ok_or(Refused::Malformed)?;
        let at = self
            .streams
            .iter()
            .position(|s| s.ssrc == header.ssrc)
            .ok_or(Refused::Unknown(header.ssrc))?;
        // A repair stream's media stream is there before anything of the packet is taken.
        let media_at = match self.streams[at].info.repairs {
            None => at,
            Some(media) => self
                .streams
                .iter()
                .position(|s| s.ssrc == media)
                .ok_or(Refused::UnknownMedia(media))?,
        };
        let stream = &mut self.streams[at];
        let index = extend_seq(stream.srtp.highest, header.seq);
        if stream.srtp.seen(index) {
            return Err(Refused::Replayed);
        }
        self.rtp
            .unprotect(packet, header.len, header.ssrc, index, &mut self.plain)
            .ok_or(Refused::Forged)?;
        stream.srtp.mark(index);
        stream.last_at = Some(now);
        let info = stream.info;
        let (exts, twcc) = info.exts.read(&header, packet);
        if let Some(twcc) = twcc {
            self.arrived(twcc, now);
        }
        let mut payload = &self.plain[..];
        if header.padding {
            let pad = *payload.last().unwrap_or(&0) as usize;
            payload = &payload[..payload.len().saturating_sub(pad)];
        }
        let seq = match info.repairs {
            None => index,
            Some(_) => {
                // RTX (RFC 4588 §4): the original sequence number, then the original payload.
                if payload.len() <= 2 {
                    return Err(Refused::Padding);
                }
                let original = u16::from_be_bytes([payload[0], payload[1]]);
                payload = &payload[2..];
                extend_seq(self.streams[media_at].media.highest, original)
            }
        };
        // A media packet the stream has (brought by a retransmission before, or Chrome probing
        // with packets it sent): once.
        let media = &mut self.streams[media_at];
        if media.media.seen(seq) {
            return Err(Refused::Replayed);
        }
        let previous = media.media.highest;
        media.media.mark(seq);
        let elapsed = now.saturating_duration_since(self.zero);
        if info.repairs.is_some() {
            media.stats.recovered(seq);
            let repair = &mut self.streams[at];
            repair
                .stats
                .received(index, header.timestamp, elapsed, info.clock_rate);
        } else {
            media
                .stats
                .received(index, header.timestamp, elapsed, info.clock_rate);
        }
        if payload.is_empty() {
            return Err(Refused::Padding);
        }
        let skip = payload.as_ptr() as usize - self.plain.as_ptr() as usize;
        self.payload = skip..skip + payload.len();
        let media = &mut self.streams[media_at];
        let time = extend_time(media.time, header.timestamp);
        if info.repairs.is_none() {
            media.time = Some(media.time.map_or(time, |t| t.max(time)));
        }
        let gap = info.kind == MediaKind::Video && media.nacks.track(seq, previous, now);
        let ssrc = media.ssrc;
        if gap {
            self.nack_pending = true;
            lower(&mut self.due, now);
        }
        Ok(Opened {
            mid: info.mid,
            ssrc,
            seq,
            repaired: info.repairs.is_some(),
            pt: header.pt,
            marker: header.marker,
            timestamp: header.timestamp,
            time,
            exts,
        })
    }

    /// Open the first packet of an SSRC the caller described: the stream is kept only if the
    /// packet is authentic (a forged packet from a spoofed address adds nothing).
    pub fn open_new(
        &mut self,
        packet: &[u8],
        ssrc: u32,
        info: StreamInfo,
        now: Instant,
    ) -> Result<Opened, Refused> {
        self.add(ssrc, info);
        let opened = self.open(packet, now);
        if matches!(
            opened,
            Err(Refused::Forged | Refused::Malformed | Refused::UnknownMedia(_))
        ) && self
            .streams
            .last()
            .is_some_and(|s| s.ssrc == ssrc && s.last_at.is_none())
        {
            // Not authentic (or not to be opened yet): nothing kept, nothing evicted.
            self.streams.pop();
            return opened;
        }
        if self.streams.len() > MAX_STREAMS {
            // The stream silent the longest goes: not this one, nor a media stream that a repair
            // stream repairs.
            let repaired: Vec<u32> = self.streams.iter().filter_map(|s| s.info.repairs).collect();
            if let Some(oldest) = self
                .streams
                .iter()
                .enumerate()
                .filter(|(_, s)| s.ssrc != ssrc && !repaired.contains(&s.ssrc))
                .min_by_key(|(_, s)| s.last_at)
                .map(|(i, _)| i)
            {
                self.streams.remove(oldest);
            }
        }
        opened
    }

    /// The sender's newest main stream on `mid`, if it sent one.
    pub fn main_stream(&self, mid: Mid) -> Option<u32> {
        self.streams
            .iter()
            .filter(|s| s.info.mid == mid && s.info.repairs.is_none() && s.last_at.is_some())
            .max_by_key(|s| s.last_at)
            .map(|s| s.ssrc)
    }

    /// When [`Ingress::poll_feedback`] has something to send next, if ever.
    pub fn next_due(&self) -> Option<Instant> {
        self.due
    }

    /// Work out [`Ingress::next_due`] afresh (after feedback was sent).
    fn compute_due(&self) -> Option<Instant> {
        let zero = self.zero;
        let twcc = (!self.twcc.is_empty()).then(|| after(self.last_twcc, TWCC_INTERVAL, zero));
        let report =
            (!self.streams.is_empty()).then(|| after(self.last_report, REPORT_INTERVAL, zero));
        let nack = self.streams.iter().filter_map(|s| s.nacks.next_due()).min();
        [twcc, report, nack].into_iter().flatten().min()
    }

    /// A transport-wide number arrived.
    fn arrived(&mut self, seq: u16, now: Instant) {
        self.twcc.arrived(seq, now);
        lower(
            &mut self.due,
            after(self.last_twcc, TWCC_INTERVAL, self.zero),
        );
    }

    /// A sender report on `ssrc` with NTP time `ntp` came at `now`.
    pub fn sender_report(&mut self, ssrc: u32, ntp: u64, now: Instant) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == ssrc) {
            s.sender_report = Some(((ntp >> 16) as u32, now));
        }
    }

    /// The SRTCP datagrams due at `now` (transport-wide feedback, NACKs, receiver reports),
    /// appended to `out`.
    pub fn poll_feedback(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.due.is_none_or(|due| now < due) {
            return;
        }
        self.make_feedback(now, out);
        self.due = self.compute_due();
    }

    fn make_feedback(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let zero = self.zero;
        let due = |last: Option<Instant>, every| now >= after(last, every, zero);
        let report = due(self.last_report, REPORT_INTERVAL) && !self.streams.is_empty();
        let twcc = due(self.last_twcc, TWCC_INTERVAL) && !self.twcc.is_empty();
        if !(report || twcc || self.nack_pending) {
            return;
        }
        let mut plain = Vec::with_capacity(256);
        self.receiver_report(report, now, &mut plain);
        if report {
            self.last_report = Some(now);
        }
        let base = plain.len();
        if self.nack_pending {
            self.nack_pending = false;
            for s in &mut self.streams {
                self.nack_pending |= s.nacks.write(self.ssrc, s.ssrc, now, &mut plain);
            }
        }
        if twcc {
            self.last_twcc = Some(now);
            self.twcc_feedback(&mut plain);
        }
        if plain.len() == base && !report {
            return;
        }
        let mut sealed = Vec::with_capacity(plain.len() + 32);
        if self
            .rtcp
            .protect_rtcp(&plain, self.rtcp_index, &mut sealed)
            .is_ok()
        {
            self.rtcp_index = (self.rtcp_index + 1) & 0x7fff_ffff;
            out.push(sealed);
        }
    }

    /// An RR from the SFU's SSRC: with a block per stream if `blocks` (RFC 3550 §6.4.2),
    /// else empty (it starts every compound packet, §6.1).
    fn receiver_report(&mut self, blocks: bool, now: Instant, out: &mut Vec<u8>) {
        let streams: &mut [IngressStream] = if blocks { &mut self.streams } else { &mut [] };
        let blocks = streams
            .iter_mut()
            .filter(|s| s.stats.started())
            .map(|s| s.report_block(now, true));
        write_receiver_report(self.ssrc, blocks, out);
    }

    /// Overwrite the report blocks on this transport's streams in a compound RTCP packet str0m
    /// made (`plain`, opened) with the SFU's numbers; keeps str0m's LSR and DLSR. Returns
    /// whether it changed.
    pub fn rewrite_report_blocks(&mut self, plain: &mut [u8], now: Instant) -> bool {
        rewrite_blocks(plain, |ssrc| {
            let s = self.streams.iter_mut().find(|s| s.ssrc == ssrc)?;
            s.stats.started().then(|| s.report_block(now, false))
        })
    }

    /// One transport-wide feedback packet for the arrivals since the last, appended to `out`.
    fn twcc_feedback(&mut self, out: &mut Vec<u8>) {
        // Media source: one of the sender's SSRCs. Chrome drops transport-wide feedback whose
        // media SSRC is none of its own.
        let media = self
            .streams
            .iter()
            .filter(|s| s.info.repairs.is_none())
            .max_by_key(|s| s.last_at)
            .map_or(0, |s| s.ssrc);
        self.twcc.write(self.ssrc, media, self.zero, out);
    }
}

/// `every` after `last`; if never, `zero` (at once).
fn after(last: Option<Instant>, every: Duration, zero: Instant) -> Instant {
    last.map_or(zero, |last| last + every)
}

/// The highest extended sequence number (roll-over counter and number) seen, and which of
/// the [`REPLAY_WINDOW`] below it were: bit `i` is `highest - i`.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    highest: Option<u64>,
    bits: u128,
}

impl Window {
    /// A window whose numbers up to `highest` were all seen (by str0m).
    fn seen_up_to(highest: Option<u64>) -> Window {
        Window {
            highest,
            bits: if highest.is_some() { u128::MAX } else { 0 },
        }
    }

    /// Seen before, or too old to tell.
    fn seen(&self, index: u64) -> bool {
        match self.highest {
            Some(h) if index <= h => {
                h - index >= REPLAY_WINDOW || self.bits >> (h - index) & 1 != 0
            }
            _ => false,
        }
    }

    fn mark(&mut self, index: u64) {
        match self.highest {
            Some(h) if index <= h => self.bits |= 1 << (h - index),
            Some(h) => {
                let shift = index - h;
                self.bits = if shift >= REPLAY_WINDOW {
                    0
                } else {
                    self.bits << shift
                } | 1;
                self.highest = Some(index);
            }
            None => {
                self.bits = 1;
                self.highest = Some(index);
            }
        }
    }
}

impl IngressStream {
    /// This stream's report block (RFC 3550 §6.4.1); `interval_ends` starts a new interval for
    /// the fraction lost.
    fn report_block(&mut self, now: Instant, interval_ends: bool) -> [u8; 24] {
        // A repair stream's own numbers; a media stream's include what its repair stream brought.
        let window = if self.info.repairs.is_some() {
            self.srtp
        } else {
            self.media
        };
        self.stats.block(
            self.ssrc,
            window.highest,
            self.sender_report,
            now,
            interval_ends,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::rtcp::nack::NACK_INTERVAL;
    use str0m::crypto::dtls::SrtpProfile;

    #[test]
    fn packets_open_once_and_forged_or_replayed_ones_do_not() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        // The stream str0m received up to 69 999 before.
        s.ingress.streams[0].srtp = Window::seen_up_to(Some(69_999));
        let first = s.packet(AUDIO, 70_000, None, b"opus");
        let opened = s.ingress.open(&first, s.at(0)).unwrap();
        assert_eq!(
            (opened.ssrc, opened.seq, opened.repaired),
            (AUDIO, 70_000, false)
        );
        assert_eq!(s.ingress.opened_payload(), b"opus");
        assert_eq!(
            s.ingress.open(&first, s.at(1)).unwrap_err(),
            Refused::Replayed
        );
        let mut forged = s.packet(AUDIO, 70_001, None, b"opus");
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(
            s.ingress.open(&forged, s.at(2)).unwrap_err(),
            Refused::Forged
        );
        // Reordered within the window: opens; below it: refused unopened.
        for index in [70_003, 70_001] {
            let p = s.packet(AUDIO, index, None, b"x");
            assert_eq!(s.ingress.open(&p, s.at(3)).unwrap().seq, index);
        }
        let old = s.packet(AUDIO, 70_003 - REPLAY_WINDOW, None, b"x");
        assert_eq!(
            s.ingress.open(&old, s.at(4)).unwrap_err(),
            Refused::Replayed
        );
        // Across a roll-over of the sequence number.
        s.ingress.streams[1].srtp = Window::seen_up_to(Some(0x1_fffd));
        for index in [0x1_fffe, 0x1_ffff, 0x2_0000, 0x2_0001] {
            let p = s.packet(VIDEO, index, None, b"v");
            assert_eq!(s.ingress.open(&p, s.at(5)).unwrap().seq, index);
        }
        let unknown = s.packet(0x4444, 1, None, b"x");
        assert_eq!(
            s.ingress.open(&unknown, s.at(6)).unwrap_err(),
            Refused::Unknown(0x4444)
        );
        assert_eq!(
            s.ingress.open(&[0x80, 96, 0], s.at(6)).unwrap_err(),
            Refused::Malformed
        );
    }

    #[test]
    fn aes_cm_packets_open_too() {
        let mut s = setup(SrtpProfile::AES128_CM_SHA1_80, 60);
        let p = s.packet(VIDEO, 5, None, b"vp8");
        assert_eq!(s.ingress.open(&p, s.at(0)).unwrap().seq, 5);
        assert_eq!(s.ingress.opened_payload(), b"vp8");
    }

    #[test]
    fn a_retransmission_becomes_the_original_packet_and_padding_is_dropped() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        for index in [100, 102] {
            let p = s.packet(VIDEO, index, None, b"v");
            s.ingress.open(&p, s.at(0)).unwrap();
        }
        let rtx = s.packet(RTX, 7, None, &[0, 101, b'v', b'1']);
        let opened = s.ingress.open(&rtx, s.at(10)).unwrap();
        assert_eq!(
            (opened.ssrc, opened.seq, opened.repaired),
            (VIDEO, 101, true)
        );
        assert_eq!(s.ingress.opened_payload(), b"v1");
        let padding = s.packet(RTX, 8, None, &[]);
        assert_eq!(
            s.ingress.open(&padding, s.at(11)).unwrap_err(),
            Refused::Padding
        );
    }

    #[test]
    fn a_retransmission_of_a_packet_there_is_dropped_and_an_unknown_media_stream_taints_nothing() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        for index in [100, 101] {
            let p = s.packet(VIDEO, index, None, b"v");
            s.ingress.open(&p, s.at(0)).unwrap();
        }
        // Chrome probes with packets it sent: once is enough.
        let probe = s.packet(RTX, 1, Some(1), &[0, 101, b'v']);
        assert_eq!(
            s.ingress.open(&probe, s.at(1)).unwrap_err(),
            Refused::Replayed
        );
        let rtx = s.packet(RTX, 2, Some(2), &[0, 102, b'v']);
        assert_eq!(s.ingress.open(&rtx, s.at(2)).unwrap().seq, 102);
        let late = s.packet(VIDEO, 102, Some(3), b"v");
        assert_eq!(
            s.ingress.open(&late, s.at(3)).unwrap_err(),
            Refused::Replayed
        );
        // All three count for congestion control.
        assert_eq!(twcc_of(&s.feedback(s.at(3)), s.zero).len(), 3);
        // A repair stream of a media stream not there: refused before anything is taken.
        let info = s.ingress.streams[2].info;
        s.ingress.add(
            0x5555,
            StreamInfo {
                repairs: Some(0x6666),
                ..info
            },
        );
        let orphan = s.packet(0x5555, 1, None, &[0, 1, b'v']);
        assert_eq!(
            s.ingress.open(&orphan, s.at(4)).unwrap_err(),
            Refused::UnknownMedia(0x6666)
        );
        assert_eq!(s.ingress.streams[3].srtp.highest, None);
    }

    #[test]
    fn a_new_stream_is_kept_only_if_its_first_packet_is_authentic_and_streams_are_bounded() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        let info = s.ingress.streams[1].info;
        let mut forged = s.packet(0x7777, 1, None, b"v");
        *forged.last_mut().unwrap() ^= 1;
        let refused = s.ingress.open_new(&forged, 0x7777, info, s.at(0));
        assert_eq!(refused.unwrap_err(), Refused::Forged);
        assert!(s.ingress.streams.iter().all(|st| st.ssrc != 0x7777));
        // Video heard long ago, its repair stream lately.
        let video = s.packet(VIDEO, 1, None, b"v");
        s.ingress.open(&video, s.at(0)).unwrap();
        let rtx = s.packet(RTX, 1, None, &[0, 2, b'v']);
        s.ingress.open(&rtx, s.at(1000)).unwrap();
        for ssrc in 0..MAX_STREAMS as u32 + 4 {
            let p = s.packet(0x10_0000 + ssrc, 1, None, b"v");
            s.ingress
                .open_new(&p, 0x10_0000 + ssrc, info, s.at(1 + ssrc as u64))
                .unwrap();
        }
        assert_eq!(s.ingress.streams.len(), MAX_STREAMS);
        assert!(
            s.ingress
                .streams
                .iter()
                .any(|st| st.ssrc == 0x10_0000 + MAX_STREAMS as u32 + 3)
        );
        // The video stream, which a repair stream repairs, stays.
        assert!(s.ingress.streams.iter().any(|st| st.ssrc == VIDEO));
        // A forged packet evicts nothing.
        let before: Vec<u32> = s.ingress.streams.iter().map(|st| st.ssrc).collect();
        let refused = s.ingress.open_new(&forged, 0x7777, info, s.at(100));
        assert_eq!(refused.unwrap_err(), Refused::Forged);
        let after: Vec<u32> = s.ingress.streams.iter().map(|st| st.ssrc).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn feedback_is_due_when_there_is_something_to_send() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        // A report on the streams is due from the start.
        assert_eq!(s.ingress.next_due(), Some(s.zero));
        s.feedback(s.at(0));
        assert_eq!(s.ingress.next_due(), Some(s.at(0) + REPORT_INTERVAL));
        let p = s.packet(VIDEO, 1, Some(1), b"v");
        s.ingress.open(&p, s.at(10)).unwrap();
        assert!(s.ingress.next_due().unwrap() <= s.at(10));
        s.feedback(s.at(10));
        // Then the next report.
        assert_eq!(s.ingress.next_due(), Some(s.at(0) + REPORT_INTERVAL));
        // A loss: the NACK at once, its repetition after the interval.
        let p = s.packet(VIDEO, 3, Some(2), b"v");
        s.ingress.open(&p, s.at(20)).unwrap();
        assert_eq!(s.ingress.next_due(), Some(s.at(20)));
        s.feedback(s.at(20));
        assert_eq!(s.ingress.next_due(), Some(s.at(20) + NACK_INTERVAL));
    }

    #[test]
    fn feedback_is_sent_at_most_once_per_interval() {
        let mut s = setup(SrtpProfile::AEAD_AES_128_GCM, 56);
        let p = s.packet(AUDIO, 1, Some(1), b"x");
        s.ingress.open(&p, s.at(0)).unwrap();
        assert_eq!(
            s.feedback(s.at(0)).len(),
            2,
            "a report and transport-wide feedback"
        );
        let p = s.packet(AUDIO, 2, Some(2), b"x");
        s.ingress.open(&p, s.at(10)).unwrap();
        assert!(s.feedback(s.at(10)).is_empty());
        let later = s.at(TWCC_INTERVAL.as_millis() as u64);
        assert_eq!(twcc_of(&s.feedback(later), s.zero).len(), 1);
    }
}

/// A sender (its SRTP and SRTCP) and the SFU's ingress of its transport: the harness of the
/// tests here and of the feedback the ingress writes (`rtcp/`).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::srtp::test_keys;
    use std::time::Duration;
    use str0m::crypto::dtls::SrtpProfile;
    use str0m::rtp::rtcp::Twcc;

    pub const AUDIO: u32 = 0x1111;
    pub const VIDEO: u32 = 0x2222;
    pub const RTX: u32 = 0x3333;
    pub const OURS: u32 = 0x9999;
    /// The sender's transport-wide number extension id.
    const TWCC_ID: u8 = 5;

    /// A sender (its SRTP and SRTCP) and the SFU's ingress of its transport.
    pub struct Setup {
        send: Srtp,
        open_rtcp: Srtp,
        pub ingress: Ingress,
        pub zero: Instant,
    }

    pub fn setup(profile: SrtpProfile, len: usize) -> Setup {
        let (client, server) = test_keys(profile, len);
        let zero = Instant::now();
        let mut ingress = Ingress::new(&server, OURS, zero).unwrap();
        let exts = InExts {
            transport_cc: Some(TWCC_ID),
            audio_level: Some(1),
            ..InExts::default()
        };
        let info = |kind, repairs, clock_rate| StreamInfo {
            mid: Mid::from(if kind == MediaKind::Audio { "0" } else { "1" }),
            kind,
            repairs,
            clock_rate,
            exts,
            highest: None,
        };
        ingress.add(AUDIO, info(MediaKind::Audio, None, 48_000));
        ingress.add(VIDEO, info(MediaKind::Video, None, 90_000));
        ingress.add(RTX, info(MediaKind::Video, Some(VIDEO), 90_000));
        Setup {
            send: Srtp::rtp(&client, Direction::Outbound, true).unwrap(),
            open_rtcp: Srtp::rtcp(&client, Direction::Inbound, false).unwrap(),
            ingress,
            zero,
        }
    }

    impl Ingress {
        pub fn opened_payload(&self) -> &[u8] {
            &self.plain[self.payload.clone()]
        }
    }

    impl Setup {
        /// The sender's SRTP packet `index` on `ssrc`, with a transport-wide number.
        pub fn packet(
            &mut self,
            ssrc: u32,
            index: u64,
            twcc: Option<u16>,
            payload: &[u8],
        ) -> Vec<u8> {
            let seq = (index as u16).to_be_bytes();
            let mut header = vec![0x80, 96, seq[0], seq[1], 0, 0, 0x10, 0];
            header.extend(ssrc.to_be_bytes());
            if let Some(t) = twcc {
                header[0] |= 0x10;
                let t = t.to_be_bytes();
                header.extend([0xbe, 0xde, 0, 1, TWCC_ID << 4 | 1, t[0], t[1], 0]);
            }
            let mut out = Vec::new();
            self.send
                .protect(&header, payload, ssrc, index, &mut out)
                .unwrap();
            out
        }

        pub fn at(&self, ms: u64) -> Instant {
            self.zero + Duration::from_millis(ms)
        }

        /// The RTCP packets of the feedback due at `now`: (packet type, format, bytes).
        pub fn feedback(&mut self, now: Instant) -> Vec<(u8, u8, Vec<u8>)> {
            let mut out = Vec::new();
            self.ingress.poll_feedback(now, &mut out);
            let mut packets = Vec::new();
            for sealed in out {
                let mut plain = Vec::new();
                self.open_rtcp.unprotect_rtcp(&sealed, &mut plain).unwrap();
                assert_eq!(plain[1], 201, "a compound packet starts with a report");
                let mut at = 0;
                while let Some((pt, fmt, len)) = crate::rtcp::header(&plain[at..]) {
                    packets.push((pt, fmt, plain[at..at + len].to_vec()));
                    at += len;
                }
                assert_eq!(at, plain.len(), "whole RTCP packets");
            }
            packets
        }
    }

    /// Transport-wide feedback, read by str0m's parser: (number, arrival).
    pub fn twcc_of(packets: &[(u8, u8, Vec<u8>)], zero: Instant) -> Vec<(u64, Option<Instant>)> {
        let (_, _, bytes) = packets
            .iter()
            .find(|(pt, fmt, _)| *pt == 205 && *fmt == 15)
            .expect("transport-wide feedback");
        let padding = if bytes[0] & 0x20 != 0 {
            *bytes.last().unwrap() as usize
        } else {
            0
        };
        let twcc = Twcc::try_from(&bytes[4..bytes.len() - padding]).unwrap();
        assert_eq!(*twcc.sender_ssrc, OURS);
        twcc.into_iter(zero, 0u64.into())
            .map(|(seq, _, at)| (*seq, at))
            .collect()
    }
}
