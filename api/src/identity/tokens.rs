//! ESIA's tokens, checked before anything in them is believed: the signature with ESIA's key
//! (RS256, or GOST3410_2012_256 checked by OpenSSL's GOST engine; several keys during a
//! rotation), `iss`, the audience (`client_id` of the access token, `aud` of the id_token),
//! `exp` and `nbf` with a minute's leeway. What they say: the person's `oid`, the scopes
//! granted, whether the account is confirmed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// ESIA's name of the GOST R 34.10-2012 (256) JWT algorithm.
pub const GOST_ALG: &str = "GOST3410_2012_256";

/// A key ESIA's tokens are checked with.
pub enum TokenKey {
    /// RS256.
    Rsa(DecodingKey),
    /// GOST3410_2012_256: a GOST public key (a PEM file) for OpenSSL's GOST engine.
    Gost(PathBuf),
}

impl TokenKey {
    /// A key from a public key (PEM): RSA, else GOST — written into `dir` for OpenSSL and
    /// checked to be readable by its GOST engine. Blocking (runs `openssl`).
    pub fn from_pem(pem: &[u8], dir: &Path) -> Result<TokenKey, String> {
        if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            return Ok(TokenKey::Rsa(k));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join(format!(
            "esia-token-key-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&file, pem).map_err(|e| format!("{}: {e}", file.display()))?;
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-engine", "gost", "-pubin", "-noout", "-in"])
            .arg(&file)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() {
            return Err(
                "neither an RSA nor a GOST public key (is libengine-gost-openssl installed?)"
                    .into(),
            );
        }
        Ok(TokenKey::Gost(file))
    }
}

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
    pub keys: &'a [TokenKey],
    pub issuer: &'a str,
    pub client_id: &'a str,
}

fn b64(part: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)
}

/// The JWT's `alg`, read without trusting anything else in it.
fn algorithm(token: &str) -> Result<String, TokenError> {
    let header = token.split('.').next().ok_or(TokenError::Malformed)?;
    let v: Value = serde_json::from_slice(&b64(header)?).map_err(|_| TokenError::Malformed)?;
    v.get("alg")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(TokenError::Malformed)
}

async fn decode(token: &str, check: &TokenCheck<'_>, audience: bool) -> Result<Value, TokenError> {
    match algorithm(token)?.as_str() {
        "RS256" => decode_rs256(token, check, audience),
        GOST_ALG => decode_gost(token, check, audience).await,
        other => Err(TokenError::Algorithm(other.to_owned())),
    }
}

/// Whether OpenSSL's GOST engine verifies `sig` over `data` with the public key in `key`.
async fn gost_verifies(key: &Path, data: &[u8], sig: &[u8]) -> bool {
    let Some(dir) = key.parent() else {
        return false;
    };
    let sig_file = dir.join(format!("sig-{}.bin", uuid::Uuid::new_v4().simple()));
    if tokio::fs::write(&sig_file, sig).await.is_err() {
        return false;
    }
    let run = async {
        let mut child = tokio::process::Command::new("openssl")
            .args(["dgst", "-engine", "gost", "-md_gost12_256", "-verify"])
            .arg(key)
            .arg("-signature")
            .arg(&sig_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        stdin.write_all(data).await.ok()?;
        drop(stdin);
        let out = child.wait_with_output().await.ok()?;
        Some(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"))
    };
    let ok = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .ok()
        .flatten()
        .unwrap_or(false);
    let _ = tokio::fs::remove_file(&sig_file).await;
    ok
}

async fn decode_gost(
    token: &str,
    check: &TokenCheck<'_>,
    audience: bool,
) -> Result<Value, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(TokenError::Malformed);
    };
    let sig = b64(signature)?;
    if sig.len() != 64 {
        return Err(TokenError::Signature);
    }
    let claims: Value =
        serde_json::from_slice(&b64(payload)?).map_err(|_| TokenError::Malformed)?;
    let signed = format!("{header}.{payload}");
    let mut reversed = sig.clone();
    reversed.reverse();
    let mut verified = false;
    for key in check.keys {
        if let TokenKey::Gost(file) = key
            // The byte order of ESIA's GOST signatures is not documented: either is its own.
            && (gost_verifies(file, signed.as_bytes(), &sig).await
                || gost_verifies(file, signed.as_bytes(), &reversed).await)
        {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(TokenError::Signature);
    }
    check_claims(&claims, check, audience)?;
    Ok(claims)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The checks jsonwebtoken makes for RS256, for tokens it cannot read (GOST).
fn check_claims(claims: &Value, check: &TokenCheck<'_>, audience: bool) -> Result<(), TokenError> {
    let now = now_s();
    let leeway = LEEWAY_S as i64;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenError::Malformed)?;
    if now > exp + leeway {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && now + leeway < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    if claims.get("iss").and_then(Value::as_str) != Some(check.issuer) {
        return Err(TokenError::Issuer);
    }
    if audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == check.client_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(check.client_id)),
            _ => false,
        };
        if !ok {
            return Err(TokenError::Audience);
        }
    }
    Ok(())
}

fn decode_rs256(token: &str, check: &TokenCheck<'_>, audience: bool) -> Result<Value, TokenError> {
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
    for key in check.keys.iter().filter_map(|k| match k {
        TokenKey::Rsa(k) => Some(k),
        TokenKey::Gost(_) => None,
    }) {
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
pub async fn verify(
    access_token: &str,
    id_token: Option<&str>,
    check: &TokenCheck<'_>,
) -> Result<Verified, TokenError> {
    let access = decode(access_token, check, false).await?;
    if access.get("client_id").and_then(Value::as_str) != Some(check.client_id) {
        return Err(TokenError::Audience);
    }
    let oid = oid_of(access.get("urn:esia:sbj_id")).ok_or(TokenError::NoSubject)?;
    let mut scopes = Vec::new();
    for s in access
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split_whitespace()
    {
        let (name, suffix) = s.split_once('?').unwrap_or((s, ""));
        // `fullname?oid=N` is granted about person N: it must be this token's person.
        if let Some(of) = suffix.strip_prefix("oid=")
            && of != oid
        {
            return Err(TokenError::NoSubject);
        }
        scopes.push(name.to_owned());
    }
    let trusted = match id_token {
        None => None,
        Some(t) => {
            let id = decode(t, check, true).await?;
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
