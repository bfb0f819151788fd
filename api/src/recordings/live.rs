//! From the live call to the catalogue: consents given in the call page are stored as evidence;
//! each participant's file is catalogued (`recording`) when it begins; when the recording stops,
//! the finished files go to the upload spool, and the composite (both parties side by side) is
//! made and catalogued too. A restart in the middle leaves nothing dangling: files still being
//! written are adopted as they are, composites being made are marked failed (their participant
//! files are kept).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use vizit_recordings::composite::{self, Input};
use vizit_recordings::pipeline::{Finished, PipelineError};

use super::catalogue::{
    Begin, Error, RecordingKind, RecordingStatus, attach, begin, fail, interrupted, note,
};
use super::repo;
use crate::platform::audit::audit;
use crate::platform::clock::now_ms;
use crate::state::ApiState;

/// A party of a consultation's call (recorders are not parties and never reach the catalogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Doctor,
    Patient,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Doctor => "doctor",
            Party::Patient => "patient",
        }
    }
}

/// What the live call reports about recording, in this crate's words (the binary maps the
/// media plane's room events onto these; a Room's id is its consultation's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A party gave (`true`) or withdrew (`false`) consent to recording.
    Consent {
        consultation: String,
        user: String,
        party: Party,
        consent: bool,
    },
    RecordingStarted {
        consultation: String,
        session: u32,
    },
    RecordingStopped {
        consultation: String,
        session: u32,
        /// Why, as the media plane names it (`roomEnded`, `consentWithdrawn`, …).
        reason: String,
    },
}

/// One participant's file, as the recorder finished it (or failed to).
#[derive(Debug)]
pub struct TrackDone {
    /// The recording's catalogue id.
    pub id: String,
    /// Where it was being written.
    pub path: PathBuf,
    pub result: Result<Finished, PipelineError>,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Store what the call reports about recording until the channel closes.
pub async fn run_call_events(state: ApiState, mut events: mpsc::UnboundedReceiver<CallEvent>) {
    while let Some(event) = events.recv().await {
        if let Err(e) = store_event(&state, &event).await {
            // Rooms that are not consultations (`vizit token` calls) have no row to refer to;
            // anything else is evidence lost, and said loudly.
            let text = e.to_string().to_lowercase();
            if text.contains("foreign key") {
                debug!(
                    ?event,
                    "room event of a room that is not a consultation: not stored"
                );
            } else {
                warn!(error = %e, ?event, "a recording event (consent, start, stop) could not be stored");
            }
        }
    }
}

async fn store_event(state: &ApiState, event: &CallEvent) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin_write().await?;
    match event {
        CallEvent::Consent {
            consultation,
            user,
            party,
            consent,
        } => {
            repo::insert_consent(
                &mut tx,
                consultation,
                user,
                party.as_str(),
                *consent,
                now_ms(),
            )
            .await?;
            let action = if *consent {
                "recording.consent_given"
            } else {
                "recording.consent_withdrawn"
            };
            audit(
                &mut tx,
                None,
                action,
                "consultation",
                Some(consultation),
                json!({"userId": user, "role": party.as_str()}),
            )
            .await?;
        }
        CallEvent::RecordingStarted {
            consultation,
            session,
        } => {
            audit(
                &mut tx,
                None,
                "recording.started",
                "consultation",
                Some(consultation),
                json!({"session": session}),
            )
            .await?;
        }
        CallEvent::RecordingStopped {
            consultation,
            session,
            reason,
        } => {
            audit(
                &mut tx,
                None,
                "recording.stopped",
                "consultation",
                Some(consultation),
                json!({"session": session, "reason": reason}),
            )
            .await?;
        }
    }
    tx.commit().await
}

/// The recorder's reports, written into the catalogue. Runs on the recorder's threads.
pub struct CatalogueSink {
    state: ApiState,
    runtime: Handle,
    work_dir: PathBuf,
    /// One composite at a time: transcoding is the heavy part, and calls that end together must
    /// not take the cores from the live calls.
    composing: std::sync::Mutex<()>,
}

impl CatalogueSink {
    /// `work_dir` holds the files being written (the recorder's folder) and the composites being made.
    pub fn new(state: ApiState, runtime: Handle, work_dir: &Path) -> CatalogueSink {
        CatalogueSink {
            state,
            runtime,
            work_dir: work_dir.to_owned(),
            composing: std::sync::Mutex::new(()),
        }
    }

    /// The recording of `consultation` stopped and every file is finished (or failed): the
    /// files go to the spool, and the composite is made (not while the server stops).
    /// Runs on the recorder's thread and blocks.
    pub fn finished(
        &self,
        consultation: &str,
        session: u32,
        server_stopping: bool,
        tracks: Vec<TrackDone>,
    ) {
        let state = &self.state;
        let mut inputs = Vec::new();
        for outcome in tracks {
            let id = outcome.id.clone();
            match outcome.result {
                Ok(done) => {
                    // A second name for the composite: the file itself moves into the spool.
                    let link = self.work_dir.join(format!("{id}.compose.webm"));
                    let linked = std::fs::hard_link(&done.path, &link)
                        .or_else(|_| std::fs::copy(&done.path, &link).map(|_| ()));
                    let attached = self.runtime.block_on(attach(
                        state,
                        &id,
                        &done.path,
                        Some(ms(done.started)),
                        Some(done.duration.as_millis() as i64),
                    ));
                    if let Err(e) = attached {
                        warn!(recording = %id, error = %e, "a finished recording could not be spooled");
                    }
                    match linked {
                        Ok(()) => inputs.push((done.started, done.duration, link)),
                        Err(e) => warn!(recording = %id, error = %e, "no copy for the composite"),
                    }
                }
                Err(e) => {
                    let why = match &e {
                        PipelineError::Empty => "no media arrived from this participant".to_owned(),
                        other => other.to_string(),
                    };
                    let _ = std::fs::remove_file(&outcome.path);
                    if let Err(e) = self.runtime.block_on(fail(state, &id, &why)) {
                        warn!(recording = %id, error = %e, "could not mark a recording failed");
                    }
                }
            }
        }
        if inputs.is_empty() {
            return;
        }
        if server_stopping {
            // Transcoding a long call would hold the shutdown; the participant files are safe.
            info!(room = %consultation, "server stopping: the composite of this recording is not made");
            for (_, _, link) in &inputs {
                let _ = std::fs::remove_file(link);
            }
            return;
        }
        self.compose(consultation, session, inputs);
    }

    fn compose(&self, room: &str, session: u32, inputs: Vec<(SystemTime, Duration, PathBuf)>) {
        let state = &self.state;
        let id = uuid::Uuid::new_v4().to_string();
        let begun = self.runtime.block_on(begin(
            state,
            &Begin {
                id: &id,
                consultation_id: room,
                kind: RecordingKind::Composite,
                participant_role: None,
                content_type: "video/mp4",
                status: RecordingStatus::Processing,
            },
        ));
        if let Err(e) = begun {
            warn!(room = %room, error = %e, "the composite could not be catalogued");
            for (_, _, link) in &inputs {
                let _ = std::fs::remove_file(link);
            }
            return;
        }
        let first = inputs
            .iter()
            .map(|(t, _, _)| *t)
            .min()
            .expect("inputs are not empty");
        let length = inputs
            .iter()
            .map(|(t, d, _)| t.duration_since(first).unwrap_or_default() + *d)
            .max()
            .unwrap_or_default();
        let parts: Vec<Input> = inputs
            .iter()
            .map(|(t, _, path)| Input {
                path: path.clone(),
                offset: t.duration_since(first).unwrap_or_default(),
            })
            .collect();
        let output = self.work_dir.join(format!("{id}.mp4"));
        // Transcoding runs several times faster than real time; the bound only catches a hang.
        let timeout = Duration::from_secs(120) + length * 3;
        let result = {
            let _turn = self.composing.lock().unwrap_or_else(|e| e.into_inner());
            let started = std::time::Instant::now();
            let result = composite::compose(&parts, &output, length, timeout);
            if result.is_ok() {
                info!(room = %room, session, seconds = length.as_secs(),
                      took_ms = started.elapsed().as_millis() as u64, "composite made");
            }
            result
        };
        for (_, _, link) in &inputs {
            let _ = std::fs::remove_file(link);
        }
        let outcome = match result {
            Ok(()) => self.runtime.block_on(attach(
                state,
                &id,
                &output,
                Some(ms(first)),
                Some(length.as_millis() as i64),
            )),
            Err(e) => {
                let _ = std::fs::remove_file(&output);
                self.runtime
                    .block_on(fail(state, &id, &format!("composite failed: {e}")))
            }
        };
        if let Err(e) = outcome {
            warn!(recording = %id, error = %e, "the composite could not be stored");
        }
    }
}

impl CatalogueSink {
    /// A party's file is about to begin: catalogue it (`recording`). An error discards the
    /// track (e.g. the room is not a consultation). Runs on the recorder's thread and blocks.
    pub fn track_started(&self, id: &str, consultation: &str, party: Party) -> Result<(), String> {
        self.runtime
            .block_on(begin(
                &self.state,
                &Begin {
                    id,
                    consultation_id: consultation,
                    kind: RecordingKind::Participant,
                    participant_role: Some(party.as_str()),
                    content_type: "video/webm",
                    status: RecordingStatus::Recording,
                },
            ))
            .map_err(|e| format!("not catalogued (is the room a consultation?): {e}"))
    }
}

/// After a restart: recordings whose files were being written are adopted as they are (the file
/// lacks its index but plays), or failed if there is no file; composites being made are failed
/// (the participant files are stored); a finished file that had not yet entered the upload
/// spool is handed to it again. One row's failure is logged and does not stop the others.
/// Returns how many were adopted and failed.
pub async fn recover_interrupted(
    state: &ApiState,
    work_dir: &Path,
) -> Result<(usize, usize), Error> {
    let rows = interrupted(state).await?;
    let (mut adopted, mut failed) = (0, 0);
    for (id, status, content_type) in rows {
        let ext = if content_type.contains("mp4") {
            "mp4"
        } else {
            "webm"
        };
        let file = work_dir.join(format!("{id}.{ext}"));
        let present = std::fs::metadata(&file).is_ok_and(|m| m.len() > 0);
        let outcome = match status.as_str() {
            // In the spool (or stored meanwhile): the uploader has it.
            "uploading" if !present => continue,
            "uploading" => attach(state, &id, &file, None, None).await.map(|()| true),
            "recording" if present => {
                let attached = attach(state, &id, &file, None, None).await;
                match attached {
                    Ok(()) => note(
                        state,
                        &id,
                        "the server stopped while recording: the file ends where it stopped",
                    )
                    .await
                    .map(|()| true),
                    Err(e) => Err(e),
                }
            }
            "recording" => fail(
                state,
                &id,
                "the server stopped while recording and no file was left",
            )
            .await
            .map(|()| false),
            _ => fail(
                state,
                &id,
                "the server stopped while the composite was made; the participant files are kept",
            )
            .await
            .map(|()| false),
        };
        match outcome {
            Ok(true) => adopted += 1,
            Ok(false) => failed += 1,
            Err(e) => {
                warn!(recording = %id, error = %e, "an interrupted recording could not be settled")
            }
        }
    }
    // Leftovers of composites in the making.
    if let Ok(dir) = std::fs::read_dir(work_dir) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".compose.webm") || name.ends_with(".mp4") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    if adopted + failed > 0 {
        warn!(
            adopted,
            failed, "recordings interrupted by the last stop were settled"
        );
    }
    Ok((adopted, failed))
}
