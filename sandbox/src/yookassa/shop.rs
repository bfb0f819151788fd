//! The shop's state: payments, refunds, receipts, the idempotence store, faults, and the
//! notifications it sends. The HTTP surfaces (`api.rs`, `checkout.rs`, `admin.rs`) act on it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::validate::value_from_kopecks;

/// How the stand-in is set up.
#[derive(Debug, Clone)]
pub struct YooKassaOptions {
    /// The shop id (the Basic-auth user name).
    pub shop_id: String,
    /// The secret key (the Basic-auth password).
    pub secret_key: String,
    /// Where notifications go; settable later.
    pub notification_url: Option<String>,
    /// The address notifications are sent from (a 127.x address on loopback), so the receiver's
    /// source check can tell them from anything else; `None`: the system's choice.
    pub notification_source: Option<IpAddr>,
    /// A receipt is registered (fiscal data present) this long after its payment or refund.
    pub receipt_delay: Duration,
    /// Idempotence keys are kept this long (YooKassa: 24 h).
    pub idempotence_ttl: Duration,
    /// A payment nobody confirms is canceled (`expired_on_confirmation`) after this.
    pub confirmation_ttl: Duration,
    /// The fee YooKassa keeps, in hundredths of a percent (`income_amount`).
    pub fee_basis_points: i64,
}

impl Default for YooKassaOptions {
    fn default() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        YooKassaOptions {
            shop_id: rng.random_range(100_000..999_999).to_string(),
            secret_key: format!("test_{}", crate::bitrix24::random_code(43)),
            notification_url: None,
            notification_source: None,
            receipt_delay: Duration::from_secs(2),
            idempotence_ttl: Duration::from_secs(24 * 3600),
            confirmation_ttl: Duration::from_secs(3600),
            fee_basis_points: 350,
        }
    }
}

/// A payment as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub description: Option<String>,
    pub capture: bool,
    pub metadata: Option<Value>,
    /// The `receipt` of the request, as sent.
    pub receipt: Option<Value>,
    pub return_url: String,
    pub created_at: String,
    pub created: Instant,
    pub captured_at: Option<String>,
    pub expires_at: Option<String>,
    pub paid: bool,
    pub refunded: i64,
    pub cancellation: Option<(String, String)>,
}

/// A refund.
#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub status: String,
    pub amount: i64,
    pub description: Option<String>,
    pub receipt: Option<Value>,
    pub metadata: Option<Value>,
    pub created_at: String,
}

/// A fiscal receipt of a payment or a refund.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub id: String,
    /// `payment` or `refund`.
    pub kind: String,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub items: Value,
    pub amount: i64,
    pub customer: Value,
    pub created: Instant,
    pub registered: Option<Fiscal>,
}

/// What the fiscal drive wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fiscal {
    pub document_number: String,
    pub storage_number: String,
    pub attribute: String,
    pub registered_at: String,
    pub provider_id: String,
}

/// A failure to inject into the next matching API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `202` "still processing" with `retry_after` (ms); nothing is done.
    Accepted,
    /// `429 too_many_requests`; nothing is done.
    TooManyRequests,
    /// `500 internal_server_error`; nothing is done.
    ServerError,
    /// The work is done (and kept under the idempotence key), but the answer is a `500`: the
    /// caller cannot know it worked.
    LostAnswer,
    /// The work is done and answered after 30 s: the caller times out first.
    Slow,
}

/// What notifications do, for tests of a receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotifyMode {
    /// Each notification is sent this many more times.
    pub duplicates: u32,
    /// Each is sent this long after the change.
    pub delay_ms: u64,
    /// Held until `release` (which sends them newest first: out of order).
    pub hold: bool,
}

/// A notification as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub event: String,
    pub object_id: String,
    /// The HTTP status the receiver answered (`None`: unreachable).
    pub answer: Option<u16>,
}

#[derive(Debug)]
pub(super) struct Stored {
    /// The route and body of the request (a JSON map compares without regard to key order).
    pub(super) request: (String, Value),
    pub(super) at: Instant,
    /// The answer (only `200`s are kept).
    pub(super) body: Value,
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// Where notifications go (`None`: nowhere; they are dropped).
    pub(super) notification_url: Option<String>,
    pub(super) payments: Vec<Payment>,
    pub(super) refunds: Vec<Refund>,
    pub(super) receipts: Vec<Receipt>,
    /// (key) → the first answer.
    pub(super) idempotence: HashMap<String, Stored>,
    /// (method and route, e.g. `POST /payments`) → faults to apply in order.
    faults: HashMap<String, VecDeque<Fault>>,
    notify: NotifyMode,
    held: Vec<Notification>,
    sent: Vec<Sent>,
    stall_receipts: bool,
    next_fiscal: u64,
    base_url: String,
    requests: u64,
    /// The body of every POST, by route, as received.
    pub(super) bodies: Vec<(String, Value)>,
}

/// The stand-in's state. Cheap to clone.
#[derive(Clone)]
pub struct YooKassa {
    state: Arc<Mutex<State>>,
    pub(super) options: Arc<YooKassaOptions>,
    /// The HTTP client notifications are sent with (from `notification_source` if set); `None`
    /// if it could not be built (notifications are then dropped).
    notifier: Option<reqwest::Client>,
}

/// Refusals of the Rust/admin API (the HTTP API answers YooKassa's error bodies instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// YooKassa's time format: UTC with milliseconds.
pub fn timestamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn timestamp_in(d: Duration) -> String {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::try_from(d).unwrap_or_default())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An id in YooKassa's shape (36 characters, like a UUID).
pub(super) fn object_id() -> String {
    let u = uuid::Uuid::new_v4().to_string();
    // YooKassa's ids look like `2da5c87d-000f-5000-8000-1b26f1e9a2b3`.
    format!("{}-000f-5000-8000-{}", &u[..8], &u[24..])
}

impl YooKassa {
    pub fn new(options: YooKassaOptions) -> YooKassa {
        let mut notifier = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(ip) = options.notification_source {
            notifier = notifier.local_address(ip);
        }
        YooKassa {
            state: Arc::new(Mutex::new(State {
                notification_url: options.notification_url.clone(),
                ..State::default()
            })),
            options: Arc::new(options),
            notifier: notifier.build().ok(),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn options(&self) -> &YooKassaOptions {
        &self.options
    }

    pub(crate) fn set_base_url(&self, url: String) {
        self.state().base_url = url;
    }

    /// The API base URL Vizit is configured with (`…/yookassa/v3`), once listening.
    pub fn api_url(&self) -> String {
        format!("{}/yookassa/v3", self.state().base_url)
    }

    /// Where notifications go (`None`: nowhere; they are dropped).
    pub fn set_notification_url(&self, url: Option<String>) {
        self.state().notification_url = url;
    }

    pub(super) fn notification_url(&self) -> Option<String> {
        self.state().notification_url.clone()
    }

    /// Fail the next `count` calls of `route` (`POST /payments`, `GET /payments/{id}`, …) so.
    pub fn add_fault(&self, route: &str, fault: Fault, count: usize) {
        let mut s = self.state();
        let queue = s.faults.entry(route.to_owned()).or_default();
        for _ in 0..count {
            queue.push_back(fault);
        }
    }

    /// Forget the faults still waiting for `route`.
    pub fn clear_faults(&self, route: &str) {
        self.state().faults.remove(route);
    }

    pub(super) fn take_fault(&self, route: &str) -> Option<Fault> {
        self.state().faults.get_mut(route)?.pop_front()
    }

    pub fn set_notify_mode(&self, mode: NotifyMode) {
        self.state().notify = mode;
    }

    /// Registered receipts stay `pending` while stalled (a cash register that is down).
    pub fn stall_receipts(&self, stalled: bool) {
        self.state().stall_receipts = stalled;
    }

    pub fn payments(&self) -> Vec<Payment> {
        self.state().payments.clone()
    }

    pub fn payment(&self, id: &str) -> Option<Payment> {
        self.state().payments.iter().find(|p| p.id == id).cloned()
    }

    pub fn refunds(&self) -> Vec<Refund> {
        self.state().refunds.clone()
    }

    /// Receipts, each as it stands now (registered once its delay is over).
    pub fn receipts(&self) -> Vec<Receipt> {
        let mut s = self.state();
        self.register_due(&mut s);
        s.receipts.clone()
    }

    /// Notifications sent so far, in the order they were sent.
    pub fn sent(&self) -> Vec<Sent> {
        self.state().sent.clone()
    }

    /// The body of every POST received, with its route (`POST /payments`…), in order — for
    /// tests that check a client's requests against the document.
    pub fn bodies(&self) -> Vec<(String, Value)> {
        self.state().bodies.clone()
    }

    /// API calls answered so far (faults included).
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    pub(super) fn count_request(&self) {
        self.state().requests += 1;
    }

    /// The person pays on the confirmation page.
    pub fn pay(&self, id: &str) -> Result<Payment, Refused> {
        let (payment, event) = {
            let mut s = self.state();
            self.expire_due(&mut s);
            let p = s
                .payments
                .iter_mut()
                .find(|p| p.id == id)
                .ok_or_else(|| Refused(format!("no payment {id}")))?;
            if p.status != "pending" {
                return Err(Refused(format!("the payment is {}", p.status)));
            }
            p.paid = true;
            if p.capture {
                p.status = "succeeded".into();
                p.captured_at = Some(timestamp());
            } else {
                p.status = "waiting_for_capture".into();
                p.expires_at = Some(timestamp_in(Duration::from_secs(7 * 86_400)));
            }
            let p = p.clone();
            if p.status == "succeeded" {
                Self::issue_receipt_for_payment(&mut s, &p, p.amount);
            }
            let event = format!("payment.{}", p.status);
            (p, event)
        };
        self.notify(&event, self.payment_json(&payment));
        Ok(payment)
    }

    /// The person's bank declines (or they give up) on the confirmation page.
    pub fn decline(&self, id: &str, party: &str, reason: &str) -> Result<Payment, Refused> {
        let payment = {
            let mut s = self.state();
            // One left on the page past its time expired; it is not declined now.
            self.expire_due(&mut s);
            let p = s
                .payments
                .iter_mut()
                .find(|p| p.id == id)
                .ok_or_else(|| Refused(format!("no payment {id}")))?;
            if p.status != "pending" {
                return Err(Refused(format!("the payment is {}", p.status)));
            }
            p.status = "canceled".into();
            p.cancellation = Some((party.to_owned(), reason.to_owned()));
            p.clone()
        };
        self.notify("payment.canceled", self.payment_json(&payment));
        Ok(payment)
    }

    /// Send the notification of an object's current state again (`times` times).
    pub fn renotify(&self, object_id: &str, times: u32) -> Result<(), Refused> {
        if let Some(p) = self.payment(object_id) {
            if !matches!(
                p.status.as_str(),
                "waiting_for_capture" | "succeeded" | "canceled"
            ) {
                return Err(Refused(format!(
                    "a {} payment has no notification",
                    p.status
                )));
            }
            for _ in 0..times {
                self.notify(&format!("payment.{}", p.status), self.payment_json(&p));
            }
            return Ok(());
        }
        let refund = self
            .state()
            .refunds
            .iter()
            .find(|r| r.id == object_id)
            .cloned();
        match refund {
            Some(r) if r.status == "succeeded" => {
                for _ in 0..times {
                    self.notify("refund.succeeded", self.refund_json(&r));
                }
                Ok(())
            }
            Some(r) => Err(Refused(format!(
                "a {} refund has no notification",
                r.status
            ))),
            None => Err(Refused(format!("no payment or refund {object_id}"))),
        }
    }

    /// Payments nobody confirmed in time are canceled.
    pub(super) fn expire_due(&self, s: &mut State) {
        let ttl = self.options.confirmation_ttl;
        let mut expired = Vec::new();
        for p in s.payments.iter_mut() {
            if p.status == "pending" && p.created.elapsed() >= ttl {
                p.status = "canceled".into();
                p.cancellation = Some(("yoo_money".into(), "expired_on_confirmation".into()));
                expired.push(p.clone());
            }
        }
        for p in expired {
            let body = Self::payment_json_locked(s, &self.options, &p);
            self.notify_locked(s, "payment.canceled", body);
        }
    }

    /// Receipts whose delay is over are registered (unless stalled).
    pub(super) fn register_due(&self, s: &mut State) {
        if s.stall_receipts {
            return;
        }
        let delay = self.options.receipt_delay;
        let mut next = s.next_fiscal;
        for r in s.receipts.iter_mut() {
            if r.registered.is_none() && r.created.elapsed() >= delay {
                next += 1;
                r.registered = Some(Fiscal {
                    document_number: (1000 + next).to_string(),
                    storage_number: "9961440300462123".into(),
                    attribute: format!("{:010}", fiscal_attribute(&r.id)),
                    registered_at: timestamp(),
                    provider_id: uuid::Uuid::new_v4().to_string(),
                });
            }
        }
        s.next_fiscal = next;
    }

    pub(super) fn issue_receipt_for_payment(s: &mut State, p: &Payment, amount: i64) {
        if let Some(receipt) = &p.receipt {
            Self::issue_receipt(s, &p.id, None, receipt, amount);
        }
    }

    /// A receipt of a payment (or of its refund `refund_id`), to be registered after a delay.
    pub(super) fn issue_receipt(
        s: &mut State,
        payment_id: &str,
        refund_id: Option<&str>,
        receipt: &Value,
        amount: i64,
    ) {
        s.receipts.push(Receipt {
            id: format!("rt-{}", object_id()),
            kind: if refund_id.is_some() {
                "refund"
            } else {
                "payment"
            }
            .into(),
            payment_id: Some(payment_id.to_owned()),
            refund_id: refund_id.map(str::to_owned),
            items: receipt["items"].clone(),
            amount,
            customer: receipt["customer"].clone(),
            created: Instant::now(),
            registered: None,
        });
    }

    /// The registration state of the receipt of a payment or refund.
    fn registration(
        s: &State,
        payment: Option<&str>,
        refund: Option<&str>,
    ) -> Option<&'static str> {
        let r = s.receipts.iter().find(|r| {
            (payment.is_some() && r.payment_id.as_deref() == payment && r.kind == "payment")
                || (refund.is_some() && r.refund_id.as_deref() == refund)
        })?;
        Some(if r.registered.is_some() {
            "succeeded"
        } else {
            "pending"
        })
    }

    /// Keep a new payment; its JSON as created.
    pub(super) fn payment_json_after_insert(&self, p: Payment) -> Value {
        let mut s = self.state();
        let json = Self::payment_json_locked(&s, &self.options, &p);
        s.payments.push(p);
        json
    }

    pub(super) fn payment_json(&self, p: &Payment) -> Value {
        let s = self.state();
        Self::payment_json_locked(&s, &self.options, p)
    }

    pub(super) fn payment_json_locked(s: &State, options: &YooKassaOptions, p: &Payment) -> Value {
        let mut v = json!({
            "id": p.id,
            "status": p.status,
            "amount": {"value": value_from_kopecks(p.amount), "currency": "RUB"},
            "recipient": {"account_id": options.shop_id, "gateway_id": "1000001"},
            "created_at": p.created_at,
            "test": true,
            "paid": p.paid,
            "refundable": p.status == "succeeded" && p.refunded < p.amount,
        });
        let o = v.as_object_mut().expect("an object");
        if let Some(d) = &p.description {
            o.insert("description".into(), json!(d));
        }
        if let Some(m) = &p.metadata {
            o.insert("metadata".into(), m.clone());
        }
        if p.status == "pending" {
            o.insert(
                "confirmation".into(),
                json!({
                    "type": "redirect",
                    "return_url": p.return_url,
                    "confirmation_url": format!("{}/yookassa/checkout/{}", s.base_url, p.id),
                }),
            );
        }
        if p.paid {
            o.insert(
                "payment_method".into(),
                json!({
                    "type": "bank_card",
                    "id": p.id,
                    "saved": false,
                    "status": "inactive",
                    "title": "Bank card *4477",
                    "card": {"first6": "220220", "last4": "4477", "expiry_year": "2030",
                             "expiry_month": "12", "card_type": "Mir"},
                }),
            );
            o.insert(
                "income_amount".into(),
                json!({"value": value_from_kopecks(p.amount - p.amount * options.fee_basis_points / 10_000), "currency": "RUB"}),
            );
        }
        if let Some(at) = &p.captured_at {
            o.insert("captured_at".into(), json!(at));
        }
        if let Some(at) = &p.expires_at {
            o.insert("expires_at".into(), json!(at));
        }
        if p.refunded > 0 {
            o.insert(
                "refunded_amount".into(),
                json!({"value": value_from_kopecks(p.refunded), "currency": "RUB"}),
            );
        }
        if p.receipt.is_some() && p.status == "succeeded" {
            let reg = Self::registration(s, Some(&p.id), None).unwrap_or("pending");
            o.insert("receipt_registration".into(), json!(reg));
        }
        if let Some((party, reason)) = &p.cancellation {
            o.insert(
                "cancellation_details".into(),
                json!({"party": party, "reason": reason}),
            );
        }
        v
    }

    pub(super) fn refund_json(&self, r: &Refund) -> Value {
        let s = self.state();
        Self::refund_json_locked(&s, r)
    }

    pub(super) fn refund_json_locked(s: &State, r: &Refund) -> Value {
        let mut v = json!({
            "id": r.id,
            "payment_id": r.payment_id,
            "status": r.status,
            "created_at": r.created_at,
            "amount": {"value": value_from_kopecks(r.amount), "currency": "RUB"},
        });
        let o = v.as_object_mut().expect("an object");
        if let Some(d) = &r.description {
            o.insert("description".into(), json!(d));
        }
        if let Some(m) = &r.metadata {
            o.insert("metadata".into(), m.clone());
        }
        if r.receipt.is_some() {
            let reg = Self::registration(s, None, Some(&r.id)).unwrap_or("pending");
            o.insert("receipt_registration".into(), json!(reg));
        }
        v
    }

    pub(super) fn receipt_json(r: &Receipt) -> Value {
        let mut v = json!({
            "id": r.id,
            "type": r.kind,
            "status": if r.registered.is_some() { "succeeded" } else { "pending" },
            "items": r.items,
            "internet": true,
            "settlements": [{"type": "cashless", "amount": {"value": value_from_kopecks(r.amount), "currency": "RUB"}}],
        });
        let o = v.as_object_mut().expect("an object");
        if let Some(id) = &r.payment_id {
            o.insert("payment_id".into(), json!(id));
        }
        if let Some(id) = &r.refund_id {
            o.insert("refund_id".into(), json!(id));
        }
        if let Some(f) = &r.registered {
            o.insert("fiscal_document_number".into(), json!(f.document_number));
            o.insert("fiscal_storage_number".into(), json!(f.storage_number));
            o.insert("fiscal_attribute".into(), json!(f.attribute));
            o.insert("registered_at".into(), json!(f.registered_at));
            o.insert("fiscal_provider_id".into(), json!(f.provider_id));
        }
        v
    }
}

/// A stable 10-digit fiscal sign per receipt (a real one is a signature by the fiscal drive).
fn fiscal_attribute(receipt: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(receipt.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) % 10_000_000_000
}

// ---- notifications ----------------------------------------------------------------------
//
// Notifications: `{"type": "notification", "event": "<object>.<status>", "object": {…}}` POSTed
// as JSON to the configured URL, from the configured source address, retried (1 s doubling, up
// to 10 times) until the receiver answers 200 — YooKassa retries for 24 h. A test can ask for
// duplicates, a delay, or to hold them and release them newest first (out of order).

/// One notification waiting to go.
#[derive(Debug, Clone)]
pub(super) struct Notification {
    event: String,
    body: Value,
}

const ATTEMPTS: u32 = 10;

impl YooKassa {
    /// Send a notification (or hold it), after the state lock is released.
    pub(super) fn notify(&self, event: &str, object: Value) {
        let mut s = self.state();
        self.notify_locked(&mut s, event, object);
    }

    pub(super) fn notify_locked(&self, s: &mut State, event: &str, object: Value) {
        let n = Notification {
            event: event.to_owned(),
            body: json!({"type": "notification", "event": event, "object": object}),
        };
        if s.notify.hold {
            s.held.push(n);
            return;
        }
        let copies = 1 + s.notify.duplicates;
        let delay = Duration::from_millis(s.notify.delay_ms);
        for _ in 0..copies {
            self.spawn_send(n.clone(), delay);
        }
    }

    /// Send what is held, newest first (so a receiver sees them out of order).
    pub fn release_notifications(&self) -> usize {
        let (held, copies) = {
            let mut s = self.state();
            (std::mem::take(&mut s.held), 1 + s.notify.duplicates)
        };
        let count = held.len();
        for (i, n) in held.into_iter().rev().enumerate() {
            for _ in 0..copies {
                // Spaced out a little, so the order of arrival is the order of release.
                self.spawn_send(n.clone(), Duration::from_millis(50 * i as u64));
            }
        }
        count
    }

    fn spawn_send(&self, n: Notification, delay: Duration) {
        let y = self.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            y.send(n).await;
        });
    }

    async fn send(&self, n: Notification) {
        let Some(client) = &self.notifier else {
            return;
        };
        let object_id = n.body["object"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let Some(url) = self.notification_url() else {
                return;
            };
            let answer = client
                .post(&url)
                .json(&n.body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok();
            self.state().sent.push(Sent {
                event: n.event.clone(),
                object_id: object_id.clone(),
                answer,
            });
            if answer == Some(200) {
                return;
            }
            tracing::debug!(event = %n.event, attempt, ?answer, "YooKassa sandbox: notification not accepted; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
}
