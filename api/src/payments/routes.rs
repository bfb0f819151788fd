//! HTTP of payments: the patient's checkout, a consultation's payments (with refunds and
//! receipts), the admins' lists and partial refunds, and YooKassa's notifications.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::repo::{self, PaymentRow, ReceiptRow, RefundRow};
use super::service::{self, Error};
use super::settings::{Payments, SYSTEM};
use crate::consultations;
use crate::domain::{Caller, ConsultationId, Role};
use crate::http::{ApiError, Body, Page, Params, Problem, id, page, text, time_range, to_rfc3339};
use crate::platform::inbound::{NewEvent, Stored};
use crate::platform::net;
use crate::state::ApiState;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => ApiError::NotFound(what),
            Error::NotPayable(_) => ApiError::conflict("not_payable", e.to_string()),
            Error::AlreadyPaid => ApiError::conflict("already_paid", e.to_string()),
            Error::ContactRequired => ApiError::bad_request("contact_required", e.to_string()),
            Error::InvalidContact(m) => ApiError::bad_request("invalid_field", m),
            Error::NotRefundable => ApiError::conflict("not_refundable", e.to_string()),
            Error::RefundTooLarge { .. } => {
                ApiError::bad_request("refund_too_large", e.to_string())
            }
            Error::Disabled => ApiError::conflict("payments_disabled", e.to_string()),
            Error::Provider(p) => ApiError::Upstream {
                code: "payment_provider_unavailable",
                message: p.to_string(),
            },
            Error::Db(e) => e.into(),
        }
    }
}

fn configured(state: &ApiState) -> Result<&Arc<Payments>, ApiError> {
    state
        .payments
        .as_ref()
        .ok_or_else(|| Error::Disabled.into())
}

/// A refund of a payment.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundView {
    pub id: String,
    pub payment_id: String,
    pub consultation_id: String,
    /// `creating` (on its way to YooKassa), `pending`, `succeeded`, `canceled`, `failed`.
    pub status: String,
    pub amount_kopecks: i64,
    pub reason: String,
    pub created_at: String,
    pub succeeded_at: Option<String>,
    pub last_error: Option<String>,
}

impl From<RefundRow> for RefundView {
    fn from(r: RefundRow) -> Self {
        RefundView {
            id: r.id,
            payment_id: r.payment_id,
            consultation_id: r.consultation_id,
            status: r.status,
            amount_kopecks: r.amount_kopecks,
            reason: r.reason,
            created_at: to_rfc3339(r.created_at),
            succeeded_at: r.succeeded_at.map(to_rfc3339),
            last_error: r.last_error,
        }
    }
}

/// A fiscal receipt (54-FZ) of a payment or refund, with its fiscal data once registered.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    pub id: String,
    pub payment_id: String,
    pub refund_id: Option<String>,
    /// `payment` (приход) or `refund` (возврат прихода).
    pub kind: String,
    /// `pending` until the provider registered it, then `registered`.
    pub status: String,
    pub amount_kopecks: i64,
    /// ФД.
    pub fiscal_document_number: Option<String>,
    /// ФН.
    pub fiscal_storage_number: Option<String>,
    /// ФП.
    pub fiscal_attribute: Option<String>,
    pub registered_at: Option<String>,
    /// Not registered in time: for an admin to look into.
    pub overdue: bool,
    pub emailed: bool,
    pub created_at: String,
}

impl From<ReceiptRow> for ReceiptView {
    fn from(r: ReceiptRow) -> Self {
        ReceiptView {
            overdue: r.flagged_at.is_some() && r.status == "pending",
            emailed: r.emailed_at.is_some(),
            id: r.id,
            payment_id: r.payment_id,
            refund_id: r.refund_id,
            kind: r.kind,
            status: r.status,
            amount_kopecks: r.amount_kopecks,
            fiscal_document_number: r.fiscal_document_number,
            fiscal_storage_number: r.fiscal_storage_number,
            fiscal_attribute: r.fiscal_attribute,
            registered_at: r.registered_at,
            created_at: to_rfc3339(r.created_at),
        }
    }
}

/// A payment attempt of a consultation.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub id: String,
    pub consultation_id: String,
    /// `awaiting_contact` (an e-mail or phone for the receipt is needed), `creating` (on its way
    /// to YooKassa), `pending` (the patient has not paid yet), `waiting_for_capture`,
    /// `succeeded`, `canceled`, `failed`.
    pub status: String,
    pub amount_kopecks: i64,
    pub refunded_kopecks: i64,
    /// YooKassa's page where the patient pays, while `pending`.
    pub confirmation_url: Option<String>,
    /// Why it was canceled (YooKassa's `cancellation_details.reason`).
    pub cancel_reason: Option<String>,
    pub created_at: String,
    pub succeeded_at: Option<String>,
    pub refunds: Vec<RefundView>,
    pub receipts: Vec<ReceiptView>,
}

async fn view(state: &ApiState, row: PaymentRow) -> Result<PaymentView, ApiError> {
    let mut one = views(state, vec![row]).await?;
    Ok(one.remove(0))
}

/// Payments as shown, with their refunds and receipts (read once for all of them).
async fn views(state: &ApiState, rows: Vec<PaymentRow>) -> Result<Vec<PaymentView>, ApiError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut refunds = repo::refunds_of_payments(&state.db.pool, &ids).await?;
    let mut receipts = repo::receipts_of_payments(&state.db.pool, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                refunds.drain(..).partition(|r| r.payment_id == row.id);
            refunds = rest;
            let (my_receipts, rest): (Vec<_>, Vec<_>) =
                receipts.drain(..).partition(|r| r.payment_id == row.id);
            receipts = rest;
            PaymentView {
                confirmation_url: (row.status == "pending")
                    .then_some(row.confirmation_url)
                    .flatten(),
                id: row.id,
                consultation_id: row.consultation_id,
                status: row.status,
                amount_kopecks: row.amount_kopecks,
                refunded_kopecks: row.refunded_kopecks,
                cancel_reason: row.cancel_reason,
                created_at: to_rfc3339(row.created_at),
                succeeded_at: row.succeeded_at.map(to_rfc3339),
                refunds: mine.into_iter().map(RefundView::from).collect(),
                receipts: my_receipts.into_iter().map(ReceiptView::from).collect(),
            }
        })
        .collect())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckoutRequest {
    /// Where the receipt goes, if the patient's registered contact is missing or another is
    /// wanted: an e-mail…
    #[serde(default)]
    email: Option<String>,
    /// …or a phone with its country code.
    #[serde(default)]
    phone: Option<String>,
}

/// Pay for a booked consultation: its payment at YooKassa (made now if there is none), and the
/// page where the patient pays (`confirmationUrl`). Its patient or the clinic. If YooKassa is
/// slow or down the payment is `creating` and reaches YooKassa later: ask again.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/checkout", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "consultation id")), request_body = CheckoutRequest,
    responses((status = 200, body = PaymentView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn checkout(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<CheckoutRequest>,
) -> Result<Json<PaymentView>, ApiError> {
    caller.require(caller.is(Role::Patient) || caller.is_clinic())?;
    let p = configured(&state)?.clone();
    let cid: ConsultationId = id(&raw, "consultation")?;
    let row = service::checkout(
        &state.core(),
        &p,
        &state.outbound,
        &caller,
        &cid,
        req.email.as_deref(),
        req.phone.as_deref(),
    )
    .await?;
    Ok(Json(view(&state, row).await?))
}

/// The payments of a consultation (every attempt, with its refunds and receipts): its patient,
/// the clinic and head doctors.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/payments", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "consultation id")),
    responses((status = 200, body = [PaymentView]), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn consultation_payments(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<Vec<PaymentView>>, ApiError> {
    caller.require(service::may_see(&caller))?;
    let cid: ConsultationId = id(&raw, "consultation")?;
    let row = consultations::load(&state.core(), &cid)
        .await?
        .filter(|r| consultations::visible_to(r, &caller))
        .ok_or(ApiError::NotFound("consultation"))?;
    let payments = repo::payments_of(&state.db.pool, &row.id).await?;
    Ok(Json(views(&state, payments).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PaymentQuery {
    /// Created at or after (RFC 3339).
    #[serde(default)]
    from: Option<String>,
    /// Created before (RFC 3339).
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    status: Option<String>,
    /// Receipts only: the overdue ones.
    #[serde(default)]
    overdue: Option<bool>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    Ok(caller.require(caller.is_clinic() || caller.is(Role::HeadDoctor))?)
}

/// Payments, newest first (admins, head doctors, the portal).
#[utoipa::path(get, path = "/api/v1/admin/payments", tag = "payments", security(("bearer" = [])), params(PaymentQuery),
    responses((status = 200, body = Page<PaymentView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_payments(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<PaymentQuery>,
) -> Result<Json<Page<PaymentView>>, ApiError> {
    require_admin(&caller)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let (total, rows) =
        repo::list_payments(&state.db.pool, from, to, q.status.as_deref(), limit, offset).await?;
    let items = views(&state, rows).await?;
    Ok(Json(Page {
        items,
        total,
        limit,
        offset,
    }))
}

/// Refunds, newest first (admins, head doctors, the portal).
#[utoipa::path(get, path = "/api/v1/admin/refunds", tag = "payments", security(("bearer" = [])), params(PaymentQuery),
    responses((status = 200, body = Page<RefundView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_refunds(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<PaymentQuery>,
) -> Result<Json<Page<RefundView>>, ApiError> {
    require_admin(&caller)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let (total, rows) =
        repo::list_refunds(&state.db.pool, from, to, q.status.as_deref(), limit, offset).await?;
    Ok(Json(Page {
        items: rows.into_iter().map(RefundView::from).collect(),
        total,
        limit,
        offset,
    }))
}

/// Receipts with their fiscal data, newest first; `overdue=true`: those not registered in time
/// (admins, head doctors, the portal).
#[utoipa::path(get, path = "/api/v1/admin/receipts", tag = "payments", security(("bearer" = [])), params(PaymentQuery),
    responses((status = 200, body = Page<ReceiptView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_receipts(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<PaymentQuery>,
) -> Result<Json<Page<ReceiptView>>, ApiError> {
    require_admin(&caller)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let (total, rows) = repo::list_receipts(
        &state.db.pool,
        from,
        to,
        q.status.as_deref(),
        q.overdue.unwrap_or(false),
        limit,
        offset,
    )
    .await?;
    Ok(Json(Page {
        items: rows.into_iter().map(ReceiptView::from).collect(),
        total,
        limit,
        offset,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefundRequest {
    amount_kopecks: i64,
    reason: String,
}

/// Refund (part of) a succeeded payment, with a reason (admins). Refused before any call to
/// YooKassa if it is more than what is left to refund.
#[utoipa::path(post, path = "/api/v1/payments/{id}/refunds", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "payment id")), request_body = RefundRequest,
    responses((status = 201, body = RefundView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn refund(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<RefundRequest>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    caller.require(caller.is(Role::Admin))?;
    let p = configured(&state)?.clone();
    let payment = uuid::Uuid::parse_str(&raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound("payment"))?;
    if req.amount_kopecks <= 0 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "amountKopecks must be positive",
        ));
    }
    let reason = text("reason", &req.reason, 250)?;
    let r = service::refund_by_admin(
        &state.core(),
        &p,
        &state.outbound,
        &caller,
        &payment,
        req.amount_kopecks,
        &reason,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(r.into())))
}

/// YooKassa's notifications (`payment.*`, `refund.*`). Accepted only from YooKassa's published
/// addresses (behind a reverse proxy: from `X-Forwarded-For` as the configured proxies say);
/// stored, deduplicated and answered at once; the object is then read back from YooKassa's API
/// and applied — a notification is never trusted as is.
#[utoipa::path(post, path = "/api/v1/integrations/yookassa/notifications", tag = "integrations",
    request_body(content = String, content_type = "application/json",
        description = "{\"type\": \"notification\", \"event\": \"payment.succeeded\", \"object\": {\"id\": \"…\", …}}"),
    responses((status = 200, description = "accepted (or a duplicate, or an event Vizit does not use)"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn notification(
    State(state): State<ApiState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = configured(&state)?.clone();
    let peer: Option<IpAddr> = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|h| h.to_str().ok());
    let source = peer.map(|ip| net::client_address(ip, forwarded, &p.settings.trusted_proxies));
    if !source.is_some_and(|ip| net::any_contains(&p.settings.notification_sources, ip)) {
        static REFUSED: crate::platform::Throttle =
            crate::platform::Throttle::new(crate::platform::throttle::REFUSAL_LOG_EVERY);
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(source = ?source, refused_since_last = more, "a YooKassa notification from an address YooKassa does not send from; ignored");
        }
        return Err(ApiError::Forbidden(
            "notifications are accepted from YooKassa's addresses only",
        ));
    }
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the notification is not JSON"))?;
    let event = parsed["event"].as_str().unwrap_or_default();
    let object = parsed["object"]["id"].as_str().unwrap_or_default();
    if parsed["type"] != "notification"
        || event.is_empty()
        || object.is_empty()
        || object.len() > 64
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a notification has type, event and object.id",
        ));
    }
    if !matches!(
        event,
        "payment.waiting_for_capture"
            | "payment.succeeded"
            | "payment.canceled"
            | "refund.succeeded"
    ) {
        return Ok((StatusCode::OK, "ignored").into_response());
    }
    let stored = state
        .inbound
        .store(NewEvent {
            system: SYSTEM,
            dedup_key: &format!("{event}:{object}"),
            event,
            object_id: Some(object),
            payload: None,
        })
        .await?;
    p.wake();
    Ok(match stored {
        Stored::New(_) => (StatusCode::OK, "accepted").into_response(),
        Stored::Duplicate => (StatusCode::OK, "duplicate").into_response(),
    })
}
