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
//! - **Transport-wide congestion control feedback** (draft-holmer-rmcat-transport-wide-cc-
//!   extensions-01): the arrival time of every packet, by its transport-wide number, is
//!   reported every [`TWCC_INTERVAL`]. The sender's bandwidth estimate depends on it: without
//!   feedback Chrome stops sending video.
//! - **NACKs** (RFC 4585 §6.2.1) for lost video packets: at once, then every
//!   [`NACK_INTERVAL`], at most [`NACK_TRIES`] times and for no longer than [`NACK_GIVE_UP`].
//! - **Receiver reports** (RFC 3550 §6.4.2): every [`REPORT_INTERVAL`], from the SFU's own
//!   statistics (loss, highest number, jitter; the last sender report's time). The report
//!   blocks str0m still writes for these streams (from the packets it saw before) are
//!   overwritten with the same numbers in its outgoing SRTCP, so the sender never reads two
//!   different accounts of one stream.
//!
//! The SFU's own RTCP goes out under an SSRC of its own ([`Ingress::new`]), whose SRTCP index
//! starts at 0: the nonce includes the SSRC, so it never meets one of str0m's.
//!
//! All feedback is made when a packet arrives (media arrives many times per
//! [`TWCC_INTERVAL`]), so the media loop needs no timer for it.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid};
use str0m::rtp::ExtensionValues;

use crate::rtp::{Header, InExts, extend_seq, extend_time};
use crate::sfu::lower;
use crate::srtp::{Direction, Keys, Srtp};

/// Transport-wide feedback is sent this often while packets arrive.
pub(crate) const TWCC_INTERVAL: Duration = Duration::from_millis(50);
/// A missing video packet is asked for again this often.
pub(crate) const NACK_INTERVAL: Duration = Duration::from_millis(30);
/// A missing packet is asked for at most this many times.
pub(crate) const NACK_TRIES: u8 = 8;
/// A missing packet older than this is no longer asked for (its frame is lost; the receivers
/// ask for a keyframe).
pub(crate) const NACK_GIVE_UP: Duration = Duration::from_secs(1);
/// Missing packets remembered per stream, at most.
const NACK_MAX: usize = 512;
/// Receiver reports are sent this often.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// SSRCs kept per sender, at most (the one silent the longest goes first).
const MAX_STREAMS: usize = 16;
/// The replay window (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: u64 = 128;
/// Statuses per transport-wide feedback packet, at most.
const TWCC_MAX_STATUSES: u64 = 2048;
/// Arrivals kept for transport-wide feedback, at most (a second of 2 Mbit/s video).
const TWCC_MAX_PENDING: usize = 4096;

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
struct InStream {
    ssrc: u32,
    info: StreamInfo,
    /// The SRTP packets of this SSRC seen (the replay window).
    srtp: Window,
    /// The media packets of this stream there: its own, and those its repair stream brought.
    media: Window,
    /// Highest extended RTP time.
    time: Option<u64>,
    stats: ReceiveStats,
    /// Missing video packets (main streams only), oldest first.
    missing: VecDeque<Missing>,
    /// The last sender report: the middle 32 bits of its NTP time and when it came.
    sender_report: Option<(u32, Instant)>,
    /// When its last packet came.
    last_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u64,
    since: Instant,
    asked: Option<Instant>,
    tries: u8,
}

/// Receive statistics of RFC 3550 Appendix A.3 and A.8.
#[derive(Debug, Default, Clone, Copy)]
struct ReceiveStats {
    first: Option<u64>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in RTP units, ×16 (A.8).
    jitter: u64,
    transit: Option<u32>,
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
    streams: Vec<InStream>,
    /// Arrivals not yet reported: (transport-wide number, extended; arrival).
    twcc: Vec<(u64, Instant)>,
    twcc_highest: Option<u64>,
    /// The first number the next feedback reports.
    twcc_next: Option<u64>,
    twcc_count: u8,
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
            twcc: Vec::new(),
            twcc_highest: None,
            twcc_next: None,
            twcc_count: 0,
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
        self.streams.push(InStream {
            ssrc,
            info,
            // str0m saw the packets before: none of them again.
            srtp: Window::seen_up_to(info.highest),
            media: Window::seen_up_to(info.highest),
            last_at: None,
            time: None,
            stats: ReceiveStats::default(),
            missing: VecDeque::new(),
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
        let gap = info.kind == MediaKind::Video && media.track_missing(seq, previous, now);
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
        let nack = self
            .streams
            .iter()
            .flat_map(|s| s.missing.iter())
            .map(|m| m.asked.map_or(m.since, |a| a + NACK_INTERVAL))
            .min();
        [twcc, report, nack].into_iter().flatten().min()
    }

    /// A transport-wide number arrived.
    fn arrived(&mut self, seq: u16, now: Instant) {
        let seq = extend_seq(self.twcc_highest, seq);
        self.twcc_highest = Some(self.twcc_highest.map_or(seq, |h| h.max(seq)));
        if self.twcc.len() >= TWCC_MAX_PENDING {
            self.twcc.remove(0);
        }
        self.twcc.push((seq, now));
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
                self.nack_pending |= s.nacks(self.ssrc, now, &mut plain);
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
        let start = out.len();
        out.extend_from_slice(&[0x80, 201, 0, 0]);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let mut count = 0u8;
        if blocks {
            for s in self.streams.iter_mut().filter(|s| s.stats.first.is_some()) {
                if count == 31 {
                    break;
                }
                let block = s.report_block(now, true);
                out.extend_from_slice(&block);
                count += 1;
            }
        }
        out[start] |= count;
        let words = (out.len() - start) / 4 - 1;
        out[start + 2..start + 4].copy_from_slice(&(words as u16).to_be_bytes());
    }

    /// Overwrite the report blocks on this transport's streams in a compound RTCP packet str0m
    /// made (`plain`, opened) with the SFU's numbers; keeps str0m's LSR and DLSR. Returns
    /// whether it changed.
    pub fn rewrite_report_blocks(&mut self, plain: &mut [u8], now: Instant) -> bool {
        let mut changed = false;
        let mut at = 0;
        while let Some((pt, count, len)) = crate::egress::rtcp_header(&plain[at..]) {
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
                    if let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == ssrc)
                        && s.stats.first.is_some()
                    {
                        let ours = s.report_block(now, false);
                        b[4..16].copy_from_slice(&ours[4..16]);
                        changed = true;
                    }
                }
            }
            at += len;
        }
        changed
    }

    /// One transport-wide feedback packet for the arrivals since the last, appended to `out`.
    fn twcc_feedback(&mut self, out: &mut Vec<u8>) {
        self.twcc.sort_unstable_by_key(|(seq, _)| *seq);
        self.twcc.dedup_by_key(|(seq, _)| *seq);
        // Numbers already reported (as lost) are not reported again.
        let next = self.twcc_next.unwrap_or(self.twcc[0].0);
        self.twcc.retain(|(seq, _)| *seq >= next);
        let Some(&(first, first_at)) = self.twcc.first() else {
            return;
        };
        // A long gap (the sender restarted its numbers): report from the first arrival.
        let base = if first - next >= TWCC_MAX_STATUSES {
            first
        } else {
            next
        };
        let elapsed = first_at.saturating_duration_since(self.zero);
        // 64 ms units (24 bits); deltas in 250 µs ticks from it.
        let reference = (elapsed.as_micros() / 64_000) as u64;
        let mut ticks = reference as i64 * 256;
        let mut statuses: Vec<u8> = Vec::new();
        let mut deltas: Vec<u8> = Vec::new();
        let mut taken = 0;
        for &(seq, at) in &self.twcc {
            if seq - base >= TWCC_MAX_STATUSES {
                break;
            }
            let t = (at.saturating_duration_since(self.zero).as_micros() / 250) as i64;
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
            self.twcc.clear();
            self.twcc_next = None;
            return;
        }
        self.twcc.drain(..taken);
        self.twcc_next = Some(base + statuses.len() as u64);
        let start = out.len();
        out.extend_from_slice(&[0x80 | 15, 205, 0, 0]);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        // Media source: one of the sender's SSRCs. Chrome drops transport-wide feedback whose
        // media SSRC is none of its own.
        let media = self
            .streams
            .iter()
            .filter(|s| s.info.repairs.is_none())
            .max_by_key(|s| s.last_at)
            .map_or(0, |s| s.ssrc);
        out.extend_from_slice(&media.to_be_bytes());
        out.extend_from_slice(&(base as u16).to_be_bytes());
        out.extend_from_slice(&(statuses.len() as u16).to_be_bytes());
        out.extend_from_slice(
            &((reference as u32 & 0xff_ffff) << 8 | self.twcc_count as u32).to_be_bytes(),
        );
        self.twcc_count = self.twcc_count.wrapping_add(1);
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

/// `every` after `last`; if never, `zero` (at once).
fn after(last: Option<Instant>, every: Duration, zero: Instant) -> Instant {
    last.map_or(zero, |last| last + every)
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

impl InStream {
    /// Track what is missing after `seq` arrived on this (main) stream, whose highest number
    /// was `previous`; returns whether packets went missing (to be asked for at once).
    fn track_missing(&mut self, seq: u64, previous: Option<u64>, now: Instant) -> bool {
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

    /// Append a generic NACK for the missing packets due to be asked for; returns whether some
    /// are still missing.
    fn nacks(&mut self, sender: u32, now: Instant, out: &mut Vec<u8>) -> bool {
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
                        push_fci(out, start, sender, self.ssrc, pid, blp);
                    }
                    Some((seq, 0))
                }
            };
        }
        if let Some((pid, blp)) = fci {
            push_fci(out, start, sender, self.ssrc, pid, blp);
        }
        if out.len() > start {
            let words = (out.len() - start) / 4 - 1;
            out[start + 2..start + 4].copy_from_slice(&(words as u16).to_be_bytes());
        }
        !self.missing.is_empty()
    }

    /// This stream's report block (RFC 3550 §6.4.1); `interval_ends` starts a new interval for
    /// the fraction lost.
    fn report_block(&mut self, now: Instant, interval_ends: bool) -> [u8; 24] {
        let s = &mut self.stats;
        let first = s.first.unwrap_or(0);
        // A repair stream's own numbers; a media stream's include what its repair stream brought.
        let window = if self.info.repairs.is_some() {
            self.srtp
        } else {
            self.media
        };
        let highest = window.highest.unwrap_or(first).max(first);
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
        let (lsr, dlsr) = match self.sender_report {
            Some((lsr, at)) => (
                lsr,
                (now.saturating_duration_since(at).as_secs_f64() * 65536.0) as u32,
            ),
            None => (0, 0),
        };
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        b[4..8].copy_from_slice(&(fraction << 24 | cumulative).to_be_bytes());
        b[8..12].copy_from_slice(&(highest as u32).to_be_bytes());
        b[12..16].copy_from_slice(&((s.jitter >> 4) as u32).to_be_bytes());
        b[16..20].copy_from_slice(&lsr.to_be_bytes());
        b[20..24].copy_from_slice(&dlsr.to_be_bytes());
        b
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

impl ReceiveStats {
    /// A packet of the stream arrived (or was recovered by retransmission: it counts as
    /// received, not for jitter).
    fn recovered(&mut self, index: u64) {
        self.first = Some(self.first.map_or(index, |f| f.min(index)));
        self.received += 1;
    }

    fn received(&mut self, index: u64, timestamp: u32, elapsed: Duration, clock_rate: u32) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::test_keys;
    use str0m::crypto::dtls::SrtpProfile;
    use str0m::rtp::rtcp::Twcc;

    const AUDIO: u32 = 0x1111;
    const VIDEO: u32 = 0x2222;
    const RTX: u32 = 0x3333;
    const OURS: u32 = 0x9999;
    /// The sender's transport-wide number extension id.
    const TWCC_ID: u8 = 5;

    /// A sender (its SRTP and SRTCP) and the SFU's ingress of its transport.
    struct Setup {
        send: Srtp,
        open_rtcp: Srtp,
        ingress: Ingress,
        zero: Instant,
    }

    fn setup(profile: SrtpProfile, len: usize) -> Setup {
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
        fn opened_payload(&self) -> &[u8] {
            &self.plain[self.payload.clone()]
        }
    }

    impl Setup {
        /// The sender's SRTP packet `index` on `ssrc`, with a transport-wide number.
        fn packet(&mut self, ssrc: u32, index: u64, twcc: Option<u16>, payload: &[u8]) -> Vec<u8> {
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

        fn at(&self, ms: u64) -> Instant {
            self.zero + Duration::from_millis(ms)
        }

        /// The RTCP packets of the feedback due at `now`: (packet type, format, bytes).
        fn feedback(&mut self, now: Instant) -> Vec<(u8, u8, Vec<u8>)> {
            let mut out = Vec::new();
            self.ingress.poll_feedback(now, &mut out);
            let mut packets = Vec::new();
            for sealed in out {
                let mut plain = Vec::new();
                self.open_rtcp.unprotect_rtcp(&sealed, &mut plain).unwrap();
                assert_eq!(plain[1], 201, "a compound packet starts with a report");
                let mut at = 0;
                while let Some((pt, fmt, len)) = crate::egress::rtcp_header(&plain[at..]) {
                    packets.push((pt, fmt, plain[at..at + len].to_vec()));
                    at += len;
                }
                assert_eq!(at, plain.len(), "whole RTCP packets");
            }
            packets
        }
    }

    /// Transport-wide feedback, read by str0m's parser: (number, arrival).
    fn twcc_of(packets: &[(u8, u8, Vec<u8>)], zero: Instant) -> Vec<(u64, Option<Instant>)> {
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
