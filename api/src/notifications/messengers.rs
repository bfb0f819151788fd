//! The messenger channels: MAX (a bot) and edna Pulse (a cascade: a messenger, then SMS).
//!
//! Sending: each delivery is one outbound call (`max` / `edna`), queued with it. MAX: accepted
//! → `sent`; refused (the user never started the bot, or stopped it) → `failed` and the next
//! channel at once; down → retried with backoff, `failed` after [`ATTEMPTS`]. MAX has no
//! idempotency key, so a lost answer may mean a second copy on a repeat. edna: accepted → stays
//! `queued` until its callbacks say more; the `requestId` is the delivery's id, so a repeat is
//! recognised (`requestId-is-not-unique` is success).
//!
//! Receiving: the MAX webhook (`X-Max-Bot-Api-Secret`, compared in constant time) and the edna
//! status callback (its key header, configurable) are verified, stored in the inbound store
//! (a repeat is dropped) and answered at once; [`handle_inbound`] processes them: `bot_started`
//! with a link code links the person's MAX account, `bot_stopped` unlinks it,
//! `message_callback` «Прочитано» marks the message read (`max.button`); edna's statuses move
//! the delivery (`edna`), a failure falls back after `edna.fallback_after` unless a later stage
//! of the cascade delivered it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use vizit_integrations::edna::{Callback, Reported};
use vizit_integrations::max::Button;

use super::channels::{self, Channel};
use super::log::{self, Status};
use super::notices::{FALLBACK, Notices};
use crate::http::ApiError;
use crate::platform::inbound::{NewEvent, Stored, same_secret};
use crate::platform::outbound::{self, Call, Executor, NewCall, Outcome};
use crate::platform::throttle::REFUSAL_LOG_EVERY;
use crate::platform::{BoxFuture, Throttle};
use crate::state::ApiState;

/// Tries of a message while its channel is down before it counts as failed (and falls back).
pub const ATTEMPTS: i64 = 5;
/// The label of the read button under MAX messages.
pub const READ_BUTTON: &str = "Прочитано";
/// A MAX link code works this long.
pub const LINK_TTL_MS: i64 = 30 * 60_000;
/// Processing a stored event failed: try again after this.
const RETRY_MS: i64 = 30_000;

/// The calls of one messenger.
pub struct MessengerCalls {
    pub channel: Channel,
    pub notices: Notices,
}

impl MessengerCalls {
    async fn run(&self, call: &Call) -> Result<Outcome, sqlx::Error> {
        let payload = call.payload.clone().unwrap_or(Value::Null);
        match (self.channel, call.operation.as_str()) {
            (_, "send") => self.send(call, &payload).await,
            (Channel::Max, "answer") => {
                let Some(max) = &self.notices.notifications.channels.max else {
                    return Ok(Outcome::Retry("MAX is not configured".into()));
                };
                let r = max
                    .client
                    .answer(
                        payload["callbackId"].as_str().unwrap_or_default(),
                        payload["text"].as_str().unwrap_or_default(),
                    )
                    .await;
                Ok(simple(r, call))
            }
            (Channel::Max, "text") => {
                let Some(max) = &self.notices.notifications.channels.max else {
                    return Ok(Outcome::Retry("MAX is not configured".into()));
                };
                let Some(user) = payload["userId"].as_str().and_then(|u| u.parse().ok()) else {
                    return Ok(Outcome::Failed("no MAX user named".into()));
                };
                let r = max
                    .client
                    .send(user, payload["text"].as_str().unwrap_or_default(), &[])
                    .await
                    .map(|_| ());
                Ok(simple(r, call))
            }
            _ => Ok(Outcome::Failed(format!(
                "unknown operation {}",
                call.operation
            ))),
        }
    }

    async fn send(&self, call: &Call, payload: &Value) -> Result<Outcome, sqlx::Error> {
        let core = &self.notices.core;
        let Some(id) = payload["delivery"].as_str() else {
            return Ok(Outcome::Failed("no delivery named".into()));
        };
        let mut conn = core.db.pool.acquire().await?;
        let Some(d) = log::outgoing(&mut conn, id).await? else {
            return Ok(Outcome::Failed(format!("no delivery {id}")));
        };
        drop(conn);
        if d.status != Status::Queued.as_str() {
            return Ok(Outcome::Done);
        }
        let body: Value = d
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        let address = d.address.clone().unwrap_or_default();
        let text = body["text"].as_str().unwrap_or_default();
        let link = body["link"].as_str().unwrap_or_default();
        let action = body["action"].as_str().unwrap_or("Открыть");
        let channels = &self.notices.notifications.channels;
        // Ok(Some(provider id)) / Ok(None): taken; Err((message, retryable)).
        let result: Result<Option<String>, (String, bool)> = match self.channel {
            Channel::Max => {
                let Some(max) = &channels.max else {
                    return Ok(Outcome::Retry("MAX is not configured".into()));
                };
                match address.parse::<i64>() {
                    Err(_) => Err(("not a MAX user id".into(), false)),
                    Ok(user) => {
                        let rows = vec![
                            vec![Button::Callback {
                                text: READ_BUTTON.into(),
                                payload: format!("read:{}", body["read"].as_str().unwrap_or("")),
                            }],
                            vec![Button::Link {
                                text: action.into(),
                                url: link.into(),
                            }],
                        ];
                        max.client
                            .send(user, text, &rows)
                            .await
                            .map(Some)
                            .map_err(|e| (e.to_string(), e.is_retryable()))
                    }
                }
            }
            Channel::Edna => {
                let Some(edna) = &channels.edna else {
                    return Ok(Outcome::Retry("edna is not configured".into()));
                };
                edna.client
                    .schedule(
                        &d.id,
                        &address,
                        body["sms"].as_str().unwrap_or(text),
                        Some((action, link)),
                    )
                    .await
                    .map(|()| None)
                    .map_err(|e| (e.to_string(), e.is_retryable()))
            }
            Channel::Email => return Ok(Outcome::Failed("e-mail is sent by smtp".into())),
        };
        let now = core.now();
        match result {
            Ok(provider) => {
                let mut tx = core.db.begin_write().await?;
                if let Some(p) = &provider {
                    log::set_provider_id(&mut tx, &d.id, p).await?;
                }
                if self.channel == Channel::Max {
                    log::apply(&mut tx, &d.id, Status::Sent, "max", None, now).await?;
                }
                tx.commit().await?;
                tracing::info!(delivery = %d.id, channel = self.channel.as_str(), "message taken by the messenger");
                Ok(Outcome::Done)
            }
            Err((error, true)) if call.attempt < ATTEMPTS => {
                tracing::warn!(delivery = %d.id, channel = self.channel.as_str(), %error, "messenger unavailable; retrying");
                Ok(Outcome::Retry(error))
            }
            Err((error, _)) => {
                let mut tx = core.db.begin_write().await?;
                if log::apply(
                    &mut tx,
                    &d.id,
                    Status::Failed,
                    self.channel.as_str(),
                    Some(&error),
                    now,
                )
                .await?
                {
                    self.notices.fall_back(&mut tx, &d.id).await?;
                }
                tx.commit().await?;
                self.notices.notifications.wake();
                tracing::warn!(delivery = %d.id, channel = self.channel.as_str(), %error, "message refused; the next channel is tried");
                Ok(Outcome::Failed(error))
            }
        }
    }
}

/// The outcome of a MAX call that has no delivery behind it (an answer, a greeting).
fn simple(r: Result<(), vizit_integrations::max::Error>, call: &Call) -> Outcome {
    match r {
        Ok(()) => Outcome::Done,
        Err(e) if e.is_retryable() && call.attempt < ATTEMPTS => Outcome::Retry(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

impl Executor for MessengerCalls {
    fn system(&self) -> &'static str {
        self.channel.system()
    }

    fn inline_timeout(&self) -> Duration {
        Duration::ZERO
    }

    fn execute<'a>(
        &'a self,
        call: &'a Call,
        _inline: bool,
    ) -> BoxFuture<'a, Result<Outcome, sqlx::Error>> {
        Box::pin(self.run(call))
    }

    fn finished(&self, _call: &Call, _outcome: &Outcome) {
        self.notices.notifications.wake();
    }

    fn batch(&self) -> i64 {
        10
    }
}

/// `POST /api/v1/integrations/max/webhook`: an update from MAX. Verified, stored, answered.
#[utoipa::path(post, path = "/api/v1/integrations/max/webhook", tag = "notifications",
    request_body(content = String, description = "a MAX `Update`", content_type = "application/json"),
    responses((status = 200, description = "stored (or a repeat, or an update Vizit does not use)"),
        (status = 400, body = crate::http::Problem, description = "not an update"),
        (status = 401, body = crate::http::Problem, description = "wrong or missing X-Max-Bot-Api-Secret"),
        (status = 404, body = crate::http::Problem, description = "MAX is not configured")))]
pub async fn max_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Some(max) = state
        .notifications
        .as_ref()
        .and_then(|n| n.channels.max.as_ref())
    else {
        return Err(ApiError::NotFound("MAX integration"));
    };
    let given = headers
        .get("x-max-bot-api-secret")
        .and_then(|v| v.to_str().ok());
    if !same_secret(max.webhook_secret.expose_secret(), given) {
        static REFUSED: Throttle = Throttle::new(REFUSAL_LOG_EVERY);
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(
                refused_since_last = more,
                "a MAX update with a wrong or missing secret was refused"
            );
        }
        return Err(ApiError::Unauthenticated);
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "not a JSON update"))?;
    let kind = v["update_type"].as_str().unwrap_or_default();
    let (dedup, object) = match kind {
        "bot_started" | "bot_stopped" => {
            let user = v["user"]["user_id"].as_i64().unwrap_or_default();
            (
                format!(
                    "{kind}:{user}:{}",
                    v["timestamp"].as_i64().unwrap_or_default()
                ),
                user.to_string(),
            )
        }
        "message_callback" => {
            let id = v["callback"]["callback_id"].as_str().unwrap_or_default();
            if id.is_empty() {
                return Err(ApiError::bad_request("invalid_body", "no callback_id"));
            }
            (format!("callback:{id}"), id.to_owned())
        }
        _ => return Ok(StatusCode::OK),
    };
    let stored = state
        .inbound
        .store(NewEvent {
            system: Channel::Max.system(),
            dedup_key: &dedup,
            event: kind,
            object_id: Some(&object),
            payload: Some(&v.to_string()),
        })
        .await?;
    if let (Stored::New(_), Some(n)) = (stored, &state.notifications) {
        n.wake();
    }
    Ok(StatusCode::OK)
}

/// `POST /api/v1/integrations/edna/status`: a status callback from edna. Verified, stored,
/// answered.
#[utoipa::path(post, path = "/api/v1/integrations/edna/status", tag = "notifications",
    request_body(content = String, description = "an edna status callback", content_type = "application/json"),
    responses((status = 200, description = "stored (or a repeat)"),
        (status = 400, body = crate::http::Problem, description = "not a status callback"),
        (status = 401, body = crate::http::Problem, description = "wrong or missing webhook key"),
        (status = 404, body = crate::http::Problem, description = "edna is not configured")))]
pub async fn edna_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Some(edna) = state
        .notifications
        .as_ref()
        .and_then(|n| n.channels.edna.as_ref())
    else {
        return Err(ApiError::NotFound("edna integration"));
    };
    let given = headers
        .get(edna.callback_header.as_str())
        .and_then(|v| v.to_str().ok());
    if !same_secret(edna.callback_value.expose_secret(), given) {
        static REFUSED: Throttle = Throttle::new(REFUSAL_LOG_EVERY);
        if let Some(more) = REFUSED.allow() {
            tracing::warn!(
                refused_since_last = more,
                "an edna status callback with a wrong or missing key was refused"
            );
        }
        return Err(ApiError::Unauthenticated);
    }
    let cb: Callback = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "not an edna status callback"))?;
    let request = cb.request_id.clone().unwrap_or_default();
    let dedup = format!(
        "{request}:{}:{}",
        cb.status.to_ascii_uppercase(),
        cb.cascade_stage_uuid.as_deref().unwrap_or("")
    );
    let stored = state
        .inbound
        .store(NewEvent {
            system: Channel::Edna.system(),
            dedup_key: &dedup,
            event: &cb.status.to_ascii_uppercase(),
            object_id: Some(&request),
            payload: Some(&String::from_utf8_lossy(&body)),
        })
        .await?;
    if let (Stored::New(_), Some(n)) = (stored, &state.notifications) {
        n.wake();
    }
    Ok(StatusCode::OK)
}

/// `HEAD` on the edna callback URL: edna checks a new URL this way.
pub async fn edna_check() -> StatusCode {
    StatusCode::OK
}

/// Process the stored MAX and edna events. Returns how many.
pub async fn handle_inbound(state: &ApiState, notices: &Notices) -> Result<usize, sqlx::Error> {
    let mut count = 0;
    for channel in [Channel::Max, Channel::Edna] {
        let (events, lease) = state.inbound.claim(channel.system(), 50).await?;
        count += events.len();
        for e in events {
            let payload: Value = e
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or(Value::Null);
            let mut tx = state.db.begin_write().await?;
            let outcome = match channel {
                Channel::Max => max_event(&mut tx, notices, &e.event, &payload).await,
                _ => edna_event(&mut tx, notices, &payload).await,
            };
            match outcome {
                Ok(outcome) => {
                    tx.commit().await?;
                    state.inbound.processed(e.id, lease, &outcome).await?;
                }
                Err(err) => {
                    drop(tx);
                    state
                        .inbound
                        .release(&[e.id], lease, &err.to_string(), state.now() + RETRY_MS)
                        .await?;
                }
            }
        }
    }
    if count > 0 {
        notices.notifications.wake();
    }
    Ok(count)
}

async fn queue_max(
    conn: &mut sqlx::AnyConnection,
    operation: &str,
    key: &str,
    payload: Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    outbound::enqueue(
        conn,
        NewCall {
            system: Channel::Max.system(),
            operation,
            consultation_id: key,
            payload: Some(payload),
        },
        now,
    )
    .await?;
    Ok(())
}

async fn max_event(
    conn: &mut sqlx::AnyConnection,
    notices: &Notices,
    kind: &str,
    v: &Value,
) -> Result<String, sqlx::Error> {
    let now = notices.core.now();
    let clinic = &notices.notifications.settings.clinic_name;
    match kind {
        "bot_started" => {
            let user = v["user"]["user_id"]
                .as_i64()
                .unwrap_or_default()
                .to_string();
            let code = v["payload"].as_str().unwrap_or_default();
            let person = if code.is_empty() {
                None
            } else {
                channels::take_code(conn, code, Channel::Max, now).await?
            };
            let text = match &person {
                Some(p) => {
                    channels::set_link(conn, p, Channel::Max, &user, now).await?;
                    format!(
                        "{clinic}\n\nMAX подключён: уведомления о консультациях будут приходить сюда. \
                         Чтобы отключить их, остановите бота."
                    )
                }
                None => format!(
                    "{clinic}\n\nСсылка для подключения недействительна или устарела (она действует \
                     30 минут и один раз). Попросите у клиники новую."
                ),
            };
            queue_max(
                conn,
                "text",
                &format!("max:user:{user}"),
                json!({"userId": user, "text": text}),
                now,
            )
            .await?;
            Ok(match person {
                Some(_) => "bot_started: linked".into(),
                None => "bot_started: no valid link code; told how to link".into(),
            })
        }
        "bot_stopped" => {
            let user = v["user"]["user_id"]
                .as_i64()
                .unwrap_or_default()
                .to_string();
            let n = channels::unlink(conn, Channel::Max, None, Some(&user)).await?;
            Ok(format!("bot_stopped: {n} link(s) removed"))
        }
        "message_callback" => {
            let cb = &v["callback"];
            let id = cb["callback_id"].as_str().unwrap_or_default();
            let payload = cb["payload"].as_str().unwrap_or_default();
            let delivery = match payload.strip_prefix("read:") {
                Some(token) if token.len() == 64 => log::by_token(conn, token).await?,
                _ => None,
            };
            let (text, outcome) = match &delivery {
                Some(d) => {
                    log::apply(conn, d, Status::Read, "max.button", None, now).await?;
                    (
                        "Спасибо, отмечено как прочитанное.",
                        "message_callback: read",
                    )
                }
                None => (
                    "Это сообщение больше не отслеживается.",
                    "message_callback: unknown message; ignored",
                ),
            };
            queue_max(
                conn,
                "answer",
                &format!("max:callback:{id}"),
                json!({"callbackId": id, "text": text}),
                now,
            )
            .await?;
            Ok(outcome.into())
        }
        other => Ok(format!("{other}: not used")),
    }
}

async fn edna_event(
    conn: &mut sqlx::AnyConnection,
    notices: &Notices,
    v: &Value,
) -> Result<String, sqlx::Error> {
    let Ok(cb) = serde_json::from_value::<Callback>(v.clone()) else {
        return Ok("not a status callback; ignored".into());
    };
    let now = notices.core.now();
    let request = cb.request_id.clone().unwrap_or_default();
    let delivery = match log::outgoing(conn, &request).await? {
        Some(d) if d.channel == Channel::Edna.as_str() => d,
        _ => {
            tracing::warn!(status = %cb.status, "an edna status for a message Vizit never sent; ignored");
            return Ok(format!("{}: unknown message; ignored", cb.status));
        }
    };
    let status = match cb.reported() {
        Some(Reported::Sent) => Status::Sent,
        Some(Reported::Delivered) => Status::Delivered,
        Some(Reported::Read) => Status::Read,
        Some(Reported::Failed) => Status::Failed,
        Some(Reported::Pending) => return Ok(format!("{}: on its way", cb.status)),
        None => return Ok(format!("{}: unknown status; ignored", cb.status)),
    };
    if let Some(id) = cb.message_id {
        log::set_provider_id(conn, &delivery.id, &id.to_string()).await?;
    }
    let detail = cb
        .error
        .as_deref()
        .map(|e| format!("edna: {} ({e})", cb.status));
    let moved = log::apply(conn, &delivery.id, status, "edna", detail.as_deref(), now).await?;
    if moved && status == Status::Failed {
        let after = notices
            .notifications
            .channels
            .edna
            .as_ref()
            .map(|e| e.fallback_after)
            .unwrap_or_default();
        notices
            .scheduler
            .schedule(
                conn,
                FALLBACK,
                &format!("{FALLBACK}:{}", delivery.id),
                now + after.as_millis() as i64,
                Some(json!({"delivery": delivery.id})),
            )
            .await?;
    }
    Ok(format!(
        "{}: {}",
        cb.status,
        if moved {
            status.as_str()
        } else {
            "nothing new"
        }
    ))
}

/// Register the messenger executors that are configured.
pub fn register(state: &ApiState, notices: &Notices) {
    let channels = &notices.notifications.channels;
    for (channel, on) in [
        (Channel::Max, channels.max.is_some()),
        (Channel::Edna, channels.edna.is_some()),
    ] {
        if on {
            state.outbound.register(Arc::new(MessengerCalls {
                channel,
                notices: notices.clone(),
            }));
        }
    }
}
