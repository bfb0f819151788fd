//! What a shop with 54-FZ receipts is refused, in YooKassa's words: `400 invalid_request` with
//! the offending `parameter`. The rules are the OpenAPI document's (types, lengths, enums,
//! ranges) and the documented business rules (a receipt is required, its customer has an e-mail
//! or a phone, each item has the FFD 1.2 fields, the items add up to the amount).

use serde_json::Value;

/// A refused request: the parameter and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub parameter: String,
    pub description: String,
}

fn invalid(parameter: impl Into<String>, description: impl Into<String>) -> Invalid {
    Invalid {
        parameter: parameter.into(),
        description: description.into(),
    }
}

/// `"1500.00"` → 150000 kopecks; at most two decimals, a dot, no sign, no thousands separator.
pub fn kopecks_from_value(value: &str) -> Option<i64> {
    let (whole, frac) = match value.split_once('.') {
        Some((w, f)) => (w, f),
        None => (value, ""),
    };
    if whole.is_empty()
        || whole.len() > 12
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

/// 150000 kopecks → `"1500.00"`.
pub fn value_from_kopecks(kopecks: i64) -> String {
    format!("{}.{:02}", kopecks / 100, kopecks % 100)
}

/// A `MonetaryAmount` in roubles: a positive amount in kopecks.
pub fn amount(v: &Value, at: &str) -> Result<i64, Invalid> {
    let Some(o) = v.as_object() else {
        return Err(invalid(
            at,
            format!("The {at} parameter is required and must be an object"),
        ));
    };
    let value = o.get("value").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            format!("{at}.value"),
            "The amount value must be a string, e.g. \"1000.00\"",
        )
    })?;
    match o.get("currency").and_then(Value::as_str) {
        Some("RUB") => {}
        Some(_) => {
            return Err(invalid(
                format!("{at}.currency"),
                "The shop accepts payments in RUB only",
            ));
        }
        None => {
            return Err(invalid(
                format!("{at}.currency"),
                "The currency is required",
            ));
        }
    }
    match kopecks_from_value(value) {
        Some(k) if k > 0 => Ok(k),
        _ => Err(invalid(
            format!("{at}.value"),
            format!(
                "Invalid amount value {value:?}: a positive number with a dot and at most two decimals"
            ),
        )),
    }
}

fn string_at_most(
    v: Option<&Value>,
    at: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, Invalid> {
    match v {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(invalid(at, format!("The {at} parameter is required"))),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(
            at,
            format!("The {at} parameter must be 1 to {max} characters"),
        )),
        Some(_) => Err(invalid(at, format!("The {at} parameter must be a string"))),
    }
}

/// `metadata`: at most 16 keys, keys ≤ 32 characters, values strings ≤ 512 (or null).
pub fn metadata(v: Option<&Value>) -> Result<Option<Value>, Invalid> {
    let Some(v) = v else {
        return Ok(None);
    };
    let Some(o) = v.as_object() else {
        return Err(invalid(
            "metadata",
            "The metadata parameter must be an object",
        ));
    };
    if o.len() > 16 {
        return Err(invalid(
            "metadata",
            "At most 16 keys are allowed in metadata",
        ));
    }
    for (k, val) in o {
        if k.chars().count() > 32 {
            return Err(invalid(
                format!("metadata.{k}"),
                "A metadata key is at most 32 characters",
            ));
        }
        match val {
            Value::Null => {}
            Value::String(s) if s.chars().count() <= 512 => {}
            _ => {
                return Err(invalid(
                    format!("metadata.{k}"),
                    "A metadata value is a string of at most 512 characters",
                ));
            }
        }
    }
    Ok(Some(v.clone()))
}

/// What a valid `POST /payments` asks for.
#[derive(Debug)]
pub struct NewPayment {
    pub amount: i64,
    pub description: Option<String>,
    pub capture: bool,
    pub return_url: String,
    pub metadata: Option<Value>,
    pub receipt: Value,
}

pub fn payment(body: &Value) -> Result<NewPayment, Invalid> {
    let Some(o) = body.as_object() else {
        return Err(invalid("body", "The request body must be a JSON object"));
    };
    let amount = amount(o.get("amount").unwrap_or(&Value::Null), "amount")?;
    let description = string_at_most(o.get("description"), "description", 128, false)?;
    let capture = match o.get("capture") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                "capture",
                "The capture parameter must be true or false",
            ));
        }
    };
    let confirmation = o
        .get("confirmation")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "confirmation",
                "The confirmation parameter is required for this payment",
            )
        })?;
    match confirmation.get("type").and_then(Value::as_str) {
        Some("redirect") => {}
        Some(other) => {
            return Err(invalid(
                "confirmation.type",
                format!("The confirmation type {other} is not available to this shop"),
            ));
        }
        None => {
            return Err(invalid(
                "confirmation.type",
                "The confirmation type is required",
            ));
        }
    }
    let return_url = string_at_most(
        confirmation.get("return_url"),
        "confirmation.return_url",
        2048,
        true,
    )?
    .unwrap_or_default();
    if !(return_url.starts_with("http://") || return_url.starts_with("https://")) {
        return Err(invalid(
            "confirmation.return_url",
            "The return_url must be an absolute http(s) URL",
        ));
    }
    let metadata = metadata(o.get("metadata"))?;
    let receipt = o
        .get("receipt")
        .ok_or_else(|| invalid("receipt", "Receipt is missing or illegal"))?;
    receipt_data(receipt, amount, "receipt")?;
    Ok(NewPayment {
        amount,
        description,
        capture,
        return_url,
        metadata,
        receipt: receipt.clone(),
    })
}

/// A `ReceiptData` whose items add up to `total`.
pub fn receipt_data(v: &Value, total: i64, at: &str) -> Result<(), Invalid> {
    let Some(o) = v.as_object() else {
        return Err(invalid(at, "Receipt is missing or illegal"));
    };
    let customer = o
        .get("customer")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                format!("{at}.customer"),
                "The customer's e-mail or phone is required for the receipt",
            )
        })?;
    let email = customer.get("email").and_then(Value::as_str);
    let phone = customer.get("phone").and_then(Value::as_str);
    if email.is_none() && phone.is_none() {
        return Err(invalid(
            format!("{at}.customer"),
            "The customer's e-mail or phone is required for the receipt",
        ));
    }
    if let Some(email) = email
        && (email.len() > 254
            || !email.contains('@')
            || email.starts_with('@')
            || email.ends_with('@'))
    {
        return Err(invalid(
            format!("{at}.customer.email"),
            "Invalid e-mail address",
        ));
    }
    if let Some(phone) = phone
        && (!(4..=15).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(
            format!("{at}.customer.phone"),
            "The phone must be digits only in the E.164 format, e.g. 79000000000",
        ));
    }
    if let Some(t) = o.get("tax_system_code")
        && !t.as_i64().is_some_and(|t| (1..=6).contains(&t))
    {
        return Err(invalid(
            format!("{at}.tax_system_code"),
            "The tax_system_code must be 1 to 6",
        ));
    }
    if let Some(i) = o.get("internet")
        && !i.is_boolean()
    {
        return Err(invalid(
            format!("{at}.internet"),
            "The internet flag must be true or false",
        ));
    }
    let items = o
        .get("items")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            invalid(
                format!("{at}.items"),
                "The receipt must have at least one item",
            )
        })?;
    if items.len() > 100 {
        return Err(invalid(
            format!("{at}.items"),
            "At most 100 items per receipt",
        ));
    }
    let mut sum: i64 = 0;
    for (i, item) in items.iter().enumerate() {
        let at = format!("{at}.items[{i}]");
        let Some(item) = item.as_object() else {
            return Err(invalid(at, "A receipt item must be an object"));
        };
        string_at_most(
            item.get("description"),
            &format!("{at}.description"),
            128,
            true,
        )?;
        let quantity = item
            .get("quantity")
            .and_then(Value::as_f64)
            .filter(|q| *q > 0.0 && *q <= 99_999.999)
            .ok_or_else(|| {
                invalid(
                    format!("{at}.quantity"),
                    "The quantity must be a positive number, at most 99999.999",
                )
            })?;
        if ((quantity * 1000.0).round() - quantity * 1000.0).abs() > 1e-6 {
            return Err(invalid(
                format!("{at}.quantity"),
                "The quantity has at most three decimals",
            ));
        }
        let price = amount(
            item.get("amount").unwrap_or(&Value::Null),
            &format!("{at}.amount"),
        )?;
        match item.get("vat_code").and_then(Value::as_i64) {
            Some(1..=12) => {}
            _ => {
                return Err(invalid(
                    format!("{at}.vat_code"),
                    "The vat_code must be 1 to 12",
                ));
            }
        }
        for (field, allowed) in [
            ("payment_subject", PAYMENT_SUBJECTS),
            ("payment_mode", PAYMENT_MODES),
            ("measure", MEASURES),
        ] {
            match item.get(field).and_then(Value::as_str) {
                Some(v) if allowed.contains(&v) => {}
                Some(v) => {
                    return Err(invalid(
                        format!("{at}.{field}"),
                        format!("Invalid value of the {field} parameter: {v}"),
                    ));
                }
                None => {
                    return Err(invalid(
                        format!("{at}.{field}"),
                        format!("The {field} parameter is required (FFD 1.2)"),
                    ));
                }
            }
        }
        sum += (price as f64 * quantity).round() as i64;
    }
    if sum != total {
        return Err(invalid(
            format!("{at}.items"),
            format!(
                "The items add up to {} but the amount is {}",
                value_from_kopecks(sum),
                value_from_kopecks(total)
            ),
        ));
    }
    Ok(())
}

const PAYMENT_SUBJECTS: &[&str] = &[
    "commodity",
    "excise",
    "job",
    "service",
    "gambling_bet",
    "gambling_prize",
    "lottery",
    "lottery_prize",
    "intellectual_activity",
    "payment",
    "agent_commission",
    "property_right",
    "non_operating_gain",
    "insurance_premium",
    "sales_tax",
    "resort_fee",
    "composite",
    "another",
    "fine",
    "tax",
    "lien",
    "cost",
    "pension_insurance_without_payouts",
    "pension_insurance_with_payouts",
    "health_insurance_without_payouts",
    "health_insurance_with_payouts",
    "health_insurance",
    "casino",
    "agent_withdrawals",
    "non_marked_excise",
    "marked_excise",
    "marked",
    "non_marked",
];

const PAYMENT_MODES: &[&str] = &[
    "full_prepayment",
    "partial_prepayment",
    "advance",
    "full_payment",
    "partial_payment",
    "credit",
    "credit_payment",
];

const MEASURES: &[&str] = &[
    "piece",
    "gram",
    "kilogram",
    "ton",
    "centimeter",
    "decimeter",
    "meter",
    "square_centimeter",
    "square_decimeter",
    "square_meter",
    "milliliter",
    "liter",
    "cubic_meter",
    "kilowatt_hour",
    "gigacalorie",
    "day",
    "hour",
    "minute",
    "second",
    "kilobyte",
    "megabyte",
    "gigabyte",
    "terabyte",
    "another",
];

/// An `Idempotence-Key`: 1 to 64 of `[0-9a-zA-Z+-_.]` (the range `+-_` as the document's
/// pattern writes it, which takes `+ , - . /` and the digits… up to `_`).
pub fn idempotence_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || (b'+'..=b'_').contains(&b) || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_are_decimal_strings_of_kopecks() {
        assert_eq!(kopecks_from_value("1500.00"), Some(150_000));
        assert_eq!(kopecks_from_value("0.5"), Some(50));
        assert_eq!(kopecks_from_value("7"), Some(700));
        assert_eq!(kopecks_from_value("1,00"), None);
        assert_eq!(kopecks_from_value("1.001"), None);
        assert_eq!(kopecks_from_value("-1.00"), None);
        assert_eq!(kopecks_from_value(""), None);
        assert_eq!(value_from_kopecks(150_005), "1500.05");
        assert_eq!(value_from_kopecks(7), "0.07");
    }

    fn item() -> Value {
        json!({"description": "Консультация", "quantity": 1, "amount": {"value": "1500.00", "currency": "RUB"},
               "vat_code": 1, "payment_subject": "service", "payment_mode": "full_prepayment", "measure": "piece"})
    }

    #[test]
    fn a_receipt_needs_a_contact_the_ffd_fields_and_the_right_sum() {
        let ok = json!({"customer": {"email": "p@example.com"}, "items": [item()]});
        assert_eq!(receipt_data(&ok, 150_000, "receipt"), Ok(()));
        let no_contact = json!({"customer": {}, "items": [item()]});
        assert_eq!(
            receipt_data(&no_contact, 150_000, "receipt")
                .unwrap_err()
                .parameter,
            "receipt.customer"
        );
        let mut no_measure = item();
        no_measure.as_object_mut().unwrap().remove("measure");
        let r = json!({"customer": {"phone": "79000000000"}, "items": [no_measure]});
        assert_eq!(
            receipt_data(&r, 150_000, "receipt").unwrap_err().parameter,
            "receipt.items[0].measure"
        );
        assert_eq!(
            receipt_data(&ok, 100_000, "receipt").unwrap_err().parameter,
            "receipt.items"
        );
        let bad_phone = json!({"customer": {"phone": "+7 900"}, "items": [item()]});
        assert!(receipt_data(&bad_phone, 150_000, "receipt").is_err());
    }

    #[test]
    fn idempotence_keys_follow_the_documented_pattern() {
        assert!(idempotence_key("2e1da982-1bb1-41f0-b9cf-758cc8bcf069"));
        assert!(idempotence_key("pay.7+x_1"));
        assert!(!idempotence_key(""));
        assert!(!idempotence_key(&"a".repeat(65)));
        assert!(!idempotence_key("white space"));
    }
}
