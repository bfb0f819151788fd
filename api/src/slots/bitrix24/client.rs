//! The Bitrix24 REST client: typed `booking.v1.*` calls through an incoming-webhook URL, the
//! `result`/`time` envelope and `{error, error_description}` errors, paging through every list,
//! `batch` for per-doctor templates, a client-side leaky bucket that stays under the portal's
//! budget, and retries with backoff on 503/429/5xx.
//!
//! Retries inside one call happen only where repeating is harmless: reads, and any call the
//! portal refused before running it (`QUERY_LIMIT_EXCEEDED`, `OPERATION_TIME_LIMIT`). A write that
//! may have run (a timeout, a 5xx) returns the error to the outbox, which repeats it safely (see
//! `outbound.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::metrics::Metrics;

/// Items per page of a list method, and sub-calls per `batch` (documented limits).
pub const PAGE_SIZE: usize = 50;
pub const BATCH_LIMIT: usize = 50;
/// A list longer than this many pages is treated as a malformed answer.
const MAX_PAGES: usize = 400;

#[derive(Debug, Clone, thiserror::Error)]
pub enum B24Error {
    /// The portal answered with its error envelope.
    #[error("Bitrix24 refused {method}: error {code} ({description}, HTTP {status})")]
    Api {
        method: String,
        status: u16,
        code: String,
        description: String,
    },
    /// An HTTP answer that is not Bitrix24's envelope (a proxy page, an outage).
    #[error("Bitrix24 answered {method} with HTTP {status} and no Bitrix24 error")]
    Http { method: String, status: u16 },
    /// No answer: connection refused, reset, timed out.
    #[error("Bitrix24 unreachable during {method}: {detail}")]
    Unreachable { method: String, detail: String },
    /// A 2xx answer whose body is not the documented shape.
    #[error("Bitrix24 answered {method} with a malformed response: {detail}")]
    Malformed { method: String, detail: String },
}

impl B24Error {
    /// The Bitrix24 error code (`"1018"`, `"QUERY_LIMIT_EXCEEDED"`), if the portal sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            B24Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth repeating at once (with backoff): the portal is down or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            B24Error::Api { status, .. } | B24Error::Http { status, .. } => {
                *status == 429 || *status >= 500
            }
            B24Error::Unreachable { .. } => true,
            B24Error::Malformed { .. } => false,
        }
    }

    /// A method error (numeric or empty code: invalid period, not found, conflict): repeating
    /// the same request gives the same answer. Everything else (outage, credentials, garbage)
    /// may pass later.
    pub fn is_method_error(&self) -> bool {
        matches!(self, B24Error::Api { code, .. } if code.is_empty() || code.parse::<i64>().is_ok())
    }

    /// The portal refused the call before running it, so repeating it cannot duplicate anything.
    fn not_executed(&self) -> bool {
        matches!(
            self.code(),
            Some("QUERY_LIMIT_EXCEEDED" | "OPERATION_TIME_LIMIT" | "OVERLOAD_LIMIT")
        )
    }

    fn malformed(method: &str, detail: impl Into<String>) -> B24Error {
        B24Error::Malformed {
            method: method.to_owned(),
            detail: detail.into(),
        }
    }
}

/// A successful answer: `result`, and for lists `total` and `next`.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub result: Value,
    pub total: Option<i64>,
    pub next: Option<i64>,
}

/// How the client talks to the portal.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `https://portal/rest/{user_id}/{code}/` — a secret: it is the credential.
    pub webhook_url: SecretString,
    /// Requests allowed back to back, and the sustained rate (the portal's bucket is 50 and 2/s
    /// per source IP; stay under it).
    pub burst: f64,
    pub per_second: f64,
    pub request_timeout: Duration,
    /// Attempts per call for retryable failures.
    pub max_attempts: u32,
    /// First retry delay; doubles each time, capped at 30 s.
    pub backoff: Duration,
}

impl ClientSettings {
    pub fn new(webhook_url: SecretString) -> ClientSettings {
        ClientSettings {
            webhook_url,
            burst: 40.0,
            per_second: 1.8,
            request_timeout: Duration::from_secs(15),
            max_attempts: 5,
            backoff: Duration::from_millis(500),
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    settings: ClientSettings,
    bucket: Mutex<(f64, Instant)>,
    pub metrics: std::sync::Arc<Metrics>,
}

// ---- typed objects ---------------------------------------------------------------------------

/// A bookable resource (a doctor).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub type_id: Option<i64>,
}

/// One range of a weekly working-hours template: `from`/`to` are minutes from 00:00 in
/// `timezone`, on each of `week_days` (`Mon`..`Sun`), cut into `slot_size`-minute slots.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlotRange {
    pub from: i64,
    pub to: i64,
    pub slot_size: i64,
    pub timezone: String,
    pub week_days: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Moment {
    pub timestamp: i64,
    pub timezone: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct DatePeriod {
    pub from: Moment,
    pub to: Moment,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub resource_ids: Vec<i64>,
    pub date_period: DatePeriod,
}

/// A booking to create.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewBooking {
    pub name: String,
    pub description: String,
    pub resource_ids: Vec<i64>,
    pub date_period: DatePeriod,
}

impl Client {
    pub fn new(settings: ClientSettings, metrics: std::sync::Arc<Metrics>) -> Client {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("vizit/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Client {
            http,
            settings,
            bucket: Mutex::new((0.0, Instant::now())),
            metrics,
        }
    }

    /// Wait until the client-side bucket lets one more request through.
    async fn pace(&self) {
        let wait = {
            let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            b.0 = (b.0 - now.duration_since(b.1).as_secs_f64() * self.settings.per_second).max(0.0);
            b.1 = now;
            b.0 += 1.0;
            (b.0 - self.settings.burst).max(0.0) / self.settings.per_second
        };
        if wait > 0.0 {
            self.metrics.rate_limit_wait(wait);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// One HTTP request, no retries.
    async fn once(&self, method: &str, params: &Value) -> Result<Envelope, B24Error> {
        self.pace().await;
        let url = format!(
            "{}/{}",
            self.settings
                .webhook_url
                .expose_secret()
                .trim_end_matches('/'),
            method
        );
        let sent = self.http.post(url).json(params).send().await;
        let response = match sent {
            Ok(r) => r,
            // reqwest's message can include the URL, which holds the webhook secret: keep only
            // the kind of failure.
            Err(e) => {
                let detail = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return Err(B24Error::Unreachable {
                    method: method.to_owned(),
                    detail: detail.to_owned(),
                });
            }
        };
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|_| B24Error::Unreachable {
            method: method.to_owned(),
            detail: "connection lost while reading the answer".to_owned(),
        })?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        match parsed {
            Some(Value::Object(mut m)) if m.contains_key("error") => Err(B24Error::Api {
                method: method.to_owned(),
                status,
                code: match m.remove("error") {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                description: m
                    .remove("error_description")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            }),
            _ if !(200..300).contains(&status) => Err(B24Error::Http {
                method: method.to_owned(),
                status,
            }),
            Some(Value::Object(mut m)) if m.contains_key("result") => Ok(Envelope {
                result: m.remove("result").unwrap_or(Value::Null),
                total: optional_int(method, m.get("total"))?,
                next: optional_int(method, m.get("next"))?,
            }),
            Some(_) => Err(B24Error::malformed(method, "no `result` in the answer")),
            None => Err(B24Error::malformed(method, "the answer is not JSON")),
        }
    }

    /// A call with retries: every retryable failure for reads (`idempotent`), only "refused
    /// before running" for writes.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        idempotent: bool,
    ) -> Result<Envelope, B24Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.once(method, &params).await;
            self.metrics.call(
                method,
                outcome.is_err(),
                outcome.as_ref().err().and_then(B24Error::code),
            );
            match outcome {
                Ok(e) => return Ok(e),
                Err(e) => {
                    let retry = if idempotent {
                        e.is_transient()
                    } else {
                        e.not_executed()
                    };
                    if !retry || attempt >= self.settings.max_attempts {
                        return Err(e);
                    }
                    let delay = self
                        .settings
                        .backoff
                        .saturating_mul(1 << (attempt - 1).min(6));
                    let delay = delay.min(Duration::from_secs(30));
                    tracing::debug!(method, attempt, delay_ms = delay.as_millis() as u64, error = %e, "Bitrix24 call retried");
                    self.metrics.retry();
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Every page of a list method, `key` being the array inside `result`.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        method: &str,
        mut params: Value,
        key: &str,
    ) -> Result<Vec<T>, B24Error> {
        let mut items = Vec::new();
        let mut start: i64 = 0;
        for _ in 0..MAX_PAGES {
            if start > 0 {
                params["start"] = json!(start);
            }
            let page = self.call(method, params.clone(), true).await?;
            let batch: Vec<T> =
                typed(method, page.result.get(key).cloned().unwrap_or(Value::Null))?;
            items.extend(batch);
            match page.next {
                Some(next) if next > start => start = next,
                Some(_) => return Err(B24Error::malformed(method, "`next` does not advance")),
                None => return Ok(items),
            }
        }
        Err(B24Error::malformed(
            method,
            "more pages than any schedule has",
        ))
    }

    /// `booking.v1.resource.list`, every page (optionally one resource type).
    pub async fn resources(&self, type_id: Option<i64>) -> Result<Vec<Resource>, B24Error> {
        let mut filter = json!({});
        if let Some(t) = type_id {
            filter["typeId"] = json!(t);
        }
        self.list_all(
            "booking.v1.resource.list",
            json!({"filter": filter, "order": {"id": "ASC"}}),
            "resource",
        )
        .await
    }

    /// The weekly templates of several resources: `booking.v1.resource.slots.list` in `batch`es
    /// of up to 50. A resource Bitrix24 does not know (1009) gets no entry.
    pub async fn templates(
        &self,
        resources: &[i64],
    ) -> Result<HashMap<i64, Vec<SlotRange>>, B24Error> {
        let mut out = HashMap::new();
        for chunk in resources.chunks(BATCH_LIMIT) {
            let cmd: serde_json::Map<String, Value> = chunk
                .iter()
                .map(|r| {
                    (
                        format!("r{r}"),
                        json!(format!("booking.v1.resource.slots.list?resourceId={r}")),
                    )
                })
                .collect();
            let reply = self
                .call("batch", json!({"halt": 0, "cmd": cmd}), true)
                .await?;
            let results = reply.result.get("result").cloned().unwrap_or(Value::Null);
            let errors = reply
                .result
                .get("result_error")
                .cloned()
                .unwrap_or(Value::Null);
            for r in chunk {
                let key = format!("r{r}");
                if let Some(slots) = results.get(&key) {
                    let ranges: Vec<SlotRange> = typed(
                        "booking.v1.resource.slots.list",
                        slots.get("slots").cloned().unwrap_or(Value::Null),
                    )?;
                    out.insert(*r, ranges);
                } else if let Some(err) = errors.get(&key) {
                    let code = match err.get("error") {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    };
                    if code != "1009" {
                        return Err(B24Error::Api {
                            method: "booking.v1.resource.slots.list".into(),
                            status: 200,
                            code,
                            description: err
                                .get("error_description")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        });
                    }
                } else {
                    return Err(B24Error::malformed(
                        "batch",
                        format!("no result or error for {key}"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Bookings overlapping `[from, to)` (unix seconds), every page.
    pub async fn bookings(&self, from: i64, to: i64) -> Result<Vec<Booking>, B24Error> {
        self.list_all(
            "booking.v1.booking.list",
            json!({"filter": {"within": {"dateFrom": from, "dateTo": to}}, "order": {"dateFrom": "ASC"}}),
            "booking",
        )
        .await
    }

    /// One booking; `None` when Bitrix24 does not have it (1021).
    pub async fn booking(&self, id: i64) -> Result<Option<Booking>, B24Error> {
        match self
            .call("booking.v1.booking.get", json!({"id": id}), true)
            .await
        {
            Ok(e) => Ok(Some(typed(
                "booking.v1.booking.get",
                e.result.get("booking").cloned().unwrap_or(Value::Null),
            )?)),
            Err(e) if matches!(e.code(), Some("1021" | "1019")) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a booking; its id. (The docs' table says an integer, their example `{"id": N}`:
    /// both are accepted.)
    pub async fn add_booking(&self, booking: &NewBooking) -> Result<i64, B24Error> {
        let e = self
            .call("booking.v1.booking.add", json!({"fields": booking}), false)
            .await?;
        match &e.result {
            Value::Number(n) => n.as_i64(),
            Value::Object(m) => m.get("id").and_then(Value::as_i64),
            _ => None,
        }
        .ok_or_else(|| B24Error::malformed("booking.v1.booking.add", "no booking id in the answer"))
    }

    /// Move a booking. Repeating the same move is harmless.
    pub async fn move_booking(&self, id: i64, period: &DatePeriod) -> Result<(), B24Error> {
        let e = self
            .call(
                "booking.v1.booking.update",
                json!({"id": id, "fields": {"datePeriod": period}}),
                true,
            )
            .await?;
        expect_true("booking.v1.booking.update", &e)
    }

    /// Delete a booking (deleting one already gone succeeds).
    pub async fn delete_booking(&self, id: i64) -> Result<(), B24Error> {
        let e = self
            .call("booking.v1.booking.delete", json!({"id": id}), true)
            .await?;
        expect_true("booking.v1.booking.delete", &e)
    }

    /// Link a CRM contact to a booking.
    pub async fn set_contact(&self, booking: i64, contact: i64) -> Result<(), B24Error> {
        let e = self
            .call(
                "booking.v1.booking.client.set",
                json!({"bookingId": booking, "clients": [{"id": contact, "type": {"module": "crm", "code": "CONTACT"}}]}),
                true,
            )
            .await?;
        expect_true("booking.v1.booking.client.set", &e)
    }
}

fn expect_true(method: &str, e: &Envelope) -> Result<(), B24Error> {
    match e.result {
        Value::Bool(true) => Ok(()),
        _ => Err(B24Error::malformed(method, "expected `true`")),
    }
}

fn optional_int(method: &str, v: Option<&Value>) -> Result<Option<i64>, B24Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| B24Error::malformed(method, "a paging field is not an integer")),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| B24Error::malformed(method, "a paging field is not an integer")),
        Some(_) => Err(B24Error::malformed(
            method,
            "a paging field is not an integer",
        )),
    }
}

fn typed<T: DeserializeOwned>(method: &str, v: Value) -> Result<T, B24Error> {
    serde_json::from_value(v).map_err(|e| B24Error::malformed(method, e.to_string()))
}
