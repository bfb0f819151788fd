//! The e-mail channel as configured: the SMTP mailer, the clinic as messages name it, and the
//! sender worker's wake-up.

use std::sync::Arc;

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

/// The e-mail channel.
pub struct Notifications {
    pub mailer: Mailer,
    pub settings: EmailSettings,
    wake: Arc<Notify>,
}

impl Notifications {
    pub fn new(mailer: Mailer, settings: EmailSettings) -> Arc<Notifications> {
        Arc::new(Notifications {
            mailer,
            settings,
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
