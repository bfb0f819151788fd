//! The YooKassa API v3 client: HTTP Basic auth, one `Idempotence-Key` per business operation
//! (the caller's, stored before the first attempt and reused on every retry), and YooKassa's
//! documented retry rules within a call:
//!
//! - `500` and no answer (timeout, connection reset): the outcome is unknown; repeat with the
//!   same key (YooKassa returns the first result if it had one);
//! - `202`: still processing; repeat after `retry_after` milliseconds;
//! - `429`: too many requests; back off (`retry_after` if given);
//! - other `4xx`: refused for good ([`Error::Refused`], with YooKassa's code and parameter).
//!
//! When the attempts of one call run out the error is [`Error::Unavailable`]: the caller's
//! outbound queue repeats the call later with the same key. The secret key never reaches a log
//! (`SecretString`), nor does the body of a request (it carries the patient's e-mail).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::model::{NewPayment, NewRefund, Payment, Receipt, Refund};

/// How to reach a shop.
#[derive(Clone)]
pub struct Settings {
    /// `https://api.yookassa.ru/v3` (no trailing slash).
    pub api_url: String,
    pub shop_id: String,
    pub secret_key: SecretString,
    pub request_timeout: Duration,
    /// Attempts per call for answers worth repeating at once (`500`, `202`, `429`, no answer).
    pub max_attempts: u32,
    /// First wait between attempts; doubles, at most 30 s (`retry_after` wins when given).
    pub backoff: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url)
            .field("shop_id", &self.shop_id)
            .field("secret_key", &"[redacted]")
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl Settings {
    pub fn new(shop_id: impl Into<String>, secret_key: SecretString) -> Settings {
        Settings {
            api_url: "https://api.yookassa.ru/v3".into(),
            shop_id: shop_id.into(),
            secret_key,
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// YooKassa refused the request (`4xx` other than 429): repeating it will not help.
    #[error("YooKassa refused {operation}: {code} ({description}){}", .parameter.as_ref().map(|p| format!(", parameter {p}")).unwrap_or_default())]
    Refused {
        operation: &'static str,
        status: u16,
        code: String,
        description: String,
        parameter: Option<String>,
    },
    /// No definite answer after the attempts of this call (`500`, `202`, `429`, no answer):
    /// repeat later with the same idempotence key.
    #[error("YooKassa unavailable during {operation}: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
    /// A `200` whose body is not the documented object.
    #[error("YooKassa answered {operation} with a malformed body: {detail}")]
    Malformed {
        operation: &'static str,
        detail: String,
    },
}

impl Error {
    /// Worth repeating later with the same key.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// YooKassa's error code (`invalid_request`, `invalid_credentials`, `not_found`…).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The parameter YooKassa named, if any.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            Error::Refused { parameter, .. } => parameter.as_deref(),
            _ => None,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    settings: Settings,
}

/// Longest wait between two attempts of one call.
const MAX_WAIT: Duration = Duration::from_secs(30);

impl Client {
    pub fn new(settings: Settings) -> Client {
        let http = crate::http::client(settings.request_timeout);
        Client { http, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `POST /payments`.
    pub async fn create_payment(&self, p: &NewPayment, key: &str) -> Result<Payment, Error> {
        let body = json!({
            "amount": p.amount,
            "capture": p.capture,
            "confirmation": {"type": "redirect", "return_url": p.return_url},
            "description": p.description,
            "metadata": p.metadata,
            "receipt": p.receipt,
        });
        self.call(
            "create payment",
            reqwest::Method::POST,
            "/payments",
            Some(key),
            Some(&body),
        )
        .await
    }

    /// `GET /payments/{id}`.
    pub async fn payment(&self, id: &str) -> Result<Payment, Error> {
        self.call(
            "read payment",
            reqwest::Method::GET,
            &format!("/payments/{}", segment(id)),
            None,
            None,
        )
        .await
    }

    /// `POST /payments/{id}/capture` (the whole amount).
    pub async fn capture(&self, id: &str, key: &str) -> Result<Payment, Error> {
        self.call(
            "capture payment",
            reqwest::Method::POST,
            &format!("/payments/{}/capture", segment(id)),
            Some(key),
            Some(&json!({})),
        )
        .await
    }

    /// `POST /payments/{id}/cancel` (only while `waiting_for_capture`; no body).
    pub async fn cancel(&self, id: &str, key: &str) -> Result<Payment, Error> {
        self.call(
            "cancel payment",
            reqwest::Method::POST,
            &format!("/payments/{}/cancel", segment(id)),
            Some(key),
            None,
        )
        .await
    }

    /// `POST /refunds`.
    pub async fn create_refund(&self, r: &NewRefund, key: &str) -> Result<Refund, Error> {
        let mut body = json!({
            "payment_id": r.payment_id,
            "amount": r.amount,
            "description": r.description,
            "receipt": r.receipt,
        });
        if !r.metadata.is_empty() {
            body["metadata"] = json!(r.metadata);
        }
        self.call(
            "create refund",
            reqwest::Method::POST,
            "/refunds",
            Some(key),
            Some(&body),
        )
        .await
    }

    /// `GET /refunds/{id}`.
    pub async fn refund(&self, id: &str) -> Result<Refund, Error> {
        self.call(
            "read refund",
            reqwest::Method::GET,
            &format!("/refunds/{}", segment(id)),
            None,
            None,
        )
        .await
    }

    /// `GET /receipts?payment_id=` — the receipts of a payment (its refunds' are separate).
    pub async fn payment_receipts(&self, payment_id: &str) -> Result<Vec<Receipt>, Error> {
        self.receipts("payment_id", payment_id).await
    }

    /// `GET /receipts?refund_id=`.
    pub async fn refund_receipts(&self, refund_id: &str) -> Result<Vec<Receipt>, Error> {
        self.receipts("refund_id", refund_id).await
    }

    async fn receipts(&self, by: &str, id: &str) -> Result<Vec<Receipt>, Error> {
        let list: ReceiptList = self
            .call(
                "read receipts",
                reqwest::Method::GET,
                &format!("/receipts?{by}={}", segment(id)),
                None,
                None,
            )
            .await?;
        Ok(list.items)
    }

    /// One call, with the retries YooKassa documents.
    async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.settings.api_url.trim_end_matches('/'));
        let mut wait = self.settings.backoff;
        let mut last = String::new();
        let attempts = self.settings.max_attempts.max(1);
        for attempt in 1..=attempts {
            let mut req = self.http.request(method.clone(), &url).basic_auth(
                &self.settings.shop_id,
                Some(self.settings.secret_key.expose_secret()),
            );
            if let Some(key) = key {
                req = req.header("Idempotence-Key", key);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let retry_after = match req.send().await {
                Err(e) => {
                    last = if e.is_timeout() {
                        "no answer in time".to_owned()
                    } else {
                        format!("unreachable: {}", without_url(&e))
                    };
                    None
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    if status == 200 {
                        return serde_json::from_str(&text).map_err(|e| Error::Malformed {
                            operation,
                            detail: e.to_string(),
                        });
                    }
                    let parsed: Option<Value> = serde_json::from_str(&text).ok();
                    match status {
                        202 | 429 | 500..=599 => {
                            last = format!(
                                "HTTP {status}{}",
                                parsed
                                    .as_ref()
                                    .and_then(|p| p["code"].as_str())
                                    .map(|c| format!(" {c}"))
                                    .unwrap_or_default()
                            );
                            parsed
                                .as_ref()
                                .and_then(|p| p["retry_after"].as_u64())
                                .map(Duration::from_millis)
                        }
                        _ => {
                            let p = parsed.unwrap_or(Value::Null);
                            return Err(Error::Refused {
                                operation,
                                status,
                                code: p["code"].as_str().unwrap_or("unknown").to_owned(),
                                description: p["description"]
                                    .as_str()
                                    .unwrap_or("no description")
                                    .to_owned(),
                                parameter: p["parameter"].as_str().map(str::to_owned),
                            });
                        }
                    }
                }
            };
            if attempt == attempts {
                break;
            }
            let pause = retry_after.unwrap_or(wait).min(MAX_WAIT);
            tracing::debug!(operation, attempt, reason = %last, wait_ms = pause.as_millis() as u64,
                            "YooKassa call to be repeated with the same idempotence key");
            tokio::time::sleep(pause).await;
            wait = (wait * 2).min(MAX_WAIT);
        }
        Err(Error::Unavailable {
            operation,
            detail: last,
        })
    }
}

#[derive(serde::Deserialize)]
struct ReceiptList {
    items: Vec<Receipt>,
}

/// A path segment: YooKassa's ids are `[0-9a-f-]`; anything else is escaped rather than
/// trusted into the URL.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A transport error without the URL (which may carry query parameters).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_key_never_prints() {
        let s = Settings::new("100500", SecretString::from("test_very_secret".to_owned()));
        let printed = format!("{s:?}");
        assert!(!printed.contains("test_very_secret"), "{printed}");
        assert!(printed.contains("100500"));
    }

    #[test]
    fn ids_are_escaped_into_paths() {
        assert_eq!(segment("2da5c87d-000f-5000"), "2da5c87d-000f-5000");
        assert_eq!(segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
