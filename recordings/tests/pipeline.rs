//! The live path: real VP8/Opus RTP (encoded by GStreamer in the test) → the participant recorder
//! → a WebM that `gst-discoverer-1.0` reports with both streams and the expected duration.

use std::process::Command;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vizit_recordings::pipeline::{ParticipantRecorder, RtpFormats, init};

/// Live VP8 and Opus RTP for `seconds`, handed to `each(is_video, packet)` as it is produced.
fn produce(seconds: u32, mut each: impl FnMut(bool, &[u8])) {
    init().unwrap();
    let frames = seconds * 30;
    let audio_buffers = seconds * 50;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=ball \
           ! video/x-raw,width=320,height=240,framerate=30/1 \
           ! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 mtu=1200 \
           ! appsink name=v sync=false max-buffers=1000 \
         audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=960 \
           ! audio/x-raw,rate=48000,channels=1 ! opusenc ! rtpopuspay pt=111 \
           ! appsink name=a sync=false max-buffers=1000"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = |n: &str| {
        pipeline
            .by_name(n)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap()
    };
    let (v, a) = (sink("v"), sink("a"));
    pipeline.set_state(gst::State::Playing).unwrap();
    let timeout = Some(gst::ClockTime::from_mseconds(2));
    while !(v.is_eos() && a.is_eos()) {
        for (is_video, s) in [(true, &v), (false, &a)] {
            if let Some(sample) = s.try_pull_sample(timeout) {
                let buffer = sample.buffer().unwrap();
                let map = buffer.map_readable().unwrap();
                each(is_video, map.as_slice());
            }
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// `gst-discoverer-1.0`'s report of a file.
fn discover(path: &std::path::Path) -> String {
    let out = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0 (Debian package gstreamer1.0-plugins-base-apps) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Seconds of the `Duration: H:MM:SS.nnnnnnnnn` line.
fn duration(report: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("Duration:"))
        .expect("a duration");
    let value = line.split_once(':').unwrap().1.trim();
    let parts: Vec<f64> = value.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vizit-pipe-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn rtp_becomes_a_complete_webm_with_both_streams() {
    let path = temp_file("doctor.webm");
    let mut rec = ParticipantRecorder::start(&path, RtpFormats::default()).unwrap();
    produce(3, |video, p| {
        if video {
            rec.push_video(p)
        } else {
            rec.push_audio(p)
        }
    });
    let done = rec.finish(Duration::from_secs(10)).unwrap();
    assert!(done.started.is_some() && done.packets > 200, "{done:?}");
    let report = discover(&path);
    assert!(
        report.contains("video/x-vp8") || report.contains("VP8"),
        "{report}"
    );
    assert!(
        report.contains("audio/x-opus") || report.contains("Opus"),
        "{report}"
    );
    let d = duration(&report);
    assert!(
        (2.5..=3.6).contains(&d),
        "duration {d} s for 3 s of media\n{report}"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn loss_and_a_late_keyframe_still_make_a_playable_file() {
    let path = temp_file("patient.webm");
    let mut rec = ParticipantRecorder::start(&path, RtpFormats::default()).unwrap();
    let mut n = 0u64;
    produce(3, |video, p| {
        n += 1;
        // Every 13th packet is lost; the first 20 video packets never arrive (a late joiner).
        if n.is_multiple_of(13) || (video && n < 40) {
            return;
        }
        if video {
            rec.push_video(p)
        } else {
            rec.push_audio(p)
        }
    });
    rec.finish(Duration::from_secs(10)).unwrap();
    let report = discover(&path);
    assert!(report.contains("VP8") || report.contains("vp8"), "{report}");
    assert!(
        report.contains("Opus") || report.contains("opus"),
        "{report}"
    );
    assert!(duration(&report) > 2.0, "{report}");
    // The file decodes to the end: play it through a fake sink.
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "filesrc",
            &format!("location={}", path.display()),
            "!",
            "decodebin",
            "!",
            "fakesink",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_track_that_never_arrives_does_not_hang_the_stop() {
    // Audio only (camera off all call): the file still closes.
    let path = temp_file("audio-only.webm");
    let mut rec = ParticipantRecorder::start(&path, RtpFormats::default()).unwrap();
    produce(2, |video, p| {
        if !video {
            rec.push_audio(p)
        }
    });
    rec.finish(Duration::from_secs(10)).unwrap();
    let report = discover(&path);
    assert!(
        report.contains("Opus") || report.contains("opus"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
