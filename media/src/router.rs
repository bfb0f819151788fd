//! The Router of a Room (mediasoup's word): what one participant's Transport brings, routed
//! to the room's other participants. A new Producer becomes a Consumer of each of them; a media
//! packet is forwarded to each Consumer of its Producer, in the receiver's payload type and
//! numbers, past str0m on the receiver's egress or written into str0m, and to the recorder while
//! the room is recorded; a receiver's keyframe request goes back to the Producer's sender.
//!
//! A [`Router`] owns nothing: the participants live in the SFU, keyed for demultiplexing, and a
//! room lists its members. It is made for one event from borrows of both (a few references,
//! nothing allocated), so forwarding a packet costs no lookup of the room beyond the one that
//! makes it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::format::{Codec, CodecConfig, PayloadParams};
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use tracing::{debug, trace};

use crate::assembler::{FrameAssembler, Packet};
use crate::consumer::{Consumer, ConsumerState, SeqMap};
use crate::deadline::lower;
use crate::egress::Outgoing;
use crate::ids::{FastMap, ParticipantKey};
use crate::ingress::Opened;
use crate::participant::Participant;
use crate::room::Room;
use crate::track::Track;
use crate::transmit::Transmit;
use crate::transport::{EgressState, Transport};

/// Minimum time between two keyframe requests to the same producer.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// The media routing of one room, borrowed from the SFU for one event.
pub(crate) struct Router<'a> {
    pub room: &'a mut Room,
    /// Every participant of the SFU, by key: the room's members among them.
    pub participants: &'a mut FastMap<ParticipantKey, Participant>,
    pub transmits: &'a mut VecDeque<Transmit>,
    /// Participants whose transports have output to drain.
    pub dirty: &'a mut Vec<ParticipantKey>,
    /// The SFU's earliest deadline, lowered when str0m is to send at once.
    pub deadline: &'a mut Option<Instant>,
    /// Tracks found in a codec their receiver did not accept, for the SFU to tell both.
    pub mismatches: &'a mut Vec<Mismatch>,
}

/// A track sent in a codec its receiver did not accept (found on its first packet in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub sender: ParticipantKey,
    pub receiver: ParticipantKey,
    pub kind: MediaKind,
    pub codec: Codec,
    pub accepts: Vec<Codec>,
}

/// The receiver's payload type for what the sender sends in `sent`, among those the receiver
/// accepted on its m-line `mid`; `None` if it accepted no such codec.
fn receiver_pt(rtc: &Rtc, mid: Mid, sent: PayloadParams) -> Option<Pt> {
    let accepted = rtc.media(mid)?.remote_pts();
    let config = CodecConfig::new_from_payload_params(
        rtc.codec_config()
            .params()
            .iter()
            .filter(|p| accepted.contains(&p.pt()))
            .copied()
            .collect(),
    );
    config.match_params(sent).map(|p| p.pt())
}

/// The codecs the receiver accepted on its m-line `mid`, in its order, each once.
fn accepted_codecs(rtc: &Rtc, mid: Mid) -> Vec<Codec> {
    let mut codecs = Vec::new();
    for pt in rtc.media(mid).map_or(&[][..], |m| m.remote_pts()) {
        if let Some(p) = rtc.codec_config().params().iter().find(|p| p.pt() == *pt)
            && !codecs.contains(&p.spec().codec)
        {
            codecs.push(p.spec().codec);
        }
    }
    codecs
}

/// A media packet to forward, from str0m or opened by the SFU itself.
struct Incoming<'a> {
    seq: u64,
    ssrc: u32,
    pt: Pt,
    marker: bool,
    timestamp: u32,
    /// Extended RTP time.
    time: u64,
    arrival: Instant,
    /// The header extension values forwarded.
    exts: ExtensionValues,
    payload: &'a [u8],
}

impl Router<'_> {
    /// `origin` has a new producer on `mid`: each other participant consumes it, from its
    /// next offer on.
    pub fn producer_added(&mut self, origin: ParticipantKey, mid: Mid, kind: MediaKind) {
        for other in self.room.others(origin) {
            if let Some(p) = self.participants.get_mut(&other) {
                p.consumers.push(Consumer::new(origin, mid, kind));
                p.negotiation.needs_offer();
                self.dirty.push(other);
            }
        }
    }

    /// A producer of `origin` ended: the others' next offers stop their consumers of it.
    pub fn producer_removed(&mut self, origin: ParticipantKey) {
        for other in self.room.others(origin) {
            if let Some(p) = self.participants.get_mut(&other) {
                p.negotiation.needs_offer();
                self.dirty.push(other);
            }
        }
    }

    /// Receiver `origin` asked for a keyframe on its consumer's m-line `mid`: the sender of the
    /// source producer is asked.
    pub fn keyframe_request(&mut self, now: Instant, origin: ParticipantKey, mid: Mid) {
        let source = self.participants.get(&origin).and_then(|p| {
            p.consumers.iter().find_map(|c| match c.state {
                ConsumerState::Open(m) if m == mid => Some((c.source, c.source_mid)),
                _ => None,
            })
        });
        if let Some((source, source_mid)) = source {
            self.request_keyframe(now, source, source_mid);
        }
    }

    /// The room's recording started: the recorder needs a keyframe of every video track to
    /// begin its files. Asked now, even if a consumer asked moments ago (that keyframe may have
    /// passed before the tap existed); forwarding asks again until one reaches the recorder.
    pub fn recording_started(&mut self, now: Instant) {
        let mut sources = Vec::new();
        for &key in &self.room.members {
            if let Some(p) = self.participants.get_mut(&key) {
                for pr in p
                    .producers
                    .iter_mut()
                    .filter(|pr| pr.kind == MediaKind::Video)
                {
                    pr.recorded_keyframe = false;
                    pr.last_keyframe_request = None;
                    sources.push((key, pr.mid));
                }
            }
        }
        for (source, mid) in sources {
            self.request_keyframe(now, source, mid);
        }
    }

    /// Ask `source`'s sender for a keyframe of its producer `mid`, at most once per
    /// [`KEYFRAME_REQUEST_INTERVAL`].
    pub fn request_keyframe(&mut self, now: Instant, source: ParticipantKey, mid: Mid) {
        // The request is counted on this Router's room: the source must be one of its members.
        debug_assert!(
            self.room.members.contains(&source),
            "a keyframe request routed through another room"
        );
        let Some(p) = self.participants.get_mut(&source) else {
            return;
        };
        if p.request_keyframe(mid, now, KEYFRAME_REQUEST_INTERVAL) {
            self.room.metrics.keyframe_requests += 1;
            self.dirty.push(source);
        }
    }

    /// Forward a media packet str0m received from `origin` on its producer `mid`.
    #[inline]
    pub fn forward_rtp(
        &mut self,
        now: Instant,
        origin: ParticipantKey,
        mid: Mid,
        packet: &RtpPacket,
    ) {
        let incoming = Incoming {
            seq: *packet.seq_no,
            ssrc: *packet.header.ssrc,
            pt: packet.header.payload_type,
            marker: packet.header.marker,
            timestamp: packet.header.timestamp,
            time: packet.time.numer(),
            arrival: packet.timestamp,
            exts: forwarded_extensions(&packet.header.ext_vals),
            payload: &packet.payload,
        };
        self.forward(now, origin, mid, incoming)
    }

    /// Forward a packet the SFU opened itself from `origin` (`ingress.rs`), whose payload is
    /// `payload`.
    #[inline]
    pub fn forward_opened(
        &mut self,
        now: Instant,
        origin: ParticipantKey,
        opened: Opened,
        payload: &[u8],
    ) {
        let Some(p) = self.participants.get(&origin) else {
            return;
        };
        let mut pt = Pt::from(opened.pt);
        if opened.repaired {
            // A retransmission: the payload type it repairs (RFC 4588 §8.1).
            let params = p.transport.rtc.codec_config().params();
            match params.iter().find(|c| c.resend() == Some(pt)) {
                Some(original) => pt = original.pt(),
                None => return,
            }
        }
        let incoming = Incoming {
            seq: opened.seq,
            ssrc: opened.ssrc,
            pt,
            marker: opened.marker,
            timestamp: opened.timestamp,
            time: opened.time,
            arrival: now,
            exts: opened.exts,
            payload,
        };
        self.forward(now, origin, opened.mid, incoming);
    }

    /// Forward `packet` of `origin`'s producer `mid` to the room's other participants that
    /// consume it, each in its own numbers and payload type, and to the recorder.
    fn forward(&mut self, now: Instant, origin: ParticipantKey, mid: Mid, packet: Incoming<'_>) {
        let seq = packet.seq;
        let ssrc = packet.ssrc;
        let Some(p) = self.participants.get_mut(&origin) else {
            return;
        };
        // The recorder takes a participant's first track of each kind: the camera's, not a
        // screen shown besides it (two pictures in one recorded track would be neither).
        let kind_of = |mid| {
            p.producers
                .iter()
                .find(|pr| pr.mid == mid)
                .map(|pr| pr.kind)
        };
        let recorded = kind_of(mid)
            .and_then(|kind| p.producers.iter().find(|pr| pr.kind == kind))
            .is_some_and(|first| first.mid == mid);
        let Some(producer) = p.producers.iter_mut().find(|pr| pr.mid == mid) else {
            return;
        };
        if producer.ssrc != Some(ssrc) {
            // The sender's stream was replaced (new SSRC, new numbers): count and assemble
            // afresh, after the recorder got what the old stream's assembler held. Forwarding
            // renumbers in each consumer's `SeqMap`.
            if let Some(tap) = self.room.recording.tap.as_mut() {
                Track::finish(tap.as_mut(), &p.info, origin, producer);
            }
            producer.restart(ssrc);
        }
        let Some(params) = producer.params(&p.transport.rtc, packet.pt) else {
            trace!(participant = %p.info.id, "a payload type the sender did not negotiate");
            return;
        };
        let lost = producer.account(seq);
        let kind = producer.kind;
        let clock_rate = params.spec().clock_rate.get();
        self.room.metrics.packets_lost += lost;

        // The recorder takes whole frames.
        let mut recorder_needs_keyframe = false;
        match self.room.recording.tap.as_mut().filter(|_| recorded) {
            Some(tap) => {
                let codec = params.spec().codec.into();
                if producer.assembler.is_none() {
                    producer.assembler = FrameAssembler::new(codec);
                }
                if let Some(assembler) = producer.assembler.as_mut() {
                    let mut frames = Vec::new();
                    assembler.push(
                        Packet {
                            seq,
                            time: packet.time,
                            marker: packet.marker,
                            arrival: packet.arrival,
                            payload: packet.payload.into(),
                        },
                        &mut frames,
                    );
                    let track = Track {
                        from: &p.info,
                        transport: origin,
                        codec,
                        clock_rate,
                    };
                    recorder_needs_keyframe = track.record(tap.as_mut(), producer, frames);
                }
            }
            None => {
                producer.assembler = None;
                producer.recorded_keyframe = false;
            }
        }
        if recorder_needs_keyframe {
            self.request_keyframe(now, origin, mid);
        }

        let nackable = kind == MediaKind::Video;
        let ext_vals = &packet.exts;
        // Written into str0m for a receiver that fast forwarding does not serve: one copy.
        let mut shared: Option<Arc<[u8]>> = None;
        // Packets and bytes sent past str0m (its own are counted as they leave it).
        let mut egress_out = (0u64, 0u64);
        for other in self.room.others(origin) {
            let Some(Participant {
                consumers,
                transport,
                info,
                ..
            }) = self.participants.get_mut(&other)
            else {
                continue;
            };
            if kind == MediaKind::Video && info.audio_only {
                // Its link cannot carry video: nothing to send, nothing for it to ask again.
                continue;
            }
            let Transport {
                rtc,
                next_timeout,
                egress,
                media_to,
                ..
            } = transport;
            let Some(consumer) = consumers.iter_mut().find(|c| {
                c.source == origin
                    && c.source_mid == mid
                    && matches!(c.state, ConsumerState::Open(_))
            }) else {
                continue;
            };
            let ConsumerState::Open(out_mid) = consumer.state else {
                continue;
            };
            let pt = match consumer.pt_map {
                Some((from, to)) if from == params.pt() => to,
                _ => {
                    let to = receiver_pt(rtc, out_mid, params);
                    consumer.pt_map = Some((params.pt(), to));
                    if to.is_none() {
                        debug!(%out_mid, codec = %params.spec().codec, "the receiver did not accept this codec");
                        self.mismatches.push(Mismatch {
                            sender: origin,
                            receiver: other,
                            kind,
                            codec: params.spec().codec,
                            accepts: accepted_codecs(rtc, out_mid),
                        });
                    }
                    to
                }
            };
            let Some(pt) = pt else {
                continue;
            };
            let Some(out_seq) = SeqMap::map(&mut consumer.seq, ssrc, seq) else {
                // A retransmission from before the receiver's first packet.
                continue;
            };
            // str0m's sender reports map RTP time to the wall clock of the last packet written:
            // a late packet gets the time its place in the stream implies, not its arrival.
            let wallclock =
                consumer
                    .clock
                    .wallclock(out_seq, packet.timestamp, packet.arrival, clock_rate);
            if let (EgressState::Ready(egress), Some(route)) = (egress, *media_to) {
                if consumer.egress.as_ref().is_none_or(|s| s.mid != out_mid) {
                    consumer.egress = Transport::egress_stream(rtc, out_mid, kind, clock_rate);
                }
                if let Some(stream) = consumer.egress.as_mut() {
                    let outgoing = Outgoing {
                        pt: *pt,
                        marker: packet.marker,
                        index: out_seq,
                        time: packet.timestamp,
                        exts: ext_vals,
                        payload: packet.payload,
                    };
                    if let Some(datagram) = egress.packet(stream, outgoing, now) {
                        egress_out.0 += 1;
                        egress_out.1 += datagram.len() as u64;
                        self.transmits.push_back(route.transmit(datagram));
                    }
                    continue;
                }
            }
            let mut api = rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            stream.write_rtp(
                RtpWrite::new(
                    pt,
                    out_seq.into(),
                    packet.timestamp,
                    wallclock,
                    shared.get_or_insert_with(|| packet.payload.into()).clone(),
                )
                .marker(packet.marker)
                .ext_vals(ext_vals.clone())
                .nackable(nackable),
            );
            // str0m sends what was written on its next timeout: make that now (the media loop
            // handles due timers after each batch of datagrams), without a drain in between.
            *next_timeout = now;
            lower(self.deadline, now);
        }
        self.room.count_out(egress_out);
    }
}

/// The header extensions a forwarded packet keeps: what describes the media (audio level,
/// video orientation, capture time…). The receiver's MID and RID are str0m's to write (until the
/// receiver acknowledges the SSRC): the sender's would name one of the sender's m-lines — Chrome
/// keeps putting its MID on retransmissions — and a browser demultiplexes by MID first.
/// Transport-wide sequence numbers and send times are per hop.
fn forwarded_extensions(source: &ExtensionValues) -> ExtensionValues {
    let mut ext = source.clone();
    ext.mid = None;
    ext.rid = None;
    ext.rid_repair = None;
    ext.transport_cc = None;
    ext.abs_send_time = None;
    ext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_packets_keep_media_extensions_but_not_the_senders_mid_or_transport_numbers() {
        let source = ExtensionValues {
            mid: Some(Mid::from("0")),
            rid: Some("h".into()),
            rid_repair: Some("h".into()),
            transport_cc: Some(77),
            abs_send_time: Some(Instant::now()),
            audio_level: Some(-30),
            voice_activity: Some(true),
            ..Default::default()
        };
        let out = forwarded_extensions(&source);
        assert_eq!(
            (out.mid, out.rid, out.rid_repair, out.transport_cc),
            (None, None, None, None)
        );
        assert!(out.abs_send_time.is_none());
        assert_eq!(
            (out.audio_level, out.voice_activity),
            (Some(-30), Some(true))
        );
    }
}
