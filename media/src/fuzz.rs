//! Fuzzing of what the media plane reads from the network (run by `cargo test`, bounded; see
//! `vizit-fuzzkit`): RTP headers and their extensions, SRTP and SRTCP opening, the RTCP
//! feedback read from opened packets and rewritten in them, SDP offers and answers and trickled
//! ICE candidates. None may panic; what they accept must be consistent.

use str0m::crypto::dtls::SrtpProfile;
use str0m::rtp::{Extension, ExtensionMap};
use vizit_fuzzkit::Fuzz;

use crate::candidates::Parsed;
use crate::rtcp::feedback::Feedback;
use crate::rtcp::report::{rewrite_blocks, rewrite_sender_info};
use crate::rtp::{Header, InExts};
use crate::srtp::{Direction, Srtp, test_keys};

/// An RTP packet with the one-byte extensions browsers send (audio level, MID, transport-wide
/// number) and a payload.
fn rtp_packet() -> Vec<u8> {
    let mut p = vec![0x90, 111, 0x12, 0x34, 0, 0, 0x10, 0, 0xca, 0xfe, 0xba, 0xbe];
    p.extend([0xbe, 0xde, 0, 3]);
    p.extend([0x10, 0x85, 0x31, b'0', 0x51, 0x00, 0x07, 0x00, 0, 0, 0, 0]);
    p.extend(b"opus frame bytes");
    p
}

/// A compound RTCP packet: a receiver report with a block, and a generic NACK.
fn rtcp_packet() -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7, 0xca, 0xfe, 0xba, 0xbe];
    p.extend([0xde, 0xad, 0xbe, 0xef]);
    p.extend((0..20).map(|i| i as u8));
    p.extend([
        0x81, 205, 0, 3, 0xca, 0xfe, 0xba, 0xbe, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x10, 0x00, 0x05,
    ]);
    p
}

fn exts() -> ExtensionMap {
    let mut map = ExtensionMap::empty();
    map.set(1, Extension::AudioLevel);
    map.set(3, Extension::RtpMid);
    map.set(5, Extension::TransportSequenceNumber);
    map
}

#[test]
fn rtp_headers_and_extensions() {
    let inexts = InExts::new(&exts());
    Fuzz::new("rtp", &[&rtp_packet()]).run(|packet| {
        if let Some(header) = Header::parse(packet) {
            assert!(header.len <= packet.len(), "a header past the packet");
            let _ = inexts.mid_of(&header, packet);
            let _ = inexts.read(&header, packet);
        }
    });
}

#[test]
fn srtp_and_srtcp_opening() {
    let profiles = [
        (SrtpProfile::AES128_CM_SHA1_80, 2 * (16 + 14)),
        (SrtpProfile::AEAD_AES_128_GCM, 2 * (16 + 12)),
    ];
    for (profile, len) in profiles {
        let (client, server) = test_keys(profile, len);
        let plain = rtp_packet();
        let header = Header::parse(&plain).unwrap();
        let mut srtp = Vec::new();
        Srtp::rtp(&client, Direction::Outbound, true)
            .unwrap()
            .protect(
                &plain[..header.len],
                &plain[header.len..],
                header.ssrc,
                0x1234,
                &mut srtp,
            )
            .unwrap();
        let mut srtcp = Vec::new();
        Srtp::rtcp(&client, Direction::Outbound, true)
            .unwrap()
            .protect_rtcp(&rtcp_packet(), 9, &mut srtcp)
            .unwrap();
        let mut rtp_rx = Srtp::rtp(&server, Direction::Inbound, false).unwrap();
        let mut rtcp_rx = Srtp::rtcp(&server, Direction::Inbound, false).unwrap();
        let mut out = Vec::new();
        let mut feedback = Feedback::default();
        Fuzz::new("srtp", &[&srtp, &srtcp]).run(|packet| {
            // As ingress does: RTP by its header, the rest tried as SRTCP.
            if let Some(h) = Header::parse(packet) {
                let index = (u64::from(h.seq)) | (1 << 16);
                let _ = rtp_rx.unprotect(packet, h.len, h.ssrc, index, &mut out);
            } else if rtcp_rx.unprotect_rtcp(packet, &mut out).is_some() {
                feedback.clear();
                feedback.read(&out);
            }
        });
    }
}

#[test]
fn rtcp_feedback_read_and_rewritten() {
    let mut feedback = Feedback::default();
    Fuzz::new("rtcp", &[&rtcp_packet()]).run(|packet| {
        feedback.clear();
        feedback.read(packet);
        let mut copy = packet.to_vec();
        rewrite_blocks(&mut copy, |_| Some([7; 24]));
        assert_eq!(copy.len(), packet.len());
        rewrite_sender_info(&mut copy, |_| Some((1, 2, 3)));
        assert_eq!(copy.len(), packet.len());
    });
}

/// An offer as Chrome makes it (audio and video, bundled, with candidates).
const OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host generation 0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 7A:2B:52:9D:3C:7E:6F:43:1F:0E:8C:3A:4B:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F\r\n\
a=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendrecv\r\na=msid:- a0\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=ssrc:1001 cname:x\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 7A:2B:52:9D:3C:7E:6F:43:1F:0E:8C:3A:4B:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F\r\n\
a=setup:actpass\r\na=mid:1\r\na=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendrecv\r\n\
a=msid:- v0\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=ssrc-group:FID 2001 2002\r\na=ssrc:2001 cname:x\r\na=ssrc:2002 cname:x\r\n";

#[test]
fn sdp_offers_answers_and_candidates() {
    assert!(Parsed::offer(OFFER).is_ok(), "the seed parses");
    Fuzz::new("sdp", &[OFFER.as_bytes()]).run(|bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(parsed) = Parsed::offer(&text) {
            assert!(parsed.candidates.len() <= crate::MAX_REMOTE_CANDIDATES);
        }
        let _ = Parsed::answer(&text);
        for line in text.lines().filter(|l| l.contains("candidate")) {
            let line = line.trim().strip_prefix("a=").unwrap_or(line.trim());
            let _ = str0m::Candidate::from_sdp_string(line);
        }
    });
}
