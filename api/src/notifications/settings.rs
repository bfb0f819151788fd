//! The e-mail channel as configured: the SMTP mailer, the clinic as messages name it, and the
//! sender worker's wake-up.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Notify;
use vizit_integrations::smtp::Mailer;
use vizit_integrations::{edna, max};

use super::channels::Channel;

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

/// The MAX bot notifications go through.
pub struct MaxChannel {
    pub client: max::Client,
    /// What MAX sends in `X-Max-Bot-Api-Secret` (set with the subscription).
    pub webhook_secret: SecretString,
    /// The bot's username and where deep links start it (`https://max.ru`).
    pub bot_name: String,
    pub link_base: String,
}

/// The edna Pulse account notifications go through.
pub struct EdnaChannel {
    pub client: edna::Client,
    /// The header edna's webhook key comes in, and its whole value (`Token <key>`).
    pub callback_header: String,
    pub callback_value: SecretString,
    /// A message edna reports failed falls back this long later, unless a later stage of the
    /// cascade (SMS) delivered it meanwhile.
    pub fallback_after: Duration,
}

/// Which channels go out, in which order.
pub struct Channels {
    /// The clinic's order; a channel not listed is not used.
    pub order: Vec<Channel>,
    /// A message that fails on one channel is sent on the next one that reaches its recipient.
    pub fallback: bool,
    pub max: Option<MaxChannel>,
    pub edna: Option<EdnaChannel>,
}

impl Default for Channels {
    fn default() -> Self {
        Channels {
            order: vec![Channel::Email],
            fallback: true,
            max: None,
            edna: None,
        }
    }
}

impl Channels {
    /// The channels configured, in the clinic's order.
    pub fn enabled(&self) -> Vec<Channel> {
        self.order
            .iter()
            .copied()
            .filter(|c| match c {
                Channel::Email => true,
                Channel::Max => self.max.is_some(),
                Channel::Edna => self.edna.is_some(),
            })
            .collect()
    }
}

/// The channels of notifications and what messages say.
pub struct Notifications {
    /// `None`: no SMTP server — e-mail is not a channel, and an e-mail queued anyway (a
    /// receipt) fails visibly.
    pub mailer: Option<Mailer>,
    pub settings: EmailSettings,
    pub rules: NoticeRules,
    pub channels: Channels,
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
        Self::with_channels(mailer, settings, rules, Channels::default())
    }

    pub fn with_channels(
        mailer: Mailer,
        settings: EmailSettings,
        rules: NoticeRules,
        channels: Channels,
    ) -> Arc<Notifications> {
        Self::with_optional_email(Some(mailer), settings, rules, channels)
    }

    /// As [`Notifications::with_channels`], with or without an SMTP server (the messengers
    /// alone carry notifications without one).
    pub fn with_optional_email(
        mailer: Option<Mailer>,
        settings: EmailSettings,
        rules: NoticeRules,
        channels: Channels,
    ) -> Arc<Notifications> {
        Arc::new(Notifications {
            mailer,
            settings,
            rules,
            channels,
            wake: Arc::new(Notify::new()),
        })
    }

    /// The channels that go out, in the clinic's order: those configured, and e-mail only with
    /// an SMTP server.
    pub fn enabled(&self) -> Vec<Channel> {
        self.channels
            .enabled()
            .into_iter()
            .filter(|c| *c != Channel::Email || self.mailer.is_some())
            .collect()
    }

    /// Wake the sender (a message queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn e_mail_calls_are_the_smtp_system() {
        assert_eq!(super::Channel::Email.system(), super::SYSTEM);
    }
}
