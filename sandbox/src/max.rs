//! MAX Bot API stand-in (`/max/…`), as the official schema (API 0.0.32,
//! `max-messenger-bot/max-bot-api-schemas`) and `shared/reference/integrations.md` §4.1a/4.5
//! describe it, for one bot:
//!
//! - `Authorization: <token>` on every call (`401 verify.token` otherwise);
//! - `GET /me`; `POST /subscriptions {url, update_types, secret}` (secret
//!   `^[a-zA-Z0-9_-]{5,256}$`), `GET /subscriptions`;
//! - `POST /messages?user_id=…` checks the `NewMessageBody` (text ≤ 4000, inline keyboards of
//!   `callback`/`link` buttons within MAX's limits) and writes only to a user who started the
//!   bot: never started → `404 dialog.not.found`, stopped or blocked → `403 chat.denied`;
//! - `POST /answers?callback_id=…`;
//! - updates (`bot_started` with the deep link's `payload`, `message_callback`, `bot_stopped`)
//!   POSTed to the subscription with `X-Max-Bot-Api-Secret`, through [`Hooks`] (duplicated,
//!   delayed, out of order or forged on demand).
//!
//! The phone's side is a page per user (`/sandbox/max/chats/{user}`): the bot's messages with
//! their buttons. The deep link `{base}/max-app/{bot}?start=<payload>` opens a page that starts
//! the bot as a new test user. MAX reports no delivery or read: neither does this.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::hooks::{HookMode, Hooks};
use crate::html::escape;

/// The header MAX signs webhooks with.
pub const SECRET_HEADER: &str = "X-Max-Bot-Api-Secret";

#[derive(Debug, Clone)]
pub struct MaxOptions {
    pub token: String,
    /// The bot's `username` (deep links name it).
    pub bot_name: String,
}

impl Default for MaxOptions {
    fn default() -> Self {
        MaxOptions {
            token: crate::bitrix24::random_code(40),
            bot_name: "vizit_clinic_bot".into(),
        }
    }
}

/// A person on the messenger.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub user_id: i64,
    pub name: String,
    /// Has started the bot (and not stopped it since).
    pub started: bool,
}

/// A message the bot sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub mid: String,
    pub user_id: i64,
    pub text: String,
    /// Rows of buttons as sent (`{type, text, payload|url}`).
    pub buttons: Vec<Vec<Value>>,
    pub timestamp: i64,
}

#[derive(Default)]
struct State {
    base_url: String,
    /// (url, secret, update types).
    subscription: Option<(String, Option<String>, Vec<String>)>,
    users: BTreeMap<i64, User>,
    messages: Vec<Message>,
    /// (callback id, notification).
    answers: Vec<(String, String)>,
    /// HTTP statuses to answer the next `POST /messages` with, in order.
    faults: VecDeque<u16>,
    next_user: i64,
    next_seq: u64,
}

/// The stand-in. Cheap to clone.
#[derive(Clone)]
pub struct Max {
    state: Arc<Mutex<State>>,
    options: Arc<MaxOptions>,
    pub hooks: Hooks,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

impl Max {
    pub fn new(options: MaxOptions) -> Max {
        Max {
            state: Arc::new(Mutex::new(State {
                next_user: 100_000_001,
                ..State::default()
            })),
            options: Arc::new(options),
            hooks: Hooks::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn options(&self) -> &MaxOptions {
        &self.options
    }

    pub(crate) fn set_base_url(&self, url: String) {
        self.lock().base_url = url;
    }

    /// The API base (`…/max`).
    pub fn api_url(&self) -> String {
        format!("{}/max", self.lock().base_url)
    }

    /// Where deep links point (`…/max-app`; MAX's is `https://max.ru`).
    pub fn link_base(&self) -> String {
        format!("{}/max-app", self.lock().base_url)
    }

    /// Subscribe `url` to every update with `secret`, as `POST /subscriptions` would.
    pub fn subscribe(&self, url: &str, secret: &str) {
        self.lock().subscription = Some((
            url.to_owned(),
            Some(secret.to_owned()),
            vec![
                "bot_started".into(),
                "bot_stopped".into(),
                "message_callback".into(),
            ],
        ));
    }

    pub fn users(&self) -> Vec<User> {
        self.lock().users.values().cloned().collect()
    }

    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    pub fn answers(&self) -> Vec<(String, String)> {
        self.lock().answers.clone()
    }

    /// A new person on the messenger (not started yet).
    pub fn add_user(&self, name: &str) -> i64 {
        let mut s = self.lock();
        let id = s.next_user;
        s.next_user += 1;
        s.users.insert(
            id,
            User {
                user_id: id,
                name: name.to_owned(),
                started: false,
            },
        );
        id
    }

    /// The answers of the next `POST /messages` calls: `status` `count` times.
    pub fn fail_next(&self, status: u16, count: usize) {
        let mut s = self.lock();
        for _ in 0..count {
            s.faults.push_back(status);
        }
    }

    fn user_json(u: &User) -> Value {
        let (first, last) = u.name.split_once(' ').unwrap_or((&u.name, ""));
        json!({"user_id": u.user_id, "first_name": first,
               "last_name": if last.is_empty() { Value::Null } else { json!(last) },
               "is_bot": false, "last_activity_time": now_ms(), "name": u.name})
    }

    fn update(&self, s: &State, update: Value) {
        let Some((url, secret, types)) = &s.subscription else {
            return;
        };
        let kind = update["update_type"].as_str().unwrap_or("");
        if !types.is_empty() && !types.iter().any(|t| t == kind) {
            return;
        }
        self.hooks
            .send(url, secret.as_deref().map(|v| (SECRET_HEADER, v)), update);
    }

    /// The user presses «Start» through a deep link with `payload` (or without one).
    pub fn start(&self, user_id: i64, payload: Option<&str>) -> bool {
        let mut s = self.lock();
        let Some(u) = s.users.get_mut(&user_id) else {
            return false;
        };
        u.started = true;
        let user = Self::user_json(u);
        let mut update = json!({"update_type": "bot_started", "timestamp": now_ms(),
            "chat_id": user_id + 80_000_000, "user": user, "user_id": user_id,
            "user_locale": "ru"});
        if let Some(p) = payload {
            update["payload"] = json!(p);
        }
        self.update(&s, update);
        true
    }

    /// The user stops (blocks) the bot.
    pub fn stop(&self, user_id: i64) -> bool {
        let mut s = self.lock();
        let Some(u) = s.users.get_mut(&user_id) else {
            return false;
        };
        u.started = false;
        let user = Self::user_json(u);
        let update = json!({"update_type": "bot_stopped", "timestamp": now_ms(),
            "chat_id": user_id + 80_000_000, "user": user, "user_id": user_id,
            "user_locale": "ru"});
        self.update(&s, update);
        true
    }

    /// The user presses callback button `payload` under message `mid`. False: no such button.
    pub fn press(&self, mid: &str, payload: &str) -> bool {
        let s = self.lock();
        let Some(m) = s.messages.iter().find(|m| m.mid == mid) else {
            return false;
        };
        let has = m.buttons.iter().flatten().any(|b| {
            b["type"].as_str() == Some("callback") && b["payload"].as_str() == Some(payload)
        });
        let Some(u) = s.users.get(&m.user_id) else {
            return false;
        };
        if !has {
            return false;
        }
        let callback_id = format!("cb.{}", crate::bitrix24::random_code(24));
        let message = message_json(&self.options.bot_name, m);
        let update = json!({"update_type": "message_callback", "timestamp": now_ms(),
            "user_locale": "ru",
            "callback": {"timestamp": now_ms(), "callback_id": callback_id, "payload": payload,
                         "user": Self::user_json(u)},
            "message": message});
        self.update(&s, update);
        true
    }
}

fn message_json(bot: &str, m: &Message) -> Value {
    let mut body = json!({"mid": m.mid, "seq": 0, "text": m.text});
    if !m.buttons.is_empty() {
        body["attachments"] =
            json!([{"type": "inline_keyboard", "payload": {"buttons": m.buttons}}]);
    }
    json!({
        "sender": {"user_id": 229_229_229, "first_name": bot, "username": bot, "is_bot": true,
                   "last_activity_time": now_ms(), "name": bot},
        "recipient": {"chat_id": m.user_id + 80_000_000, "chat_type": "dialog", "user_id": m.user_id},
        "timestamp": m.timestamp,
        "body": body,
    })
}

/// The keyboard of a `NewMessageBody`, checked as MAX checks it.
fn keyboard(attachments: &Value) -> Result<Vec<Vec<Value>>, String> {
    let mut rows_out = Vec::new();
    let Some(list) = attachments.as_array() else {
        return Err("attachments must be an array".into());
    };
    for a in list {
        match a["type"].as_str() {
            Some("inline_keyboard") => {}
            Some(t) => return Err(format!("attachment type {t} is not supported here")),
            None => return Err("attachment.type is required".into()),
        }
        let Some(rows) = a["payload"]["buttons"].as_array() else {
            return Err("inline_keyboard.payload.buttons must be an array of rows".into());
        };
        if rows.len() > 30 {
            return Err("at most 30 rows of buttons".into());
        }
        let mut total = 0;
        for row in rows {
            let Some(row) = row.as_array() else {
                return Err("each row of buttons must be an array".into());
            };
            let links = row.iter().any(|b| b["type"].as_str() == Some("link"));
            if row.len() > 7 || (links && row.len() > 3) {
                return Err("too many buttons in a row".into());
            }
            total += row.len();
            for b in row {
                let text = b["text"].as_str().unwrap_or("");
                if text.is_empty() || text.chars().count() > 128 {
                    return Err("button.text must be 1 to 128 characters".into());
                }
                match b["type"].as_str() {
                    Some("callback") => {
                        let p = b["payload"].as_str().unwrap_or("");
                        if p.is_empty() || p.len() > 1024 {
                            return Err(
                                "callback button payload must be 1 to 1024 characters".into()
                            );
                        }
                    }
                    Some("link") => {
                        let u = b["url"].as_str().unwrap_or("");
                        if !(u.starts_with("https://") || u.starts_with("http://"))
                            || u.len() > 2048
                        {
                            return Err(
                                "link button url must be an http(s) URL of at most 2048 characters"
                                    .into(),
                            );
                        }
                    }
                    Some(_) => {}
                    None => return Err("button.type is required".into()),
                }
            }
            rows_out.push(row.clone());
        }
        if total > 210 {
            return Err("at most 210 buttons".into());
        }
    }
    Ok(rows_out)
}

pub fn router(m: &Max) -> Router {
    Router::new()
        .route("/max/me", get(me))
        .route("/max/subscriptions", post(subscribe).get(subscriptions))
        .route("/max/messages", post(send))
        .route("/max/answers", post(answer))
        .route("/max-app/{bot}", get(deep_link).post(deep_link_start))
        .route("/sandbox/max", get(index))
        .route("/sandbox/max/chats/{user}", get(chat))
        .route("/sandbox/max/chats/{user}/press", post(chat_press))
        .route("/sandbox/max/chats/{user}/stop", post(chat_stop))
        .route("/sandbox/max/state.json", get(state_json))
        .route("/sandbox/max/users", post(admin_user))
        .route("/sandbox/max/users/{user}/start", post(admin_start))
        .route("/sandbox/max/users/{user}/stop", post(admin_stop))
        .route("/sandbox/max/messages/{mid}/press", post(admin_press))
        .route("/sandbox/max/faults", post(admin_faults))
        .route("/sandbox/max/hooks", post(admin_hooks))
        .route("/sandbox/max/hooks/release", post(admin_release))
        .with_state(m.clone())
}

fn refused(m: &Max, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(m.options.token.as_str()) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "verify.token",
            "Invalid access_token",
        ))
    }
}

async fn me(AxState(m): AxState<Max>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&m, &headers) {
        return r;
    }
    let bot = &m.options.bot_name;
    Json(
        json!({"user_id": 229_229_229, "first_name": bot, "username": bot, "is_bot": true,
                "last_activity_time": now_ms(), "name": bot,
                "description": "Тестовый бот клиники (песочница Vizit)"}),
    )
    .into_response()
}

async fn subscribe(AxState(m): AxState<Max>, headers: HeaderMap, body: String) -> Response {
    if let Some(r) = refused(&m, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "proto.payload", "Invalid JSON");
    };
    let Some(url) = v["url"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "proto.payload", "url is required");
    };
    let secret = v["secret"].as_str();
    let valid = |s: &str| {
        (5..=256).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if secret.is_some_and(|s| !valid(s)) {
        return error(
            StatusCode::BAD_REQUEST,
            "proto.payload",
            "secret must match ^[a-zA-Z0-9_-]{5,256}$",
        );
    }
    let types = v["update_types"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    m.lock().subscription = Some((url.to_owned(), secret.map(str::to_owned), types));
    Json(json!({"success": true})).into_response()
}

async fn subscriptions(AxState(m): AxState<Max>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&m, &headers) {
        return r;
    }
    let s = m.lock();
    let list: Vec<Value> = s
        .subscription
        .iter()
        .map(|(url, _, types)| json!({"url": url, "time": now_ms(), "update_types": types}))
        .collect();
    Json(json!({"subscriptions": list})).into_response()
}

#[derive(Deserialize)]
struct SendQuery {
    user_id: Option<String>,
    chat_id: Option<String>,
    #[allow(dead_code)]
    disable_link_preview: Option<bool>,
}

async fn send(
    AxState(m): AxState<Max>,
    headers: HeaderMap,
    Query(q): Query<SendQuery>,
    body: String,
) -> Response {
    if let Some(r) = refused(&m, &headers) {
        return r;
    }
    if let Some(status) = m.lock().faults.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return error(status, "internal.error", "Service temporarily unavailable");
    }
    let user_id = match (q.user_id.as_deref(), q.chat_id.as_deref()) {
        (Some(u), _) => u.parse::<i64>().ok(),
        (None, Some(c)) => c.parse::<i64>().ok().map(|c| c - 80_000_000),
        (None, None) => None,
    };
    let Some(user_id) = user_id else {
        return error(
            StatusCode::BAD_REQUEST,
            "proto.payload",
            "user_id or chat_id is required",
        );
    };
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "proto.payload", "Invalid JSON");
    };
    let text = v["text"].as_str().unwrap_or("");
    if text.chars().count() > 4000 {
        return error(
            StatusCode::BAD_REQUEST,
            "proto.payload",
            "text: size must be between 0 and 4000",
        );
    }
    if let Some(f) = v["format"].as_str()
        && f != "markdown"
        && f != "html"
    {
        return error(
            StatusCode::BAD_REQUEST,
            "proto.payload",
            "format must be markdown or html",
        );
    }
    let buttons = match &v["attachments"] {
        Value::Null => Vec::new(),
        a => match keyboard(a) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, "proto.payload", &e),
        },
    };
    if text.is_empty() && buttons.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "proto.payload",
            "text or attachments are required",
        );
    }
    let mut s = m.lock();
    match s.users.get(&user_id) {
        None => {
            return error(
                StatusCode::NOT_FOUND,
                "dialog.not.found",
                "Key: error.dialog.notfound",
            );
        }
        Some(u) if !u.started => {
            return error(
                StatusCode::FORBIDDEN,
                "chat.denied",
                &format!("Key: error.dialog.suspended, args: [{user_id},]."),
            );
        }
        Some(_) => {}
    }
    s.next_seq += 1;
    let message = Message {
        mid: format!("mid.{:032x}", rand_u128()),
        user_id,
        text: text.to_owned(),
        buttons,
        timestamp: now_ms(),
    };
    let body = message_json(&m.options.bot_name, &message);
    s.messages.push(message);
    Json(json!({"message": body})).into_response()
}

fn rand_u128() -> u128 {
    use rand::Rng;
    rand::rng().random()
}

#[derive(Deserialize)]
struct AnswerQuery {
    callback_id: Option<String>,
}

async fn answer(
    AxState(m): AxState<Max>,
    headers: HeaderMap,
    Query(q): Query<AnswerQuery>,
    body: String,
) -> Response {
    if let Some(r) = refused(&m, &headers) {
        return r;
    }
    let Some(id) = q.callback_id.filter(|c| !c.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "proto.payload",
            "callback_id is required",
        );
    };
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "proto.payload", "Invalid JSON");
    };
    let note = v["notification"].as_str().unwrap_or("").to_owned();
    m.lock().answers.push((id, note));
    Json(json!({"success": true})).into_response()
}

fn shell(title: &str, body: &str) -> Html<String> {
    crate::html::phone_page("MAX", title, body)
}

#[derive(Deserialize)]
struct StartQuery {
    start: Option<String>,
}

async fn deep_link(
    AxState(m): AxState<Max>,
    Path(bot): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    if bot != m.options.bot_name {
        return (
            StatusCode::NOT_FOUND,
            shell("Бот не найден", "<p>Такого бота нет.</p>"),
        )
            .into_response();
    }
    let start = q.start.unwrap_or_default();
    shell(
        &format!("Бот {}", escape(&bot)),
        &format!(
            r#"<p>Бот клиники присылает уведомления о консультациях. Нажмите «Начать», чтобы получать их в MAX.</p>
<form method="post" action="/max-app/{bot}"><input type="hidden" name="start" value="{start}">
<label for="name">Ваше имя в MAX (тест)</label><input id="name" name="name" value="Пациент (тест)" autocomplete="off">
<p><button type="submit" data-testid="start">Начать</button></p></form>"#,
            bot = escape(&bot),
            start = escape(&start),
        ),
    )
    .into_response()
}

#[derive(Deserialize)]
struct StartForm {
    start: Option<String>,
    name: Option<String>,
}

async fn deep_link_start(
    AxState(m): AxState<Max>,
    Path(bot): Path<String>,
    Form(f): Form<StartForm>,
) -> Response {
    if bot != m.options.bot_name {
        return StatusCode::NOT_FOUND.into_response();
    }
    let name = f
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "Пациент (тест)".into());
    let id = m.add_user(name.trim());
    m.start(id, f.start.as_deref().filter(|s| !s.is_empty()));
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/sandbox/max/chats/{id}"))],
    )
        .into_response()
}

async fn index(AxState(m): AxState<Max>) -> Html<String> {
    let users = m.users();
    let mut body = String::from("<h2>Пользователи</h2>");
    if users.is_empty() {
        body.push_str("<p>Пока никто не запускал бота. Ссылка на бота — на странице уведомлений пациента.</p>");
    }
    body.push_str("<ul>");
    for u in users {
        body.push_str(&format!(
            r#"<li><a href="/sandbox/max/chats/{id}">{name}</a> ({state})</li>"#,
            id = u.user_id,
            name = escape(&u.name),
            state = if u.started {
                "бот запущен"
            } else {
                "бот остановлен"
            }
        ));
    }
    body.push_str("</ul>");
    shell("MAX — чаты с ботом", &body)
}

fn clock(ms: i64) -> String {
    let secs = ms / 1000;
    let (h, m) = ((secs / 3600 + 3) % 24, (secs / 60) % 60);
    format!("{h:02}:{m:02} МСК")
}

async fn chat(AxState(m): AxState<Max>, Path(user): Path<i64>) -> Response {
    let Some(u) = m.users().into_iter().find(|u| u.user_id == user) else {
        return (
            StatusCode::NOT_FOUND,
            shell("Чат не найден", "<p>Такого чата нет.</p>"),
        )
            .into_response();
    };
    let mut body = format!(
        "<p>Чат пользователя «{}» с ботом {}.</p>",
        escape(&u.name),
        escape(&m.options.bot_name)
    );
    let messages: Vec<Message> = m
        .messages()
        .into_iter()
        .filter(|x| x.user_id == user)
        .collect();
    if messages.is_empty() {
        body.push_str("<p>Сообщений пока нет.</p>");
    }
    for msg in messages.iter().rev() {
        body.push_str(&format!(
            r#"<article class="msg" data-testid="message">{}<time>{}</time><div class="buttons">"#,
            escape(&msg.text),
            clock(msg.timestamp)
        ));
        for b in msg.buttons.iter().flatten() {
            let text = escape(b["text"].as_str().unwrap_or(""));
            match b["type"].as_str() {
                Some("callback") => body.push_str(&format!(
                    r#"<form method="post" action="/sandbox/max/chats/{user}/press"><input type="hidden" name="mid" value="{mid}"><input type="hidden" name="payload" value="{payload}"><button type="submit">{text}</button></form>"#,
                    mid = escape(&msg.mid),
                    payload = escape(b["payload"].as_str().unwrap_or("")),
                )),
                Some("link") => body.push_str(&format!(
                    r#"<a class="link" href="{url}">{text}</a>"#,
                    url = escape(b["url"].as_str().unwrap_or("")),
                )),
                _ => {}
            }
        }
        body.push_str("</div></article>");
    }
    if u.started {
        body.push_str(&format!(
            r#"<form method="post" action="/sandbox/max/chats/{user}/stop"><button type="submit">Остановить бота</button></form>"#
        ));
    }
    shell("MAX — чат с ботом", &body).into_response()
}

#[derive(Deserialize)]
struct PressForm {
    mid: String,
    payload: String,
}

async fn chat_press(
    AxState(m): AxState<Max>,
    Path(user): Path<i64>,
    Form(f): Form<PressForm>,
) -> Response {
    m.press(&f.mid, &f.payload);
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/sandbox/max/chats/{user}"))],
    )
        .into_response()
}

async fn chat_stop(AxState(m): AxState<Max>, Path(user): Path<i64>) -> Response {
    m.stop(user);
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/sandbox/max/chats/{user}"))],
    )
        .into_response()
}

async fn state_json(AxState(m): AxState<Max>) -> Json<Value> {
    let answers: Vec<Value> = m
        .answers()
        .into_iter()
        .map(|(id, n)| json!({"callbackId": id, "notification": n}))
        .collect();
    Json(json!({
        "bot": m.options.bot_name,
        "users": m.users(),
        "messages": m.messages(),
        "answers": answers,
        "hooks": m.hooks.log(),
    }))
}

#[derive(Deserialize)]
struct NewUser {
    name: Option<String>,
}

async fn admin_user(AxState(m): AxState<Max>, Json(u): Json<NewUser>) -> Json<Value> {
    let id = m.add_user(u.name.as_deref().unwrap_or("Пользователь MAX"));
    Json(json!({"userId": id}))
}

#[derive(Deserialize, Default)]
struct StartBody {
    payload: Option<String>,
}

async fn admin_start(
    AxState(m): AxState<Max>,
    Path(user): Path<i64>,
    body: Option<Json<StartBody>>,
) -> StatusCode {
    let payload = body.and_then(|Json(b)| b.payload);
    if m.start(user, payload.as_deref()) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn admin_stop(AxState(m): AxState<Max>, Path(user): Path<i64>) -> StatusCode {
    if m.stop(user) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
struct PressBody {
    payload: String,
}

async fn admin_press(
    AxState(m): AxState<Max>,
    Path(mid): Path<String>,
    Json(b): Json<PressBody>,
) -> StatusCode {
    if m.press(&mid, &b.payload) {
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

async fn admin_faults(AxState(m): AxState<Max>, Json(f): Json<FaultBody>) -> StatusCode {
    m.fail_next(f.status, f.count);
    StatusCode::NO_CONTENT
}

async fn admin_hooks(AxState(m): AxState<Max>, Json(mode): Json<HookMode>) -> StatusCode {
    m.hooks.set_mode(mode);
    StatusCode::NO_CONTENT
}

async fn admin_release(AxState(m): AxState<Max>) -> Json<Value> {
    Json(json!({"released": m.hooks.release()}))
}
