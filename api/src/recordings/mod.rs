//! The catalogue of recordings and the admin API over it: list and filter, download (a
//! short-lived presigned S3 URL, or a signed link to a streamed local file), legal hold, and the
//! retention job. Files reach the object store through `vizit-recordings`' spool; the spool tells
//! [`CatalogueConfirm`] when an upload is confirmed, and only then is the recording `stored`.
//!
//! Only clinic admins and head doctors list and download recordings; every download link issued,
//! and every local file served, is written to the audit log; so is every deletion.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use utoipa::{IntoParams, ToSchema};
use vizit_recordings::{Confirm, Manifest, ObjectStore, Spool};

use crate::auth::Caller;
use crate::domain::Role;
use crate::error::{ApiError, Problem};
use crate::routes::{Body, Page, Params, id, page, to_rfc3339};
use crate::service::audit;
use crate::{ApiState, Db, now_ms};

pub mod live;

/// Storage of recordings and the rules around it.
pub struct Recordings {
    pub spool: Arc<Spool>,
    /// How long a download link works.
    pub link_ttl: Duration,
    /// Stored recordings older than this are deleted (unless on legal hold); `None`: kept.
    pub retention: Option<Duration>,
    /// Signs local-folder download links.
    url_key: Vec<u8>,
}

impl Recordings {
    pub fn new(
        spool: Arc<Spool>,
        link_ttl: Duration,
        retention: Option<Duration>,
        url_key: Vec<u8>,
    ) -> Recordings {
        Recordings {
            spool,
            link_ttl,
            retention,
            url_key,
        }
    }

    pub fn store(&self) -> &ObjectStore {
        self.spool.store()
    }

    fn sign(&self, recording: &str, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("any key length");
        mac.update(format!("{recording}|{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, recording: &str, expires: i64, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("any key length");
        mac.update(format!("{recording}|{expires}").as_bytes());
        mac.verify_slice(&given).is_ok()
    }
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
    fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Participant => "participant",
            RecordingKind::Composite => "composite",
        }
    }
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
pub async fn register(state: &ApiState, new: NewRecording<'_>) -> Result<String, ApiError> {
    configured(state)?;
    let id = uuid::Uuid::new_v4().to_string();
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

/// A recording to catalogue before its file is finished.
pub struct Begin<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub kind: RecordingKind,
    pub participant_role: Option<&'a str>,
    pub content_type: &'a str,
    pub status: RecordingStatus,
}

/// Catalogue a recording whose file is still being written (`recording`) or made (`processing`).
pub async fn begin(state: &ApiState, new: &Begin<'_>) -> Result<(), ApiError> {
    let ext = if new.content_type.contains("mp4") {
        "mp4"
    } else {
        "webm"
    };
    let key = format!("recordings/{}/{}.{ext}", new.consultation_id, new.id);
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO recordings (id, consultation_id, kind, participant_role, status, content_type, storage_key, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new.id)
    .bind(new.consultation_id)
    .bind(new.kind.as_str())
    .bind(new.participant_role.map(str::to_owned))
    .bind(new.status.as_str())
    .bind(new.content_type)
    .bind(&key)
    .bind(now_ms())
    .execute(&mut *tx)
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
) -> Result<(), ApiError> {
    let rec = configured(state)?;
    let (key, content_type): (String, String) =
        sqlx::query_as("SELECT storage_key, content_type FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or(ApiError::NotFound("recording"))?;
    // The row names the file before the file enters the spool: a confirmation always finds it.
    sqlx::query(
        "UPDATE recordings SET status = 'uploading', started_at = COALESCE($1, started_at), \
         duration_ms = COALESCE($2, duration_ms) WHERE id = $3",
    )
    .bind(started_at)
    .bind(duration_ms)
    .bind(id)
    .execute(&state.db.pool)
    .await?;
    let manifest = match rec
        .spool
        .enqueue(file, &key, &content_type, json!({"recording": id}))
        .await
    {
        Ok(m) => m,
        Err(e) => {
            fail(state, id, &format!("could not enter the upload spool: {e}")).await?;
            return Err(ApiError::Internal(anyhow::anyhow!(
                "spooling recording {id}: {e}"
            )));
        }
    };
    sqlx::query("UPDATE recordings SET size_bytes = $1, sha256 = $2 WHERE id = $3")
        .bind(manifest.size as i64)
        .bind(&manifest.sha256)
        .bind(id)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// A recording could not be made: status `failed`, with the reason.
pub async fn fail(state: &ApiState, id: &str, why: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE recordings SET status = 'failed', error = $1 WHERE id = $2")
        .bind(why)
        .bind(id)
        .execute(&state.db.pool)
        .await?;
    Ok(())
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
            sqlx::query(
                "UPDATE recordings SET status = 'stored', size_bytes = $1, sha256 = $2, stored_at = $3 \
                 WHERE id = $4 AND status IN ('uploading', 'failed')",
            )
            .bind(m.size as i64)
            .bind(&m.sha256)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
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

// ---- admin API ---------------------------------------------------------------------------

fn require_viewer(caller: &Caller) -> Result<(), ApiError> {
    // The clinic's admins and head doctors; not patients, not doctors, not the portal's key.
    caller.require(caller.is(Role::Admin) || caller.is(Role::HeadDoctor))
}

fn configured(state: &ApiState) -> Result<&Arc<Recordings>, ApiError> {
    state.recordings.as_ref().ok_or_else(|| {
        ApiError::conflict("recordings_disabled", "recording storage is not configured")
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordingQuery {
    #[serde(default)]
    consultation_id: Option<String>,
    /// recording, processing, uploading, stored, failed or deleted.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// One recording in the catalogue.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingView {
    pub id: String,
    pub consultation_id: String,
    /// When the consultation's slot starts.
    pub consultation_starts_at: String,
    pub doctor_name: String,
    pub kind: RecordingKind,
    pub participant_role: Option<String>,
    pub status: String,
    pub content_type: String,
    pub started_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub legal_hold: bool,
    pub created_at: String,
    pub stored_at: Option<String>,
    pub deleted_at: Option<String>,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RecordingRow {
    id: String,
    consultation_id: String,
    starts_at: i64,
    doctor_name: String,
    kind: String,
    participant_role: Option<String>,
    status: String,
    content_type: String,
    storage_key: String,
    started_at: Option<i64>,
    duration_ms: Option<i64>,
    size_bytes: Option<i64>,
    sha256: Option<String>,
    legal_hold_at: Option<i64>,
    created_at: i64,
    stored_at: Option<i64>,
    deleted_at: Option<i64>,
    error: Option<String>,
}

const SELECT: &str = "SELECT r.id, r.consultation_id, c.starts_at, u.name AS doctor_name, r.kind, r.participant_role, \
    r.status, r.content_type, r.storage_key, r.started_at, r.duration_ms, r.size_bytes, r.sha256, r.legal_hold_at, \
    r.created_at, r.stored_at, r.deleted_at, r.error \
    FROM recordings r JOIN consultations c ON c.id = r.consultation_id JOIN users u ON u.id = c.doctor_id";

impl From<RecordingRow> for RecordingView {
    fn from(r: RecordingRow) -> Self {
        RecordingView {
            id: r.id,
            consultation_id: r.consultation_id,
            consultation_starts_at: to_rfc3339(r.starts_at),
            doctor_name: r.doctor_name,
            kind: if r.kind == "composite" {
                RecordingKind::Composite
            } else {
                RecordingKind::Participant
            },
            participant_role: r.participant_role,
            status: r.status,
            content_type: r.content_type,
            started_at: r.started_at.map(to_rfc3339),
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            legal_hold: r.legal_hold_at.is_some(),
            created_at: to_rfc3339(r.created_at),
            stored_at: r.stored_at.map(to_rfc3339),
            deleted_at: r.deleted_at.map(to_rfc3339),
            error: r.error,
        }
    }
}

const STATUSES: [&str; 6] = [
    "recording",
    "processing",
    "uploading",
    "stored",
    "failed",
    "deleted",
];

#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings", security(("bearer" = [])), params(RecordingQuery),
    responses((status = 200, body = Page<RecordingView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<RecordingQuery>,
) -> Result<Json<Page<RecordingView>>, ApiError> {
    require_viewer(&caller)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "status must be recording, processing, uploading, stored, failed or deleted",
        ));
    }
    let consultation = q
        .consultation_id
        .as_deref()
        .map(|c| id(c, "consultation"))
        .transpose()?;
    let filter = " WHERE ($1 IS NULL OR r.consultation_id = $1) AND ($2 IS NULL OR r.status = $2)";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM recordings r{filter}"
    )))
    .bind(consultation.clone())
    .bind(q.status.clone())
    .fetch_one(&state.db.pool)
    .await?;
    let rows: Vec<RecordingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT}{filter} ORDER BY r.created_at DESC, r.id LIMIT $3 OFFSET $4"
    )))
    .bind(consultation)
    .bind(q.status)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db.pool)
    .await?;
    state
        .audit(
            Some(&caller),
            "recording.list",
            "recording",
            None,
            serde_json::Value::Null,
        )
        .await?;
    Ok(Json(Page {
        items: rows.into_iter().map(RecordingView::from).collect(),
        total,
        limit,
        offset,
    }))
}

async fn load(state: &ApiState, raw: &str) -> Result<RecordingRow, ApiError> {
    let rid = id(raw, "recording")?;
    sqlx::query_as::<_, RecordingRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
        .bind(&rid)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or(ApiError::NotFound("recording"))
}

/// A download link.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadLink {
    /// A presigned object-store URL, or a signed link to this server; works without a session.
    pub url: String,
    pub expires_at: String,
    pub file_name: String,
}

fn file_name(r: &RecordingRow) -> String {
    let ext = if r.content_type.contains("mp4") {
        "mp4"
    } else {
        "webm"
    };
    let who = r.participant_role.as_deref().unwrap_or("composite");
    format!(
        "consultation-{}-{who}.{ext}",
        &r.consultation_id[..8.min(r.consultation_id.len())]
    )
}

/// Issue a short-lived download link (audited). Admins and head doctors only.
#[utoipa::path(post, path = "/api/v1/recordings/{id}/download", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "recording id")),
    responses((status = 200, body = DownloadLink), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem)))]
pub async fn download(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(raw): UrlPath<String>,
) -> Result<Json<DownloadLink>, ApiError> {
    require_viewer(&caller)?;
    let rec = configured(&state)?.clone();
    let r = load(&state, &raw).await?;
    if r.status != "stored" {
        return Err(ApiError::conflict(
            "not_stored",
            format!("the recording is {}, not stored yet", r.status),
        ));
    }
    let name = file_name(&r);
    let expires = now_ms() + rec.link_ttl.as_millis() as i64;
    let url = match rec
        .store()
        .presigned_url(&r.storage_key, rec.link_ttl, &name)
        .await
        .map_err(|e| ApiError::Upstream {
            code: "storage_unavailable",
            message: e.to_string(),
        })? {
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
    state
        .audit(
            Some(&caller),
            "recording.download",
            "recording",
            Some(&r.id),
            json!({"consultationId": r.consultation_id, "expiresAt": to_rfc3339(expires)}),
        )
        .await?;
    Ok(Json(DownloadLink {
        url,
        expires_at: to_rfc3339(expires),
        file_name: name,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    expires: i64,
    signature: String,
}

/// The file of a local-folder recording, for a signed link from `download` (no session: the
/// link is the credential, for `link_ttl`).
#[utoipa::path(get, path = "/api/v1/recordings/{id}/file", tag = "recordings",
    params(("id" = String, Path, description = "recording id"), FileQuery),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn file(
    State(state): State<ApiState>,
    UrlPath(raw): UrlPath<String>,
    Params(q): Params<FileQuery>,
) -> Result<Response, ApiError> {
    let rec = configured(&state)?.clone();
    let rid = id(&raw, "recording")?;
    if q.expires * 1000 < now_ms() || !rec.verify(&rid, q.expires, &q.signature) {
        return Err(ApiError::Forbidden(
            "the download link is invalid or has expired",
        ));
    }
    let r = load(&state, &rid).await?;
    if r.status != "stored" {
        return Err(ApiError::NotFound("recording"));
    }
    let path = rec
        .store()
        .local_path(&r.storage_key)
        .ok_or(ApiError::NotFound("recording"))?;
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound("recording"))?;
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    state
        .audit(
            None,
            "recording.file_served",
            "recording",
            Some(&r.id),
            json!({"bytes": len}),
        )
        .await?;
    let stream = tokio_util::io::ReaderStream::new(f);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, r.content_type.clone()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file_name(&r)),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        HttpBody::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalHoldRequest {
    hold: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// Put a recording on legal hold (retention never deletes it) or release it. Admins only.
#[utoipa::path(post, path = "/api/v1/recordings/{id}/legal-hold", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "recording id")), request_body = LegalHoldRequest,
    responses((status = 200, body = RecordingView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn legal_hold(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(raw): UrlPath<String>,
    Body(req): Body<LegalHoldRequest>,
) -> Result<Json<RecordingView>, ApiError> {
    caller.require(caller.is(Role::Admin))?;
    let r = load(&state, &raw).await?;
    if req.hold && matches!(r.status.as_str(), "deleted" | "failed") {
        return Err(ApiError::conflict(
            "not_holdable",
            format!("the recording is {}: there is nothing to hold", r.status),
        ));
    }
    let mut tx = state.db.begin_write().await?;
    sqlx::query("UPDATE recordings SET legal_hold_at = $1, legal_hold_by = $2, legal_hold_reason = $3 WHERE id = $4")
        .bind(req.hold.then(now_ms))
        .bind(req.hold.then(|| caller.user_id().unwrap_or_default().to_owned()))
        .bind(if req.hold { req.reason.clone() } else { None })
        .bind(&r.id)
        .execute(&mut *tx)
        .await?;
    audit(
        &mut tx,
        Some(&caller),
        if req.hold {
            "recording.legal_hold"
        } else {
            "recording.legal_hold_released"
        },
        "recording",
        Some(&r.id),
        json!({"reason": req.reason}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(load(&state, &r.id).await?.into()))
}

/// Delete stored recordings older than the retention period (not on legal hold); each deletion
/// is audited. Returns how many were deleted.
pub async fn apply_retention(state: &ApiState) -> Result<usize, ApiError> {
    let Some(rec) = state.recordings.as_ref() else {
        return Ok(0);
    };
    let Some(retention) = rec.retention else {
        return Ok(0);
    };
    let cutoff = now_ms() - retention.as_millis() as i64;
    // Mark first (a legal hold set meanwhile wins), then delete the object; an object whose
    // deletion failed is retried next round.
    const PENDING: &str = "object deletion pending";
    let due: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, storage_key, status FROM recordings WHERE (status = 'stored' AND legal_hold_at IS NULL \
         AND COALESCE(stored_at, created_at) < $1) OR (status = 'deleted' AND error = $2) ORDER BY created_at LIMIT 500",
    )
    .bind(cutoff)
    .bind(PENDING)
    .fetch_all(&state.db.pool)
    .await?;
    let mut deleted = 0;
    for (rid, key, status) in due {
        if status == "stored" {
            let mut tx = state.db.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE recordings SET status = 'deleted', deleted_at = $1, deleted_reason = 'retention', error = $2 \
                 WHERE id = $3 AND status = 'stored' AND legal_hold_at IS NULL",
            )
            .bind(now_ms())
            .bind(PENDING)
            .bind(&rid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
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
            Ok(()) => {
                sqlx::query("UPDATE recordings SET error = NULL WHERE id = $1 AND error = $2")
                    .bind(&rid)
                    .bind(PENDING)
                    .execute(&state.db.pool)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(recording = %rid, error = %e, "retention: object not deleted yet; next round")
            }
        }
    }
    Ok(deleted)
}
