//! The live path of one participant: their RTP as it arrives → GStreamer → one WebM file (VP8 +
//! Opus), with no transcoding.
//!
//! ```text
//! appsrc(video RTP) → rtpjitterbuffer → rtpvp8depay → queue ─┐
//!                                                            ├→ webmmux → filesink
//! appsrc(audio RTP) → rtpjitterbuffer → rtpopusdepay → queue ┘
//! ```
//!
//! Packets are timestamped on arrival (live sources), the jitter buffers reorder and drop what is
//! too late, the depayloader waits for a keyframe before the first video frame (so a file never
//! starts with undecodable video) and asks for a new one after loss. Stopping sends end-of-stream
//! into both sources and waits for it to reach the bus, so the muxer writes its index and the file
//! is complete — a pipeline is never just killed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("the recording did not finish within {0:?} after end-of-stream")]
    EosTimeout(Duration),
}

fn gst_err(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Gst(e.to_string())
}

/// RTP payload types and clock rates of the two tracks (as negotiated by the SFU).
#[derive(Debug, Clone, Copy)]
pub struct RtpFormats {
    pub video_pt: u8,
    pub audio_pt: u8,
}

impl Default for RtpFormats {
    fn default() -> Self {
        RtpFormats {
            video_pt: 96,
            audio_pt: 111,
        }
    }
}

/// One participant being recorded.
pub struct ParticipantRecorder {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    path: PathBuf,
    /// Wall-clock time of the first packet, to align the participants' files later.
    started: Option<SystemTime>,
    packets: u64,
}

/// What a finished recording is.
#[derive(Debug, Clone)]
pub struct Finished {
    pub path: PathBuf,
    pub started: Option<SystemTime>,
    pub packets: u64,
}

/// GStreamer is initialised once per process.
pub fn init() -> Result<(), PipelineError> {
    gst::init().map_err(gst_err)
}

impl ParticipantRecorder {
    /// A recorder writing `path` (a `.webm`), playing and waiting for packets.
    pub fn start(path: &Path, formats: RtpFormats) -> Result<ParticipantRecorder, PipelineError> {
        init()?;
        let description = format!(
            "appsrc name=video is-live=true do-timestamp=true format=time \
               caps=\"application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload={vpt}\" \
             ! rtpjitterbuffer latency=300 drop-on-latency=true \
             ! rtpvp8depay wait-for-keyframe=true request-keyframe=true \
             ! queue max-size-time=5000000000 ! mux. \
             appsrc name=audio is-live=true do-timestamp=true format=time \
               caps=\"application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload={apt}\" \
             ! rtpjitterbuffer latency=300 drop-on-latency=true \
             ! rtpopusdepay ! opusparse \
             ! queue max-size-time=5000000000 ! mux. \
             webmmux name=mux streamable=false ! filesink name=sink",
            vpt = formats.video_pt,
            apt = formats.audio_pt,
        );
        let pipeline = gst::parse::launch(&description)
            .map_err(gst_err)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| PipelineError::Gst("not a pipeline".into()))?;
        let sink = pipeline
            .by_name("sink")
            .ok_or_else(|| gst_err("no filesink"))?;
        sink.set_property("location", path.to_string_lossy().to_string());
        let src = |name: &str| -> Result<gst_app::AppSrc, PipelineError> {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| gst_err(format!("no appsrc {name}")))
        };
        let (video, audio) = (src("video")?, src("audio")?);
        for s in [&video, &audio] {
            // Never block the SFU: a slow disk drops packets (the jitter buffer reports them
            // lost) rather than back-pressuring the media loop.
            s.set_property("block", false);
            s.set_property("max-bytes", 8_000_000u64);
        }
        pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
        Ok(ParticipantRecorder {
            pipeline,
            video,
            audio,
            path: path.to_owned(),
            started: None,
            packets: 0,
        })
    }

    fn push(&mut self, src: &gst_app::AppSrc, packet: &[u8]) {
        if self.started.is_none() {
            self.started = Some(SystemTime::now());
        }
        self.packets += 1;
        if let Err(e) = src.push_buffer(gst::Buffer::from_slice(packet.to_vec())) {
            tracing::debug!(error = ?e, "recorder refused a packet");
        }
    }

    /// One video RTP packet (VP8), as received.
    pub fn push_video(&mut self, packet: &[u8]) {
        let src = self.video.clone();
        self.push(&src, packet);
    }

    /// One audio RTP packet (Opus), as received.
    pub fn push_audio(&mut self, packet: &[u8]) {
        let src = self.audio.clone();
        self.push(&src, packet);
    }

    /// End the recording: end-of-stream into both sources, wait (up to `timeout`) until the muxer
    /// has finished the file, then stop the pipeline. Blocking: call from a blocking thread.
    pub fn finish(self, timeout: Duration) -> Result<Finished, PipelineError> {
        let _ = self.video.end_of_stream();
        let _ = self.audio.end_of_stream();
        let outcome = wait_for_eos(&self.pipeline, timeout);
        let _ = self.pipeline.set_state(gst::State::Null);
        outcome.map(|()| Finished {
            path: self.path.clone(),
            started: self.started,
            packets: self.packets,
        })
    }
}

/// Wait (up to `timeout`) until end-of-stream reaches the bus of `pipeline`; an error message
/// ends the wait with that error.
pub fn wait_for_eos(pipeline: &gst::Pipeline, timeout: Duration) -> Result<(), PipelineError> {
    let bus = pipeline.bus().ok_or_else(|| gst_err("no bus"))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(PipelineError::EosTimeout(timeout));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => {
                return Err(PipelineError::Gst(format!(
                    "{} ({:?})",
                    e.error(),
                    e.debug()
                )));
            }
            _ => {}
        }
    }
}

impl Drop for ParticipantRecorder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
