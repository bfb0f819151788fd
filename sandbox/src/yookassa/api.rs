//! The API: `/yookassa/v3/…`, HTTP Basic auth, `Idempotence-Key` on every POST, YooKassa's
//! error bodies, and the faults a test asked for.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::shop::{Fault, Payment, Refund, Stored, YooKassa, object_id, timestamp};
use super::validate::{self, Invalid};

pub fn router(y: YooKassa) -> Router {
    Router::new()
        .route("/yookassa/v3/payments", post(create_payment))
        .route("/yookassa/v3/payments/{id}", get(get_payment))
        .route("/yookassa/v3/payments/{id}/capture", post(capture))
        .route("/yookassa/v3/payments/{id}/cancel", post(cancel))
        .route("/yookassa/v3/refunds", post(create_refund))
        .route("/yookassa/v3/refunds/{id}", get(get_refund))
        .route("/yookassa/v3/receipts", get(list_receipts))
        .route("/yookassa/v3/receipts/{id}", get(get_receipt))
        .with_state(y)
}

/// An answer: status and JSON body.
type Answer = (StatusCode, Value);

fn error(status: StatusCode, code: &str, description: &str, parameter: Option<&str>) -> Answer {
    let mut body = json!({
        "type": "error",
        "id": uuid::Uuid::new_v4().to_string(),
        "code": code,
        "description": description,
    });
    if let Some(p) = parameter {
        body["parameter"] = json!(p);
    }
    (status, body)
}

fn refused(e: Invalid) -> Answer {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &e.description,
        Some(&e.parameter),
    )
}

fn not_found(what: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{what} not found"),
        None,
    )
}

fn respond((status, body): Answer) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Json(body),
    )
        .into_response()
}

/// Basic auth with the shop id and the secret key.
fn authorized(y: &YooKassa, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return false;
    };
    let expected = format!("{}:{}", y.options.shop_id, y.options.secret_key);
    // Constant time is not needed in a stand-in, but costs nothing.
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn unauthorized() -> Response {
    respond(error(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "Login fails, authentication is required. Please check your shop id and secret key.",
        None,
    ))
}

/// A fault for `route`, if a test asked for one: the answer to give instead, or what to do
/// after the work.
enum Injected {
    Answer(Answer),
    After(Fault),
    None,
}

fn inject(y: &YooKassa, route: &str) -> Injected {
    match y.take_fault(route) {
        None => Injected::None,
        Some(Fault::Accepted) => {
            let mut a = error(
                StatusCode::ACCEPTED,
                "accepted",
                "The request is being processed; repeat it later",
                None,
            );
            a.1["retry_after"] = json!(300);
            Injected::Answer(a)
        }
        Some(Fault::TooManyRequests) => {
            let mut a = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests at once. Repeat the request later",
                None,
            );
            a.1["retry_after"] = json!(500);
            Injected::Answer(a)
        }
        Some(Fault::ServerError) => Injected::Answer(server_error()),
        Some(f @ (Fault::LostAnswer | Fault::Slow)) => Injected::After(f),
    }
}

fn server_error() -> Answer {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_server_error",
        "Internal server error. Repeat the request with the same Idempotence-Key later",
        None,
    )
}

async fn after(fault: Injected, answer: Answer) -> Response {
    match fault {
        Injected::After(Fault::LostAnswer) => respond(server_error()),
        Injected::After(Fault::Slow) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            respond(answer)
        }
        _ => respond(answer),
    }
}

/// A POST: auth, the key, faults, the idempotence store, then `op` on the parsed body.
async fn post_call(
    y: &YooKassa,
    headers: &HeaderMap,
    route: &str,
    body: &Bytes,
    op: impl FnOnce(&YooKassa, Value) -> Answer,
) -> Response {
    y.count_request();
    if !authorized(y, headers) {
        return unauthorized();
    }
    let Some(key) = headers
        .get("Idempotence-Key")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
    else {
        return respond(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotence key is required",
            Some("Idempotence-Key"),
        ));
    };
    if !validate::idempotence_key(&key) {
        return respond(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Idempotence key is invalid: 1 to 64 of 0-9, a-z, A-Z, +, -, _, .",
            Some("Idempotence-Key"),
        ));
    }
    let fault = inject(y, route);
    if let Injected::Answer(a) = fault {
        return respond(a);
    }
    let parsed: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return respond(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "The request body is not valid JSON",
                    None,
                ));
            }
        }
    };
    if !body.is_empty() {
        y.state().bodies.push((route.to_owned(), parsed.clone()));
    }
    let request = (route.to_owned(), parsed.clone());
    // Decided under the lock, answered after it (a guard is never held across an await).
    let replay: Option<Answer> = {
        let mut s = y.state();
        let ttl = y.options.idempotence_ttl;
        s.idempotence.retain(|_, v| v.at.elapsed() < ttl);
        s.idempotence.get(&key).map(|stored| {
            if stored.request != request {
                error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Idempotence key duplicated",
                    Some("Idempotence-Key"),
                )
            } else {
                (StatusCode::OK, stored.body.clone())
            }
        })
    };
    if let Some(answer) = replay {
        if answer.0 != StatusCode::OK {
            return respond(answer);
        }
        return after(fault, answer).await;
    }
    let answer = op(y, parsed);
    if answer.0 == StatusCode::OK {
        y.state().idempotence.insert(
            key,
            Stored {
                request,
                at: Instant::now(),
                body: answer.1.clone(),
            },
        );
    }
    after(fault, answer).await
}

/// A GET: auth and faults.
async fn get_call(
    y: &YooKassa,
    headers: &HeaderMap,
    route: &str,
    op: impl FnOnce(&YooKassa) -> Answer,
) -> Response {
    y.count_request();
    if !authorized(y, headers) {
        return unauthorized();
    }
    let fault = inject(y, route);
    if let Injected::Answer(a) = fault {
        return respond(a);
    }
    let answer = op(y);
    after(fault, answer).await
}

async fn create_payment(State(y): State<YooKassa>, headers: HeaderMap, body: Bytes) -> Response {
    post_call(&y, &headers, "POST /payments", &body, |y, body| {
        let new = match validate::payment(&body) {
            Ok(n) => n,
            Err(e) => return refused(e),
        };
        let payment = Payment {
            id: object_id(),
            status: "pending".into(),
            amount: new.amount,
            description: new.description,
            capture: new.capture,
            metadata: new.metadata,
            receipt: Some(new.receipt),
            return_url: new.return_url,
            created_at: timestamp(),
            created: Instant::now(),
            captured_at: None,
            expires_at: None,
            paid: false,
            refunded: 0,
            cancellation: None,
        };
        let body = y.payment_json_after_insert(payment);
        (StatusCode::OK, body)
    })
    .await
}

async fn get_payment(
    State(y): State<YooKassa>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    get_call(&y, &headers, "GET /payments/{id}", |y| {
        {
            let mut s = y.state();
            y.expire_due(&mut s);
            y.register_due(&mut s);
        }
        match y.payment(&id) {
            Some(p) => (StatusCode::OK, y.payment_json(&p)),
            None => not_found("Payment"),
        }
    })
    .await
}

#[derive(Deserialize)]
struct CaptureBody {
    #[serde(default)]
    amount: Option<Value>,
}

async fn capture(
    State(y): State<YooKassa>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_call(&y, &headers, "POST /payments/{id}/capture", &body, |y, body| {
        let requested: CaptureBody = serde_json::from_value(body).unwrap_or(CaptureBody { amount: None });
        let answer = {
            let mut s = y.state();
            let Some(p) = s.payments.iter_mut().find(|p| p.id == id) else {
                return not_found("Payment");
            };
            if p.status != "waiting_for_capture" {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("Incorrect payment status: {}. The payment can be captured only in waiting_for_capture", p.status),
                    Some("status"),
                );
            }
            if let Some(a) = &requested.amount {
                match validate::amount(a, "amount") {
                    Ok(k) if k <= p.amount => p.amount = k,
                    Ok(_) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "invalid_request",
                            "The capture amount is more than the payment amount",
                            Some("amount"),
                        );
                    }
                    Err(e) => return refused(e),
                }
            }
            p.status = "succeeded".into();
            p.captured_at = Some(timestamp());
            p.expires_at = None;
            let p = p.clone();
            YooKassa::issue_receipt_for_payment(&mut s, &p, p.amount);
            YooKassa::payment_json_locked(&s, &y.options, &p)
        };
        y.notify("payment.succeeded", answer.clone());
        (StatusCode::OK, answer)
    })
    .await
}

async fn cancel(
    State(y): State<YooKassa>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    post_call(&y, &headers, "POST /payments/{id}/cancel", &body, |y, _| {
        let answer = {
            let mut s = y.state();
            let Some(p) = s.payments.iter_mut().find(|p| p.id == id) else {
                return not_found("Payment");
            };
            if p.status != "waiting_for_capture" {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("Incorrect payment status: {}. The payment can be canceled only in waiting_for_capture", p.status),
                    Some("status"),
                );
            }
            p.status = "canceled".into();
            p.expires_at = None;
            p.cancellation = Some(("merchant".into(), "canceled_by_merchant".into()));
            let p = p.clone();
            YooKassa::payment_json_locked(&s, &y.options, &p)
        };
        y.notify("payment.canceled", answer.clone());
        (StatusCode::OK, answer)
    })
    .await
}

async fn create_refund(State(y): State<YooKassa>, headers: HeaderMap, body: Bytes) -> Response {
    post_call(&y, &headers, "POST /refunds", &body, |y, body| {
        let Some(o) = body.as_object() else {
            return refused(Invalid {
                parameter: "body".into(),
                description: "The request body must be a JSON object".into(),
            });
        };
        let Some(payment_id) = o.get("payment_id").and_then(Value::as_str) else {
            return refused(Invalid {
                parameter: "payment_id".into(),
                description: "The payment_id parameter is required".into(),
            });
        };
        let amount = match validate::amount(o.get("amount").unwrap_or(&Value::Null), "amount") {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        let description = match o.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) if d.chars().count() <= 250 => Some(d.clone()),
            Some(_) => {
                return refused(Invalid {
                    parameter: "description".into(),
                    description: "The description is a string of at most 250 characters".into(),
                });
            }
        };
        let metadata = match validate::metadata(o.get("metadata")) {
            Ok(m) => m,
            Err(e) => return refused(e),
        };
        let answer = {
            let mut s = y.state();
            let Some(p) = s.payments.iter().find(|p| p.id == payment_id).cloned() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Payment doesn't exist or you don't have access to it",
                    Some("payment_id"),
                );
            };
            if p.status != "succeeded" {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!(
                        "Only a succeeded payment can be refunded; this one is {}",
                        p.status
                    ),
                    Some("payment_id"),
                );
            }
            if amount > p.amount - p.refunded {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!(
                        "The refund amount is more than what is left of the payment ({})",
                        validate::value_from_kopecks(p.amount - p.refunded)
                    ),
                    Some("amount"),
                );
            }
            let receipt = o.get("receipt").cloned();
            match (&p.receipt, &receipt) {
                (Some(_), None) => {
                    return refused(Invalid {
                        parameter: "receipt".into(),
                        description: "Receipt is missing or illegal".into(),
                    });
                }
                (_, Some(r)) => {
                    if let Err(e) = validate::receipt_data(r, amount, "receipt") {
                        return refused(e);
                    }
                }
                (None, None) => {}
            }
            let refund = Refund {
                id: object_id(),
                payment_id: p.id.clone(),
                status: "succeeded".into(),
                amount,
                description,
                receipt: receipt.clone(),
                metadata,
                created_at: timestamp(),
            };
            if let Some(pay) = s.payments.iter_mut().find(|q| q.id == p.id) {
                pay.refunded += amount;
            }
            if let Some(r) = &receipt {
                YooKassa::issue_receipt(&mut s, &p.id, Some(&refund.id), r, amount);
            }
            s.refunds.push(refund.clone());
            YooKassa::refund_json_locked(&s, &refund)
        };
        y.notify("refund.succeeded", answer.clone());
        (StatusCode::OK, answer)
    })
    .await
}

async fn get_refund(
    State(y): State<YooKassa>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    get_call(&y, &headers, "GET /refunds/{id}", |y| {
        let mut s = y.state();
        y.register_due(&mut s);
        match s.refunds.iter().find(|r| r.id == id) {
            Some(r) => (StatusCode::OK, YooKassa::refund_json_locked(&s, r)),
            None => not_found("Refund"),
        }
    })
    .await
}

#[derive(Deserialize)]
struct ReceiptQuery {
    #[serde(default)]
    payment_id: Option<String>,
    #[serde(default)]
    refund_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

async fn list_receipts(
    State(y): State<YooKassa>,
    headers: HeaderMap,
    Query(q): Query<ReceiptQuery>,
) -> Response {
    get_call(&y, &headers, "GET /receipts", |y| {
        let limit = match q.limit.as_deref().map(str::parse::<usize>) {
            None => 10,
            Some(Ok(l)) if (1..=100).contains(&l) => l,
            Some(_) => {
                return refused(Invalid {
                    parameter: "limit".into(),
                    description: "The limit must be 1 to 100".into(),
                });
            }
        };
        if q.payment_id.is_some() == q.refund_id.is_some() {
            return refused(Invalid {
                parameter: "payment_id".into(),
                description: "Specify either payment_id or refund_id".into(),
            });
        }
        let mut s = y.state();
        y.register_due(&mut s);
        let mut items: Vec<Value> = s
            .receipts
            .iter()
            .filter(|r| match (&q.payment_id, &q.refund_id) {
                (Some(p), None) => r.kind == "payment" && r.payment_id.as_deref() == Some(p),
                (None, Some(rf)) => r.refund_id.as_deref() == Some(rf),
                _ => false,
            })
            .map(YooKassa::receipt_json)
            .filter(|r| q.status.as_deref().is_none_or(|st| r["status"] == st))
            .collect();
        // Newest first.
        items.reverse();
        items.truncate(limit);
        (StatusCode::OK, json!({"type": "list", "items": items}))
    })
    .await
}

async fn get_receipt(
    State(y): State<YooKassa>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    get_call(&y, &headers, "GET /receipts/{id}", |y| {
        let mut s = y.state();
        y.register_due(&mut s);
        match s.receipts.iter().find(|r| r.id == id) {
            Some(r) => (StatusCode::OK, YooKassa::receipt_json(r)),
            None => not_found("Receipt"),
        }
    })
    .await
}
