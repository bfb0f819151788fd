//! YooKassa's objects as Vizit sends and reads them (a subset of the OpenAPI document's
//! `CreatePaymentRequest`, `RefundRequest`, `ReceiptData`, `Payment`, `Refund`, `Receipt`).
//! Money is integer kopecks here and a decimal string in roubles on the wire.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount in roubles (the only currency Vizit takes), kept as kopecks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub i64);

impl Amount {
    pub fn kopecks(self) -> i64 {
        self.0
    }

    /// `"1500.00"`.
    pub fn value(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }

    /// `"1500.00"` → 150000 kopecks; a dot, at most two decimals, no sign.
    pub fn parse(value: &str) -> Option<Amount> {
        let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
        if whole.is_empty()
            || whole.len() > 12
            || frac.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let frac = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().ok()? * 10,
            _ => frac.parse::<i64>().ok()?,
        };
        Some(Amount(whole.parse::<i64>().ok()? * 100 + frac))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            value: String,
            currency: &'a str,
        }
        Wire {
            value: self.value(),
            currency: "RUB",
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            value: String,
            currency: String,
        }
        let w = Wire::deserialize(d)?;
        if w.currency != "RUB" {
            return Err(D::Error::custom(format!(
                "an amount in {}, not RUB",
                w.currency
            )));
        }
        Amount::parse(&w.value).ok_or_else(|| D::Error::custom(format!("an amount {:?}", w.value)))
    }
}

/// Who the receipt goes to: an e-mail or a phone (digits only, E.164).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Customer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// `payment_subject` (54-FZ tag 1212).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSubject {
    Service,
    Commodity,
    Job,
    Another,
}

/// `payment_mode` (54-FZ tag 1214): a consultation paid before it happens is a full
/// prepayment; the settlement after it a full payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMode {
    FullPrepayment,
    FullPayment,
}

/// `measure` (54-FZ tag 2108, mandatory with FFD 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Piece,
    Hour,
    Minute,
    Another,
}

/// One line of a receipt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// At most 128 characters.
    pub description: String,
    pub quantity: u32,
    /// The unit price.
    pub amount: Amount,
    /// 1..12 (1: без НДС; 11: 22 %; 12: 22/122 — the clinic's accountant decides).
    pub vat_code: u8,
    pub payment_subject: PaymentSubject,
    pub payment_mode: PaymentMode,
    pub measure: Measure,
}

/// The `receipt` of a payment or refund.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiptData {
    pub customer: Customer,
    pub items: Vec<Item>,
    /// Paid online (54-FZ tag 1125).
    pub internet: bool,
    /// 1..6; ignored with "Чеки от ЮKassa".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_system_code: Option<u8>,
}

/// `POST /payments`: a one- or two-stage payment, confirmed on YooKassa's page.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    pub amount: Amount,
    /// At most 128 characters; shown to the person paying.
    pub description: String,
    /// Where YooKassa's page sends the person back.
    pub return_url: String,
    /// Charge at once (`true`) or hold until captured.
    pub capture: bool,
    /// At most 16 keys of at most 32 characters, values at most 512.
    pub metadata: BTreeMap<String, String>,
    pub receipt: ReceiptData,
}

/// `POST /refunds`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRefund {
    pub payment_id: String,
    pub amount: Amount,
    /// At most 250 characters.
    pub description: String,
    pub receipt: ReceiptData,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    WaitingForCapture,
    Succeeded,
    Canceled,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::WaitingForCapture => "waiting_for_capture",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Canceled => "canceled",
        }
    }

    /// A status never moves backwards: pending → waiting_for_capture → succeeded | canceled.
    pub fn rank(self) -> u8 {
        match self {
            PaymentStatus::Pending => 0,
            PaymentStatus::WaitingForCapture => 1,
            PaymentStatus::Succeeded | PaymentStatus::Canceled => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Canceled,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Canceled => "canceled",
        }
    }
}

/// Who canceled and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Cancellation {
    pub party: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Confirmation {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub confirmation_url: Option<String>,
}

/// A payment as YooKassa reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Payment {
    pub id: String,
    pub status: PaymentStatus,
    pub amount: Amount,
    pub paid: bool,
    #[serde(default)]
    pub refundable: bool,
    #[serde(default)]
    pub refunded_amount: Option<Amount>,
    #[serde(default)]
    pub confirmation: Option<Confirmation>,
    #[serde(default)]
    pub metadata: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub cancellation_details: Option<Cancellation>,
    #[serde(default)]
    pub receipt_registration: Option<String>,
    pub created_at: String,
    #[serde(default)]
    pub captured_at: Option<String>,
    #[serde(default)]
    pub test: bool,
}

impl Payment {
    /// Where the person confirms (pays), while the payment is pending.
    pub fn confirmation_url(&self) -> Option<&str> {
        self.confirmation.as_ref()?.confirmation_url.as_deref()
    }
}

/// A refund as YooKassa reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub status: RefundStatus,
    pub amount: Amount,
    pub created_at: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub receipt_registration: Option<String>,
    #[serde(default)]
    pub cancellation_details: Option<Cancellation>,
}

/// A line of a registered receipt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReceiptLine {
    #[serde(default)]
    pub description: Option<String>,
    pub quantity: f64,
    pub amount: Amount,
    pub vat_code: u8,
    #[serde(default)]
    pub payment_subject: Option<String>,
    #[serde(default)]
    pub payment_mode: Option<String>,
    #[serde(default)]
    pub measure: Option<String>,
}

/// A fiscal receipt (чек) of a payment or refund; the fiscal fields are there once it is
/// registered (`status` `succeeded`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Receipt {
    pub id: String,
    /// `payment` or `refund`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payment_id: Option<String>,
    #[serde(default)]
    pub refund_id: Option<String>,
    /// `pending`, `succeeded` or `canceled`.
    pub status: String,
    /// ФД.
    #[serde(default)]
    pub fiscal_document_number: Option<String>,
    /// ФН.
    #[serde(default)]
    pub fiscal_storage_number: Option<String>,
    /// ФП.
    #[serde(default)]
    pub fiscal_attribute: Option<String>,
    #[serde(default)]
    pub registered_at: Option<String>,
    #[serde(default)]
    pub fiscal_provider_id: Option<String>,
    pub items: Vec<ReceiptLine>,
}

impl Receipt {
    pub fn is_registered(&self) -> bool {
        self.status == "succeeded" && self.fiscal_document_number.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_travel_as_rouble_strings() {
        assert_eq!(
            serde_json::to_value(Amount(150_000)).unwrap(),
            serde_json::json!({"value": "1500.00", "currency": "RUB"})
        );
        assert_eq!(Amount(7).value(), "0.07");
        let a: Amount =
            serde_json::from_value(serde_json::json!({"value": "12.5", "currency": "RUB"}))
                .unwrap();
        assert_eq!(a, Amount(1250));
        assert!(
            serde_json::from_value::<Amount>(
                serde_json::json!({"value": "1.00", "currency": "USD"})
            )
            .is_err()
        );
        assert_eq!(Amount::parse("1,00"), None);
        assert_eq!(Amount::parse("-1"), None);
    }

    #[test]
    fn statuses_never_move_backwards() {
        assert!(PaymentStatus::Succeeded.rank() > PaymentStatus::WaitingForCapture.rank());
        assert!(PaymentStatus::WaitingForCapture.rank() > PaymentStatus::Pending.rank());
        assert_eq!(
            PaymentStatus::Canceled.rank(),
            PaymentStatus::Succeeded.rank()
        );
    }
}
