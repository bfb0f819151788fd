//! A Transport: one participant's ICE/DTLS/SRTP connection. str0m's [`Rtc`] does ICE, DTLS,
//! the SDP and the RTCP it sends; past it, once the DTLS handshake has handed over the SRTP
//! keys, the SFU's [`Egress`] protects and sends the media forwarded to the participant and its
//! [`Ingress`] opens the media the participant sends. This is the byte-level work on one
//! connection; what it means for the others in the room is the router's (`router.rs`) and the
//! coordinator's (`sfu.rs`).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::config::{CryptoProvider, DtlsCert};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::TcpType;
use str0m::{Candidate, Rtc, RtcConfig};
use tracing::warn;

use crate::consumer::Consumer;
use crate::demux::{is_rtcp, is_srtp};
use crate::egress::{Egress, EgressStream};
use crate::ingress::{Ingress, Opened, Refused, StreamInfo};
use crate::options::SfuOptions;
use crate::producer::Producer;
use crate::rtcp::feedback::Feedback;
use crate::rtp::{Header, InExts};
use crate::srtp::KeySlot;
use crate::transmit::{Route, Transmit};

/// str0m's retransmission buffer per video send stream: packets, and how long they are kept.
const RTX_CACHE_PACKETS: usize = 1000;
const RTX_CACHE_AGE: Duration = Duration::from_secs(3);

/// One participant's connection: str0m's state machine, and the SFU's own halves past it.
pub(crate) struct Transport {
    pub rtc: Rtc,
    /// When the Rtc wants its next `Input::Timeout`.
    pub next_timeout: Instant,
    /// Filled by the DTLS handshake with the SRTP keys (fast forwarding).
    keys: Arc<KeySlot>,
    pub egress: EgressState,
    /// Opens the participant's media past str0m (`ingress.rs`), once the keys are there.
    ingress: Option<Box<Ingress>>,
    /// The ingress is made with the egress ([`SfuOptions::fast_receiving`]).
    fast_receiving: bool,
    /// Where str0m sends RTP and RTCP: the selected candidate pair.
    pub media_to: Option<Route>,
}

/// The egress of one receiver's transport (`egress.rs`), once it can be made.
pub(crate) enum EgressState {
    /// The SRTP keys are not there yet.
    Pending,
    Ready(Box<Egress>),
    /// Fast forwarding is off, or the keys' profile is not supported: str0m sends.
    Off,
}

impl Transport {
    /// An ICE-lite transport announcing `options.candidates` (UDP) and `options.tcp_candidates`
    /// (passive TCP, RFC 6544), with the node's DTLS certificate.
    pub fn new(
        now: Instant,
        options: &SfuOptions,
        crypto: &Arc<CryptoProvider>,
        dtls_cert: &DtlsCert,
    ) -> Transport {
        let keys = Arc::new(KeySlot::default());
        let crypto = if options.fast_forwarding {
            // Its DTLS hands over the SRTP keys: media is protected past str0m.
            crate::srtp::provider()
        } else {
            crypto.clone()
        };
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_crypto_provider(crypto)
            .set_dtls_cert(dtls_cert.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            // Packets are forwarded as they come, not depacketized into frames and packetized
            // again: each receiver's jitter buffer orders them, str0m still answers NACKs from
            // its retransmission buffer, sends receiver and sender reports and congestion
            // feedback. The recorder puts frames together itself (assembler.rs).
            .set_rtp_mode(true);
        // Browsers send RTCP every second or so; a retransmission buffer of 1 s is ample for NACK.
        config = config.set_send_buffer_video(RTX_CACHE_PACKETS);
        let mut rtc = crate::srtp::capture(&keys, || config.build(now));
        let udp = options
            .candidates
            .iter()
            .map(|&addr| (addr, Candidate::host(addr, "udp")));
        let tcp = options.tcp_candidates.iter().map(|&addr| {
            let passive = Candidate::builder().tcp().host(addr);
            (addr, passive.tcptype(TcpType::Passive).build())
        });
        for (addr, candidate) in udp.chain(tcp) {
            match candidate {
                Ok(candidate) => {
                    rtc.add_local_candidate(candidate);
                }
                Err(e) => {
                    warn!(%addr, error = %e, "cannot announce this address as an ICE candidate")
                }
            }
        }
        Transport {
            rtc,
            next_timeout: now,
            keys,
            egress: if options.fast_forwarding {
                EgressState::Pending
            } else {
                EgressState::Off
            },
            ingress: None,
            fast_receiving: options.fast_receiving,
            media_to: None,
        }
    }

    /// str0m sends `contents` on `route`: its first SRTP tells where media
    /// goes and that the keys are there (the egress and the ingress are made), and the sender
    /// and receiver reports in its SRTCP get the SFU's numbers for the streams past str0m
    /// (`consumers` hold the egress streams).
    pub fn sent_by_str0m(
        &mut self,
        contents: &mut Vec<u8>,
        route: Route,
        consumers: &[Consumer],
        now: Instant,
    ) {
        if !is_srtp(contents) {
            return;
        }
        // The selected pair: fast forwarding sends media where str0m does.
        self.media_to = Some(route);
        // str0m protects with the handshake's keys: they are there now.
        if matches!(self.egress, EgressState::Pending)
            && let Some(keys) = self.keys.keys()
        {
            self.egress = match Egress::new(keys) {
                Some(ready) => {
                    if self.fast_receiving {
                        // An SSRC none of str0m's streams uses.
                        let ssrc = *self.rtc.direct_api().new_ssrc();
                        self.ingress = Ingress::new(keys, ssrc, now).map(Box::new);
                    }
                    EgressState::Ready(Box::new(ready))
                }
                None => {
                    warn!("SRTP profile not supported by fast forwarding: str0m sends");
                    EgressState::Off
                }
            };
        }
        if is_rtcp(contents)
            && let EgressState::Ready(egress) = &mut self.egress
        {
            let stream = |ssrc| {
                consumers.iter().find_map(|c| {
                    let s = c.egress.as_ref().filter(|s| s.ssrc == ssrc)?;
                    Some((s, &c.clock))
                })
            };
            let ingress = self.ingress.as_deref_mut();
            let blocks =
                |plain: &mut [u8]| ingress.is_some_and(|i| i.rewrite_report_blocks(plain, now));
            egress.rewrite_reports(contents, stream, blocks, now);
        }
    }

    /// Open an SRTP media `packet` of the participant past str0m (`ingress.rs`), describing a
    /// new SSRC from `producers` and str0m's streams; `None` without an ingress.
    #[inline]
    pub fn open(
        &mut self,
        packet: &[u8],
        producers: &[Producer],
        now: Instant,
    ) -> Option<Result<Opened, Refused>> {
        let opened = match self.ingress.as_mut()?.open(packet, now) {
            Err(Refused::Unknown(ssrc)) => match self.describe(producers, packet, ssrc) {
                Some((info, declare)) => {
                    let ingress = self.ingress.as_mut().expect("checked above");
                    let opened = ingress.open_new(packet, ssrc, info, now);
                    if declare && opened.is_ok() {
                        self.declare_stream(ssrc, info.mid);
                    }
                    opened
                }
                None => Err(Refused::Unknown(ssrc)),
            },
            opened => opened,
        };
        Some(opened)
    }

    /// The buffer the last packet [`Transport::open`] opened was decrypted into, swapped with
    /// `into` (to forward it while the transport is borrowed no more): its payload is
    /// `into[range]`, the range returned.
    #[inline]
    pub fn take_payload(&mut self, into: &mut Vec<u8>) -> Range<usize> {
        self.ingress
            .as_mut()
            .expect("a packet was opened: there is an ingress")
            .take_payload(into)
    }

    /// What the SFU knows of a new SSRC of the participant's media, from the first packet
    /// `packet`: str0m's streams (the stream of one of `producers`, an SSRC or repair SSRC the
    /// SDP declared, or one str0m bound), else the MID header extension (RFC 8843 §15) and the
    /// payload type; and whether str0m must be told of the stream
    /// ([`Transport::declare_stream`]) once its packet is authentic.
    fn describe(
        &mut self,
        producers: &[Producer],
        packet: &[u8],
        ssrc: u32,
    ) -> Option<(StreamInfo, bool)> {
        let header = Header::parse(packet)?;
        let mut repairs = None;
        let mut mid = producers
            .iter()
            .find(|pr| pr.ssrc == Some(ssrc))
            .map(|pr| pr.mid);
        if mid.is_none() {
            let mut api = self.rtc.direct_api();
            mid = api.stream_rx(&ssrc.into()).map(|s| s.mid());
            if mid.is_none() {
                for pr in producers {
                    if let Some(s) = api
                        .stream_rx_by_mid(pr.mid, None)
                        .filter(|s| s.rtx() == Some(ssrc.into()))
                    {
                        repairs = Some(*s.ssrc());
                        mid = Some(pr.mid);
                        break;
                    }
                }
            }
        }
        let mut declare = false;
        if mid.is_none() {
            let any = producers.iter().find_map(|pr| self.rtc.media(pr.mid))?;
            mid = InExts::new(any.remote_extmap()).mid_of(&header, packet);
            declare = true;
        }
        let mid = mid?;
        let producer = producers.iter().find(|pr| pr.mid == mid)?;
        let kind = producer.kind;
        let pt = Pt::from(header.pt);
        let is_repair = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .any(|c| c.resend() == Some(pt));
        if repairs.is_none() && is_repair {
            // The repair stream of the sender's newest stream on the m-line; none yet: undescribed
            // until there is one.
            repairs = Some(self.ingress.as_ref()?.main_stream(mid)?);
        }
        let clock_rate = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|c| c.pt() == pt || c.resend() == Some(pt))
            .map(|c| c.spec().clock_rate.get())
            .unwrap_or(match kind {
                MediaKind::Audio => 48_000,
                MediaKind::Video => 90_000,
            });
        let exts = InExts::new(self.rtc.media(mid)?.remote_extmap());
        // A media stream str0m received before: its numbers go on (the roll-over counter).
        let highest = producer
            .first_seq
            .filter(|_| producer.ssrc == Some(ssrc) && repairs.is_none())
            .map(|_| producer.highest_seq);
        let info = StreamInfo {
            mid,
            kind,
            repairs,
            clock_rate,
            exts,
            highest,
        };
        Some((info, declare && repairs.is_none()))
    }

    /// Tell str0m of a media stream it never saw (found by its MID header extension): str0m sends
    /// its keyframe requests. It replaces the stream str0m had on the m-line (one encoding each).
    fn declare_stream(&mut self, ssrc: u32, mid: Mid) {
        let mut api = self.rtc.direct_api();
        while let Some(old) = api
            .stream_rx_by_mid(mid, None)
            .map(|s| *s.ssrc())
            .filter(|old| *old != ssrc)
        {
            api.remove_stream_rx(old.into());
        }
        api.expect_stream_rx(ssrc.into(), None, mid, None);
    }

    /// Send what the ingress has due at `now` (`ingress.rs`) where str0m sends its RTCP;
    /// returns the datagrams and bytes sent.
    #[inline]
    pub fn send_feedback(
        &mut self,
        now: Instant,
        scratch: &mut Vec<Vec<u8>>,
        transmits: &mut VecDeque<Transmit>,
    ) -> (u64, u64) {
        let (Some(ingress), Some(route)) = (self.ingress.as_mut(), self.media_to) else {
            return (0, 0);
        };
        scratch.clear();
        ingress.poll_feedback(now, scratch);
        let mut sent = (0, 0);
        for datagram in scratch.drain(..) {
            sent.0 += 1;
            sent.1 += datagram.len() as u64;
            transmits.push_back(route.transmit(datagram));
        }
        sent
    }

    /// When the ingress has feedback due next, if ever.
    #[inline]
    pub fn next_feedback(&self) -> Option<Instant> {
        self.ingress.as_ref().and_then(|i| i.next_due())
    }

    /// An SRTCP `datagram` from the participant, while the egress sends to it (`None`
    /// otherwise): its reports acknowledge egress streams (in `consumers`), its sender reports
    /// go to the ingress, and the packets its NACKs ask for are resent (str0m did not send
    /// them). `feedback` is reused. Returns the datagrams and bytes resent.
    pub fn read_rtcp(
        &mut self,
        datagram: &[u8],
        consumers: &mut [Consumer],
        feedback: &mut Feedback,
        transmits: &mut VecDeque<Transmit>,
        now: Instant,
    ) -> Option<(u64, u64)> {
        let EgressState::Ready(egress) = &mut self.egress else {
            return None;
        };
        let mut resent = (0u64, 0u64);
        feedback.clear();
        egress.feedback(datagram, feedback);
        for stream in consumers.iter_mut().filter_map(|c| c.egress.as_mut()) {
            if feedback.reported.contains(&stream.ssrc) {
                stream.acknowledge();
            }
        }
        if let Some(ingress) = self.ingress.as_mut() {
            for &(ssrc, ntp) in &feedback.senders {
                ingress.sender_report(ssrc, ntp, now);
            }
        }
        if let (false, Some(route)) = (feedback.nacks.is_empty(), self.media_to) {
            for &(ssrc, seq) in &feedback.nacks {
                let stream = consumers.iter_mut().filter_map(|c| c.egress.as_mut());
                if let Some(datagram) = stream
                    .filter(|s| s.ssrc == ssrc)
                    .find_map(|s| s.resend(seq, now))
                {
                    resent.0 += 1;
                    resent.1 += datagram.len() as u64;
                    transmits.push_back(route.transmit(datagram.to_vec()));
                }
            }
        }
        Some(resent)
    }

    /// Ask the sender of `mid` for a keyframe through str0m: PLI where negotiated, else FIR
    /// (RFC 4585, RFC 5104), as str0m's writer chooses. Returns whether a request was sent.
    pub fn request_keyframe(&mut self, mid: Mid) -> bool {
        let params = self.rtc.codec_config().params();
        let kind = if params.iter().any(|p| p.fb_pli()) {
            KeyframeRequestKind::Pli
        } else if params.iter().any(|p| p.fb_fir()) {
            KeyframeRequestKind::Fir
        } else {
            return false;
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, None) else {
            return false;
        };
        stream.request_keyframe(kind);
        true
    }

    /// The egress stream of str0m's send stream on the receiver's m-line `mid`, which the
    /// egress takes over from str0m (`rtc`, the transport's).
    pub fn egress_stream(
        rtc: &mut Rtc,
        mid: Mid,
        kind: MediaKind,
        clock_rate: u32,
    ) -> Option<EgressStream> {
        let mut api = rtc.direct_api();
        let ssrc = api.stream_tx_by_mid(mid, None).map(|s| {
            // Emptied: str0m widens a NACK's number around its newest cached packet and would
            // answer a NACK for a packet of the egress with an old one.
            s.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(0.15));
            *s.ssrc()
        });
        let exts = rtc.media(mid).map(|m| m.remote_extmap());
        ssrc.zip(exts)
            .map(|(ssrc, exts)| EgressStream::new(mid, ssrc, kind, clock_rate, exts))
    }
}
