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

/// One status a delivery was given.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub status: String,
    /// Where it came from: `vizit`, `smtp` (the mail server's answer), `link` (the message's
    /// link was opened — what "read" means on e-mail).
    pub source: String,
    pub at: String,
}

/// A notification on one channel.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// `email` (messengers to come).
    pub channel: String,
    /// `queued`, `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    /// The statuses this channel can really report; any other is "not reported by this
    /// channel" (e-mail cannot report `delivered`).
    pub reports: Vec<String>,
    pub detail: Option<String>,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub read_at: Option<String>,
    pub failed_at: Option<String>,
    pub history: Vec<StatusView>,
}

/// A notification: what, to whom, and how it went on each channel.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: String,
    /// `patient.booked`, `patient.paid`, `patient.cancelled`, `patient.reminder`,
    /// `patient.review`, `doctor.must_close`, `doctor.reminder`, `doctor.cancelled`,
    /// `admin.not_closed`, `head_doctor.not_closed`.
    pub event: String,
    pub recipient_id: String,
    pub recipient_role: String,
    pub consultation_id: Option<String>,
    pub created_at: String,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationQuery {
    #[serde(default)]
    consultation_id: Option<String>,
    #[serde(default)]
    recipient_id: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

fn reports(channel: &str) -> Vec<String> {
    match channel {
        super::notices::EMAIL => super::notices::EMAIL_REPORTS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Notifications with their status on each channel, newest first (admins and the portal);
/// per consultation or per recipient.
#[utoipa::path(get, path = "/api/v1/admin/notifications", tag = "notifications", security(("bearer" = [])),
    params(NotificationQuery),
    responses((status = 200, body = Page<NotificationView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_notifications(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<NotificationQuery>,
) -> Result<Json<Page<NotificationView>>, ApiError> {
    caller.require(caller.is_clinic())?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (total, notices, deliveries, statuses) = super::log::list(
        &state.db.pool,
        q.consultation_id.as_deref(),
        q.recipient_id.as_deref(),
        limit,
        offset,
    )
    .await?;
    let items = notices
        .into_iter()
        .map(|n| NotificationView {
            deliveries: deliveries
                .iter()
                .filter(|d| d.notification_id == n.id)
                .map(|d| DeliveryView {
                    channel: d.channel.clone(),
                    status: d.status.clone(),
                    reports: reports(&d.channel),
                    detail: d.detail.clone(),
                    sent_at: d.sent_at.map(to_rfc3339),
                    delivered_at: d.delivered_at.map(to_rfc3339),
                    read_at: d.read_at.map(to_rfc3339),
                    failed_at: d.failed_at.map(to_rfc3339),
                    history: statuses
                        .iter()
                        .filter(|s| s.delivery_id == d.id)
                        .map(|s| StatusView {
                            status: s.status.clone(),
                            source: s.source.clone(),
                            at: to_rfc3339(s.at),
                        })
                        .collect(),
                })
                .collect(),
            id: n.id,
            event: n.event,
            recipient_id: n.recipient_id,
            recipient_role: n.recipient_role,
            consultation_id: n.consultation_id,
            created_at: to_rfc3339(n.created_at),
        })
        .collect();
    Ok(Json(Page {
        items,
        total,
        limit,
        offset,
    }))
}

/// The link in a notification: marks it read (its recipient opened it) and leads to the
/// consultations page. No sign-in needed: the secret names one message and reveals nothing.
#[utoipa::path(get, path = "/api/v1/notifications/open/{token}", tag = "notifications",
    params(("token" = String, Path, description = "the message's link secret")),
    responses((status = 303, description = "to the consultations page")))]
pub async fn open_link(
    State(state): State<ApiState>,
    Path(token): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let public = state
        .notifications
        .as_ref()
        .map(|n| n.rules.public_url.trim_end_matches('/').to_owned())
        .unwrap_or_default();
    if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut tx = state.db.begin_write().await?;
        if let Some(delivery) = super::log::by_token(&mut tx, &token).await? {
            super::log::apply(
                &mut tx,
                &delivery,
                super::log::Status::Read,
                "link",
                None,
                state.now(),
            )
            .await?;
        }
        tx.commit().await?;
    }
    // Wherever it came from, the page is where the person goes (a stale link still helps).
    Ok(axum::response::Redirect::to(&format!("{public}/consultations")).into_response())
}
