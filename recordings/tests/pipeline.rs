//! The live path: real VP8/Opus RTP (encoded by GStreamer in the test) → the participant recorder
//! → a WebM that `gst-discoverer-1.0` reports with both streams and the expected duration.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{discover, duration, produce, temp_file};
use vizit_recordings::pipeline::{ParticipantRecorder, RtpFormats};

#[test]
fn rtp_becomes_a_complete_webm_with_both_streams() {
    let path = temp_file("doctor.webm");
    let mut rec = ParticipantRecorder::start(&path, RtpFormats::default()).unwrap();
    produce(3, "ball", |video, p| {
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
    produce(3, "ball", |video, p| {
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
    produce(2, "ball", |video, p| {
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
