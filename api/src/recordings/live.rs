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
use vizit_media::{Role, RoomEvent, RoomId, StopReason};
use vizit_recordings::composite::{self, Input};
use vizit_recordings::live::{RoomSink, TrackOutcome};
use vizit_recordings::pipeline::PipelineError;

use super::{Begin, RecordingKind, RecordingStatus, attach, begin, fail};
use crate::service::audit;
use crate::{ApiState, now_ms};

/// The catalogue's name of a party's role; recorders are not parties.
fn role_str(role: Role) -> Option<&'static str> {
    (role != Role::Recorder).then(|| role.as_str())
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Store what the media plane reports about recording until the channel closes.
pub async fn run_room_events(state: ApiState, mut events: mpsc::UnboundedReceiver<RoomEvent>) {
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

async fn store_event(state: &ApiState, event: &RoomEvent) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin_write().await?;
    match event {
        RoomEvent::Consent {
            room,
            participant,
            role,
            consent,
        } => {
            let Some(role) = role_str(*role) else {
                return Ok(());
            };
            sqlx::query(
                "INSERT INTO recording_consents (id, consultation_id, user_id, role, consent, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(room.as_str())
            .bind(participant.as_str())
            .bind(role)
            .bind(i32::from(*consent))
            .bind(now_ms())
            .execute(&mut *tx)
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
                Some(room.as_str()),
                json!({"userId": participant.as_str(), "role": role}),
            )
            .await?;
        }
        RoomEvent::RecordingStarted { room, session } => {
            audit(
                &mut tx,
                None,
                "recording.started",
                "consultation",
                Some(room.as_str()),
                json!({"session": session}),
            )
            .await?;
        }
        RoomEvent::RecordingStopped {
            room,
            session,
            reason,
        } => {
            audit(
                &mut tx,
                None,
                "recording.stopped",
                "consultation",
                Some(room.as_str()),
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

    fn settle(&self, room: &RoomId, session: u32, reason: StopReason, tracks: Vec<TrackOutcome>) {
        let state = &self.state;
        let mut inputs = Vec::new();
        for outcome in tracks {
            let id = outcome.track.id.clone();
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
                    let _ = std::fs::remove_file(&outcome.track.path);
                    if let Err(e) = self.runtime.block_on(fail(state, &id, &why)) {
                        warn!(recording = %id, error = %e, "could not mark a recording failed");
                    }
                }
            }
        }
        if inputs.is_empty() {
            return;
        }
        if reason == StopReason::ServerShutdown {
            // Transcoding a long call would hold the shutdown; the participant files are safe.
            info!(room = %room, "server stopping: the composite of this recording is not made");
            for (_, _, link) in &inputs {
                let _ = std::fs::remove_file(link);
            }
            return;
        }
        self.compose(room, session, inputs);
    }

    fn compose(&self, room: &RoomId, session: u32, inputs: Vec<(SystemTime, Duration, PathBuf)>) {
        let state = &self.state;
        let id = uuid::Uuid::new_v4().to_string();
        let begun = self.runtime.block_on(begin(
            state,
            &Begin {
                id: &id,
                consultation_id: room.as_str(),
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

impl RoomSink for CatalogueSink {
    fn track_started(&self, track: &vizit_recordings::live::Track) -> Result<(), String> {
        let Some(role) = role_str(track.role) else {
            return Err("recorders are not recorded".into());
        };
        self.runtime
            .block_on(begin(
                &self.state,
                &Begin {
                    id: &track.id,
                    consultation_id: track.room.as_str(),
                    kind: RecordingKind::Participant,
                    participant_role: Some(role),
                    content_type: "video/webm",
                    status: RecordingStatus::Recording,
                },
            ))
            .map_err(|e| format!("not catalogued (is the room a consultation?): {e}"))
    }

    fn finished(&self, room: &RoomId, session: u32, reason: StopReason, tracks: Vec<TrackOutcome>) {
        self.settle(room, session, reason, tracks);
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
) -> Result<(usize, usize), crate::error::ApiError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, status, content_type FROM recordings \
         WHERE status IN ('recording', 'processing', 'uploading')",
    )
    .fetch_all(&state.db.pool)
    .await?;
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
                    Ok(()) => sqlx::query("UPDATE recordings SET error = $1 WHERE id = $2")
                        .bind("the server stopped while recording: the file ends where it stopped")
                        .bind(&id)
                        .execute(&state.db.pool)
                        .await
                        .map(|_| true)
                        .map_err(Into::into),
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
