//! `/sandbox/yookassa/…`: what a person does on YooKassa's side, and fault injection. JSON in and
//! out; not part of YooKassa's API.
//!
//! | route | does |
//! |---|---|
//! | `GET /sandbox/yookassa` | shop id, API URL, payments, refunds, receipts, notifications sent |
//! | `POST /sandbox/yookassa/payments/{id}/pay` | the person pays (as the page's button) |
//! | `POST /sandbox/yookassa/payments/{id}/decline {party, reason}` | the payment is declined |
//! | `POST /sandbox/yookassa/payments/{id}/expire` | nobody confirmed it: `expired_on_confirmation` |
//! | `POST /sandbox/yookassa/faults {route, fault, count}` | the next `count` calls of `route` (`POST /payments`…) fail so: `accepted` (202), `too_many_requests`, `server_error`, `lost_answer`, `slow` |
//! | `PUT /sandbox/yookassa/notifications {duplicates, delayMs, hold}` | how notifications go |
//! | `POST /sandbox/yookassa/notifications/release` | send the held ones, newest first |
//! | `POST /sandbox/yookassa/notify/{object id} {times}` | send an object's notification again |
//! | `PUT /sandbox/yookassa/notification-url {url}` | where notifications go (`null`: nowhere) |
//! | `PUT /sandbox/yookassa/receipts/stall {stalled}` | receipts are not registered while stalled |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::shop::{Fault, NotifyMode, Refused, YooKassa};

pub fn router(y: YooKassa) -> Router {
    Router::new()
        .route("/sandbox/yookassa", get(state))
        .route("/sandbox/yookassa/payments/{id}/pay", post(pay))
        .route("/sandbox/yookassa/payments/{id}/decline", post(decline))
        .route("/sandbox/yookassa/payments/{id}/expire", post(expire))
        .route("/sandbox/yookassa/faults", post(fault))
        .route("/sandbox/yookassa/notifications", put(notify_mode))
        .route("/sandbox/yookassa/notifications/release", post(release))
        .route("/sandbox/yookassa/notify/{id}", post(renotify))
        .route("/sandbox/yookassa/notification-url", put(notification_url))
        .route("/sandbox/yookassa/receipts/stall", put(stall))
        .with_state(y)
}

fn refused(e: Refused) -> Response {
    (StatusCode::CONFLICT, Json(json!({"error": e.0}))).into_response()
}

async fn state(State(y): State<YooKassa>) -> Json<Value> {
    let payments: Vec<Value> = y.payments().iter().map(|p| y.payment_json(p)).collect();
    let refunds: Vec<Value> = y.refunds().iter().map(|r| y.refund_json(r)).collect();
    let receipts: Vec<Value> = y.receipts().iter().map(YooKassa::receipt_json).collect();
    let sent: Vec<Value> = y
        .sent()
        .iter()
        .map(|s| json!({"event": s.event, "objectId": s.object_id, "answer": s.answer}))
        .collect();
    Json(json!({
        "shopId": y.options().shop_id,
        "apiUrl": y.api_url(),
        "notificationUrl": y.notification_url(),
        "payments": payments,
        "refunds": refunds,
        "receipts": receipts,
        "notificationsSent": sent,
    }))
}

async fn pay(State(y): State<YooKassa>, Path(id): Path<String>) -> Response {
    match y.pay(&id) {
        Ok(p) => Json(y.payment_json(&p)).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Decline {
    party: Option<String>,
    reason: Option<String>,
}

async fn decline(
    State(y): State<YooKassa>,
    Path(id): Path<String>,
    body: Option<Json<Decline>>,
) -> Response {
    let d = body.map(|Json(d)| d).unwrap_or_default();
    let party = d.party.unwrap_or_else(|| "payment_network".into());
    let reason = d.reason.unwrap_or_else(|| "insufficient_funds".into());
    match y.decline(&id, &party, &reason) {
        Ok(p) => Json(y.payment_json(&p)).into_response(),
        Err(e) => refused(e),
    }
}

async fn expire(State(y): State<YooKassa>, Path(id): Path<String>) -> Response {
    match y.decline(&id, "yoo_money", "expired_on_confirmation") {
        Ok(p) => Json(y.payment_json(&p)).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct FaultRequest {
    route: String,
    fault: Fault,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

async fn fault(State(y): State<YooKassa>, Json(f): Json<FaultRequest>) -> StatusCode {
    y.add_fault(&f.route, f.fault, f.count);
    StatusCode::NO_CONTENT
}

async fn notify_mode(State(y): State<YooKassa>, Json(mode): Json<NotifyMode>) -> StatusCode {
    y.set_notify_mode(mode);
    StatusCode::NO_CONTENT
}

async fn release(State(y): State<YooKassa>) -> Json<Value> {
    Json(json!({"released": y.release_notifications()}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Times {
    times: Option<u32>,
}

async fn renotify(
    State(y): State<YooKassa>,
    Path(id): Path<String>,
    body: Option<Json<Times>>,
) -> Response {
    let times = body.and_then(|Json(t)| t.times).unwrap_or(1);
    match y.renotify(&id, times) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct Url {
    url: Option<String>,
}

async fn notification_url(State(y): State<YooKassa>, Json(u): Json<Url>) -> StatusCode {
    y.set_notification_url(u.url);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Stall {
    stalled: bool,
}

async fn stall(State(y): State<YooKassa>, Json(s): Json<Stall>) -> StatusCode {
    y.stall_receipts(s.stalled);
    StatusCode::NO_CONTENT
}
