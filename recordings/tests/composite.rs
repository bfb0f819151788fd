//! The composite: two participants' WebMs (recorded from live frames) → one MP4 with H.264 and AAC,
//! both parties visible side by side.

mod common;

use std::time::Duration;

use common::{discover, duration, produce, temp_file};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vizit_recordings::composite::{Input, TILE, compose};
use vizit_recordings::pipeline::ParticipantRecorder;

/// A participant file starting `offset` after the call began.
fn input((path, offset): (std::path::PathBuf, Duration)) -> Input {
    Input { path, offset }
}

/// Record `seconds` of a live test pattern into a WebM.
fn record(path: &std::path::Path, pattern: &'static str, seconds: u32) {
    let mut rec = ParticipantRecorder::new(path).unwrap();
    let start = std::time::Instant::now();
    produce(seconds, pattern, |f| {
        rec.push(f.tap(start, Duration::ZERO)).unwrap()
    });
    rec.finish(Duration::from_secs(10)).unwrap();
}

/// Mean luma of the left and right halves of the frame about `at` into the MP4.
fn halves(path: &std::path::Path, at: Duration) -> (f64, f64) {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! appsink name=out sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut result = None;
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().unwrap();
        if buffer
            .pts()
            .is_some_and(|p| p.nseconds() < at.as_nanos() as u64)
        {
            continue;
        }
        let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        let (w, h) = (
            caps.get::<i32>("width").unwrap() as usize,
            caps.get::<i32>("height").unwrap() as usize,
        );
        let map = buffer.map_readable().unwrap();
        let stride = map.len() / h;
        let (mut left, mut right) = (0u64, 0u64);
        for y in 0..h {
            let row = &map[y * stride..y * stride + w];
            left += row[..w / 2].iter().map(|&v| u64::from(v)).sum::<u64>();
            right += row[w / 2..].iter().map(|&v| u64::from(v)).sum::<u64>();
        }
        let n = (w / 2 * h) as f64;
        result = Some((left as f64 / n, right as f64 / n));
        break;
    }
    pipeline.set_state(gst::State::Null).unwrap();
    result.expect("a decoded frame")
}

#[test]
fn two_parties_side_by_side_in_one_mp4() {
    let dir = temp_file("x").parent().unwrap().to_owned();
    let (doctor, patient) = (dir.join("doctor.webm"), dir.join("patient.webm"));
    // The two parties record at the same time (as in a call), with different pictures.
    let (d, p) = (doctor.clone(), patient.clone());
    let a = std::thread::spawn(move || record(&d, "smpte", 3));
    let b = std::thread::spawn(move || record(&p, "white", 3));
    a.join().unwrap();
    b.join().unwrap();
    let out = dir.join("composite.mp4");
    compose(
        &[
            (doctor, Duration::ZERO),
            (patient, Duration::from_millis(300)),
        ]
        .map(input),
        &out,
        Duration::from_millis(3300),
        Duration::from_secs(60),
    )
    .unwrap();
    let report = discover(&out);
    assert!(report.contains("H.264"), "{report}");
    assert!(report.contains("AAC"), "{report}");
    assert!(
        report.contains(&format!("Width: {}", TILE.0 * 2)),
        "{report}"
    );
    let d = duration(&report);
    assert!((2.5..=4.0).contains(&d), "duration {d}\n{report}");
    let (left, right) = halves(&out, Duration::from_millis(1500));
    assert!(
        left > 40.0 && right > 40.0,
        "both parties visible, not black: left {left:.1}, right {right:.1}"
    );
    assert!(
        (left - right).abs() > 5.0,
        "two different pictures: left {left:.1}, right {right:.1}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_call_without_any_video_still_makes_a_complete_composite() {
    let dir = temp_file("x").parent().unwrap().to_owned();
    let (doctor, patient) = (dir.join("doctor.webm"), dir.join("patient.webm"));
    for path in [&doctor, &patient] {
        // Cameras off all call: audio-only participant files.
        let mut rec = ParticipantRecorder::new(path).unwrap();
        let start = std::time::Instant::now();
        produce(4, "ball", |f| {
            if !f.video {
                rec.push(f.tap(start, Duration::ZERO)).unwrap()
            }
        });
        let done = rec.finish(Duration::from_secs(10)).unwrap();
        assert!(!done.has_video);
    }
    let out = dir.join("composite.mp4");
    compose(
        &[(doctor, Duration::ZERO), (patient, Duration::ZERO)].map(input),
        &out,
        Duration::from_secs(4),
        Duration::from_secs(60),
    )
    .expect("the composite finishes without any video input");
    let report = discover(&out);
    assert!(
        report.contains("H.264") && report.contains("AAC"),
        "{report}"
    );
    let d = duration(&report);
    assert!((3.5..=4.6).contains(&d), "duration {d}\n{report}");
    let _ = std::fs::remove_dir_all(dir);
}
