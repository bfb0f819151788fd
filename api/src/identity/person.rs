//! What ESIA says about a person (`/rs/prns/{oid}` with contacts, documents and addresses
//! embedded) in Vizit's words: only verified contacts, dates as `yyyy-mm-dd`, SNILS as its 11
//! digits. Nothing here is ever logged: it is personal data.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::personal::{iso_date, mobile, snils_digits};

/// A passport of the Russian Federation, as ESIA holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Passport {
    pub series: String,
    pub number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
}

/// The person's data as received (fields the granted scopes did not cover are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// `yyyy-mm-dd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// `M` or `F`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// 11 digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snils: Option<String>,
    /// A confirmed ESIA account (`trusted`).
    pub trusted: bool,
    /// A verified e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A verified mobile phone, `+7XXXXXXXXXX`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// The OMS (compulsory medical insurance) policy number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oms_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passport: Option<Passport>,
    /// The registration address (or the residence address when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl PersonalData {
    /// «Фамилия Имя Отчество», or None without a name.
    pub fn full_name(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.last_name, &self.first_name, &self.middle_name]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .filter(|p| !p.trim().is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Two phone numbers are the same line (formats differ: `+7 (900) 111-22-33`, `89001112233`).
pub fn same_phone(a: &str, b: &str) -> bool {
    matches!((mobile(a), mobile(b)), (Some(x), Some(y)) if x == y)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn elements<'a>(v: &'a Value, collection: &str) -> impl Iterator<Item = &'a Value> {
    v.get(collection)
        .and_then(|c| c.get("elements"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.is_object())
}

fn verified(e: &Value) -> bool {
    e.get("vrfStu").and_then(Value::as_str) == Some("VERIFIED")
}

/// Read ESIA's person document. Errors name what is wrong, never a value.
pub fn parse(v: &Value) -> Result<PersonalData, String> {
    if !v.is_object() {
        return Err("the person is not a JSON object".into());
    }
    let mut p = PersonalData {
        last_name: text(v, "lastName"),
        first_name: text(v, "firstName"),
        middle_name: text(v, "middleName"),
        gender: text(v, "gender").filter(|g| g == "M" || g == "F"),
        trusted: v.get("trusted").and_then(Value::as_bool).unwrap_or(false),
        ..PersonalData::default()
    };
    if let Some(raw) = text(v, "birthDate") {
        p.birth_date = Some(iso_date(&raw).ok_or("birthDate is not dd.MM.yyyy")?);
    }
    if let Some(raw) = text(v, "snils") {
        p.snils = Some(snils_digits(&raw).ok_or("snils is not a valid SNILS")?);
    }
    for c in elements(v, "contacts").filter(|c| verified(c)) {
        match c.get("type").and_then(Value::as_str) {
            Some("EML") if p.email.is_none() => {
                p.email = text(c, "value").map(|e| e.to_lowercase());
            }
            Some("MBT") if p.mobile.is_none() => {
                p.mobile = text(c, "value").and_then(|m| mobile(&m))
            }
            _ => {}
        }
    }
    for d in elements(v, "documents") {
        match d.get("type").and_then(Value::as_str) {
            Some("RF_PASSPORT") if p.passport.is_none() => {
                if let (Some(series), Some(number)) = (text(d, "series"), text(d, "number")) {
                    p.passport = Some(Passport {
                        series,
                        number,
                        issue_date: text(d, "issueDate").and_then(|s| iso_date(&s)),
                        issued_by: text(d, "issuedBy"),
                    });
                }
            }
            Some("MDCL_PLCY") if p.oms_policy.is_none() => {
                p.oms_policy = match (text(d, "series"), text(d, "number")) {
                    (Some(s), Some(n)) => Some(format!("{s} {n}")),
                    (None, n) => n,
                    (Some(_), None) => None,
                };
            }
            _ => {}
        }
    }
    let addresses: Vec<&Value> = elements(v, "addresses").collect();
    p.address = ["PRG", "PLV"].iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
            .and_then(|a| text(a, "addressStr"))
    });
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_verified_contacts_and_iso_dates() {
        let v = json!({
            "firstName": "Мария", "lastName": "Иванова", "birthDate": "14.03.1985", "trusted": true,
            "snils": "112-233-445 95",
            "contacts": {"elements": [
                {"type": "EML", "vrfStu": "NOT_VERIFIED", "value": "old@example.ru"},
                {"type": "EML", "vrfStu": "VERIFIED", "value": "Ivanova@Example.ru"},
                {"type": "MBT", "vrfStu": "VERIFIED", "value": "+7(900)1112233"}]},
            "documents": {"elements": [
                {"type": "MDCL_PLCY", "vrfStu": "VERIFIED", "number": "7755440011223344"},
                {"type": "RF_PASSPORT", "series": "4510", "number": "123456", "issueDate": "20.04.2005"}]},
            "addresses": {"elements": [{"type": "PLV", "addressStr": "B"}, {"type": "PRG", "addressStr": "A"}]}
        });
        let p = parse(&v).unwrap();
        assert_eq!(p.full_name().as_deref(), Some("Иванова Мария"));
        assert_eq!(p.birth_date.as_deref(), Some("1985-03-14"));
        assert_eq!(p.email.as_deref(), Some("ivanova@example.ru"));
        assert_eq!(p.mobile.as_deref(), Some("+79001112233"));
        assert_eq!(p.oms_policy.as_deref(), Some("7755440011223344"));
        assert_eq!(
            p.passport.as_ref().unwrap().issue_date.as_deref(),
            Some("2005-04-20")
        );
        assert_eq!(p.address.as_deref(), Some("A"));
        assert!(parse(&json!({"birthDate": "1985-03-14"})).is_err());
        assert!(parse(&json!([])).is_err());
    }
}
