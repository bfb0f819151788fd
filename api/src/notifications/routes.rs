//! HTTP of notifications: the admins' list of e-mails (what was sent, what waits, what failed).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::repo::{self, EmailRow};
use crate::domain::Caller;
use crate::http::{ApiError, Page, Params, Problem, page, time_range, to_rfc3339};
use crate::platform::audit::audit;
use crate::state::ApiState;

/// An e-mail, without its body (it is the patient's).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailView {
    pub id: String,
    /// What it is about: `receipt`.
    pub kind: String,
    /// The id of that (a receipt's).
    pub ref_id: Option<String>,
    pub recipient: String,
    pub subject: String,
    /// `queued` (waiting for the mail server), `sent` (the server took it), `failed` (refused
    /// for good: `lastError` says why).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}

impl From<EmailRow> for EmailView {
    fn from(r: EmailRow) -> Self {
        EmailView {
            id: r.id,
            kind: r.kind,
            ref_id: r.ref_id,
            recipient: r.recipient,
            subject: r.subject,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: to_rfc3339(r.created_at),
            sent_at: r.sent_at.map(to_rfc3339),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailQuery {
    /// Created at or after (RFC 3339).
    #[serde(default)]
    from: Option<String>,
    /// Created before (RFC 3339).
    #[serde(default)]
    to: Option<String>,
    /// `queued`, `sent` or `failed`.
    #[serde(default)]
    status: Option<String>,
    /// `receipt`, …
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// E-mails, newest first (admins and the portal).
#[utoipa::path(get, path = "/api/v1/admin/emails", tag = "notifications", security(("bearer" = [])), params(EmailQuery),
    responses((status = 200, body = Page<EmailView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_emails(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<EmailQuery>,
) -> Result<Json<Page<EmailView>>, ApiError> {
    caller.require(caller.is_clinic())?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    if let Some(s) = q.status.as_deref()
        && !matches!(s, "queued" | "sent" | "failed")
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            "status is queued, sent or failed",
        ));
    }
    let (total, rows) = repo::list(
        &state.db.pool,
        from,
        to,
        q.status.as_deref(),
        q.kind.as_deref(),
        limit,
        offset,
    )
    .await?;
    Ok(Json(Page {
        items: rows.into_iter().map(EmailView::from).collect(),
        total,
        limit,
        offset,
    }))
}

/// Send a failed e-mail again (admins and the portal), e.g. once the mail settings are fixed.
/// Audited.
#[utoipa::path(post, path = "/api/v1/admin/emails/{id}/retry", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, description = "e-mail id")),
    responses((status = 200, body = EmailView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry_email(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<EmailView>, ApiError> {
    caller.require(caller.is_clinic())?;
    let id = uuid::Uuid::parse_str(&raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound("e-mail"))?;
    let mut tx = state.db.begin_write().await?;
    let Some(row) = repo::email(&mut tx, &id).await? else {
        return Err(ApiError::NotFound("e-mail"));
    };
    if !repo::requeue(&mut tx, &id, state.now()).await? {
        return Err(ApiError::conflict(
            "not_failed",
            format!("the e-mail is {}, not failed", row.status),
        ));
    }
    audit(
        &mut tx,
        Some(&caller),
        "email.retry",
        "email",
        Some(&id),
        serde_json::json!({"kind": row.kind}),
    )
    .await?;
    let row = repo::email(&mut tx, &id)
        .await?
        .ok_or(ApiError::NotFound("e-mail"))?;
    tx.commit().await?;
    if let Some(n) = &state.notifications {
        n.wake();
    }
    Ok(Json(row.into()))
}
