//! The ESIA stand-in's checks: its token endpoint (`/aas/oauth2/v3/te`) makes of
//! a request, written independently of Vizit's client so that a bug there shows here
//! (`shared/reference/integrations.md` §3.4–3.5, §3.10):
//! - every parameter present (`ESIA-007014`), `grant_type=authorization_code`, a known
//!   `client_id` (`ESIA-007005`), a registered `redirect_uri`;
//! - `timestamp` as `yyyy.MM.dd HH:mm:ss +0300`;
//! - `client_certificate_hash` = GOST R 34.11-2012 (256) of the registered certificate's DER
//!   bytes — a hash of the PEM text is refused (`ESIA-007053`);
//! - `client_secret` = the raw GOST R 34.10-2012 signature (base64url) of
//!   `client_id + scope + scope_org + timestamp + state + redirect_uri + code`, verified with the
//!   certificate's public key by OpenSSL's GOST engine — any other order is refused
//!   (`ESIA-007053`);
//! - the code issued to this client, once.
//!
//! Codes the reference does not name (a bad timestamp, grant type or code) are the sandbox's
//! own, in ESIA's `ESIA-0070xx` form.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use streebog::Digest as _;

/// An information system registered with the stand.
#[derive(Debug, Clone)]
pub struct Registered {
    pub client_id: String,
    /// The certificate bound to the system (DER).
    pub certificate_der: Vec<u8>,
    /// Its public key as PEM, in a file (what OpenSSL verifies with).
    pub public_key_file: PathBuf,
    pub redirect_uris: Vec<String>,
}

/// A refusal as ESIA writes it: `{"error": …, "error_description": "ESIA-0070xx: …"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(error: &'static str, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            error,
            code,
            message: message.into(),
        }
    }

    pub fn description(&self) -> String {
        format!("{}: {}", self.code, self.message)
    }
}

/// `ESIA-007014`: a parameter is missing.
pub fn missing(p: &str) -> Refusal {
    Refusal::new(
        "invalid_request",
        "ESIA-007014",
        format!("The request doesn't contain the mandatory parameter [{p}]"),
    )
}

/// `ESIA-007005`: no such client.
pub fn unauthorized() -> Refusal {
    Refusal::new(
        "unauthorized_client",
        "ESIA-007005",
        "The client is not authorized to request an access token using this method",
    )
}

pub fn redirect_not_registered() -> Refusal {
    Refusal::new(
        "invalid_request",
        "ESIA-007004",
        "redirect_uri is not registered for the client",
    )
}

pub fn bad_code() -> Refusal {
    Refusal::new(
        "invalid_grant",
        "ESIA-007006",
        "the authorization code is invalid, expired or used",
    )
}

fn secret_wrong() -> Refusal {
    Refusal::new(
        "invalid_client",
        "ESIA-007053",
        "OAuthErrorEnum.clientSecretWrong",
    )
}

/// The timestamp, the certificate hash and `client_secret` over `signed`.
pub fn secret(
    form: &HashMap<String, String>,
    client: &Registered,
    signed: &str,
) -> Result<(), Refusal> {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if !timestamp_ok(get("timestamp")) {
        return Err(Refusal::new(
            "invalid_request",
            "ESIA-007011",
            "timestamp must be yyyy.MM.dd HH:mm:ss +0300",
        ));
    }
    if !get("client_certificate_hash").eq_ignore_ascii_case(&streebog_hex(&client.certificate_der))
    {
        return Err(secret_wrong());
    }
    let Ok(signature) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(get("client_secret").trim_end_matches('='))
    else {
        return Err(secret_wrong());
    };
    match verify_gost(&client.public_key_file, signed.as_bytes(), &signature) {
        Ok(true) => Ok(()),
        Ok(false) => Err(secret_wrong()),
        Err(e) => Err(Refusal::new("server_error", "ESIA-007099", e)),
    }
}

const TOKEN_PARAMS: [&str; 10] = [
    "client_id",
    "code",
    "grant_type",
    "client_certificate_hash",
    "client_secret",
    "state",
    "redirect_uri",
    "scope",
    "timestamp",
    "token_type",
];

/// Upper-case hex of GOST R 34.11-2012 (256).
pub fn streebog_hex(bytes: &[u8]) -> String {
    streebog::Streebog256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn timestamp_ok(s: &str) -> bool {
    // yyyy.MM.dd HH:mm:ss +0300
    let shape = "dddd.dd.dd dd:dd:dd sdddd";
    s.len() == shape.len()
        && s.chars().zip(shape.chars()).all(|(c, p)| match p {
            'd' => c.is_ascii_digit(),
            's' => c == '+' || c == '-',
            other => c == other,
        })
}

/// Verify a raw GOST R 34.10-2012 (256) signature of `data` with OpenSSL's GOST engine.
pub fn verify_gost(public_key_file: &Path, data: &[u8], signature: &[u8]) -> Result<bool, String> {
    let dir = std::env::temp_dir().join(format!("vizit-esia-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (data_file, sig_file) = (dir.join("data"), dir.join("sig"));
    let result = (|| {
        std::fs::write(&data_file, data).map_err(|e| e.to_string())?;
        std::fs::write(&sig_file, signature).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-engine", "gost", "-md_gost12_256", "-verify"])
            .arg(public_key_file)
            .arg("-signature")
            .arg(&sig_file)
            .arg(&data_file)
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Verified OK") {
            Ok(true)
        } else if text.contains("Verification failure") || !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("engine") && stderr.contains("gost") && !stderr.contains("set") {
                return Err(
                    "OpenSSL has no GOST engine (apt-get install libengine-gost-openssl)".into(),
                );
            }
            Ok(false)
        } else {
            Ok(false)
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Check a token request's form against the registered system; `code_ok` says whether the code
/// was issued to it and not used.
pub fn check_token_request(
    form: &HashMap<String, String>,
    client: &Registered,
    code_ok: impl FnOnce(&str) -> bool,
) -> Result<(), Refusal> {
    for p in TOKEN_PARAMS {
        if form.get(p).is_none_or(|v| v.is_empty()) {
            return Err(missing(p));
        }
    }
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return Err(Refusal::new(
            "unsupported_grant_type",
            "ESIA-007002",
            "grant_type must be authorization_code",
        ));
    }
    if get("client_id") != client.client_id {
        return Err(unauthorized());
    }
    if !client
        .redirect_uris
        .iter()
        .any(|u| u == get("redirect_uri"))
    {
        return Err(redirect_not_registered());
    }
    let signed = format!(
        "{}{}{}{}{}{}{}",
        get("client_id"),
        get("scope"),
        get("scope_org"),
        get("timestamp"),
        get("state"),
        get("redirect_uri"),
        get("code"),
    );
    secret(form, client, &signed)?;
    if !code_ok(get("code")) {
        return Err(bad_code());
    }
    Ok(())
}
