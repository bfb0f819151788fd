//! The generator's own RTP: frames packetized as a browser would (Opus one packet per frame, VP8
//! split with RFC 7741 payload descriptors), protected with [`Srtp`], and the forwarded packets
//! read back into frames. str0m keeps ICE, DTLS and RTCP (see `vizit_media::srtp`).

use str0m::media::MediaKind;

use vizit_media::RtpHeader;
use vizit_media::srtp::{Direction, Keys, Srtp};

/// VP8 bytes per packet: with the RTP header, the descriptor and the SRTP tag a packet stays
/// under 1200 bytes, as browsers' do.
const VP8_CHUNK: usize = 1100;
const RTP_HEADER: usize = 12;

/// One outgoing stream: what the SDP declared for it, and the next packet index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing {
    pub ssrc: u32,
    pub pt: u8,
    pub kind: MediaKind,
    /// Roll-over counter and sequence number of the next packet.
    pub index: u64,
    /// The negotiated id of the transport-wide sequence number extension, if any.
    pub twcc_id: Option<u8>,
}

/// One incoming stream: its packet index estimate and the video frame being assembled.
struct Incoming {
    ssrc: u32,
    /// Roll-over counter and highest sequence number authenticated so far.
    roc: u32,
    highest: Option<u16>,
    /// The VP8 frame being assembled: its RTP timestamp and the sequence number that continues
    /// it, `None` between frames or after a gap.
    assembling: Option<(u32, u16)>,
    frame: Vec<u8>,
}

impl Incoming {
    /// The packet index of `seq` (RFC 3711 appendix A).
    fn index(&self, seq: u16) -> u64 {
        let roc = match self.highest {
            None => self.roc,
            Some(h) if h < 0x8000 && seq.wrapping_sub(h) > 0x8000 && seq > h => {
                self.roc.wrapping_sub(1)
            }
            Some(h) if h >= 0x8000 && seq < h.wrapping_sub(0x8000) => self.roc.wrapping_add(1),
            Some(_) => self.roc,
        };
        (roc as u64) << 16 | seq as u64
    }

    /// Remember an authenticated packet's index.
    fn accept(&mut self, index: u64) {
        let (roc, seq) = ((index >> 16) as u32, index as u16);
        let newer = match self.highest {
            None => true,
            Some(h) => roc != self.roc || seq > h,
        };
        if newer && (self.highest.is_none() || roc >= self.roc) {
            self.roc = roc;
            self.highest = Some(seq);
        }
    }
}

/// What [`Direct::receive`] made of a datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Not an RTP packet (STUN, DTLS, RTCP): str0m's.
    NotRtp,
    /// An RTP packet of a payload type not in the map (yet).
    UnknownPt(u8),
    /// Handled (a frame may have been completed, or the packet failed to authenticate).
    Done,
}

/// The media of one transport, past str0m.
pub(crate) struct Direct {
    tx: Srtp,
    rx: Srtp,
    /// Payload type → kind, of what the other side sends.
    kinds: Vec<(u8, MediaKind)>,
    /// Payload types of the other side that are not media.
    ignored: Vec<u8>,
    incoming: Vec<Incoming>,
    /// Reused buffers: a decrypted payload, a VP8 payload being protected.
    plain: Vec<u8>,
    payload: Vec<u8>,
    /// The transport-wide sequence number of the next packet (every stream of the transport).
    twcc_seq: u16,
    /// Media packets that authenticated, and those that did not.
    pub received: u64,
    pub rejected: u64,
}

impl Direct {
    /// The media path of a transport whose DTLS handshake exported `keys`: it protects what
    /// this side sends and unprotects what it receives. `None` for a profile [`Srtp`] does not
    /// know.
    pub fn new(keys: &Keys) -> Option<Direct> {
        let tx = Srtp::rtp(keys, Direction::Outbound, true)?;
        let rx = Srtp::rtp(keys, Direction::Inbound, false)?;
        Some(Direct {
            tx,
            rx,
            kinds: Vec::new(),
            ignored: Vec::new(),
            incoming: Vec::new(),
            plain: Vec::with_capacity(2048),
            payload: Vec::with_capacity(2048),
            twcc_seq: 0,
            received: 0,
            rejected: 0,
        })
    }

    pub fn set_kinds(&mut self, kinds: Vec<(u8, MediaKind)>) {
        self.kinds = kinds;
    }

    /// Drop packets of payload type `pt` from now on.
    pub fn ignore(&mut self, pt: u8) {
        self.ignored.push(pt);
    }

    /// Append the SRTP packets of one frame to `out`, all of one size but the last (one GSO
    /// send); returns that size. Each packet carries the transport-wide sequence number, as a
    /// browser's do, so the server sends its congestion feedback as it would to one.
    pub fn packetize(
        &mut self,
        stream: &mut Outgoing,
        rtp_time: u32,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> anyhow::Result<usize> {
        let (count, chunk) = match stream.kind {
            MediaKind::Audio => (1, frame.len()),
            MediaKind::Video => {
                let count = frame.len().div_ceil(VP8_CHUNK).max(1);
                (count, frame.len().div_ceil(count))
            }
        };
        let mut segment = 0;
        let payload = &mut self.payload;
        for (i, part) in frame.chunks(chunk.max(1)).enumerate() {
            // The marker ends a video frame; on audio it starts a talkspurt (RFC 3551 §4.1):
            // the stream's first packet, as it has no silences.
            let marker = match stream.kind {
                MediaKind::Video => i + 1 == count,
                MediaKind::Audio => stream.index == 0,
            };
            let mut header = [0u8; RTP_HEADER + 8];
            header[0] = 0x80;
            header[1] = stream.pt | if marker { 0x80 } else { 0 };
            header[2..4].copy_from_slice(&(stream.index as u16).to_be_bytes());
            header[4..8].copy_from_slice(&rtp_time.to_be_bytes());
            header[8..12].copy_from_slice(&stream.ssrc.to_be_bytes());
            let header = match stream.twcc_id {
                Some(id) => {
                    // RFC 8285 one-byte header extension: one word, one 2-byte element.
                    header[0] |= 0x10;
                    header[12..16].copy_from_slice(&[0xbe, 0xde, 0, 1]);
                    header[16] = id << 4 | 1;
                    header[17..19].copy_from_slice(&self.twcc_seq.to_be_bytes());
                    self.twcc_seq = self.twcc_seq.wrapping_add(1);
                    &header[..]
                }
                None => &header[..RTP_HEADER],
            };
            let body = match stream.kind {
                MediaKind::Audio => part,
                MediaKind::Video => {
                    // RFC 7741 §4.2: S (start of partition) on the first packet, partition 0.
                    payload.clear();
                    payload.push(if i == 0 { 0x10 } else { 0x00 });
                    payload.extend_from_slice(part);
                    &payload[..]
                }
            };
            let before = out.len();
            self.tx
                .protect(header, body, stream.ssrc, stream.index, out)?;
            if i == 0 {
                segment = out.len() - before;
            }
            stream.index += 1;
        }
        Ok(segment)
    }

    /// Read one datagram from the server: a media packet is authenticated, decrypted and
    /// assembled, and each complete frame handed to `on_frame`.
    pub fn receive(
        &mut self,
        datagram: &[u8],
        mut on_frame: impl FnMut(MediaKind, &[u8]),
    ) -> Received {
        let Some(header) = RtpHeader::parse(datagram) else {
            return Received::NotRtp;
        };
        let Some(kind) = self
            .kinds
            .iter()
            .find(|(pt, _)| *pt == header.pt)
            .map(|(_, k)| *k)
        else {
            if self.ignored.contains(&header.pt) {
                return Received::Done;
            }
            return Received::UnknownPt(header.pt);
        };
        let slot = match self.incoming.iter().position(|s| s.ssrc == header.ssrc) {
            Some(i) => i,
            None => {
                self.incoming.push(Incoming {
                    ssrc: header.ssrc,
                    roc: 0,
                    highest: None,
                    assembling: None,
                    frame: Vec::new(),
                });
                self.incoming.len() - 1
            }
        };
        let stream = &mut self.incoming[slot];
        let index = stream.index(header.seq);
        if self
            .rx
            .unprotect(datagram, header.len, header.ssrc, index, &mut self.plain)
            .is_none()
        {
            self.rejected += 1;
            return Received::Done;
        }
        stream.accept(index);
        self.received += 1;
        let mut payload = &self.plain[..];
        if header.padding {
            let pad = payload.last().copied().unwrap_or(0) as usize;
            payload = &payload[..payload.len().saturating_sub(pad)];
        }
        match kind {
            MediaKind::Audio => on_frame(kind, payload),
            MediaKind::Video => {
                let Some((start, data)) = vp8_payload(payload) else {
                    stream.assembling = None;
                    return Received::Done;
                };
                if start {
                    stream.frame.clear();
                    stream.assembling = Some((header.timestamp, header.seq));
                }
                match stream.assembling {
                    Some((ts, seq)) if ts == header.timestamp && seq == header.seq => {
                        stream.frame.extend_from_slice(data);
                        stream.assembling = Some((ts, seq.wrapping_add(1)));
                    }
                    // A gap or a stray packet: this frame is lost (the sequence numbers in the
                    // frames themselves count it).
                    _ => stream.assembling = None,
                }
                if header.marker && stream.assembling.take().is_some() {
                    on_frame(kind, &stream.frame);
                }
            }
        }
        Received::Done
    }
}

/// The VP8 payload descriptor (RFC 7741 §4.2): whether the packet starts a frame (S set,
/// partition 0), and the VP8 data after the descriptor.
fn vp8_payload(p: &[u8]) -> Option<(bool, &[u8])> {
    let first = *p.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let x = *p.get(1)?;
        at = 2;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits (M).
            at += if *p.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    Some((start, p.get(at..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_and_rtcp_are_told_apart() {
        let mut rtp = [0u8; 20];
        rtp[0] = 0x90; // version 2, extension
        rtp[1] = 0x80 | 96;
        rtp[2..4].copy_from_slice(&7u16.to_be_bytes());
        rtp[14..16].copy_from_slice(&1u16.to_be_bytes()); // one extension word
        let h = RtpHeader::parse(&rtp).unwrap();
        assert_eq!((h.pt, h.seq, h.marker, h.len), (96, 7, true, 20));
        let mut rtcp = rtp;
        rtcp[1] = 200; // sender report
        assert_eq!(RtpHeader::parse(&rtcp), None);
        assert_eq!(RtpHeader::parse(&[0x00, 0x01, 0, 0]), None); // STUN
    }

    #[test]
    fn vp8_descriptors_are_skipped() {
        assert_eq!(vp8_payload(&[0x10, 1, 2]), Some((true, &[1u8, 2][..])));
        assert_eq!(vp8_payload(&[0x00, 1]), Some((false, &[1u8][..])));
        // X, I with a 15-bit picture id, L, T: 5 bytes of descriptor.
        assert_eq!(
            vp8_payload(&[0x90, 0xe0, 0x81, 0x02, 0x03, 0x04, 9]),
            Some((true, &[9u8][..]))
        );
        // Start bit of a later partition is not a frame start.
        assert_eq!(vp8_payload(&[0x11, 5]), Some((false, &[5u8][..])));
    }

    /// A frame packetized by one end is read back whole by the other: equal segments but the
    /// last, the marker on the last, the start bit on the first, the transport-wide sequence
    /// number in every packet.
    #[test]
    fn frames_round_trip_through_packets() {
        let (client, server) =
            vizit_media::srtp::test_keys(str0m::crypto::dtls::SrtpProfile::AEAD_AES_128_GCM, 56);
        let mut sender = Direct::new(&client).unwrap();
        let mut receiver = Direct::new(&server).unwrap();
        receiver.set_kinds(vec![(111, MediaKind::Audio), (96, MediaKind::Video)]);
        let mut video = Outgoing {
            ssrc: 7,
            pt: 96,
            kind: MediaKind::Video,
            index: 65534, // rolls over inside the frame
            twcc_id: Some(3),
        };
        let frame: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        let segment = sender
            .packetize(&mut video, 9000, &frame, &mut out)
            .unwrap();
        // 2500 bytes → 3 packets of 834, 834 and 832 bytes of VP8 (+1 descriptor, 20 header,
        // 16 tag).
        assert_eq!(segment, 834 + 1 + 20 + 16);
        assert_eq!(out.len(), 2 * segment + 832 + 1 + 20 + 16);
        let packets: Vec<&[u8]> = out.chunks(segment).collect();
        for (i, p) in packets.iter().enumerate() {
            assert_eq!(p[0], 0x90, "version 2 with an extension");
            assert_eq!(p[1] & 0x80 != 0, i == 2, "marker on the last packet only");
            assert_eq!(
                &p[12..17],
                &[0xbe, 0xde, 0, 1, 0x31],
                "one-byte extension, id 3"
            );
            assert_eq!(
                u16::from_be_bytes([p[17], p[18]]),
                i as u16,
                "transport-wide sequence"
            );
        }
        let mut got = Vec::new();
        for p in &packets {
            assert_eq!(
                receiver.receive(p, |kind, data| got.push((kind, data.to_vec()))),
                Received::Done
            );
        }
        assert_eq!(got, vec![(MediaKind::Video, frame.clone())]);
        // A lost packet loses the frame, not more.
        let mut again = Vec::new();
        sender
            .packetize(&mut video, 12000, &frame, &mut again)
            .unwrap();
        let mut got = Vec::new();
        for (i, p) in again.chunks(segment).enumerate() {
            if i != 1 {
                receiver.receive(p, |kind, data| got.push((kind, data.to_vec())));
            }
        }
        assert!(got.is_empty());
        // Audio: one packet, the marker on the stream's first.
        let mut audio = Outgoing {
            ssrc: 8,
            pt: 111,
            kind: MediaKind::Audio,
            index: 0,
            twcc_id: None,
        };
        for n in 0..2u8 {
            let mut out = Vec::new();
            sender
                .packetize(&mut audio, 960, &[n; 160], &mut out)
                .unwrap();
            assert_eq!(out[1] & 0x80 != 0, n == 0);
            let mut got = Vec::new();
            receiver.receive(&out, |kind, data| got.push((kind, data.to_vec())));
            assert_eq!(got, vec![(MediaKind::Audio, vec![n; 160])]);
        }
        assert_eq!((receiver.received, receiver.rejected), (7, 0));
    }

    #[test]
    fn packet_index_follows_sequence_roll_over() {
        let mut s = Incoming {
            ssrc: 1,
            roc: 0,
            highest: None,
            assembling: None,
            frame: Vec::new(),
        };
        s.accept(s.index(65534));
        assert_eq!(s.index(65535), 65535);
        s.accept(65535);
        assert_eq!(s.index(0), 1 << 16);
        s.accept(1 << 16);
        // A late packet from before the roll-over keeps the old counter.
        assert_eq!(s.index(65533), 65533);
        assert_eq!(s.index(3), (1 << 16) | 3);
    }
}
