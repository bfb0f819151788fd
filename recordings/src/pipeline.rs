//! The live path of one participant: the frames the SFU forwards → GStreamer → one WebM file (VP8 +
//! Opus), with no transcoding.
//!
//! ```text
//! appsrc(video/x-vp8)  ──────────────┐
//!                                    ├→ webmmux → filesink
//! appsrc(audio/x-opus) → opusparse ──┘
//! ```
//!
//! No `queue`s: each `appsrc` already streams from its own thread and holds up to 16 MiB, and a
//! queue per track cost a third more CPU (another thread hand-off per frame; measured with
//! `web-client/e2e/measure-recording.mjs`: 33 → 22 ms of CPU per second per recorded room).
//!
//! The SFU puts each recorded track's packets together into frames (a reorder buffer and a
//! depacketizer per track, `media/src/assembler.rs`), so the recorder takes frames instead of
//! re-parsing RTP in GStreamer (an Opus frame is the forwarded payload itself, shared; a video
//! frame is one copy of its packets' payloads). Timestamps come from
//! the RTP clock of each track, anchored at the arrival of its first frame (so audio and video of
//! one participant line up, and jitter does not), re-anchored if the RTP clock jumps.
//!
//! Video is written only from a keyframe on, and after a gap (lost packets) again only from the
//! next keyframe (the SFU asks the sender for one at once): a file never holds undecodable frames.
//! The muxer waits for every track it has, so the tracks are chosen when the first frames arrive:
//! a participant without a camera gets an audio-only file rather than a stalled one.
//!
//! Stopping sends end-of-stream into every source and waits for it on the bus, so the muxer writes
//! its index and the file is complete — a pipeline is never just killed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vizit_media::{ParticipantKey, TapCodec, TapFrame, TrackKind};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("the recording did not finish within {0:?} after end-of-stream")]
    EosTimeout(Duration),
    #[error("nothing was recorded")]
    Empty,
}

fn gst_err(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Gst(e.to_string())
}

/// GStreamer is initialised once per process.
pub fn init() -> Result<(), PipelineError> {
    gst::init().map_err(gst_err)
}

/// How long the recorder waits for the second track before it starts the file with the tracks it
/// has (a participant may have no camera, or no microphone).
pub const TRACK_WAIT: Duration = Duration::from_secs(3);
/// Frames held while waiting for the tracks; beyond this the oldest are dropped.
const MAX_HELD: usize = 1000;
/// An RTP clock this far from the arrival clock is re-anchored (sender restarted its track).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(1);
/// Bytes queued inside each source before frames are dropped (never blocks the SFU).
const SOURCE_QUEUE_BYTES: u64 = 16 * 1024 * 1024;

/// Timestamping of one track.
#[derive(Debug, Default)]
struct Clock {
    /// (arrival offset from the file's start, RTP time) of the anchor frame.
    anchor: Option<(Duration, u64)>,
    last_pts: Option<Duration>,
}

impl Clock {
    /// Forget the RTP clock (a new session of the sender); time still never goes back.
    fn reanchor(&mut self) {
        self.anchor = None;
    }

    fn pts(&mut self, arrival: Duration, rtp: u64, rate: u32) -> Duration {
        let rate = u64::from(rate.max(1));
        let computed = match self.anchor {
            Some((at, first)) if rtp >= first => {
                Some(at + Duration::from_nanos((rtp - first).saturating_mul(1_000_000_000) / rate))
            }
            _ => None,
        };
        let mut pts = match computed {
            Some(pts) if pts.abs_diff(arrival) <= MAX_CLOCK_SKEW => pts,
            _ => {
                self.anchor = Some((arrival, rtp));
                arrival
            }
        };
        // Strictly increasing per track: the muxer refuses time going back.
        if let Some(last) = self.last_pts
            && pts <= last
        {
            pts = last + Duration::from_micros(100);
        }
        self.last_pts = Some(pts);
        pts
    }
}

/// Width and height of a VP8 keyframe (RFC 6386 §9.1), if `frame` is one.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(i32, i32)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = i32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = i32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

struct Running {
    pipeline: gst::Pipeline,
    video: Option<gst_app::AppSrc>,
    audio: Option<gst_app::AppSrc>,
}

/// One participant being recorded.
pub struct ParticipantRecorder {
    path: PathBuf,
    running: Option<Running>,
    /// Frames that arrived before the tracks were known.
    held: Vec<TapFrame>,
    /// When the first frame arrived (monotonic and wall clock): time zero of the file.
    start: Option<(Instant, SystemTime)>,
    video_size: Option<(i32, i32)>,
    audio_seen: bool,
    video: Clock,
    audio: Clock,
    /// Video frames are dropped until the next keyframe.
    needs_keyframe: bool,
    /// The sender's session of the last frame: a reconnect restarts clocks and the encoder.
    transport: Option<ParticipantKey>,
    last_pts: Duration,
    frames: u64,
    dropped: u64,
    unsupported_logged: bool,
}

/// What a finished recording is.
#[derive(Debug, Clone)]
pub struct Finished {
    pub path: PathBuf,
    /// Wall-clock time of the file's time zero.
    pub started: SystemTime,
    pub duration: Duration,
    pub frames: u64,
    pub has_video: bool,
    pub has_audio: bool,
}

impl ParticipantRecorder {
    /// A recorder that will write `path` (a `.webm`) once the first frames arrive.
    pub fn new(path: &Path) -> Result<ParticipantRecorder, PipelineError> {
        init()?;
        Ok(ParticipantRecorder {
            path: path.to_owned(),
            running: None,
            held: Vec::new(),
            start: None,
            video_size: None,
            audio_seen: false,
            video: Clock::default(),
            audio: Clock::default(),
            needs_keyframe: true,
            transport: None,
            last_pts: Duration::ZERO,
            frames: 0,
            dropped: 0,
            unsupported_logged: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One forwarded frame. Never blocks for long: a slow disk drops frames, it does not hold
    /// back the caller.
    pub fn push(&mut self, frame: TapFrame) -> Result<(), PipelineError> {
        match (frame.kind, frame.codec) {
            (TrackKind::Video, TapCodec::Vp8) | (TrackKind::Audio, TapCodec::Opus) => {}
            (kind, codec) => {
                if !self.unsupported_logged {
                    tracing::warn!(
                        ?kind,
                        ?codec,
                        "this codec cannot be recorded into WebM; the track is skipped"
                    );
                    self.unsupported_logged = true;
                }
                return Ok(());
            }
        }
        // The wall-clock time of the frame's arrival, not of this call: the frame may have waited
        // in the recorder's queue (the composite aligns the parties by this time).
        let start = *self
            .start
            .get_or_insert_with(|| (frame.arrival, SystemTime::now() - frame.arrival.elapsed()));
        if self.transport != Some(frame.transport) {
            if self.transport.is_some() {
                self.video.reanchor();
                self.audio.reanchor();
                self.needs_keyframe = true;
            }
            self.transport = Some(frame.transport);
        }
        if frame.kind == TrackKind::Video {
            if !frame.contiguous {
                self.needs_keyframe = true;
            }
            if self.needs_keyframe {
                let Some(size) = vp8_keyframe_size(&frame.data) else {
                    return Ok(());
                };
                self.needs_keyframe = false;
                self.video_size.get_or_insert(size);
            }
        } else {
            self.audio_seen = true;
        }
        if self.running.is_none() {
            let waited = frame.arrival.saturating_duration_since(start.0);
            let both = self.video_size.is_some() && self.audio_seen;
            if !both && waited < TRACK_WAIT {
                if self.held.len() >= MAX_HELD {
                    self.held.remove(0);
                    self.dropped += 1;
                }
                self.held.push(frame);
                return Ok(());
            }
            self.running = Some(self.launch()?);
            for held in std::mem::take(&mut self.held) {
                self.write(held);
            }
        }
        self.write(frame);
        Ok(())
    }

    fn launch(&self) -> Result<Running, PipelineError> {
        let mut description =
            String::from("webmmux name=mux streamable=false ! filesink name=sink ");
        if let Some((w, h)) = self.video_size {
            description.push_str(&format!(
                "appsrc name=video is-live=true format=time \
                   caps=\"video/x-vp8,width={w},height={h},framerate=0/1\" ! mux. "
            ));
        }
        if self.audio_seen {
            description.push_str(
                "appsrc name=audio is-live=true format=time \
                   caps=\"audio/x-opus,channel-mapping-family=0\" \
                 ! opusparse ! mux. ",
            );
        }
        let pipeline = gst::parse::launch(&description)
            .map_err(gst_err)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| gst_err("not a pipeline"))?;
        pipeline
            .by_name("sink")
            .ok_or_else(|| gst_err("no filesink"))?
            .set_property("location", self.path.to_string_lossy().to_string());
        let src = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        };
        let (video, audio) = (src("video"), src("audio"));
        for s in video.iter().chain(audio.iter()) {
            s.set_property("block", false);
            s.set_property("max-bytes", SOURCE_QUEUE_BYTES);
            s.set_property_from_str("leaky-type", "upstream");
        }
        pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
        Ok(Running {
            pipeline,
            video,
            audio,
        })
    }

    fn write(&mut self, frame: TapFrame) {
        let Some(running) = &self.running else {
            return;
        };
        let Some((start, _)) = self.start else {
            return;
        };
        let (src, clock) = match frame.kind {
            TrackKind::Video => (&running.video, &mut self.video),
            TrackKind::Audio => (&running.audio, &mut self.audio),
        };
        let Some(src) = src else {
            // A track that appeared after the file started: the file keeps the tracks it began with.
            self.dropped += 1;
            return;
        };
        let arrival = frame.arrival.saturating_duration_since(start);
        let pts = clock.pts(arrival, frame.rtp_time, frame.clock_rate);
        let mut buffer = gst::Buffer::from_slice(frame.data);
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
            if frame.kind == TrackKind::Video && !frame.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.last_pts = self.last_pts.max(pts);
        match src.push_buffer(buffer) {
            Ok(_) => self.frames += 1,
            Err(e) => {
                self.dropped += 1;
                tracing::debug!(error = ?e, "recorder refused a frame");
            }
        }
    }

    /// End the recording: end-of-stream into every source, wait (up to `timeout`) until the muxer
    /// has finished the file, then stop the pipeline. Blocking: call from a blocking thread.
    pub fn finish(mut self, timeout: Duration) -> Result<Finished, PipelineError> {
        if self.running.is_none() && !self.held.is_empty() {
            // The call ended before the wait for a second track did: record what there is.
            self.running = Some(self.launch()?);
            for held in std::mem::take(&mut self.held) {
                self.write(held);
            }
        }
        let (Some(running), Some((_, started))) = (self.running.take(), self.start) else {
            return Err(PipelineError::Empty);
        };
        for s in running.video.iter().chain(running.audio.iter()) {
            let _ = s.end_of_stream();
        }
        let outcome = wait_for_eos(&running.pipeline, timeout);
        let _ = running.pipeline.set_state(gst::State::Null);
        if self.dropped > 0 {
            tracing::debug!(dropped = self.dropped, "recorder dropped frames");
        }
        outcome.map(|()| Finished {
            path: self.path.clone(),
            started,
            duration: self.last_pts,
            frames: self.frames,
            has_video: running.video.is_some(),
            has_audio: running.audio.is_some(),
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
        if let Some(running) = &self.running {
            let _ = running.pipeline.set_state(gst::State::Null);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_the_rtp_clock_from_the_first_arrival() {
        let mut c = Clock::default();
        let ms = Duration::from_millis;
        assert_eq!(c.pts(ms(100), 9_000, 90_000), ms(100));
        // Jitter in arrival does not move the timestamps: 33 ms of RTP clock is 33 ms.
        assert_eq!(c.pts(ms(160), 9_000 + 2_970, 90_000), ms(133));
        // A jump of the RTP clock (the sender restarted) re-anchors at arrival.
        assert_eq!(c.pts(ms(200), 5_000_000_000, 90_000), ms(200));
        // Time never goes back.
        assert!(c.pts(ms(150), 1, 90_000) > ms(200));
    }

    #[test]
    fn reads_the_size_of_vp8_keyframes_only() {
        let key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert_eq!(vp8_keyframe_size(&key), Some((640, 480)));
        let mut delta = key;
        delta[0] |= 1;
        assert_eq!(vp8_keyframe_size(&delta), None);
        assert_eq!(vp8_keyframe_size(&key[..5]), None);
    }
}
