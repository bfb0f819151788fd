//! edna Pulse stand-in (`/edna/api/…`), as `shared/reference/integrations.md` §4.4 and
//! docs-pulse.edna.io describe it, for one account with one cascade:
//!
//! - `POST /api/cascade/schedule` with `X-API-KEY` (`401` otherwise): `requestId` unique
//!   (`400 requestId-is-not-unique`), `cascadeId` known (`400 cascade-not-found`), a `PHONE`
//!   subscriber, content for every stage of the cascade and for nothing else (`400
//!   request-doesn't-contain-content-for-all-cascade-stages`,
//!   `cascade-scheduling-request-not-valid`), text present (`text-not-specified`) → `200
//!   {"requestId"}`. Errors are problem JSON `{title, status, detail}`.
//! - `POST /api/callback/set {statusCallbackUrl}`: the URL is checked with a `HEAD` that must
//!   answer 200.
//! - Status callbacks per stage, uppercase: a messenger user gets `SENT`, `DELIVERED` and —
//!   when they open it on their phone page — `READ`; a phone without the messenger gets
//!   `UNDELIVERED` (`not-whatsapp-user`) on that stage and the SMS stage's `SENT`, `DELIVERED`
//!   (SMS has no read); an unreachable phone `UNDELIVERED` on every stage. Sent with the
//!   webhook key header (`Authorization: Token <key>` by default) through [`Hooks`].
//!
//! The phone's side is a page per number (`/sandbox/edna/phones/{phone}`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::hooks::{HookMode, Hooks};
use crate::html::escape;

#[derive(Debug, Clone)]
pub struct EdnaOptions {
    pub api_key: String,
    pub cascade_id: i64,
    /// The cascade's stages, in order: `whatsapp`, `viber`, `sms`.
    pub stages: Vec<String>,
    /// The header the webhook key goes in, and its value.
    pub callback_header: String,
    pub callback_value: String,
}

impl Default for EdnaOptions {
    fn default() -> Self {
        EdnaOptions {
            api_key: crate::bitrix24::random_code(32),
            cascade_id: 1001,
            stages: vec!["whatsapp".into(), "sms".into()],
            callback_header: "Authorization".into(),
            callback_value: format!("Token {}", crate::bitrix24::random_code(32)),
        }
    }
}

/// What the sandbox knows of a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subscriber {
    /// Has the messenger of the first stage.
    pub messenger: bool,
    /// Reachable at all (SMS arrives).
    pub reachable: bool,
}

impl Default for Subscriber {
    fn default() -> Self {
        Subscriber {
            messenger: true,
            reachable: true,
        }
    }
}

/// A message as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub request_id: String,
    pub message_id: i64,
    pub phone: String,
    /// The text of the first stage.
    pub text: String,
    /// The button URL of a messenger stage, if any.
    pub url: Option<String>,
    /// The stage it reached (`whatsapp`, `sms`), if any.
    pub stage: Option<String>,
    /// Every status sent, in order.
    pub statuses: Vec<String>,
}

#[derive(Default)]
struct State {
    base_url: String,
    callback_url: Option<String>,
    subscribers: HashMap<String, Subscriber>,
    messages: Vec<Message>,
    faults: VecDeque<u16>,
    next_id: i64,
    /// Every schedule body, as received.
    bodies: Vec<Value>,
}

/// The stand-in. Cheap to clone.
#[derive(Clone)]
pub struct Edna {
    state: Arc<Mutex<State>>,
    options: Arc<EdnaOptions>,
    pub hooks: Hooks,
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"title": title, "status": status.as_u16(), "detail": detail}).to_string(),
    )
        .into_response()
}

fn stage_uuid(stage: &str) -> String {
    format!("001-{stage}")
}

impl Edna {
    pub fn new(options: EdnaOptions) -> Edna {
        Edna {
            state: Arc::new(Mutex::new(State {
                next_id: 8_681_000,
                ..State::default()
            })),
            options: Arc::new(options),
            hooks: Hooks::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn options(&self) -> &EdnaOptions {
        &self.options
    }

    pub(crate) fn set_base_url(&self, url: String) {
        self.lock().base_url = url;
    }

    /// The API base (`…/edna`; the paths start with `/api`).
    pub fn api_url(&self) -> String {
        format!("{}/edna", self.lock().base_url)
    }

    /// Where status callbacks go (what `POST /api/callback/set` sets, without its check).
    pub fn set_callback_url(&self, url: Option<String>) {
        self.lock().callback_url = url;
    }

    pub fn set_subscriber(&self, phone: &str, s: Subscriber) {
        self.lock().subscribers.insert(phone.to_owned(), s);
    }

    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.lock().bodies.clone()
    }

    pub fn fail_next(&self, status: u16, count: usize) {
        let mut s = self.lock();
        for _ in 0..count {
            s.faults.push_back(status);
        }
    }

    /// Send a status of message `request_id` on `stage`.
    fn status(
        &self,
        s: &mut State,
        request_id: &str,
        stage: &str,
        status: &str,
        error: Option<&str>,
    ) {
        let Some(m) = s.messages.iter_mut().find(|m| m.request_id == request_id) else {
            return;
        };
        m.statuses.push(status.to_owned());
        let body = json!({
            "requestId": m.request_id, "messageId": m.message_id,
            "cascadeId": self.options.cascade_id, "cascadeStageUUID": stage_uuid(stage),
            "subject": format!("vizit_{stage}"), "subjectId": 2,
            "status": status, "statusAt": now_rfc3339(),
            "error": error, "comment": Value::Null, "paymentData": Value::Null,
        });
        if let Some(url) = s.callback_url.clone() {
            self.hooks.send(
                &url,
                Some((&self.options.callback_header, &self.options.callback_value)),
                body,
            );
        }
    }

    /// Run the cascade of a new message.
    fn cascade(&self, s: &mut State, request_id: &str, phone: &str) {
        let sub = s.subscribers.get(phone).cloned().unwrap_or_default();
        let stages = self.options.stages.clone();
        for (i, stage) in stages.iter().enumerate() {
            let messenger = stage != "sms";
            let ok = sub.reachable && (!messenger || sub.messenger);
            if ok {
                if let Some(m) = s.messages.iter_mut().find(|m| m.request_id == request_id) {
                    m.stage = Some(stage.clone());
                }
                self.status(s, request_id, stage, "SENT", None);
                self.status(s, request_id, stage, "DELIVERED", None);
                return;
            }
            let error = if !sub.reachable {
                "user-blocked"
            } else {
                "not-whatsapp-user"
            };
            self.status(s, request_id, stage, "UNDELIVERED", Some(error));
            if i + 1 == stages.len() {
                return;
            }
        }
    }

    /// The recipient opens message `request_id`: `READ`, if it arrived on a messenger.
    pub fn read(&self, request_id: &str) -> bool {
        let mut s = self.lock();
        let Some(m) = s.messages.iter().find(|m| m.request_id == request_id) else {
            return false;
        };
        let Some(stage) = m.stage.clone().filter(|st| st != "sms") else {
            return false;
        };
        if m.statuses.iter().any(|x| x == "READ") {
            return true;
        }
        self.status(&mut s, request_id, &stage, "READ", None);
        true
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn router(e: &Edna) -> Router {
    Router::new()
        .route("/edna/api/cascade/schedule", post(schedule))
        .route("/edna/api/callback/set", post(callback_set))
        .route("/sandbox/edna", get(index))
        .route("/sandbox/edna/phones/{phone}", get(phone_page))
        .route("/sandbox/edna/phones/{phone}/read", post(phone_read))
        .route("/sandbox/edna/state.json", get(state_json))
        .route("/sandbox/edna/subscribers/{phone}", post(admin_subscriber))
        .route("/sandbox/edna/messages/{request}/read", post(admin_read))
        .route("/sandbox/edna/faults", post(admin_faults))
        .route("/sandbox/edna/hooks", post(admin_hooks))
        .route("/sandbox/edna/hooks/release", post(admin_release))
        .with_state(e.clone())
}

fn refused(e: &Edna, headers: &HeaderMap) -> Option<Response> {
    let given = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if given == Some(e.options.api_key.as_str()) {
        None
    } else {
        Some(problem(
            StatusCode::UNAUTHORIZED,
            "Auth error",
            "Auth error",
        ))
    }
}

async fn schedule(AxState(e): AxState<Edna>, headers: HeaderMap, body: String) -> Response {
    if let Some(r) = refused(&e, &headers) {
        return r;
    }
    if let Some(status) = e.lock().faults.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return problem(status, "System error", "System error");
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "request-not-readable",
            "Invalid JSON",
        );
    };
    e.lock().bodies.push(v.clone());
    let bad = |title: &str, detail: &str| problem(StatusCode::BAD_REQUEST, title, detail);
    let Some(request_id) = v["requestId"].as_str().filter(|r| !r.is_empty()) else {
        return bad("requestId-not-specified", "requestId is required");
    };
    let cascade = v["cascadeId"]
        .as_i64()
        .or_else(|| v["cascadeId"].as_str().and_then(|c| c.parse().ok()));
    if cascade != Some(e.options.cascade_id) {
        return bad("cascade-not-found", "Cascade not found");
    }
    let filter = &v["subscriberFilter"];
    let phone = filter["address"].as_str().unwrap_or("");
    if filter["type"].as_str() != Some("PHONE") {
        return bad(
            "cascade-scheduling-request-not-valid",
            "subscriberFilter.type must be PHONE for this cascade",
        );
    }
    if !(10..=15).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return bad("error-address-format", "the address is not a phone number");
    }
    let Some(content) = v["content"].as_object() else {
        return bad("content-not-specified", "content is required");
    };
    let keys: Vec<String> = e
        .options
        .stages
        .iter()
        .map(|s| format!("{s}Content"))
        .collect();
    if keys.iter().any(|k| !content.contains_key(k)) {
        return bad(
            "request-doesn't-contain-content-for-all-cascade-stages",
            "the request does not contain content for all cascade stages",
        );
    }
    if let Some(extra) = content.keys().find(|k| !keys.contains(k)) {
        return bad(
            "cascade-scheduling-request-not-valid",
            &format!(
                "Cascade scheduling request is not valid. Violations: the cascade template stage was not found for the content [{extra}]"
            ),
        );
    }
    for k in &keys {
        let c = &content[k];
        if c["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
            return bad("text-not-specified", &format!("{k}.text is required"));
        }
        if k != "smsContent" && c["contentType"].as_str().is_none() {
            return bad(
                "contentType-not-specified",
                &format!("{k}.contentType is required"),
            );
        }
    }
    let first = &content[&keys[0]];
    let mut s = e.lock();
    if s.messages.iter().any(|m| m.request_id == request_id) {
        return bad("requestId-is-not-unique", "requestId is not unique");
    }
    s.next_id += 1;
    let message = Message {
        request_id: request_id.to_owned(),
        message_id: s.next_id,
        phone: phone.to_owned(),
        text: first["text"].as_str().unwrap_or("").to_owned(),
        url: first["keyboard"]["rows"][0]["buttons"][0]["url"]
            .as_str()
            .map(str::to_owned),
        stage: None,
        statuses: Vec::new(),
    };
    s.messages.push(message);
    e.cascade(&mut s, request_id, phone);
    Json(json!({"requestId": request_id})).into_response()
}

async fn callback_set(AxState(e): AxState<Edna>, headers: HeaderMap, body: String) -> Response {
    if let Some(r) = refused(&e, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "request-not-readable",
            "Invalid JSON",
        );
    };
    let Some(url) = v["statusCallbackUrl"].as_str() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "statusCallbackUrl-not-specified",
            "statusCallbackUrl is required",
        );
    };
    let ok = reqwest::Client::new()
        .head(url)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 200);
    if !ok {
        return problem(
            StatusCode::BAD_REQUEST,
            "callback-url-not-available",
            "the URL did not answer HEAD with 200",
        );
    }
    e.set_callback_url(Some(url.to_owned()));
    Json(json!({"statusCallbackUrl": url})).into_response()
}

fn shell(title: &str, body: &str) -> Html<String> {
    crate::html::phone_page("edna Pulse", title, body)
}

async fn index(AxState(e): AxState<Edna>) -> Html<String> {
    let mut phones: Vec<String> = e.messages().into_iter().map(|m| m.phone).collect();
    phones.sort();
    phones.dedup();
    let mut body = String::from("<h2>Телефоны</h2>");
    if phones.is_empty() {
        body.push_str("<p>Сообщений пока не было.</p>");
    }
    body.push_str("<ul>");
    for p in phones {
        body.push_str(&format!(
            r#"<li><a href="/sandbox/edna/phones/{p}">+{p}</a></li>"#,
            p = escape(&p)
        ));
    }
    body.push_str("</ul>");
    shell("edna Pulse — телефоны", &body)
}

async fn phone_page(AxState(e): AxState<Edna>, Path(phone): Path<String>) -> Html<String> {
    let mut body = String::new();
    let messages: Vec<Message> = e
        .messages()
        .into_iter()
        .filter(|m| m.phone == phone)
        .collect();
    if messages.is_empty() {
        body.push_str("<p>Сообщений на этот номер нет.</p>");
    }
    for m in messages.iter().rev() {
        let channel = match m.stage.as_deref() {
            Some("sms") => "SMS",
            Some("whatsapp") => "WhatsApp",
            Some("viber") => "Viber",
            Some(other) => other,
            None => "не доставлено",
        };
        body.push_str(&format!(
            r#"<article class="msg" data-testid="message">{text}<p class="meta">{channel} · {statuses}</p>"#,
            text = escape(&m.text),
            statuses = escape(&m.statuses.join(" → ")),
        ));
        if let Some(url) = &m.url
            && m.stage.as_deref().is_some_and(|s| s != "sms")
        {
            body.push_str(&format!(
                r#"<a class="link" href="{}">Открыть</a> "#,
                escape(url)
            ));
        }
        if m.stage.as_deref().is_some_and(|s| s != "sms") && !m.statuses.iter().any(|s| s == "READ")
        {
            body.push_str(&format!(
                r#"<form method="post" action="/sandbox/edna/phones/{phone}/read"><input type="hidden" name="request" value="{r}"><button type="submit">Прочитать в мессенджере</button></form>"#,
                phone = escape(&phone),
                r = escape(&m.request_id)
            ));
        }
        body.push_str("</article>");
    }
    shell(&format!("Телефон +{}", escape(&phone)), &body)
}

#[derive(Deserialize)]
struct ReadForm {
    request: String,
}

async fn phone_read(
    AxState(e): AxState<Edna>,
    Path(phone): Path<String>,
    Form(f): Form<ReadForm>,
) -> Response {
    e.read(&f.request);
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/sandbox/edna/phones/{phone}"))],
    )
        .into_response()
}

async fn state_json(AxState(e): AxState<Edna>) -> Json<Value> {
    Json(json!({
        "cascadeId": e.options.cascade_id,
        "stages": e.options.stages,
        "messages": e.messages(),
        "hooks": e.hooks.log(),
    }))
}

async fn admin_subscriber(
    AxState(e): AxState<Edna>,
    Path(phone): Path<String>,
    Json(s): Json<Subscriber>,
) -> StatusCode {
    e.set_subscriber(&phone, s);
    StatusCode::NO_CONTENT
}

async fn admin_read(AxState(e): AxState<Edna>, Path(request): Path<String>) -> StatusCode {
    if e.read(&request) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
struct FaultBody {
    status: u16,
    count: usize,
}

async fn admin_faults(AxState(e): AxState<Edna>, Json(f): Json<FaultBody>) -> StatusCode {
    e.fail_next(f.status, f.count);
    StatusCode::NO_CONTENT
}

async fn admin_hooks(AxState(e): AxState<Edna>, Json(mode): Json<HookMode>) -> StatusCode {
    e.hooks.set_mode(mode);
    StatusCode::NO_CONTENT
}

async fn admin_release(AxState(e): AxState<Edna>) -> Json<Value> {
    Json(json!({"released": e.hooks.release()}))
}
