//! What the handlers, services and workers of `api` share: the platform pieces (database,
//! clock, outbox, outbound queue, inbound store, scheduler), the business settings, the keys
//! that sign join tokens, and the optional parts (recording storage, the Bitrix24 slot source).
//!
//! [`Core`] is the narrow part services run on (database, clock, settings, outbox): what a
//! transition needs and nothing that could hold it in a cycle of references.

use std::sync::Arc;
use std::time::Duration;

use vizit_signaling::TokenKeys;

use crate::chat::hub::{Chat, ChatSettings};
use crate::documents::settings::DocumentSettings;
use crate::identity::EsiaLogin;
use crate::notifications::Notifications;
use crate::payments::settings::Payments;
use crate::people::guard::{LoginGuard, LoginLimits};
use crate::platform::inbound::InboundStore;
use crate::platform::outbox::OutboxSettings;
use crate::platform::{Clock, Db, Outbound, Outbox, Scheduler};
use crate::recordings::storage::Recordings;
use crate::slots::bitrix24::source::Bitrix24;

/// Business settings (the binary maps its config onto these).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// A booking not paid within this is expired and its slot released.
    pub pay_within: Duration,
    /// The call opens this long before the slot starts…
    pub join_before: Duration,
    /// …and closes this long after it ends.
    pub join_grace: Duration,
    /// A consultation not closed this long after its slot ended is flagged overdue.
    pub overdue_after: Duration,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Vizit is reached over HTTPS: cookies are `Secure` and `__Host-` prefixed.
    pub secure_cookies: bool,
    /// Demo mode: dev login for patients.
    pub demo: bool,
    /// How often the periodic jobs (expiry, overdue, retention) run.
    pub jobs_interval: Duration,
    /// Domain events are kept this long after every subscriber has them.
    pub outbox_retention: Duration,
    /// Questionnaires and deletion requests.
    pub documents: DocumentSettings,
    /// The consultations' chat: file size, flood limit.
    pub chat: ChatSettings,
    /// Where patients get help (`clinic.help`), shown on their pages.
    pub help: Option<String>,
    /// Patients may list and download their own consultations' recordings
    /// (`recordings.patients_may_download`).
    pub patient_recordings: bool,
    /// Password logins: failures allowed per account and address, hashing in flight.
    pub login_limits: LoginLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the limits per address).
    pub trusted_proxies: Vec<crate::platform::net::IpNet>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            pay_within: Duration::from_secs(30 * 60),
            join_before: Duration::from_secs(15 * 60),
            join_grace: Duration::from_secs(30 * 60),
            overdue_after: Duration::from_secs(24 * 3600),
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            demo: false,
            jobs_interval: Duration::from_secs(30),
            outbox_retention: Duration::from_secs(7 * 86_400),
            documents: DocumentSettings::default(),
            chat: ChatSettings::default(),
            help: None,
            patient_recordings: false,
            login_limits: LoginLimits::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// What services run on.
#[derive(Clone)]
pub struct Core {
    pub db: Db,
    pub clock: Clock,
    pub settings: Arc<ApiSettings>,
    pub outbox: Arc<Outbox>,
    pub logins: Arc<LoginGuard>,
}

impl Core {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    pub clock: Clock,
    pub settings: Arc<ApiSettings>,
    pub outbox: Arc<Outbox>,
    /// Password logins' rate limits and hashing slots.
    pub logins: Arc<LoginGuard>,
    pub outbound: Arc<Outbound>,
    pub inbound: Arc<InboundStore>,
    pub scheduler: Arc<Scheduler>,
    pub keys: TokenKeys,
    /// The chat's waiting readers and flood limits.
    pub chat: Arc<Chat>,
    /// Connection checks issued lately (their limits).
    pub checks: Arc<crate::precall::limits::Checks>,
    /// Slots from Bitrix24 and bookings pushed back; `None`: slots are managed through the API.
    pub bitrix24: Option<Arc<Bitrix24>>,
    /// Recording storage (local folder or S3) and its rules; `None`: no recordings.
    pub recordings: Option<Arc<Recordings>>,
    /// Online payments (YooKassa); `None`: the clinic marks bookings paid itself.
    pub payments: Option<Arc<Payments>>,
    /// E-mail (SMTP); `None`: no messages are sent.
    pub notifications: Option<Arc<Notifications>>,
    /// Patients' sign-in through ESIA; `None`: patients come through the portal only.
    pub esia: Option<Arc<EsiaLogin>>,
}

impl ApiState {
    /// The state over `db`, on the system clock.
    pub fn new(db: Db, keys: TokenKeys, settings: ApiSettings) -> Self {
        Self::with_clock(db, keys, settings, Clock::system())
    }

    /// The state over `db`, deciding by `clock` (tests move a manual one).
    pub fn with_clock(db: Db, keys: TokenKeys, settings: ApiSettings, clock: Clock) -> Self {
        let outbox = Arc::new(Outbox::new(
            db.clone(),
            clock.clone(),
            OutboxSettings {
                retention: settings.outbox_retention,
                ..OutboxSettings::default()
            },
        ));
        ApiState {
            logins: Arc::new(LoginGuard::new(settings.login_limits.clone())),
            outbound: Arc::new(Outbound::new(db.clone(), clock.clone())),
            inbound: Arc::new(InboundStore::new(db.clone(), clock.clone())),
            scheduler: Arc::new(Scheduler::new(db.clone(), clock.clone())),
            outbox,
            db,
            clock,
            chat: Arc::new(Chat::new(settings.chat.clone())),
            checks: Arc::default(),
            settings: Arc::new(settings),
            keys,
            bitrix24: None,
            recordings: None,
            payments: None,
            notifications: None,
            esia: None,
        }
    }

    pub fn core(&self) -> Core {
        Core {
            db: self.db.clone(),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
            outbox: self.outbox.clone(),
            logins: self.logins.clone(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}
