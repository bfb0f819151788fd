//! What one offer with many ICE candidates costs str0m, configured as the SFU configures it
//! (ICE lite, Opus/VP8/H.264, RTP mode): parsing the SDP (on the signaling task since issue 22)
//! and applying it and the first timeout after it (on the media loop, which every room of that
//! loop shares). The SFU refuses more than 64 candidates per participant (`candidates.rs`);
//! the larger counts show what that bound prevents.
//!
//! ```text
//! cargo run --release -p vizit-media --example offer_cost
//! ```

use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{Direction, MediaKind};
use str0m::net::Protocol;
use str0m::{Candidate, Input, Rtc, RtcConfig};

/// A browser's offer (audio and video, send and receive) with `extra` more host candidates.
fn offer(extra: usize, now: Instant) -> String {
    let mut client = RtcConfig::new().build(now);
    let local = Candidate::host("10.0.0.1:5000".parse().unwrap(), Protocol::Udp).unwrap();
    client.add_local_candidate(local);
    let mut changes = client.sdp_api();
    changes.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    changes.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
    let (offer, _) = changes.apply().unwrap();
    let sdp = offer.to_sdp_string();
    let lines: String = (0..extra)
        .map(|i| {
            format!(
                "a=candidate:{} 1 udp 2122260223 10.{}.{}.{} {} typ host\r\n",
                1000 + i,
                1 + i / 65_000,
                (i / 250) % 250 + 1,
                i % 250 + 1,
                10_000 + i % 50_000
            )
        })
        .collect();
    // Into the first media section, after its own candidate.
    let at = sdp.find("a=candidate").expect("the offer has a candidate");
    let end = at + sdp[at..].find("\r\n").unwrap() + 2;
    format!("{}{}{}", &sdp[..end], lines, &sdp[end..])
}

fn server(now: Instant) -> Rtc {
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .set_rtp_mode(true)
        .build(now);
    rtc.add_local_candidate(
        Candidate::host("127.0.0.1:3478".parse().unwrap(), Protocol::Udp).unwrap(),
    );
    rtc
}

fn main() {
    println!("| candidates | SDP bytes | parse ms | apply ms | first timeout ms |");
    println!("|---|---|---|---|---|");
    for extra in [0usize, 8, 63, 256, 1142] {
        let (mut parse, mut apply, mut timeout) = (Vec::new(), Vec::new(), Vec::new());
        let now = Instant::now();
        let sdp = offer(extra, now);
        for _ in 0..5 {
            let t0 = Instant::now();
            let parsed = SdpOffer::from_sdp_string(&sdp).unwrap();
            parse.push(t0.elapsed());
            let mut rtc = server(now);
            let t1 = Instant::now();
            rtc.sdp_api().accept_offer(parsed).unwrap();
            apply.push(t1.elapsed());
            let t2 = Instant::now();
            rtc.handle_input(Input::Timeout(now + Duration::from_millis(50)))
                .unwrap();
            timeout.push(t2.elapsed());
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1000.0
        };
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} |",
            extra + 1,
            sdp.len(),
            median(&mut parse),
            median(&mut apply),
            median(&mut timeout)
        );
    }
}
