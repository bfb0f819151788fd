//! The e-mail channel as configured: the SMTP mailer, the clinic as messages name it, and the
//! sender worker's wake-up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use vizit_integrations::smtp::Mailer;

/// The `system` of e-mail rows in the outbound queue.
pub const SYSTEM: &str = "smtp";

/// The clinic as its messages present it.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// The seller on receipts and the signature of messages: «ООО "Клиника здоровья"».
    pub clinic_name: String,
    /// The seller's INN on receipts.
    pub clinic_inn: Option<String>,
    /// Times in messages are written in this zone (IANA), and so are receipts' `t=` fields.
    pub time_zone: String,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            clinic_name: "Клиника".into(),
            clinic_inn: None,
            time_zone: "Europe/Moscow".into(),
        }
    }
}

/// When notifications about consultations go out, and where their links lead.
#[derive(Debug, Clone)]
pub struct NoticeRules {
    /// Where people reach Vizit (`http://host:port`, no trailing slash): links in messages.
    pub public_url: String,
    /// Reminders this long before a paid consultation starts, to the patient and the doctor.
    pub reminders: Vec<Duration>,
    /// The request for a review goes to the patient this long after the consultation closed.
    pub review_after: Duration,
    /// The doctor is asked to close the consultation this long after its slot ended.
    pub close_after: Duration,
}

impl Default for NoticeRules {
    fn default() -> Self {
        NoticeRules {
            public_url: "http://127.0.0.1:8080".into(),
            reminders: vec![Duration::from_secs(24 * 3600), Duration::from_secs(15 * 60)],
            review_after: Duration::from_secs(2 * 3600),
            close_after: Duration::ZERO,
        }
    }
}

/// The e-mail channel.
pub struct Notifications {
    pub mailer: Mailer,
    pub settings: EmailSettings,
    pub rules: NoticeRules,
    wake: Arc<Notify>,
}

impl Notifications {
    pub fn new(mailer: Mailer, settings: EmailSettings) -> Arc<Notifications> {
        Self::with_rules(mailer, settings, NoticeRules::default())
    }

    pub fn with_rules(
        mailer: Mailer,
        settings: EmailSettings,
        rules: NoticeRules,
    ) -> Arc<Notifications> {
        Arc::new(Notifications {
            mailer,
            settings,
            rules,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Wake the sender (a message queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
