//! The payment provider as configured: its client and the clinic's payment rules.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use vizit_integrations::yookassa;

use crate::platform::net::IpNet;

/// The `system` of YooKassa's rows in the outbound queue and the inbound store.
pub const SYSTEM: &str = "yookassa";

/// YooKassa's published notification addresses (checked December 2026; configurable).
pub const YOOKASSA_SOURCES: [&str; 7] = [
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.156.11",
    "77.75.156.35",
    "77.75.154.128/25",
    "2a02:5180::/32",
];

/// The clinic's rules for taking money.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// The 54-FZ VAT code of a consultation (1: без НДС, usual for VAT-exempt medical services;
    /// 11: 22 %; 12: 22/122): the clinic's accountant decides.
    pub vat_code: u8,
    /// The seller's tax system (1..6); `None`: the shop's default.
    pub tax_system_code: Option<u8>,
    /// The receipt line, e.g. «Телемедицинская консультация»; the doctor's specialty follows.
    pub item_description: String,
    /// Hold the money first and charge it only while the booking still awaits payment (`true`),
    /// or charge at once (a payment that arrives after the booking expired is then refunded).
    pub two_stage: bool,
    /// A patient who cancels at least this long before the consultation gets the money back;
    /// later, not. A doctor's or the clinic's cancellation is always refunded.
    pub patient_refund_notice: Duration,
    /// Where the payment page sends the patient back: `…/pay/return?consultation=<id>`.
    pub return_base: String,
    /// Payments and refunds whose state has not changed for this long are read back (a lost
    /// notification costs this much, not money).
    pub reconcile_after: Duration,
    /// Notifications are accepted from these addresses only.
    pub notification_sources: Vec<IpNet>,
    /// `X-Forwarded-For` is believed only from these (the clinic's reverse proxy).
    pub trusted_proxies: Vec<IpNet>,
    /// How long a request waits for the provider before answering that the payment is on its way.
    pub inline_timeout: Duration,
    /// A receipt not registered this long after its payment or refund is flagged to admins.
    pub receipt_deadline: Duration,
    /// The first look for a receipt after its payment or refund; later looks back off.
    pub receipt_first_look: Duration,
}

impl PaymentSettings {
    pub fn new(return_base: impl Into<String>) -> PaymentSettings {
        PaymentSettings {
            vat_code: 1,
            tax_system_code: None,
            item_description: "Телемедицинская консультация".into(),
            two_stage: true,
            patient_refund_notice: Duration::from_secs(24 * 3600),
            return_base: return_base.into(),
            reconcile_after: Duration::from_secs(3 * 60),
            notification_sources: YOOKASSA_SOURCES
                .iter()
                .map(|s| s.parse().expect("the published ranges parse"))
                .collect(),
            trusted_proxies: Vec::new(),
            inline_timeout: Duration::from_secs(10),
            receipt_deadline: Duration::from_secs(2 * 3600),
            receipt_first_look: Duration::from_secs(5),
        }
    }
}

/// The provider: its client, the rules, and the worker's wake-up.
pub struct Payments {
    pub client: yookassa::Client,
    pub settings: PaymentSettings,
    wake: Arc<Notify>,
}

impl Payments {
    pub fn new(client: yookassa::Client, settings: PaymentSettings) -> Arc<Payments> {
        Arc::new(Payments {
            client,
            settings,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Wake the worker (a call queued, a notification stored).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Where the payment page sends the patient back after paying for `consultation`.
    pub fn return_url(&self, consultation: &str) -> String {
        format!(
            "{}/pay/return?consultation={consultation}",
            self.settings.return_base.trim_end_matches('/')
        )
    }
}
