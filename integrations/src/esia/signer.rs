//! Who signs `client_secret`: a [`Signer`] turns the bytes of the signed string into a raw GOST
//! R 34.10-2012 (256) signature. ESIA's rules want a certified crypto provider in production, so
//! production signing is never done here:
//! - [`CommandSigner`] runs an approved tool (CryptoPro `csptest`/`cryptcp`, or any other): the
//!   bytes on standard input, the signature on standard output (raw, base64 or hex; CryptoPro
//!   writes it little-endian: `reverse`);
//! - [`HttpSigner`] asks a signing service (CryptoPro DSS, an HSM's gateway) over HTTP;
//! - [`CommandSigner::openssl_gost`] is OpenSSL with Debian's GOST engine — a real GOST
//!   signature for development and tests, not a certified provider.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use streebog::Digest as _;
use tokio::io::AsyncWriteExt;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why nothing was signed. Never carries the signed bytes.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the signing command {program} cannot be started: {reason}")]
    Start { program: String, reason: String },
    #[error("the signing command exited with {code}: {stderr}")]
    Failed { code: String, stderr: String },
    #[error("the signer did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the signer's output is not a signature: {0}")]
    Output(String),
    #[error("the signing service is unavailable: {0}")]
    Unavailable(String),
    #[error("the signing service refused: HTTP {0}")]
    Refused(u16),
}

/// Signs bytes with the information system's key.
pub trait Signer: Send + Sync {
    /// A raw signature: 64 bytes for GOST R 34.10-2012 (256), in ESIA's byte order.
    fn sign<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>>;

    /// What it is, for logs (`command`, `http`, `openssl-gost`).
    fn kind(&self) -> &'static str;
}

/// How a signer writes its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Raw,
    Base64,
    Hex,
}

fn decode(out: Output, bytes: &[u8]) -> Result<Vec<u8>, SignError> {
    let text = || {
        std::str::from_utf8(bytes)
            .map(|s| s.split_whitespace().collect::<String>())
            .map_err(|_| SignError::Output("not text".into()))
    };
    match out {
        Output::Raw => Ok(bytes.to_vec()),
        Output::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text()?)
            .map_err(|_| SignError::Output("not base64".into())),
        Output::Hex => {
            let t = text()?;
            if t.len() % 2 != 0 {
                return Err(SignError::Output("odd hex".into()));
            }
            (0..t.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&t[i..i + 2], 16))
                .collect::<Result<_, _>>()
                .map_err(|_| SignError::Output("not hex".into()))
        }
    }
}

/// A GOST R 34.10-2012 signature is 64 (256-bit key) or 128 (512-bit key) bytes.
fn checked(mut sig: Vec<u8>, reverse: bool) -> Result<Vec<u8>, SignError> {
    if !matches!(sig.len(), 64 | 128) {
        return Err(SignError::Output(format!(
            "{} bytes, not 64 or 128",
            sig.len()
        )));
    }
    if reverse {
        sig.reverse();
    }
    Ok(sig)
}

/// An external command.
#[derive(Debug, Clone)]
pub struct CommandSigner {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub output: Output,
    /// Reverse the signature's bytes (CryptoPro's tools write them little-endian).
    pub reverse: bool,
    pub timeout: Duration,
}

impl CommandSigner {
    /// OpenSSL 3 with the GOST engine (`apt-get install libengine-gost-openssl`) and a
    /// `gost2012_256` key: for development and tests.
    pub fn openssl_gost(key_file: PathBuf) -> CommandSigner {
        CommandSigner {
            program: "openssl".into(),
            args: vec![
                "dgst".into(),
                "-engine".into(),
                "gost".into(),
                "-md_gost12_256".into(),
                "-sign".into(),
                key_file.to_string_lossy().into_owned(),
            ],
            output: Output::Raw,
            reverse: false,
            timeout: Duration::from_secs(10),
        }
    }

    async fn run(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let program = self.program.to_string_lossy().into_owned();
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SignError::Start {
                program: program.clone(),
                reason: e.to_string(),
            })?;
        let mut stdin = child.stdin.take().ok_or_else(|| SignError::Start {
            program: program.clone(),
            reason: "no standard input".into(),
        })?;
        let work = async {
            // A command that exits without reading its input is reported by its exit status.
            let _ = stdin.write_all(data).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let out = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| SignError::TimedOut(self.timeout))?
            .map_err(|e| SignError::Start {
                program,
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            let stderr: String = String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(300)
                .collect();
            return Err(SignError::Failed {
                code: out
                    .status
                    .code()
                    .map_or_else(|| "a signal".into(), |c| c.to_string()),
                stderr,
            });
        }
        checked(decode(self.output, &out.stdout)?, self.reverse)
    }
}

impl Signer for CommandSigner {
    fn sign<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        Box::pin(self.run(data))
    }

    fn kind(&self) -> &'static str {
        "command"
    }
}

/// What a signing service is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpInput {
    /// The bytes themselves (base64): the service hashes and signs.
    Data,
    /// Their GOST R 34.11-2012 (256) hash (base64): the service signs the digest.
    Digest,
}

/// A signing service: `POST url` with `{"<input_field>": base64}` answers
/// `{"<signature_field>": base64}`.
pub struct HttpSigner {
    pub url: String,
    /// A header that authorizes the request (name, value — a secret).
    pub auth: Option<(String, SecretString)>,
    pub input: HttpInput,
    pub input_field: String,
    pub signature_field: String,
    pub reverse: bool,
    client: reqwest::Client,
}

impl HttpSigner {
    pub fn new(
        url: String,
        auth: Option<(String, SecretString)>,
        input: HttpInput,
        reverse: bool,
        timeout: Duration,
    ) -> HttpSigner {
        HttpSigner {
            url,
            auth,
            input,
            input_field: match input {
                HttpInput::Data => "data".into(),
                HttpInput::Digest => "digest".into(),
            },
            signature_field: "signature".into(),
            reverse,
            client: crate::http::client(timeout),
        }
    }

    async fn run(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let input = match self.input {
            HttpInput::Data => b64.encode(data),
            HttpInput::Digest => b64.encode(streebog::Streebog256::digest(data)),
        };
        let mut req = self
            .client
            .post(&self.url)
            .json(&json!({ &self.input_field: input, "algorithm": "GOST3410_2012_256" }));
        if let Some((name, value)) = &self.auth {
            req = req.header(name.as_str(), value.expose_secret());
        }
        let res = req
            .send()
            .await
            .map_err(|e| SignError::Unavailable(crate::http::no_answer(&e)))?;
        let status = res.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SignError::Unavailable(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(SignError::Refused(status.as_u16()));
        }
        let body: Value = res
            .json()
            .await
            .map_err(|_| SignError::Output("not JSON".into()))?;
        let sig = body[self.signature_field.as_str()]
            .as_str()
            .ok_or_else(|| SignError::Output(format!("no {}", self.signature_field)))?;
        checked(decode(Output::Base64, sig.as_bytes())?, self.reverse)
    }
}

impl Signer for HttpSigner {
    fn sign<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        Box::pin(self.run(data))
    }

    fn kind(&self) -> &'static str {
        "http"
    }
}
