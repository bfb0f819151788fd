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
    /// link was opened), `max` (the MAX API took it), `max.button` («Прочитано» pressed),
    /// `edna` (edna's status callback).
    pub source: String,
    pub at: String,
}

/// A notification on one channel.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    /// `email`, `max` or `edna`.
    pub channel: String,
    /// `queued`, `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    /// The statuses this channel can really report; any other is "not reported by this
    /// channel" (neither e-mail nor MAX can report `delivered`; their `read` is an explicit
    /// action of the recipient: the link opened, «Прочитано» pressed).
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
    /// `patient.review`, `patient.questionnaire_symptoms`, `patient.questionnaire_anamnesis`,
    /// `patient.deletion_answered`, `patient.deletion_extended`, `patient.rescheduled`,
    /// `doctor.must_close`, `doctor.reminder`, `doctor.cancelled`, `doctor.rescheduled`,
    /// `admin.not_closed`, `admin.deletion_request`,
    /// `admin.deletion_overdue`, `head_doctor.not_closed`.
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
    super::channels::Channel::parse(channel)
        .map(|c| c.reports().iter().map(|s| s.as_str().to_owned()).collect())
        .unwrap_or_default()
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
                    id: d.id.clone(),
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

/// One channel as a person sees it on their notification settings.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub channel: super::channels::Channel,
    /// The clinic sends by it.
    pub enabled: bool,
    /// It reaches this person (an e-mail, a phone, a linked MAX account).
    pub reachable: bool,
    /// What it can report: `sent`, `delivered`, `read`, `failed`.
    pub reports: Vec<String>,
    /// What `read` means on it.
    pub read_means: String,
}

/// A person's notification channels.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyChannels {
    /// Every channel, with what it can do for this person.
    pub channels: Vec<ChannelView>,
    /// The order messages are tried in for this person (a failure falls back to the next if
    /// `fallback`).
    pub order: Vec<super::channels::Channel>,
    /// The person chose the order (false: the clinic's).
    pub chosen: bool,
    pub fallback: bool,
    /// When their MAX account was linked, if it is.
    pub max_linked_at: Option<String>,
}

async fn my_view(
    state: &ApiState,
    n: &std::sync::Arc<super::Notifications>,
    user: &str,
) -> Result<MyChannels, ApiError> {
    use super::channels::Channel;
    let mut conn = state.db.pool.acquire().await?;
    let person = super::log::person(&mut conn, user)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let link = super::channels::link(&mut conn, user, Channel::Max).await?;
    let notices = super::notices::Notices::of(state, n);
    let enabled = n.enabled();
    let channels = Channel::ALL
        .into_iter()
        .map(|c| ChannelView {
            channel: c,
            enabled: enabled.contains(&c),
            reachable: super::notices::address(&person, c).is_some(),
            reports: c.reports().iter().map(|s| s.as_str().to_owned()).collect(),
            read_means: c.read_means().to_owned(),
        })
        .collect();
    Ok(MyChannels {
        channels,
        order: notices.order_for(&person),
        chosen: person.channels.is_some(),
        fallback: n.channels.fallback,
        max_linked_at: link.map(|(_, at)| to_rfc3339(at)),
    })
}

fn signed_in(caller: &Caller) -> Result<String, ApiError> {
    caller
        .user_id()
        .map(str::to_owned)
        .ok_or(ApiError::Forbidden(
            "only a signed-in person has notification settings",
        ))
}

fn configured(state: &ApiState) -> Result<std::sync::Arc<super::Notifications>, ApiError> {
    state
        .notifications
        .clone()
        .ok_or(ApiError::NotFound("notifications (no e-mail configured)"))
}

/// The caller's notification channels (any signed-in person).
#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = MyChannels), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn my_channels(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<MyChannels>, ApiError> {
    let user = signed_in(&caller)?;
    let n = configured(&state)?;
    Ok(Json(my_view(&state, &n, &user).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChooseChannels {
    /// The channels wanted, in order (each one the clinic sends by); `null`: the clinic's order.
    pub channels: Option<Vec<super::channels::Channel>>,
}

/// Choose the caller's channels and their order. Audited.
#[utoipa::path(put, path = "/api/v1/me/notifications", tag = "notifications", security(("bearer" = [])),
    request_body = ChooseChannels,
    responses((status = 200, body = MyChannels), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn choose_channels(
    State(state): State<ApiState>,
    caller: Caller,
    crate::http::Body(body): crate::http::Body<ChooseChannels>,
) -> Result<Json<MyChannels>, ApiError> {
    let user = signed_in(&caller)?;
    let n = configured(&state)?;
    let enabled = n.enabled();
    if let Some(list) = &body.channels {
        if list.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_field",
                "channels: name at least one, or null for the clinic's order",
            ));
        }
        if let Some(c) = list.iter().find(|c| !enabled.contains(c)) {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("channels: the clinic does not send by {}", c.as_str()),
            ));
        }
    }
    let mut tx = state.db.begin_write().await?;
    super::channels::set_preference(&mut tx, &user, body.channels.as_deref(), state.now()).await?;
    audit(
        &mut tx,
        Some(&caller),
        "notifications.channels",
        "user",
        Some(&user),
        serde_json::json!({"channels": body.channels.as_deref().map(super::channels::format_list)}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(my_view(&state, &n, &user).await?))
}

/// A link that connects the caller's MAX account.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaxLink {
    /// Open it in MAX and press «Начать»: the bot's deep link with a single-use code.
    pub url: String,
    pub expires_at: String,
}

/// Start linking the caller's MAX account: a deep link to the clinic's bot (30 minutes, single
/// use; a new one replaces the old).
#[utoipa::path(post, path = "/api/v1/me/notifications/max", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = MaxLink), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn link_max(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<MaxLink>, ApiError> {
    let user = signed_in(&caller)?;
    let n = configured(&state)?;
    let Some(max) = &n.channels.max else {
        return Err(ApiError::NotFound("MAX integration"));
    };
    let expires = state.now() + super::messengers::LINK_TTL_MS;
    let mut tx = state.db.begin_write().await?;
    let code =
        super::channels::new_code(&mut tx, &user, super::channels::Channel::Max, expires).await?;
    tx.commit().await?;
    Ok(Json(MaxLink {
        url: vizit_integrations::max::deep_link(&max.link_base, &max.bot_name, &code),
        expires_at: to_rfc3339(expires),
    }))
}

/// Disconnect the caller's MAX account. Audited.
#[utoipa::path(delete, path = "/api/v1/me/notifications/max", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = MyChannels), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unlink_max(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<MyChannels>, ApiError> {
    let user = signed_in(&caller)?;
    let n = configured(&state)?;
    let mut tx = state.db.begin_write().await?;
    let removed =
        super::channels::unlink(&mut tx, super::channels::Channel::Max, Some(&user), None).await?;
    if removed > 0 {
        audit(
            &mut tx,
            Some(&caller),
            "notifications.max_unlinked",
            "user",
            Some(&user),
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(my_view(&state, &n, &user).await?))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resend {
    /// The channel to send it by; unset: the recipient's first channel that reaches them.
    #[serde(default)]
    pub channel: Option<super::channels::Channel>,
}

/// The new delivery of a resent notification.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resent {
    pub channel: super::channels::Channel,
}

/// Send a notification again (admins and the portal), e.g. after a patient linked MAX or
/// corrected their e-mail. A new delivery with its own status. Audited.
#[utoipa::path(post, path = "/api/v1/admin/notifications/{id}/resend", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, description = "notification id")), request_body = Resend,
    responses((status = 200, body = Resent), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resend(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Resent>, ApiError> {
    caller.require(caller.is_clinic())?;
    let n = configured(&state)?;
    let id = uuid::Uuid::parse_str(&raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound("notification"))?;
    let only = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Resend>(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
            .channel
    };
    if let Some(c) = only
        && !n.enabled().contains(&c)
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("channel: the clinic does not send by {}", c.as_str()),
        ));
    }
    let mut tx = state.db.begin_write().await?;
    if super::log::notice(&mut tx, &id).await?.is_none() {
        return Err(ApiError::NotFound("notification"));
    }
    let Some(channel) = super::notices::Notices::of(&state, &n)
        .again(&mut tx, &id, &[], only)
        .await?
    else {
        return Err(ApiError::conflict(
            "unreachable",
            "no channel reaches the recipient (no e-mail, phone or linked MAX account), or the consultation is gone",
        ));
    };
    audit(
        &mut tx,
        Some(&caller),
        "notification.resend",
        "notification",
        Some(&id),
        serde_json::json!({"channel": channel.as_str()}),
    )
    .await?;
    tx.commit().await?;
    n.wake();
    Ok(Json(Resent { channel }))
}
