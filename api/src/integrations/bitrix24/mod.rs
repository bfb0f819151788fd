//! Slots from Bitrix24 (Online Booking, `booking.v1.*`, through an incoming webhook) and
//! bookings pushed back. See `docs/bitrix24.md` for the behaviour and `sync.rs` for who wins a
//! conflict.
//!
//! - `client.rs` — the REST client (envelope, errors, paging, batch, rate limit, retries).
//! - `schedule.rs` — free slots from templates and bookings, time-zone and DST safe.
//! - `sync.rs` — the periodic and event-driven synchronisation; slot conflicts.
//! - `outbound.rs` — booking/cancel/reschedule through the `outbound_calls` outbox.
//! - `routes.rs` — the `ONBOOKING*` event handler and the admin endpoints.

pub mod client;
pub mod metrics;
pub mod outbound;
pub mod routes;
pub mod schedule;
pub mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{Mutex, Notify};

pub use client::{B24Error, Client, ClientSettings};
pub use metrics::Metrics;
pub use sync::SyncReport;

use crate::ApiState;

/// How the integration behaves.
#[derive(Debug, Clone)]
pub struct Bitrix24Settings {
    pub client: ClientSettings,
    /// The outgoing webhook's application token: events must carry it.
    pub application_token: Option<SecretString>,
    /// A full synchronisation runs this often (and after events).
    pub sync_interval: Duration,
    /// Slots are kept this far ahead.
    pub horizon: Duration,
    /// Only resources of this type are doctors (none: every resource).
    pub resource_type_id: Option<i64>,
    /// Create a doctor for each resource no doctor is linked to.
    pub create_doctors: bool,
    /// Price of a synced slot.
    pub price_kopecks: i64,
    /// How long a booking request waits for Bitrix24 before answering "pending".
    pub inline_timeout: Duration,
}

impl Bitrix24Settings {
    pub fn new(webhook_url: SecretString) -> Bitrix24Settings {
        Bitrix24Settings {
            client: ClientSettings::new(webhook_url),
            application_token: None,
            sync_interval: Duration::from_secs(60),
            horizon: Duration::from_secs(14 * 86_400),
            resource_type_id: None,
            create_doctors: true,
            price_kopecks: 150_000,
            inline_timeout: Duration::from_secs(5),
        }
    }
}

/// The integration: client, settings, and the worker's wake-up.
pub struct Bitrix24 {
    pub client: Client,
    pub settings: Bitrix24Settings,
    pub metrics: Arc<Metrics>,
    wake: Notify,
    sync_requested: AtomicBool,
    sync_lock: Mutex<()>,
}

impl Bitrix24 {
    pub fn new(settings: Bitrix24Settings) -> Arc<Bitrix24> {
        let metrics = Arc::new(Metrics::default());
        Arc::new(Bitrix24 {
            client: Client::new(settings.client.clone(), metrics.clone()),
            settings,
            metrics,
            wake: Notify::new(),
            sync_requested: AtomicBool::new(false),
            sync_lock: Mutex::new(()),
        })
    }

    /// Ask the worker for a synchronisation soon (events, released bookings).
    pub fn request_sync(&self) {
        self.sync_requested.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Wake the worker to deliver queued calls.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// How long the worker waits between looks at the outbox.
const TICK: Duration = Duration::from_secs(2);
/// Events and requests arriving together are handled in one synchronisation.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The background worker: delivers queued calls, handles events, synchronises periodically.
pub async fn run(state: ApiState, b: Arc<Bitrix24>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut next_sync = tokio::time::Instant::now();
    // After a failed synchronisation, events and requests wait too (a portal that is down is not
    // asked again every tick): 5 s, doubling up to the sync interval.
    let mut backoff = Duration::from_secs(5);
    let mut failed_until: Option<tokio::time::Instant> = None;
    loop {
        if let Err(e) = outbound::deliver_due(&state, &b).await {
            tracing::warn!(error = %e, "Bitrix24 outbox: database error; retrying");
        }
        let now = tokio::time::Instant::now();
        let asked = b.sync_requested.load(Ordering::Acquire)
            || routes::pending_events(&state).await.unwrap_or(0) > 0;
        if now >= next_sync || (asked && failed_until.is_none_or(|t| now >= t)) {
            b.sync_requested.store(false, Ordering::Release);
            match routes::handle_events_and_sync(&state, &b).await {
                Ok(report) => {
                    tracing::debug!(?report, "Bitrix24 sync done");
                    backoff = Duration::from_secs(5);
                    failed_until = None;
                    next_sync = tokio::time::Instant::now() + b.settings.sync_interval;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "Bitrix24 sync failed");
                    next_sync = tokio::time::Instant::now() + backoff;
                    failed_until = Some(next_sync);
                    backoff =
                        (backoff * 2).min(b.settings.sync_interval.max(Duration::from_secs(5)));
                }
            }
        }
        let wait = next_sync
            .saturating_duration_since(tokio::time::Instant::now())
            .min(TICK);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = b.wake.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
}
