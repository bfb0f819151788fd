//! HTTP of recordings: the catalogue, download links, the signed file links, legal hold. Clinic
//! admins and head doctors list and download recordings; patients their own consultations' stored
//! ones, only where the clinic allows it (`recordings.patients_may_download`); only admins set
//! holds.

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::catalogue::{self, Error, RecordingKind, STATUSES};
use super::repo::RecordingRow;
use crate::domain::{Caller, ConsultationId, RecordingId, Role};
use crate::http::{ApiError, Body, Page, Params, Problem, id, page, to_rfc3339};
use crate::state::ApiState;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Disabled => ApiError::conflict("recordings_disabled", e.to_string()),
            Error::NotFound => ApiError::NotFound("recording"),
            Error::NotStored(_) => ApiError::conflict("not_stored", e.to_string()),
            Error::NotHoldable(_) => ApiError::conflict("not_holdable", e.to_string()),
            Error::InvalidLink => {
                ApiError::Forbidden("the download link is invalid or has expired")
            }
            Error::Storage(message) => ApiError::Upstream {
                code: "storage_unavailable",
                message,
            },
            Error::Spool { .. } => ApiError::Internal(anyhow::anyhow!("{e}")),
            Error::Db(e) => e.into(),
        }
    }
}

fn require_viewer(state: &ApiState, caller: &Caller) -> Result<(), ApiError> {
    // The clinic's admins and head doctors, and patients if the clinic allows; not doctors, not
    // the portal's key.
    let patient = caller.is(Role::Patient) && state.settings.patient_recordings;
    Ok(caller.require(caller.is(Role::Admin) || caller.is(Role::HeadDoctor) || patient)?)
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
    /// The consultation's patient: the clinic finds a recording by whom it is of.
    pub patient_name: String,
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

impl From<RecordingRow> for RecordingView {
    fn from(r: RecordingRow) -> Self {
        RecordingView {
            id: r.id,
            consultation_id: r.consultation_id,
            consultation_starts_at: to_rfc3339(r.starts_at),
            doctor_name: r.doctor_name,
            patient_name: r.patient_name,
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

/// The catalogue, newest first. A patient (where the clinic allows) gets the stored recordings of
/// their own consultations only, whatever `status` says.
#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings", security(("bearer" = [])), params(RecordingQuery),
    responses((status = 200, body = Page<RecordingView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem, description = "`consultationId` is not a consultation's id")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<RecordingQuery>,
) -> Result<Json<Page<RecordingView>>, ApiError> {
    require_viewer(&state, &caller)?;
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
        .map(|c| id::<ConsultationId>(c, "consultation"))
        .transpose()?;
    let (total, rows) = catalogue::list(
        &state,
        &caller,
        consultation.map(String::from),
        q.status,
        limit,
        offset,
    )
    .await?;
    // What went wrong with a file is the clinic's business.
    let patient = caller.is(Role::Patient);
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(RecordingView::from)
            .map(|mut v| {
                if patient {
                    v.error = None;
                }
                v
            })
            .collect(),
        total,
        limit,
        offset,
    }))
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

/// Issue a short-lived download link (audited). Admins and head doctors; a patient for their own
/// consultation's recording where the clinic allows it (another's: 404).
#[utoipa::path(post, path = "/api/v1/recordings/{id}/download", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "recording id")),
    responses((status = 200, body = DownloadLink), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem)))]
pub async fn download(
    State(state): State<ApiState>,
    caller: Caller,
    UrlPath(raw): UrlPath<String>,
) -> Result<Json<DownloadLink>, ApiError> {
    require_viewer(&state, &caller)?;
    catalogue::configured(&state)?;
    let rid: RecordingId = id(&raw, "recording")?;
    let link = catalogue::download(&state, &caller, &rid).await?;
    Ok(Json(DownloadLink {
        url: link.url,
        expires_at: to_rfc3339(link.expires_at),
        file_name: link.file_name,
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
    catalogue::configured(&state)?;
    let rid: RecordingId = id(&raw, "recording")?;
    let (r, f, len) = catalogue::open_signed(&state, &rid, q.expires, &q.signature).await?;
    let stream = tokio_util::io::ReaderStream::new(f);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, r.content_type.clone()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", catalogue::file_name(&r)),
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
    let rid: RecordingId = id(&raw, "recording")?;
    let r = catalogue::legal_hold(&state, &caller, &rid, req.hold, req.reason).await?;
    Ok(Json(r.into()))
}
