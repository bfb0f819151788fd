//! The Bitrix24 slot source: its client, settings and counters, and the worker's wake-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{Mutex, Notify};

use super::client::{Client, ClientSettings};
use super::metrics::Metrics;
use crate::slots::BookedConsultations;

/// The `system` of Bitrix24's rows in the outbound queue and the inbound store.
pub const SYSTEM: &str = "bitrix24";

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
    pub(super) wake: Arc<Notify>,
    pub(super) sync_requested: AtomicBool,
    /// One synchronisation at a time per process.
    pub(super) sync_lock: Mutex<()>,
    /// The consultations booked on its slots (set once, when the integration is wired in).
    bookings: OnceLock<Arc<dyn BookedConsultations>>,
}

impl Bitrix24 {
    pub fn new(settings: Bitrix24Settings) -> Arc<Bitrix24> {
        let metrics = Arc::new(Metrics::default());
        Arc::new(Bitrix24 {
            client: Client::new(settings.client.clone(), metrics.clone()),
            settings,
            metrics,
            wake: Arc::new(Notify::new()),
            sync_requested: AtomicBool::new(false),
            sync_lock: Mutex::new(()),
            bookings: OnceLock::new(),
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

impl Bitrix24 {
    /// Hand over the consultations booked on its slots (once; later calls keep the first).
    pub fn connect(&self, bookings: Arc<dyn BookedConsultations>) {
        let _ = self.bookings.set(bookings);
    }

    /// What it may do to the consultations on its slots; `None` until wired in.
    pub fn bookings(&self) -> Option<&Arc<dyn BookedConsultations>> {
        self.bookings.get()
    }

    /// A handle that wakes the worker (for whoever queues its calls).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
