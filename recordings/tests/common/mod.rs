//! Shared by the GStreamer tests: live VP8/Opus frames, and what `gst-discoverer-1.0` says of a file.

#![allow(dead_code)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vizit_media::{ParticipantKey, TapCodec, TapFrame, TrackKind};
use vizit_recordings::pipeline::init;

/// One encoded frame of the test media.
pub struct Encoded {
    pub video: bool,
    pub pts: Duration,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

impl Encoded {
    /// The frame as the SFU hands it to the recorder, arrived at `start + pts` (+ `delay`).
    pub fn tap(&self, start: Instant, delay: Duration) -> TapFrame {
        let clock_rate = if self.video { 90_000 } else { 48_000 };
        TapFrame {
            transport: ParticipantKey::test(1),
            kind: if self.video {
                TrackKind::Video
            } else {
                TrackKind::Audio
            },
            codec: if self.video {
                TapCodec::Vp8
            } else {
                TapCodec::Opus
            },
            arrival: start + self.pts + delay,
            rtp_time: 1_000_000 + self.pts.as_nanos() as u64 * clock_rate / 1_000_000_000,
            clock_rate: clock_rate as u32,
            contiguous: true,
            keyframe: self.keyframe,
            data: Arc::from(self.data.as_slice()),
        }
    }
}

/// `seconds` of VP8 (320×240, 30 fps, a keyframe a second) and Opus (20 ms frames), encoded by
/// GStreamer, handed to `each` in production order.
pub fn produce(seconds: u32, pattern: &str, mut each: impl FnMut(Encoded)) {
    init().unwrap();
    let frames = seconds * 30;
    let audio_buffers = seconds * 50;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers={frames} pattern={pattern} \
           ! video/x-raw,width=320,height=240,framerate=30/1 \
           ! vp8enc deadline=1 keyframe-max-dist=30 \
           ! appsink name=v sync=false max-buffers=1000 \
         audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=960 \
           ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 \
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
        for (video, s) in [(true, &v), (false, &a)] {
            if let Some(sample) = s.try_pull_sample(timeout) {
                let buffer = sample.buffer().unwrap();
                let map = buffer.map_readable().unwrap();
                each(Encoded {
                    video,
                    pts: Duration::from_nanos(buffer.pts().map_or(0, |p| p.nseconds())),
                    keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    data: map.as_slice().to_vec(),
                });
            }
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// `gst-discoverer-1.0`'s report of a file.
pub fn discover(path: &std::path::Path) -> String {
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
pub fn duration(report: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("Duration:"))
        .expect("a duration");
    let value = line.split_once(':').unwrap().1.trim();
    let parts: Vec<f64> = value.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

pub fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vizit-pipe-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
