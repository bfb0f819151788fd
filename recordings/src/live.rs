//! The recorder the SFU opens when a room's recording starts: a [`TapFactory`] whose taps hand
//! frames to one thread per recorded room, which writes one WebM per participant
//! ([`ParticipantRecorder`]) and, when the recording stops, finishes every file and reports to a
//! [`RoomSink`] (the catalogue, the composite, the upload).
//!
//! The media loop only moves a reference-counted frame into a bounded channel: a stalled disk
//! drops frames (counted), it never slows forwarding. A participant who reconnects (same
//! participant id) continues the same file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};
use vizit_media::{
    MediaTap, ParticipantId, ParticipantInfo, Role, RoomId, StopReason, TapFactory, TapFrame,
};

use crate::pipeline::{Finished, ParticipantRecorder, PipelineError};

/// Frames queued per room between the media loop and the recorder thread (~25 s of a call).
const QUEUE_FRAMES: usize = 4096;
/// How long finishing one file may take after end-of-stream.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// One participant's file of a recorded room.
#[derive(Debug, Clone)]
pub struct Track {
    /// A fresh id, used as the recording's catalogue id.
    pub id: String,
    pub room: RoomId,
    pub session: u32,
    pub participant: ParticipantId,
    pub role: Role,
    pub path: PathBuf,
}

/// How one track ended.
#[derive(Debug)]
pub struct TrackOutcome {
    pub track: Track,
    pub result: Result<Finished, PipelineError>,
}

/// Where the recorder reports. Both methods run on the recorder's thread and may block.
pub trait RoomSink: Send + Sync + 'static {
    /// A participant's file is about to begin. An error discards the track (e.g. the room is not
    /// a consultation).
    fn track_started(&self, track: &Track) -> Result<(), String>;
    /// The recording stopped and every file is finished (or failed).
    fn finished(&self, room: &RoomId, session: u32, reason: StopReason, tracks: Vec<TrackOutcome>);
}

/// Counters of the live path, for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub rooms_open: AtomicUsize,
    pub frames: AtomicU64,
    pub frames_dropped: AtomicU64,
}

impl LiveStats {
    /// Prometheus text of the counters.
    pub fn to_prometheus(&self) -> String {
        format!(
            "# HELP vizit_recording_rooms Rooms being recorded now.\n\
             # TYPE vizit_recording_rooms gauge\n\
             vizit_recording_rooms {}\n\
             # HELP vizit_recording_frames_total Frames written by the live recorders.\n\
             # TYPE vizit_recording_frames_total counter\n\
             vizit_recording_frames_total {}\n\
             # HELP vizit_recording_frames_dropped_total Frames the live recorders could not take (queue full).\n\
             # TYPE vizit_recording_frames_dropped_total counter\n\
             vizit_recording_frames_dropped_total {}\n",
            self.rooms_open.load(Ordering::Relaxed),
            self.frames.load(Ordering::Relaxed),
            self.frames_dropped.load(Ordering::Relaxed),
        )
    }
}

/// Opens a recorder thread per recorded room.
pub struct LiveRecorder {
    dir: PathBuf,
    sink: Arc<dyn RoomSink>,
    pub stats: Arc<LiveStats>,
    idle: Arc<(Mutex<usize>, Condvar)>,
}

impl LiveRecorder {
    /// Files are written in `dir` (created if needed) until they are finished.
    pub fn new(dir: &Path, sink: Arc<dyn RoomSink>) -> std::io::Result<Arc<LiveRecorder>> {
        std::fs::create_dir_all(dir)?;
        Ok(Arc::new(LiveRecorder {
            dir: dir.to_owned(),
            sink,
            stats: Arc::new(LiveStats::default()),
            idle: Arc::new((Mutex::new(0), Condvar::new())),
        }))
    }

    /// Wait until every recorder thread has finished its files and reported (shutdown), at most
    /// `timeout`. Returns whether all did. Blocking.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let (lock, cvar) = &*self.idle;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cvar
            .wait_timeout_while(guard, timeout, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *guard == 0
    }
}

enum Msg {
    Frame(ParticipantId, Role, TapFrame),
    Close(StopReason),
}

struct ChannelTap {
    tx: SyncSender<Msg>,
    stats: Arc<LiveStats>,
    /// Why the recording stopped, also when the channel is too full to carry the `Close`.
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl MediaTap for ChannelTap {
    fn frame(&mut self, from: &ParticipantInfo, frame: TapFrame) {
        match self
            .tx
            .try_send(Msg::Frame(from.id.clone(), from.role, frame))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn close(self: Box<Self>, reason: StopReason) {
        // The channel may be full: the thread also ends when the sender is dropped, and then
        // reads the reason from here.
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        let _ = self.tx.try_send(Msg::Close(reason));
    }
}

/// A tap that records nothing (the recorder thread could not start).
struct NullTap;

impl MediaTap for NullTap {
    fn frame(&mut self, _: &ParticipantInfo, _: TapFrame) {}
    fn close(self: Box<Self>, _: StopReason) {}
}

impl TapFactory for LiveRecorder {
    fn open(
        &self,
        room: &RoomId,
        session: u32,
        _participants: &[ParticipantInfo],
    ) -> Box<dyn MediaTap> {
        let (tx, rx) = sync_channel(QUEUE_FRAMES);
        let reason = Arc::new(Mutex::new(None));
        let worker = Worker {
            reason: reason.clone(),
            room: room.clone(),
            session,
            dir: self.dir.clone(),
            sink: self.sink.clone(),
            stats: self.stats.clone(),
            tracks: HashMap::new(),
        };
        let idle = self.idle.clone();
        let stats = self.stats.clone();
        *idle.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let spawned = std::thread::Builder::new()
            .name(format!("recorder-{session}"))
            .spawn(move || {
                // Counted down however the thread ends, a panic included: shutdown never
                // waits for a recorder that is gone.
                stats.rooms_open.fetch_add(1, Ordering::Relaxed);
                let _done = Done(idle, stats);
                worker.run(rx);
            });
        match spawned {
            Ok(_) => Box::new(ChannelTap {
                tx,
                stats: self.stats.clone(),
                reason,
            }),
            Err(e) => {
                *self.idle.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                error!(room = %room, error = %e, "cannot start a recorder thread; this room is not recorded");
                Box::new(NullTap)
            }
        }
    }
}

/// Marks a recorder thread finished when dropped.
struct Done(Arc<(Mutex<usize>, Condvar)>, Arc<LiveStats>);

impl Drop for Done {
    fn drop(&mut self) {
        self.1.rooms_open.fetch_sub(1, Ordering::Relaxed);
        let (lock, cvar) = &*self.0;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        cvar.notify_all();
    }
}

/// How long a participant whose file could not be catalogued waits before the next try.
const CATALOGUE_RETRY: Duration = Duration::from_secs(5);

/// A participant's file: its recorder, or why it is not recorded.
enum Slot {
    Recording(Track, Box<ParticipantRecorder>),
    Failed(Track, PipelineError),
    /// Not catalogued (e.g. the database was busy): frames are dropped until the retry time.
    Discarded(Instant),
}

struct Worker {
    reason: Arc<Mutex<Option<StopReason>>>,
    room: RoomId,
    session: u32,
    dir: PathBuf,
    sink: Arc<dyn RoomSink>,
    stats: Arc<LiveStats>,
    tracks: HashMap<ParticipantId, Slot>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        let started = Instant::now();
        let reason = loop {
            match rx.recv() {
                Ok(Msg::Frame(id, role, frame)) => self.frame(id, role, frame),
                Ok(Msg::Close(reason)) => break reason,
                Err(_) => {
                    break self
                        .reason
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .unwrap_or(StopReason::RoomEnded);
                }
            }
        };
        // Frames still queued belong to the recording.
        while let Ok(Msg::Frame(id, role, frame)) = rx.try_recv() {
            self.frame(id, role, frame);
        }
        let mut outcomes = Vec::new();
        for (_, slot) in self.tracks.drain() {
            match slot {
                Slot::Recording(track, recorder) => outcomes.push(TrackOutcome {
                    track,
                    result: recorder.finish(FINISH_TIMEOUT),
                }),
                Slot::Failed(track, e) => outcomes.push(TrackOutcome {
                    track,
                    result: Err(e),
                }),
                Slot::Discarded(_) => {}
            }
        }
        info!(room = %self.room, session = self.session, ?reason, files = outcomes.len(),
              seconds = started.elapsed().as_secs(), "recording finished");
        self.sink
            .finished(&self.room, self.session, reason, outcomes);
    }

    fn frame(&mut self, id: ParticipantId, role: Role, frame: TapFrame) {
        if let Some(Slot::Discarded(retry_at)) = self.tracks.get(&id) {
            if Instant::now() < *retry_at {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.tracks.remove(&id);
        }
        let slot = self.tracks.entry(id.clone()).or_insert_with(|| {
            let track_id = uuid::Uuid::new_v4().to_string();
            let track = Track {
                path: self.dir.join(format!("{track_id}.webm")),
                id: track_id,
                room: self.room.clone(),
                session: self.session,
                participant: id,
                role,
            };
            if let Err(why) = self.sink.track_started(&track) {
                warn!(room = %self.room, %why, "this participant's track is not recorded yet; retrying in 5 s");
                return Slot::Discarded(Instant::now() + CATALOGUE_RETRY);
            }
            match ParticipantRecorder::new(&track.path) {
                Ok(r) => Slot::Recording(track, Box::new(r)),
                Err(e) => Slot::Failed(track, e),
            }
        });
        if let Slot::Recording(track, recorder) = slot {
            match recorder.push(frame) {
                Ok(()) => {
                    self.stats.frames.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    error!(room = %self.room, error = %e, "recording of a participant failed");
                    let track = track.clone();
                    *slot = Slot::Failed(track, e);
                }
            }
        }
    }
}
