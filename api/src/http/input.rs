//! Reading what a request says: times in RFC 3339, bounded text, ids, e-mail addresses (and
//! text made safe for HTML). Each refusal is a 400 (or, for an id, a 404) that says what would
//! be right.

use std::str::FromStr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ApiError;
use crate::domain::InvalidId;

/// UTC milliseconds as RFC 3339.
pub fn to_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time as UTC milliseconds.
pub fn parse_time(field: &'static str, value: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_time",
                format!("{field} must be an RFC 3339 time, e.g. 2026-12-01T09:00:00+03:00"),
            )
        })
}

/// The `from`/`to` bounds of a list's filter as UTC milliseconds; a missing bound is open.
pub fn time_range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    let from = from.map(|v| parse_time("from", v)).transpose()?;
    let to = to.map(|v| parse_time("to", v)).transpose()?;
    Ok((from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX)))
}

/// Trimmed text of 1 to `max` characters.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An id from a path or body; one that is not an id of its kind cannot exist: "`what` not
/// found".
pub fn id<T: FromStr<Err = InvalidId>>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse::<T>().map_err(|_| ApiError::NotFound(what))
}

/// An e-mail address as stored: trimmed, lower case, plausibly an address.
pub fn normalized_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "email is not an e-mail address",
        ));
    }
    Ok(email)
}

/// Text for HTML: `& < > " '` escaped (pages and e-mails Vizit renders itself).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
