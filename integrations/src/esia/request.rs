//! The parameters of ESIA's authorization (`/aas/oauth2/v2/ac`) and token (`/aas/oauth2/v3/te`)
//! requests, and the strings their `client_secret` signs
//! (`shared/reference/integrations.md` §3.3–3.5):
//! - v2/ac: `client_id + scope + scope_org + timestamp + state + redirect_uri`;
//! - v3/te: the same `+ code`, with a new `state`.
//!
//! `timestamp` is `yyyy.MM.dd HH:mm:ss +0300` (the offset without a colon); `client_secret` is
//! the raw signature in base64url without padding.

use base64::Engine as _;
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// Who Vizit is to ESIA.
#[derive(Debug, Clone)]
pub struct Client {
    /// The information system's mnemonic.
    pub client_id: String,
    /// Space-separated person scopes, e.g. `openid fullname birthdate`.
    pub scope: String,
    /// Organisation scopes (usually empty).
    pub scope_org: String,
    pub redirect_uri: String,
    /// `client_certificate_hash` of the system's certificate.
    pub certificate_hash: String,
}

/// `2026.12.07 10:05:09 +0300` for `ms` (Moscow time: ESIA's own offset).
pub fn timestamp(ms: i64) -> String {
    let tz = TimeZone::fixed(Offset::constant(3));
    let t = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let at = tz.to_datetime(t);
    format!(
        "{:04}.{:02}.{:02} {:02}:{:02}:{:02} +0300",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Whether `s` is a timestamp as ESIA reads it.
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() == 25
        && digits(0..4)
        && b[4] == b'.'
        && digits(5..7)
        && b[7] == b'.'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b' '
        && (b[20] == b'+' || b[20] == b'-')
        && digits(21..25)
}

/// The string v2/ac's `client_secret` signs.
pub fn authorize_string(c: &Client, timestamp: &str, state: &str) -> String {
    format!(
        "{}{}{}{timestamp}{state}{}",
        c.client_id, c.scope, c.scope_org, c.redirect_uri
    )
}

/// The string v3/te's `client_secret` signs.
pub fn token_string(c: &Client, timestamp: &str, state: &str, code: &str) -> String {
    format!("{}{code}", authorize_string(c, timestamp, state))
}

/// A signature as `client_secret`: base64url without padding.
pub fn secret(signature: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
}

/// PKCE's `code_challenge` for a `code_verifier` (RFC 7636, S256): base64url of its SHA-256.
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The query of v2/ac.
pub fn authorize_params(
    c: &Client,
    timestamp: &str,
    state: &str,
    secret: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", c.client_id.clone()),
        ("client_certificate_hash", c.certificate_hash.clone()),
        ("client_secret", secret.to_owned()),
        ("redirect_uri", c.redirect_uri.clone()),
        ("scope", c.scope.clone()),
        ("scope_org", c.scope_org.clone()),
        ("response_type", "code".into()),
        ("state", state.to_owned()),
        ("access_type", "online".into()),
        ("timestamp", timestamp.to_owned()),
    ]
}

/// The form of v3/te.
pub fn token_form(
    c: &Client,
    code: &str,
    timestamp: &str,
    state: &str,
    secret: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", c.client_id.clone()),
        ("code", code.to_owned()),
        ("grant_type", "authorization_code".into()),
        ("client_certificate_hash", c.certificate_hash.clone()),
        ("client_secret", secret.to_owned()),
        ("state", state.to_owned()),
        ("redirect_uri", c.redirect_uri.clone()),
        ("scope", c.scope.clone()),
        ("scope_org", c.scope_org.clone()),
        ("timestamp", timestamp.to_owned()),
        ("token_type", "Bearer".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            client_id: "VIZIT01".into(),
            scope: "openid fullname".into(),
            scope_org: String::new(),
            redirect_uri: "https://clinic.example/esia/callback".into(),
            certificate_hash: "AB".into(),
        }
    }

    #[test]
    fn the_timestamp_is_moscow_time_without_a_colon() {
        // 2026-12-07T07:05:09Z = 10:05:09 in Moscow.
        let t = timestamp(1_796_627_109_000);
        assert_eq!(t, "2026.12.07 10:05:09 +0300");
        assert!(is_timestamp(&t));
        assert!(!is_timestamp("2026-12-07 10:05:09 +0300"));
        assert!(!is_timestamp("2026.12.07 10:05:09 +03:00"));
    }

    #[test]
    fn the_signed_strings_follow_the_documented_order() {
        let c = client();
        assert_eq!(
            authorize_string(&c, "T", "S"),
            "VIZIT01openid fullnameTShttps://clinic.example/esia/callback"
        );
        assert_eq!(
            token_string(&c, "T", "S", "C"),
            "VIZIT01openid fullnameTShttps://clinic.example/esia/callbackC"
        );
        assert_eq!(secret(&[0xfb, 0xff]), "-_8");
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
