//! The edna Pulse client (`shared/reference/integrations.md` §4.4; docs.edna.ru "Отправка
//! сообщений", docs-pulse.edna.io): messages through a **cascade** the clinic set up in its edna
//! account (e.g. WhatsApp, then SMS after a TTL), statuses reported back by callback.
//!
//! - `POST {api}/api/cascade/schedule`, header `X-API-KEY`, body `{requestId, cascadeId,
//!   subscriberFilter {address, type: PHONE}, content {<stage>Content …}}` → `200
//!   {"requestId"}`. The content must cover every stage of the cascade and nothing else.
//! - No template id: edna matches the text against the templates registered in the account
//!   (`400 matched-template-not-found` otherwise).
//! - Errors are problem JSON `{"title", "status", "detail"}`; `400 requestId-is-not-unique`
//!   means a request with this id was taken before — for a repeat of ours, success. That makes a
//!   repeat after a lost answer safe: the `requestId` is the idempotency key.
//!
//! The status callback (`SENT`, `DELIVERED`, `READ`, `UNDELIVERED`, `FAILED`, `CANCELLED`,
//! `EXPIRED`, `DELAYED`, `ENQUEUED`) is parsed by [`Callback`].

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// A channel of the cascade, as its content key names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Whatsapp,
    Viber,
    Sms,
}

impl Stage {
    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "whatsapp" => Stage::Whatsapp,
            "viber" => Stage::Viber,
            "sms" => Stage::Sms,
            _ => return None,
        })
    }

    pub fn content_key(self) -> &'static str {
        match self {
            Stage::Whatsapp => "whatsappContent",
            Stage::Viber => "viberContent",
            Stage::Sms => "smsContent",
        }
    }
}

#[derive(Clone)]
pub struct Settings {
    /// `https://app.edna.ru` (no trailing slash; the paths start with `/api`).
    pub api_url: String,
    pub api_key: SecretString,
    /// The cascade set up in the account.
    pub cascade_id: i64,
    /// Its stages, in order: the request carries content for each.
    pub stages: Vec<Stage>,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url)
            .field("api_key", &"[redacted]")
            .field("cascade_id", &self.cascade_id)
            .field("stages", &self.stages)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// edna refused the request (`4xx`): repeating it will not help.
    #[error("edna refused {operation}: HTTP {status} {title} ({detail})")]
    Refused {
        operation: &'static str,
        status: u16,
        title: String,
        detail: String,
    },
    /// `5xx` or no answer: try later with the same `requestId`.
    #[error("edna unavailable during {operation}: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

pub struct Client {
    http: reqwest::Client,
    settings: Settings,
}

impl Client {
    pub fn new(settings: Settings) -> Client {
        let http = crate::http::client(settings.request_timeout);
        Client { http, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Schedule `text` to `phone` (digits with the country code, `79161234567`) through the
    /// cascade, with `button` (text, URL) under messenger stages. `request_id` is ours and the
    /// same on every repeat: a repeat of a request edna took is success.
    pub async fn schedule(
        &self,
        request_id: &str,
        phone: &str,
        text: &str,
        button: Option<(&str, &str)>,
    ) -> Result<(), Error> {
        const OP: &str = "schedule message";
        let mut content = serde_json::Map::new();
        for stage in &self.settings.stages {
            let mut c = json!({"contentType": "TEXT", "text": text});
            if let (Stage::Whatsapp, Some((label, url))) = (stage, button) {
                c["keyboard"] = json!({"rows": [{"buttons": [
                    {"text": label, "buttonType": "URL", "url": url}]}]});
            }
            content.insert(stage.content_key().to_owned(), c);
        }
        let body = json!({
            "requestId": request_id,
            "cascadeId": self.settings.cascade_id,
            "subscriberFilter": {"address": phone, "type": "PHONE"},
            "content": content,
        });
        let url = format!(
            "{}/api/cascade/schedule",
            self.settings.api_url.trim_end_matches('/')
        );
        let resp = self
            .http
            .post(&url)
            .header("X-API-KEY", self.settings.api_key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::Unavailable {
                operation: OP,
                detail: crate::http::no_answer(&e),
            })?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(()),
            400..=499 => {
                let title = v["title"].as_str().unwrap_or("unknown").to_owned();
                if title == "requestId-is-not-unique" {
                    return Ok(());
                }
                Err(Error::Refused {
                    operation: OP,
                    status,
                    title,
                    detail: v["detail"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(300)
                        .collect(),
                })
            }
            _ => Err(Error::Unavailable {
                operation: OP,
                detail: format!("HTTP {status}"),
            }),
        }
    }
}

/// A status callback as edna POSTs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Callback {
    pub request_id: Option<String>,
    #[serde(default)]
    pub message_id: Option<i64>,
    #[serde(default)]
    pub cascade_stage_uuid: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    pub status: String,
    #[serde(default)]
    pub status_at: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// What an edna status means in the one status model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    Sent,
    Delivered,
    Read,
    /// Not delivered, for good (`UNDELIVERED`, `FAILED`, `CANCELLED`, `EXPIRED`).
    Failed,
    /// Still on its way (`ENQUEUED`, `DELAYED`): nothing to record.
    Pending,
}

impl Callback {
    pub fn reported(&self) -> Option<Reported> {
        Some(match self.status.to_ascii_uppercase().as_str() {
            "SENT" => Reported::Sent,
            "DELIVERED" => Reported::Delivered,
            "READ" => Reported::Read,
            "UNDELIVERED" | "FAILED" | "CANCELLED" | "EXPIRED" => Reported::Failed,
            "ENQUEUED" | "DELAYED" => Reported::Pending,
            _ => return None,
        })
    }
}
