//! ESIA's tokens, checked before anything in them is believed: the signature with ESIA's key
//! (RS256; several keys during a rotation), `iss`, the audience (`client_id` of the access
//! token, `aud` of the id_token), `exp` and `nbf` with a minute's leeway. What they say: the
//! person's `oid`, the scopes granted, whether the account is confirmed.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Clocks of ESIA and Vizit may differ this much (seconds).
pub const LEEWAY_S: u64 = 60;

/// How a token failed; never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is signed with {0}, which is not configured (esia.token_algorithm)")]
    Algorithm(String),
    #[error("the token's signature does not verify with ESIA's key")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else (iss)")]
    Issuer,
    #[error("the token is for another system (aud / client_id)")]
    Audience,
    #[error("the token names no person (urn:esia:sbj_id)")]
    NoSubject,
}

/// What the verified tokens say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub oid: String,
    /// Scopes granted, without their `?oid=` suffixes.
    pub scopes: Vec<String>,
    /// From the id_token's `urn:esia:sbj:is_tru` (None without an id_token).
    pub trusted: Option<bool>,
}

/// What to check tokens against.
pub struct TokenCheck<'a> {
    pub keys: &'a [DecodingKey],
    pub issuer: &'a str,
    pub client_id: &'a str,
}

fn decode(token: &str, check: &TokenCheck<'_>, audience: bool) -> Result<Value, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
    }
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = LEEWAY_S;
    v.validate_nbf = true;
    v.set_issuer(&[check.issuer]);
    v.set_required_spec_claims(&["exp", "iss"]);
    if audience {
        v.set_audience(&[check.client_id]);
    } else {
        v.validate_aud = false;
    }
    let mut last = TokenError::Signature;
    for key in check.keys {
        match jsonwebtoken::decode::<Value>(token, key, &v) {
            Ok(data) => return Ok(data.claims),
            Err(e) => {
                last = match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::Signature,
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    ErrorKind::InvalidIssuer => TokenError::Issuer,
                    ErrorKind::InvalidAudience => TokenError::Audience,
                    ErrorKind::MissingRequiredClaim(_) => TokenError::Malformed,
                    _ => TokenError::Malformed,
                };
                // A wrong signature may be another key's: try the next one.
                if last != TokenError::Signature {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

fn oid_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// Check the access token (and the id_token, when there is one) and read them.
pub fn verify(
    access_token: &str,
    id_token: Option<&str>,
    check: &TokenCheck<'_>,
) -> Result<Verified, TokenError> {
    let access = decode(access_token, check, false)?;
    if access.get("client_id").and_then(Value::as_str) != Some(check.client_id) {
        return Err(TokenError::Audience);
    }
    let oid = oid_of(access.get("urn:esia:sbj_id")).ok_or(TokenError::NoSubject)?;
    let scopes = access
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| s.split('?').next().unwrap_or(s).to_owned())
        .collect();
    let trusted = match id_token {
        None => None,
        Some(t) => {
            let id = decode(t, check, true)?;
            if oid_of(id.get("sub")).as_deref() != Some(oid.as_str()) {
                return Err(TokenError::NoSubject);
            }
            Some(
                id.pointer("/urn:esia:sbj/urn:esia:sbj:is_tru")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            )
        }
    };
    Ok(Verified {
        oid,
        scopes,
        trusted,
    })
}
