//! The catalogue of recordings: per-participant files and the composite of each consultation,
//! catalogued when they begin, handed to the upload spool when finished, `stored` only once the
//! spool has confirmed the upload ([`CatalogueConfirm`]); download links (a short-lived
//! presigned S3 URL, or a signed link to a streamed local file); legal hold; and the retention
//! job. Every download link issued, every local file served and every deletion is audited.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vizit_recordings::{Confirm, Manifest};

use super::repo::{self, NewRow, RecordingRow};
use super::storage::Recordings;
use crate::domain::{Caller, RecordingId, Role};
use crate::platform::Db;
use crate::platform::audit::{audit, audit_list_read};
use crate::platform::clock::now_ms;
use crate::state::ApiState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("recording storage is not configured")]
    Disabled,
    #[error("recording not found")]
    NotFound,
    #[error("the recording is {0}, not stored yet")]
    NotStored(String),
    #[error("the recording is {0}: there is nothing to hold")]
    NotHoldable(String),
    #[error("the download link is invalid or has expired")]
    InvalidLink,
    #[error("{0}")]
    Storage(String),
    #[error("spooling recording {id}: {error}")]
    Spool { id: String, error: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingKind {
    /// One participant's audio and video (WebM: VP8 + Opus), as relayed.
    Participant,
    /// Both parties side by side, audio mixed (MP4: H.264 + AAC).
    Composite,
}

impl RecordingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Participant => "participant",
            RecordingKind::Composite => "composite",
        }
    }
}

/// Where a recording is in its life, as the catalogue stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingStatus {
    Recording,
    Processing,
    Uploading,
}

impl RecordingStatus {
    fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Processing => "processing",
            RecordingStatus::Uploading => "uploading",
        }
    }
}

/// Every status a recording can have, for filters.
pub const STATUSES: [&str; 6] = [
    "recording",
    "processing",
    "uploading",
    "stored",
    "failed",
    "deleted",
];

pub fn configured(state: &ApiState) -> Result<&Arc<Recordings>, Error> {
    state.recordings.as_ref().ok_or(Error::Disabled)
}

/// A finished file to catalogue and upload.
pub struct NewRecording<'a> {
    pub consultation_id: &'a str,
    pub kind: RecordingKind,
    /// `doctor` or `patient` for participant files.
    pub participant_role: Option<&'a str>,
    pub file: &'a Path,
    pub content_type: &'a str,
    pub started_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// Catalogue a finished file (status `uploading`) and hand it to the spool. Returns its id.
pub async fn register(state: &ApiState, new: NewRecording<'_>) -> Result<String, Error> {
    configured(state)?;
    let id = RecordingId::new().to_string();
    begin(
        state,
        &Begin {
            id: &id,
            consultation_id: new.consultation_id,
            kind: new.kind,
            participant_role: new.participant_role,
            content_type: new.content_type,
            status: RecordingStatus::Uploading,
        },
    )
    .await?;
    attach(state, &id, new.file, new.started_at, new.duration_ms).await?;
    Ok(id)
}

/// A recording to catalogue before its file is finished.
pub struct Begin<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub kind: RecordingKind,
    pub participant_role: Option<&'a str>,
    pub content_type: &'a str,
    pub status: RecordingStatus,
}

fn extension(content_type: &str) -> &'static str {
    if content_type.contains("mp4") {
        "mp4"
    } else {
        "webm"
    }
}

/// Catalogue a recording whose file is still being written (`recording`) or made (`processing`).
pub async fn begin(state: &ApiState, new: &Begin<'_>) -> Result<(), Error> {
    let key = format!(
        "recordings/{}/{}.{}",
        new.consultation_id,
        new.id,
        extension(new.content_type)
    );
    let mut tx = state.db.begin_write().await?;
    repo::insert(
        &mut tx,
        NewRow {
            id: new.id,
            consultation_id: new.consultation_id,
            kind: new.kind.as_str(),
            participant_role: new.participant_role,
            status: new.status.as_str(),
            content_type: new.content_type,
            storage_key: &key,
        },
        now_ms(),
    )
    .await?;
    audit(
        &mut tx,
        None,
        "recording.create",
        "recording",
        Some(new.id),
        json!({"consultationId": new.consultation_id, "kind": new.kind.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The file of a catalogued recording is finished: hand it to the spool (status `uploading`).
/// The file is moved into the spool.
pub async fn attach(
    state: &ApiState,
    id: &str,
    file: &Path,
    started_at: Option<i64>,
    duration_ms: Option<i64>,
) -> Result<(), Error> {
    let rec = configured(state)?;
    let (key, content_type) = repo::key_and_type(&state.db.pool, id)
        .await?
        .ok_or(Error::NotFound)?;
    // The row names the file before the file enters the spool: a confirmation always finds it.
    repo::uploading(&state.db.pool, id, started_at, duration_ms).await?;
    let manifest = match rec
        .spool
        .enqueue(file, &key, &content_type, json!({"recording": id}))
        .await
    {
        Ok(m) => m,
        Err(e) => {
            fail(state, id, &format!("could not enter the upload spool: {e}")).await?;
            return Err(Error::Spool {
                id: id.to_owned(),
                error: e.to_string(),
            });
        }
    };
    repo::set_size(&state.db.pool, id, manifest.size as i64, &manifest.sha256).await?;
    Ok(())
}

/// A recording could not be made: status `failed`, with the reason.
pub async fn fail(state: &ApiState, id: &str, why: &str) -> Result<(), Error> {
    Ok(repo::failed(&state.db.pool, id, why).await?)
}

/// A note on a recording (e.g. how a stop left its file).
pub async fn note(state: &ApiState, id: &str, error: &str) -> Result<(), Error> {
    Ok(repo::set_error(&state.db.pool, id, error).await?)
}

/// (id, status, content type) of recordings the last stop interrupted.
pub async fn interrupted(state: &ApiState) -> Result<Vec<(String, String, String)>, Error> {
    Ok(repo::interrupted(&state.db.pool).await?)
}

/// Marks recordings `stored` when the spool has confirmed their upload.
#[derive(Clone)]
pub struct CatalogueConfirm(pub Db);

impl Confirm for CatalogueConfirm {
    async fn stored(&self, m: &Manifest) -> Result<(), String> {
        let Some(id) = m.meta.get("recording").and_then(|v| v.as_str()) else {
            return Err("spool manifest without a recording id".into());
        };
        let run = async {
            let mut tx = self.0.begin_write().await?;
            repo::stored(&mut tx, id, m.size as i64, &m.sha256, now_ms()).await?;
            audit(
                &mut tx,
                None,
                "recording.stored",
                "recording",
                Some(id),
                json!({"bytes": m.size, "sha256": m.sha256}),
            )
            .await?;
            tx.commit().await
        };
        run.await.map_err(|e: sqlx::Error| e.to_string())
    }
}

/// One page of the catalogue (the read is audited).
pub async fn list(
    state: &ApiState,
    caller: &Caller,
    consultation: Option<String>,
    status: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<RecordingRow>), Error> {
    // A patient (where the clinic lets them) sees the stored files of their own consultations.
    let (patient, status) = if caller.is(Role::Patient) {
        (
            caller.user_id().map(str::to_owned),
            Some("stored".to_owned()),
        )
    } else {
        (None, status)
    };
    let one = consultation.clone();
    let page = repo::list(&state.db.pool, consultation, status, patient, limit, offset).await?;
    let mut conn = state.db.pool.acquire().await?;
    match one {
        // One consultation's recordings: a read of that consultation, recorded each time.
        Some(c) => {
            audit(
                &mut conn,
                Some(caller),
                "recording.list",
                "consultation",
                Some(&c),
                serde_json::Value::Null,
            )
            .await?
        }
        None => {
            audit_list_read(
                &mut conn,
                caller,
                "recording.list",
                "recording",
                serde_json::Value::Null,
            )
            .await?
        }
    }
    Ok(page)
}

pub async fn load(state: &ApiState, id: &RecordingId) -> Result<RecordingRow, Error> {
    repo::load(&state.db.pool, id.as_str())
        .await?
        .ok_or(Error::NotFound)
}

/// The name a downloaded file gets.
pub fn file_name(r: &RecordingRow) -> String {
    let who = r.participant_role.as_deref().unwrap_or("composite");
    format!(
        "consultation-{}-{who}.{}",
        &r.consultation_id[..8.min(r.consultation_id.len())],
        extension(&r.content_type)
    )
}

/// A download link: the URL, when it expires (UTC ms), and the file's name.
pub struct Link {
    pub url: String,
    pub expires_at: i64,
    pub file_name: String,
}

/// Issue a short-lived download link (audited).
pub async fn download(state: &ApiState, caller: &Caller, id: &RecordingId) -> Result<Link, Error> {
    let rec = configured(state)?.clone();
    let r = load(state, id).await?;
    // Not a patient's own, or not stored yet: as if it did not exist (their list shows only
    // stored ones).
    if caller.is(Role::Patient)
        && (caller.user_id() != Some(r.patient_id.as_str()) || r.status != "stored")
    {
        return Err(Error::NotFound);
    }
    if r.status != "stored" {
        return Err(Error::NotStored(r.status));
    }
    let name = file_name(&r);
    let expires = now_ms() + rec.link_ttl.as_millis() as i64;
    let url = match rec
        .store()
        .presigned_url(&r.storage_key, rec.link_ttl, &name)
        .await
        .map_err(|e| Error::Storage(e.to_string()))?
    {
        Some(url) => url,
        None => {
            // Whole seconds, rounded up: a link never dies before `link_ttl`.
            let exp = (expires + 999) / 1000;
            format!(
                "/api/v1/recordings/{}/file?expires={exp}&signature={}",
                r.id,
                rec.sign(&r.id, exp)
            )
        }
    };
    let mut conn = state.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "recording.download",
        "recording",
        Some(&r.id),
        json!({"consultationId": r.consultation_id, "expiresAt": crate::http::to_rfc3339(expires)}),
    )
    .await?;
    Ok(Link {
        url,
        expires_at: expires,
        file_name: name,
    })
}

/// The local file a signed link names, opened, with its length (the serving is audited).
pub async fn open_signed(
    state: &ApiState,
    id: &RecordingId,
    expires: i64,
    signature: &str,
) -> Result<(RecordingRow, tokio::fs::File, u64), Error> {
    let rec = configured(state)?.clone();
    if expires * 1000 < now_ms() || !rec.verify(id.as_str(), expires, signature) {
        return Err(Error::InvalidLink);
    }
    let r = load(state, id).await?;
    if r.status != "stored" {
        return Err(Error::NotFound);
    }
    let path: PathBuf = rec
        .store()
        .local_path(&r.storage_key)
        .ok_or(Error::NotFound)?;
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|_| Error::NotFound)?;
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut conn = state.db.pool.acquire().await?;
    audit(
        &mut conn,
        None,
        "recording.file_served",
        "recording",
        Some(&r.id),
        json!({"bytes": len}),
    )
    .await?;
    Ok((r, f, len))
}

/// Put a recording on legal hold (retention never deletes it) or release it.
pub async fn legal_hold(
    state: &ApiState,
    caller: &Caller,
    id: &RecordingId,
    hold: bool,
    reason: Option<String>,
) -> Result<RecordingRow, Error> {
    let r = load(state, id).await?;
    if hold && matches!(r.status.as_str(), "deleted" | "failed") {
        return Err(Error::NotHoldable(r.status));
    }
    let mut tx = state.db.begin_write().await?;
    repo::set_hold(
        &mut tx,
        &r.id,
        hold.then(now_ms),
        hold.then(|| caller.user_id().unwrap_or_default().to_owned()),
        if hold { reason.clone() } else { None },
    )
    .await?;
    audit(
        &mut tx,
        Some(caller),
        if hold {
            "recording.legal_hold"
        } else {
            "recording.legal_hold_released"
        },
        "recording",
        Some(&r.id),
        json!({"reason": reason}),
    )
    .await?;
    tx.commit().await?;
    load(state, id).await
}

/// Delete stored recordings older than the retention period (not on legal hold); each deletion
/// is audited. Returns how many were deleted.
pub async fn apply_retention(db: &Db, rec: Option<&Recordings>) -> Result<usize, Error> {
    let Some(rec) = rec else {
        return Ok(0);
    };
    let Some(retention) = rec.retention else {
        return Ok(0);
    };
    let cutoff = now_ms() - retention.as_millis() as i64;
    // Mark first (a legal hold set meanwhile wins), then delete the object; an object whose
    // deletion failed is retried next round.
    const PENDING: &str = "object deletion pending";
    let due = repo::due_for_deletion(&db.pool, cutoff, PENDING).await?;
    let mut deleted = 0;
    for (rid, key, status) in due {
        if status == "stored" {
            let mut tx = db.begin_write().await?;
            if !repo::mark_deleted(&mut tx, &rid, now_ms(), PENDING).await? {
                continue;
            }
            audit(
                &mut tx,
                None,
                "recording.delete",
                "recording",
                Some(&rid),
                json!({"reason": "retention", "retentionDays": retention.as_secs() / 86_400}),
            )
            .await?;
            tx.commit().await?;
            deleted += 1;
        }
        match rec.store().delete(&key).await {
            Ok(()) => repo::object_deleted(&db.pool, &rid, PENDING).await?,
            Err(e) => {
                tracing::warn!(recording = %rid, error = %e, "retention: object not deleted yet; next round")
            }
        }
    }
    Ok(deleted)
}
