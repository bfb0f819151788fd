//! The MAX Bot API client (VK's national messenger; `shared/reference/integrations.md` §4.5 and
//! the official schema `max-messenger-bot/max-bot-api-schemas`, API 0.0.32):
//!
//! - host `https://platform-api2.max.ru` (configurable), header `Authorization: <token>` (no
//!   `Bearer`; the token is never logged);
//! - `POST /messages?user_id=…` with `NewMessageBody` (`text` ≤ 4000 characters, an
//!   `inline_keyboard` attachment of button rows: `callback` buttons with a `payload` ≤ 1024,
//!   `link` buttons with a `url` ≤ 2048) → `{"message": {…, "body": {"mid": …}}}`;
//! - `POST /answers?callback_id=…` `{"notification": …}` → `{"success": true}`;
//! - `POST /subscriptions` `{url, update_types, secret}` and `GET /me`.
//!
//! Errors are `{"code", "message"}`. A user who never started the bot, stopped or blocked it
//! is refused (`403 chat.denied`, `404 dialog.not.found` in the field): [`Error::Refused`], which
//! no retry fixes. `429`, `5xx` and no answer are [`Error::Unavailable`]. MAX has **no
//! idempotency key**: a message whose answer was lost may arrive twice if repeated, so callers
//! repeat only what they must.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// Longest `text` MAX takes.
pub const MAX_TEXT: usize = 4000;
/// Longest callback button `payload`.
pub const MAX_PAYLOAD: usize = 1024;

#[derive(Clone)]
pub struct Settings {
    /// `https://platform-api2.max.ru` (no trailing slash).
    pub api_url: String,
    pub token: SecretString,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url)
            .field("token", &"[redacted]")
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Settings {
    pub fn new(token: SecretString) -> Settings {
        Settings {
            api_url: "https://platform-api2.max.ru".into(),
            token,
            request_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// MAX refused the request (`4xx` other than 429): repeating it will not help. `403
    /// chat.denied` / `404 dialog.not.found`: the user has not started the bot or blocked it.
    #[error("MAX refused {operation}: HTTP {status} {code} ({message})")]
    Refused {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// `429`, `5xx` or no answer: try later.
    #[error("MAX unavailable during {operation}: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
    /// A `200` whose body is not the documented object.
    #[error("MAX answered {operation} with a malformed body: {detail}")]
    Malformed {
        operation: &'static str,
        detail: String,
    },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// The user cannot be written to (never started the bot, stopped or blocked it).
    pub fn is_unreachable_user(&self) -> bool {
        matches!(
            self,
            Error::Refused {
                status: 403 | 404,
                ..
            }
        )
    }
}

/// A button under a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    /// Pressing it sends the bot a `message_callback` with this payload.
    Callback { text: String, payload: String },
    /// Opens a URL.
    Link { text: String, url: String },
}

impl Button {
    fn to_json(&self) -> Value {
        match self {
            Button::Callback { text, payload } => {
                json!({"type": "callback", "text": text, "payload": payload})
            }
            Button::Link { text, url } => json!({"type": "link", "text": text, "url": url}),
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    settings: Settings,
}

#[derive(Deserialize)]
struct Sent {
    message: SentMessage,
}

#[derive(Deserialize)]
struct SentMessage {
    body: SentBody,
}

#[derive(Deserialize)]
struct SentBody {
    mid: String,
}

impl Client {
    pub fn new(settings: Settings) -> Client {
        let http = crate::http::client(settings.request_timeout);
        Client { http, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `POST /messages?user_id=…`: a plain-text message with rows of buttons. Returns its `mid`.
    pub async fn send(
        &self,
        user_id: i64,
        text: &str,
        rows: &[Vec<Button>],
    ) -> Result<String, Error> {
        let text: String = text.chars().take(MAX_TEXT).collect();
        let mut body = json!({"text": text, "notify": true});
        if !rows.is_empty() {
            let buttons: Vec<Vec<Value>> = rows
                .iter()
                .map(|r| r.iter().map(Button::to_json).collect())
                .collect();
            body["attachments"] =
                json!([{"type": "inline_keyboard", "payload": {"buttons": buttons}}]);
        }
        let v = self
            .call(
                "send message",
                reqwest::Method::POST,
                &format!("/messages?user_id={user_id}&disable_link_preview=true"),
                Some(&body),
            )
            .await?;
        let sent: Sent = serde_json::from_value(v).map_err(|e| Error::Malformed {
            operation: "send message",
            detail: e.to_string(),
        })?;
        Ok(sent.message.body.mid)
    }

    /// `POST /answers?callback_id=…`: a one-time notice to whoever pressed a button.
    pub async fn answer(&self, callback_id: &str, notification: &str) -> Result<(), Error> {
        let v = self
            .call(
                "answer callback",
                reqwest::Method::POST,
                &format!("/answers?callback_id={}", query(callback_id)),
                Some(&json!({"notification": notification})),
            )
            .await?;
        success("answer callback", &v)
    }

    /// `POST /subscriptions`: updates of `types` go to `url` with `X-Max-Bot-Api-Secret`.
    pub async fn subscribe(&self, url: &str, types: &[&str], secret: &str) -> Result<(), Error> {
        let v = self
            .call(
                "subscribe",
                reqwest::Method::POST,
                "/subscriptions",
                Some(&json!({"url": url, "update_types": types, "secret": secret})),
            )
            .await?;
        success("subscribe", &v)
    }

    /// `GET /me`: the bot's `username` (for deep links) — and a check of the token.
    pub async fn username(&self) -> Result<String, Error> {
        let v = self
            .call("read bot", reqwest::Method::GET, "/me", None)
            .await?;
        v["username"]
            .as_str()
            .map(str::to_owned)
            .ok_or(Error::Malformed {
                operation: "read bot",
                detail: "no username".into(),
            })
    }

    async fn call(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let url = format!("{}{path}", self.settings.api_url.trim_end_matches('/'));
        let mut req = self
            .http
            .request(method, &url)
            .header("Authorization", self.settings.token.expose_secret());
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| Error::Unavailable {
            operation,
            detail: crate::http::no_answer(&e),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|_| Error::Unavailable {
            operation,
            detail: "the answer broke off".into(),
        })?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(v),
            429 => Err(Error::Unavailable {
                operation,
                detail: "too many requests (429)".into(),
            }),
            400..=499 => Err(Error::Refused {
                operation,
                status,
                code: v["code"].as_str().unwrap_or("unknown").to_owned(),
                message: v["message"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            }),
            _ => Err(Error::Unavailable {
                operation,
                detail: format!("HTTP {status}"),
            }),
        }
    }
}

fn success(operation: &'static str, v: &Value) -> Result<(), Error> {
    if v["success"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err(Error::Malformed {
            operation,
            detail: v["message"]
                .as_str()
                .unwrap_or("success is not true")
                .to_owned(),
        })
    }
}

/// A query value, percent-encoded.
fn query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A deep link that starts `bot` with `payload` (`https://max.ru/<bot>?start=<payload>`).
/// Payloads should stay within 128 characters of `[A-Za-z0-9_-]`.
pub fn deep_link(base: &str, bot: &str, payload: &str) -> String {
    format!(
        "{}/{}?start={}",
        base.trim_end_matches('/'),
        query(bot),
        query(payload)
    )
}
