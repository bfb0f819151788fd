//! ESIA's endpoints as Vizit calls them: the authorization URL the patient's browser goes to,
//! the token exchange (`/aas/oauth2/v3/te`, checked to echo its `state`), the person
//! (`/rs/prns/{oid}` with `embed`), and the logout URL.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::request::{self, Client};
use super::signer::{SignError, Signer};

/// Where ESIA is and who Vizit is to it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://esia.gosuslugi.ru`, `https://esia-portal1.test.gosuslugi.ru`, or the sandbox's
    /// `http://…/esia`.
    pub base_url: String,
    pub client: Client,
    pub timeout: Duration,
}

/// Why ESIA gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("signing the request failed: {0}")]
    Sign(#[from] SignError),
    /// ESIA refused: its `error` and the `ESIA-0070xx` code of `error_description`.
    #[error("ESIA refused: {error} ({description})")]
    Refused { error: String, description: String },
    #[error("ESIA is unavailable: {0}")]
    Unavailable(String),
    #[error("ESIA answered something unexpected: {0}")]
    Malformed(String),
    #[error("ESIA's answer is for another request (state mismatch)")]
    StateMismatch,
}

impl Error {
    /// The `ESIA-0070xx` code of a refusal.
    pub fn esia_code(&self) -> Option<&str> {
        match self {
            Error::Refused { description, .. } => description
                .split(':')
                .next()
                .filter(|c| c.starts_with("ESIA-")),
            _ => None,
        }
    }
}

/// What the token exchange returns.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    pub state: String,
}

pub struct Esia {
    settings: Settings,
    signer: Arc<dyn Signer>,
    http: reqwest::Client,
}

impl Esia {
    pub fn new(settings: Settings, signer: Arc<dyn Signer>) -> Esia {
        let http = crate::http::client(settings.timeout);
        Esia {
            settings,
            signer,
            http,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url.trim_end_matches('/'))
    }

    /// Where to send the patient's browser; `state` binds the answer to this browser, and
    /// `code_challenge` (PKCE, S256; not part of the signed string) binds the code to it too.
    pub async fn authorize_url(
        &self,
        state: &str,
        code_challenge: Option<&str>,
        now_ms: i64,
    ) -> Result<String, Error> {
        let c = &self.settings.client;
        let ts = request::timestamp(now_ms);
        let sig = self
            .signer
            .sign(request::authorize_string(c, &ts, state).as_bytes())
            .await?;
        let mut params = request::authorize_params(c, &ts, state, &request::secret(&sig));
        if let Some(challenge) = code_challenge {
            params.push(("code_challenge", challenge.to_owned()));
            params.push(("code_challenge_method", "S256".into()));
        }
        let mut url = reqwest::Url::parse(&self.url("/aas/oauth2/v2/ac"))
            .map_err(|e| Error::Malformed(format!("base_url: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        Ok(url.into())
    }

    /// Exchange the code from the redirect for tokens (a new `state`, echoed back), with the
    /// PKCE `code_verifier` when the authorization sent a challenge.
    pub async fn exchange(
        &self,
        code: &str,
        code_verifier: Option<&str>,
        now_ms: i64,
    ) -> Result<Tokens, Error> {
        let c = &self.settings.client;
        let ts = request::timestamp(now_ms);
        let state = uuid::Uuid::new_v4().to_string();
        let sig = self
            .signer
            .sign(request::token_string(c, &ts, &state, code).as_bytes())
            .await?;
        let mut form = request::token_form(c, code, &ts, &state, &request::secret(&sig));
        if let Some(verifier) = code_verifier {
            form.push(("code_verifier", verifier.to_owned()));
        }
        let res = self
            .http
            .post(self.url("/aas/oauth2/v3/te"))
            .form(&form)
            .send()
            .await
            .map_err(|e| Error::Unavailable(crate::http::no_answer(&e)))?;
        let status = res.status();
        let body: Value = if status.is_server_error() {
            return Err(Error::Unavailable(format!("HTTP {}", status.as_u16())));
        } else {
            res.json()
                .await
                .map_err(|_| Error::Malformed(format!("HTTP {}: not JSON", status.as_u16())))?
        };
        if let Some(error) = body["error"].as_str() {
            return Err(Error::Refused {
                error: error.to_owned(),
                description: body["error_description"].as_str().unwrap_or("").to_owned(),
            });
        }
        if !status.is_success() {
            return Err(Error::Malformed(format!("HTTP {}", status.as_u16())));
        }
        let tokens: Tokens = serde_json::from_value(body)
            .map_err(|e| Error::Malformed(format!("the token answer: {e}")))?;
        if tokens.state != state {
            return Err(Error::StateMismatch);
        }
        Ok(tokens)
    }

    /// The person, with contacts, documents and addresses inline (what the scopes allow).
    pub async fn person(&self, oid: &str, access_token: &str) -> Result<Value, Error> {
        if !oid.bytes().all(|b| b.is_ascii_digit()) || oid.is_empty() {
            return Err(Error::Malformed("oid is not a number".into()));
        }
        let res = self
            .http
            .get(self.url(&format!("/rs/prns/{oid}")))
            .query(&[(
                "embed",
                "(contacts.elements,documents.elements,addresses.elements)",
            )])
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| Error::Unavailable(crate::http::no_answer(&e)))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(Error::Unavailable(format!("HTTP {}", status.as_u16())));
        }
        let body: Value = res
            .json()
            .await
            .map_err(|_| Error::Malformed(format!("HTTP {}: not JSON", status.as_u16())))?;
        if !status.is_success() {
            return Err(Error::Refused {
                error: body["code"].as_str().unwrap_or("refused").to_owned(),
                description: body["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(body)
    }

    /// Where to send the browser to end the ESIA session too (`redirect_url`, not `_uri`).
    pub fn logout_url(&self, redirect_url: &str) -> String {
        let mut url = reqwest::Url::parse(&self.url("/idp/ext/Logout")).unwrap_or_else(|_| {
            reqwest::Url::parse("https://esia.gosuslugi.ru/idp/ext/Logout").expect("a URL")
        });
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client.client_id)
            .append_pair("redirect_url", redirect_url);
        url.into()
    }
}
