//! A stand-in of ESIA (Gosuslugi), under `/esia` (ESIA's own paths after it):
//! - `GET /esia/aas/oauth2/v2/ac` checks the request (a registered client and `redirect_uri`,
//!   `response_type=code`, the timestamp, the certificate hash, the GOST signature of
//!   `client_id + scope + scope_org + timestamp + state + redirect_uri`) and shows the login page
//!   — Russian, in the manner of the state login page, marked as a test stand — with the test
//!   persons and «Отказаться»;
//! - choosing a person redirects to `redirect_uri?code=…&state=…`; refusing, to
//!   `?error=access_denied&error_description=ESIA-007059: …&state=…`;
//! - `POST /esia/aas/oauth2/v3/te` makes the checks of `check.rs` and answers with signed JWTs
//!   (RS256: the access token with `urn:esia:sbj_id` and `scope` as `x?oid=N`, the id_token), a
//!   refresh token, and the `state` it was sent;
//! - `GET /esia/rs/prns/{oid}` (with `embed`) gives the person, only what the scopes allow, and
//!   `/rs/prns/{oid}/{ctts|docs|addrs}` (links, or the elements with `?embed=(elements)`) and
//!   `/…/{id}` its collections;
//! - `GET /esia/idp/ext/Logout?client_id=…&redirect_url=…` ends the session.
//!
//! PKCE: a `code_challenge` (S256) sent to v2/ac makes v3/te require the matching
//! `code_verifier`.
//!
//! Admin: `GET /sandbox/esia/state.json`; `Esia::register` (or `POST /sandbox/esia/clients
//! {"clientId", "certificatePem", "redirectUris"}`) binds a client's certificate;
//! faults of the next token answer ([`TokenFault`], `POST /sandbox/esia/faults
//! {"token": "unavailable|garbage|otherKey|wrongIssuer|wrongAudience|expired|narrowScope"}`), and
//! [`Esia::expire_codes`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::extract::{Form, Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

pub mod check;
pub mod persons;

pub use check::{Refusal, Registered, check_token_request, verify_gost};

use crate::html::escape;
use persons::Person;

/// The code lives this long (ESIA: minutes).
const CODE_TTL_MS: i64 = 5 * 60_000;
/// Tokens live an hour, as ESIA's do.
const TOKEN_TTL_S: i64 = 3600;

#[derive(Debug, Clone)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: String,
    scope: String,
    code_challenge: Option<String>,
}

#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    oid: u64,
    scope: String,
    redirect_uri: String,
    issued_at: i64,
    used: bool,
    code_challenge: Option<String>,
}

/// What goes wrong with the next token answer (tests of a client's checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenFault {
    /// HTTP 503, as ESIA's front answers in maintenance.
    Unavailable,
    /// HTTP 200 with an HTML page instead of JSON.
    Garbage,
    /// Tokens signed by a key that is not the stand's.
    OtherKey,
    /// Tokens with another `iss`.
    WrongIssuer,
    /// An id_token for another system (`aud`) and an access token with its `client_id`.
    WrongAudience,
    /// Tokens that expired an hour ago.
    Expired,
    /// Only `openid` granted, whatever was asked.
    NarrowScope,
}

#[derive(Default)]
struct State {
    base_url: String,
    clients: HashMap<String, Registered>,
    pending: HashMap<String, Pending>,
    codes: HashMap<String, Grant>,
    /// Refusals of token requests, newest last (for tests and the state page).
    refusals: Vec<String>,
    logouts: u64,
    token_faults: std::collections::VecDeque<TokenFault>,
    /// Tokens are GOST3410_2012_256 (signed by OpenSSL's GOST engine), not RS256.
    gost: Option<GostKeys>,
    /// GOST access tokens issued (the stand reads them back by lookup).
    gost_issued: HashMap<String, Value>,
}

/// The stand's GOST token keys: its own, and another ([`TokenFault::OtherKey`]).
#[derive(Clone)]
struct GostKeys {
    key: PathBuf,
    other: PathBuf,
    public_pem: String,
}

/// The JWT key of the stand (RSA, made with OpenSSL at start).
struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: String,
}

/// The stand-in. Cheap to clone.
#[derive(Clone)]
pub struct Esia {
    state: Arc<Mutex<State>>,
    /// Made on first use (an RSA key takes OpenSSL a moment; most sandboxes never sign in).
    keys: Arc<OnceLock<Option<Keys>>>,
    /// A key that is not the stand's ([`TokenFault::OtherKey`]).
    other_key: Arc<OnceLock<Option<Keys>>>,
    dir: Arc<PathBuf>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn openssl(args: &[&str], dir: &std::path::Path) -> Result<Vec<u8>, String> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl Esia {
    /// The stand; its JWT key is made with OpenSSL when first needed (without OpenSSL the
    /// stand answers token requests with an error that says so).
    pub fn new() -> Esia {
        let dir =
            std::env::temp_dir().join(format!("vizit-esia-{}", uuid::Uuid::new_v4().simple()));
        Esia {
            state: Arc::new(Mutex::new(State::default())),
            keys: Arc::new(OnceLock::new()),
            other_key: Arc::new(OnceLock::new()),
            dir: Arc::new(dir),
        }
    }

    fn keys(&self) -> Option<&Keys> {
        self.make_keys(&self.keys, "jwt.pem")
    }

    fn make_keys<'a>(&self, cell: &'a OnceLock<Option<Keys>>, file: &str) -> Option<&'a Keys> {
        cell.get_or_init(|| {
            let dir = self.dir.as_path();
            let made = std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    openssl(&["genrsa", "-traditional", "-out", file, "2048"], dir)?;
                    let private = std::fs::read(dir.join(file)).map_err(|e| e.to_string())?;
                    let public = openssl(&["rsa", "-in", file, "-pubout"], dir)?;
                    Ok(Keys {
                        encoding: EncodingKey::from_rsa_pem(&private).map_err(|e| e.to_string())?,
                        decoding: DecodingKey::from_rsa_pem(&public).map_err(|e| e.to_string())?,
                        public_pem: String::from_utf8_lossy(&public).into_owned(),
                    })
                });
            match made {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox ESIA: no JWT key (is OpenSSL installed?)");
                    None
                }
            }
        })
        .as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_base_url(&self, url: String) {
        self.lock().base_url = url;
    }

    /// ESIA's base URL on the stand (`…/esia`).
    pub fn base_url(&self) -> String {
        format!("{}/esia", self.lock().base_url)
    }

    /// The `iss` of the stand's tokens.
    pub fn issuer(&self) -> String {
        format!("{}/", self.base_url())
    }

    /// The public key the stand's tokens verify with (PEM), if it has one.
    pub fn token_key_pem(&self) -> Option<String> {
        if let Some(g) = &self.lock().gost {
            return Some(g.public_pem.clone());
        }
        self.keys().map(|k| k.public_pem.clone())
    }

    /// Sign tokens with GOST R 34.10-2012 (`alg: GOST3410_2012_256`), as production ESIA does
    /// for systems that chose it. Makes the keys with OpenSSL's GOST engine (blocking).
    pub fn use_gost_tokens(&self) -> Result<(), String> {
        let dir = self.dir.as_path();
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        for name in ["gost-jwt.pem", "gost-other.pem"] {
            openssl(
                &[
                    "genpkey",
                    "-engine",
                    "gost",
                    "-algorithm",
                    "gost2012_256",
                    "-pkeyopt",
                    "paramset:A",
                    "-out",
                    name,
                ],
                dir,
            )?;
        }
        let public = openssl(
            &["pkey", "-engine", "gost", "-in", "gost-jwt.pem", "-pubout"],
            dir,
        )?;
        self.lock().gost = Some(GostKeys {
            key: dir.join("gost-jwt.pem"),
            other: dir.join("gost-other.pem"),
            public_pem: String::from_utf8_lossy(&public).into_owned(),
        });
        Ok(())
    }

    /// Bind a client (its mnemonic, certificate PEM and redirect URIs), as the technology portal
    /// does. Errors if the certificate cannot be read by OpenSSL's GOST engine.
    pub fn register(
        &self,
        client_id: &str,
        certificate_pem: &str,
        redirect_uris: Vec<String>,
    ) -> Result<(), String> {
        let name = format!("{}.pem", uuid::Uuid::new_v4().simple());
        std::fs::create_dir_all(self.dir.as_path()).map_err(|e| e.to_string())?;
        let cert = self.dir.join(&name);
        std::fs::write(&cert, certificate_pem).map_err(|e| e.to_string())?;
        let der = openssl(&["x509", "-in", &name, "-outform", "DER"], &self.dir)?;
        let public = openssl(
            &["x509", "-engine", "gost", "-in", &name, "-pubkey", "-noout"],
            &self.dir,
        )?;
        let public_key_file = self.dir.join(format!("{name}.pub"));
        std::fs::write(&public_key_file, public).map_err(|e| e.to_string())?;
        self.lock().clients.insert(
            client_id.to_owned(),
            Registered {
                client_id: client_id.to_owned(),
                certificate_der: der,
                public_key_file,
                redirect_uris,
            },
        );
        Ok(())
    }

    /// The token requests refused so far (`ESIA-0070xx: …`).
    pub fn refusals(&self) -> Vec<String> {
        self.lock().refusals.clone()
    }

    /// The codes issued and not used.
    pub fn unused_codes(&self) -> usize {
        self.lock().codes.values().filter(|g| !g.used).count()
    }

    /// The next token answer goes wrong this way.
    pub fn fail_next_token(&self, fault: TokenFault) {
        self.lock().token_faults.push_back(fault);
    }

    /// Every code issued so far is out of time (as if the patient came back too late).
    pub fn expire_codes(&self) {
        for g in self.lock().codes.values_mut() {
            g.issued_at -= CODE_TTL_MS;
        }
    }

    /// How many logouts the stand has seen.
    pub fn logouts(&self) -> u64 {
        self.lock().logouts
    }
}

impl Default for Esia {
    fn default() -> Self {
        Esia::new()
    }
}

pub fn router(e: &Esia) -> Router {
    Router::new()
        .route("/esia/aas/oauth2/v2/ac", get(authorize))
        .route("/esia/aas/oauth2/v2/ac/login", post(login))
        .route("/esia/aas/oauth2/v3/te", post(token))
        .route("/esia/rs/prns/{oid}", get(person))
        .route("/esia/rs/prns/{oid}/{collection}", get(collection))
        .route("/esia/rs/prns/{oid}/{collection}/{id}", get(element))
        .route("/sandbox/esia/clients", post(register_client))
        .route("/esia/idp/ext/Logout", get(logout))
        .route("/sandbox/esia/state.json", get(state_json))
        .route("/sandbox/esia/faults", post(faults))
        .with_state(e.clone())
}

fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
        sep = '&';
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; color: #0b1f33; background: #eef2f7; }}
header {{ background: #fff; border-bottom: 1px solid #d5dde6; padding: .75rem 1rem; font-weight: 700; color: #0d4cd3; }}
main {{ max-width: 30rem; margin: 1.5rem auto; padding: 0 1rem; }}
.card {{ background: #fff; border-radius: .75rem; padding: 1.25rem; box-shadow: 0 1px 3px #0b1f3322; }}
.test {{ background: #fff3cd; border: 1px solid #8a6100; color: #4d3600; padding: .5rem .75rem; border-radius: .375rem; }}
h1 {{ font-size: 1.35rem; margin: 0 0 .75rem; }}
.person {{ display: block; width: 100%; text-align: left; font-size: 1rem; margin: .5rem 0; padding: .75rem 1rem;
  border: 1px solid #0d4cd3; border-radius: .5rem; background: #fff; color: #0b1f33; cursor: pointer; }}
.person span {{ display: block; color: #4a5a6a; font-size: .875rem; margin-top: .25rem; }}
.person:focus-visible, .refuse:focus-visible {{ outline: 3px solid #0d4cd3; outline-offset: 2px; }}
.refuse {{ margin-top: 1rem; font-size: 1rem; padding: .6rem 1rem; border-radius: .5rem; border: 1px solid #4a5a6a; background: #fff; color: #0b1f33; cursor: pointer; }}
.error {{ color: #a40000; }}
</style></head>
<body><header>Госуслуги · тестовый стенд</header><main><div class="card">
<h1>{title}</h1>
<p class="test" role="note">Тестовый стенд ЕСИА (песочница Vizit): не настоящие Госуслуги, данные вымышлены.</p>
{body}
</div></main></body></html>"#
    ))
}

fn refused_page(status: StatusCode, r: &Refusal) -> Response {
    (
        status,
        page(
            "Ошибка запроса",
            &format!(
                "<p class=\"error\" data-testid=\"esia-error\">{}</p>",
                escape(&r.description())
            ),
        ),
    )
        .into_response()
}

async fn authorize(
    AxumState(e): AxumState<Esia>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    for p in [
        "client_id",
        "client_certificate_hash",
        "client_secret",
        "redirect_uri",
        "scope",
        "response_type",
        "state",
        "timestamp",
    ] {
        if get(p).is_empty() {
            return refused_page(StatusCode::BAD_REQUEST, &check::missing(p));
        }
    }
    let Some(client) = e.lock().clients.get(get("client_id")).cloned() else {
        return refused_page(StatusCode::BAD_REQUEST, &check::unauthorized());
    };
    if !client
        .redirect_uris
        .iter()
        .any(|u| u == get("redirect_uri"))
    {
        return refused_page(StatusCode::BAD_REQUEST, &check::redirect_not_registered());
    }
    // From here on, refusals go back to the client, as ESIA's do.
    let back = |r: Refusal| -> Response {
        Redirect::to(&with_query(
            get("redirect_uri"),
            &[
                ("error", r.error),
                ("error_description", &r.description()),
                ("state", get("state")),
            ],
        ))
        .into_response()
    };
    if get("response_type") != "code" {
        return back(Refusal::new(
            "unsupported_response_type",
            "ESIA-007003",
            "response_type must be code",
        ));
    }
    let signed = format!(
        "{}{}{}{}{}{}",
        get("client_id"),
        get("scope"),
        get("scope_org"),
        get("timestamp"),
        get("state"),
        get("redirect_uri")
    );
    let verdict = {
        let q = q.clone();
        tokio::task::spawn_blocking(move || check::secret(&q, &client, &signed)).await
    };
    match verdict {
        Ok(Ok(())) => {}
        Ok(Err(r)) => return back(r),
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "the check panicked").into_response(),
    }
    let request = uuid::Uuid::new_v4().simple().to_string();
    e.lock().pending.insert(
        request.clone(),
        Pending {
            client_id: get("client_id").to_owned(),
            redirect_uri: get("redirect_uri").to_owned(),
            state: get("state").to_owned(),
            scope: get("scope").to_owned(),
            code_challenge: q.get("code_challenge").cloned(),
        },
    );
    let mut body = String::from(
        "<p>Выберите тестового пользователя, от имени которого войти. Система запрашивает доступ к данным: ",
    );
    body.push_str(&escape(get("scope")));
    body.push_str(".</p>");
    for p in persons::all() {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/esia/aas/oauth2/v2/ac/login\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"oid\" value=\"{}\">\
             <button class=\"person\" type=\"submit\" data-testid=\"esia-person\" data-oid=\"{}\">{} {} {}<span>{}</span></button></form>",
            p.oid,
            p.oid,
            escape(p.last_name),
            escape(p.first_name),
            escape(p.middle_name.unwrap_or("")),
            escape(p.about),
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/esia/aas/oauth2/v2/ac/login\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <input type=\"hidden\" name=\"oid\" value=\"refuse\">\
         <button class=\"refuse\" type=\"submit\" data-testid=\"esia-refuse\">Отказаться</button></form>"
    ));
    page("Вход через Госуслуги", &body).into_response()
}

async fn login(AxumState(e): AxumState<Esia>, Form(f): Form<HashMap<String, String>>) -> Response {
    let request = f.get("request").cloned().unwrap_or_default();
    let Some(p) = e.lock().pending.remove(&request) else {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "Ошибка запроса",
                "<p class=\"error\">Запрос устарел: начните вход заново.</p>",
            ),
        )
            .into_response();
    };
    let oid = f.get("oid").map(String::as_str).unwrap_or_default();
    let Some(person) = persons::all()
        .into_iter()
        .find(|x| x.oid.to_string() == oid)
    else {
        return Redirect::to(&with_query(
            &p.redirect_uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "ESIA-007059: The user denied access to the resources",
                ),
                ("state", &p.state),
            ],
        ))
        .into_response();
    };
    let code = uuid::Uuid::new_v4().simple().to_string();
    e.lock().codes.insert(
        code.clone(),
        Grant {
            client_id: p.client_id,
            oid: person.oid,
            scope: p.scope,
            redirect_uri: p.redirect_uri.clone(),
            issued_at: now_ms(),
            used: false,
            code_challenge: p.code_challenge,
        },
    );
    Redirect::to(&with_query(
        &p.redirect_uri,
        &[("code", &code), ("state", &p.state)],
    ))
    .into_response()
}

fn token_error(r: &Refusal, state: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": r.error, "error_description": r.description(), "state": state})),
    )
        .into_response()
}

async fn token(AxumState(e): AxumState<Esia>, Form(f): Form<HashMap<String, String>>) -> Response {
    let state = f.get("state").cloned().unwrap_or_default();
    let Some(keys) = e.keys() else {
        return token_error(
            &Refusal::new("server_error", "ESIA-007099", "the stand has no key"),
            &state,
        );
    };
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    let Some(client) = e.lock().clients.get(&client_id).cloned() else {
        let r = check::unauthorized();
        e.lock().refusals.push(r.description());
        return token_error(&r, &state);
    };
    let form = f.clone();
    let verdict =
        tokio::task::spawn_blocking(move || check::check_token_request(&form, &client, |_| true))
            .await;
    let code = f.get("code").cloned().unwrap_or_default();
    let checked = match verdict {
        Ok(r) => r,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "the check panicked").into_response(),
    };
    // The code: this client's, for this redirect_uri, in time, once.
    let grant = checked.and_then(|()| {
        let mut s = e.lock();
        match s.codes.get_mut(&code) {
            Some(g)
                if !g.used
                    && g.client_id == client_id
                    && f.get("redirect_uri") == Some(&g.redirect_uri)
                    && now_ms() - g.issued_at < CODE_TTL_MS =>
            {
                g.used = true;
                Ok(g.clone())
            }
            _ => Err(check::bad_code()),
        }
    });
    // PKCE: the verifier of the challenge the authorization carried.
    let grant = grant.and_then(|g| match &g.code_challenge {
        Some(challenge)
            if f.get("code_verifier").map(|v| pkce_s256(v)).as_ref() != Some(challenge) =>
        {
            Err(Refusal::new(
                "invalid_grant",
                "ESIA-007039",
                "code_verifier does not match code_challenge",
            ))
        }
        _ => Ok(g),
    });
    let mut grant = match grant {
        Ok(g) => g,
        Err(r) => {
            e.lock().refusals.push(r.description());
            return token_error(&r, &state);
        }
    };
    let fault = e.lock().token_faults.pop_front();
    match fault {
        Some(TokenFault::Unavailable) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Temporarily Unavailable",
            )
                .into_response();
        }
        Some(TokenFault::Garbage) => {
            return Html("<html><body>Технические работы</body></html>").into_response();
        }
        _ => {}
    }
    let now = now_ms() / 1000
        - if fault == Some(TokenFault::Expired) {
            2 * TOKEN_TTL_S
        } else {
            0
        };
    let issuer = if fault == Some(TokenFault::WrongIssuer) {
        "http://esia.example/".to_owned()
    } else {
        e.issuer()
    };
    let audience = if fault == Some(TokenFault::WrongAudience) {
        "OTHER01".to_owned()
    } else {
        client_id.clone()
    };
    let keys = match fault {
        Some(TokenFault::OtherKey) => match e.make_keys(&e.other_key, "other.pem") {
            Some(k) => k,
            None => keys,
        },
        _ => keys,
    };
    if fault == Some(TokenFault::NarrowScope) {
        grant.scope = "openid".into();
    }
    let sid = uuid::Uuid::new_v4().to_string();
    let scope = grant
        .scope
        .split_whitespace()
        .map(|s| {
            if s == "openid" {
                s.to_owned()
            } else {
                format!("{s}?oid={}", grant.oid)
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("JWT".into());
    let access = json!({"nbf": now, "iat": now, "exp": now + TOKEN_TTL_S, "iss": issuer,
        "scope": scope, "urn:esia:sid": sid, "urn:esia:sbj_id": grant.oid, "client_id": audience});
    let person = persons::all().into_iter().find(|p| p.oid == grant.oid);
    let trusted = person.as_ref().is_some_and(|p| p.trusted);
    let mut subject = json!({"urn:esia:sbj:typ": "P", "urn:esia:sbj:oid": grant.oid,
        "urn:esia:sbj:nam": format!("OID.{}", grant.oid)});
    if trusted {
        subject["urn:esia:sbj:is_tru"] = json!(true);
    }
    let id = json!({"aud": audience, "sub": grant.oid, "nbf": now, "iat": now, "exp": now + TOKEN_TTL_S,
        "auth_time": now, "amr": "PWD", "urn:esia:amd": "PWD", "iss": issuer, "urn:esia:sid": sid,
        "urn:esia:sbj": subject});
    let gost = e.lock().gost.clone();
    let signed = match gost {
        Some(g) => {
            let key = if fault == Some(TokenFault::OtherKey) {
                g.other
            } else {
                g.key
            };
            let (a, i) = (access.clone(), id.clone());
            tokio::task::spawn_blocking(move || {
                Ok::<_, String>((gost_jwt(&key, &a)?, gost_jwt(&key, &i)?))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .inspect(|(a, _)| {
                e.lock().gost_issued.insert(a.clone(), access.clone());
            })
        }
        None => jsonwebtoken::encode(&header, &access, &keys.encoding)
            .and_then(|a| Ok((a, jsonwebtoken::encode(&header, &id, &keys.encoding)?)))
            .map_err(|e| e.to_string()),
    };
    let Ok((access_token, id_token)) = signed else {
        return token_error(
            &Refusal::new("server_error", "ESIA-007099", "cannot sign"),
            &state,
        );
    };
    Json(json!({"access_token": access_token, "id_token": id_token,
        "refresh_token": uuid::Uuid::new_v4().to_string(), "expires_in": TOKEN_TTL_S,
        "state": state, "token_type": "Bearer"}))
    .into_response()
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// The person a bearer token may read, with the scopes it grants; or ESIA's refusal.
fn reader(
    e: &Esia,
    oid: &str,
    headers: &HeaderMap,
) -> Result<(Person, Vec<String>), Box<Response>> {
    let unauthorized = || {
        Box::new(refusal(
            StatusCode::UNAUTHORIZED,
            "ESIA-005011",
            "Access token is invalid or expired",
        ))
    };
    let keys = e.keys().ok_or_else(unauthorized)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[e.issuer()]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss"]);
    let issuer = e.issuer();
    let issued = e.lock().gost_issued.get(token).cloned();
    let gost_claims = issued.filter(|c| {
        c["exp"].as_i64().is_some_and(|exp| exp > now_ms() / 1000) && c["iss"] == json!(issuer)
    });
    let claims = match gost_claims {
        Some(c) => c,
        None => {
            jsonwebtoken::decode::<Value>(token, &keys.decoding, &validation)
                .map_err(|_| unauthorized())?
                .claims
        }
    };
    if claims["urn:esia:sbj_id"]
        .as_u64()
        .map(|o| o.to_string())
        .as_deref()
        != Some(oid)
    {
        return Err(Box::new(refusal(
            StatusCode::FORBIDDEN,
            "ESIA-005015",
            "Access to the resource is denied",
        )));
    }
    let scopes: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| s.split('?').next().unwrap_or(s).to_owned())
        .collect();
    let p = persons::all()
        .into_iter()
        .find(|p| p.oid.to_string() == oid)
        .ok_or_else(|| Box::new(not_found()))?;
    Ok((p, scopes))
}

fn not_found() -> Response {
    refusal(StatusCode::NOT_FOUND, "ESIA-005004", "Not found")
}

async fn person(
    AxumState(e): AxumState<Esia>,
    Path(oid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (p, scopes) = match reader(&e, &oid, &headers) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let embed = q.get("embed").map(String::as_str).unwrap_or_default();
    Json(persons::view(&p, &scopes, embed, &e.base_url())).into_response()
}

/// The person's field for a collection's short name in its URL.
fn collection_field(name: &str) -> Option<&'static str> {
    match name {
        "ctts" => Some("contacts"),
        "docs" => Some("documents"),
        "addrs" => Some("addresses"),
        _ => None,
    }
}

/// `GET /rs/prns/{oid}/{ctts|docs|addrs}`: links to the elements, or the elements themselves
/// with `?embed=(elements)` — what the scopes allow.
async fn collection(
    AxumState(e): AxumState<Esia>,
    Path((oid, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (p, scopes) = match reader(&e, &oid, &headers) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let Some(field) = collection_field(&name) else {
        return not_found();
    };
    let embed = if q.get("embed").is_some_and(|v| v.contains("elements")) {
        format!("({field}.elements)")
    } else {
        String::new()
    };
    match persons::view(&p, &scopes, &embed, &e.base_url()).get(field) {
        Some(c) => Json(c.clone()).into_response(),
        None => refusal(
            StatusCode::FORBIDDEN,
            "ESIA-005015",
            "Access to the resource is denied",
        ),
    }
}

/// `GET /rs/prns/{oid}/{ctts|docs|addrs}/{id}`: one element.
async fn element(
    AxumState(e): AxumState<Esia>,
    Path((oid, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let (p, scopes) = match reader(&e, &oid, &headers) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let Some(field) = collection_field(&name) else {
        return not_found();
    };
    persons::view(&p, &scopes, &format!("({field}.elements)"), &e.base_url())
        .get(field)
        .and_then(|c| c["elements"].as_array())
        .and_then(|list| {
            list.iter()
                .find(|el| el["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id.as_str()))
                .cloned()
        })
        .map(|el| Json(el).into_response())
        .unwrap_or_else(not_found)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientBody {
    client_id: String,
    certificate_pem: String,
    redirect_uris: Vec<String>,
}

/// `POST /sandbox/esia/clients`: what the technology portal does — bind a system's mnemonic to
/// its certificate and redirect URIs (a Vizit pointed at a standalone `vizit sandbox`).
async fn register_client(AxumState(e): AxumState<Esia>, Json(b): Json<ClientBody>) -> Response {
    if b.client_id.trim().is_empty() || b.redirect_uris.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "clientId and redirectUris are required",
        )
            .into_response();
    }
    let stand = e.clone();
    let done = tokio::task::spawn_blocking(move || {
        stand.register(&b.client_id, &b.certificate_pem, b.redirect_uris)
    })
    .await;
    match done {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(m)) => (
            StatusCode::BAD_REQUEST,
            format!("the certificate is not usable: {m}"),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn logout(
    AxumState(e): AxumState<Esia>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let client = q.get("client_id").map(String::as_str).unwrap_or_default();
    if !e.lock().clients.contains_key(client) {
        return refused_page(StatusCode::BAD_REQUEST, &check::unauthorized());
    }
    e.lock().logouts += 1;
    match q.get("redirect_url") {
        Some(url) => Redirect::to(url).into_response(),
        None => page("Вы вышли", "<p>Сеанс на тестовом стенде завершён.</p>").into_response(),
    }
}

/// A JWT signed with GOST R 34.10-2012 (256) by OpenSSL's GOST engine.
fn gost_jwt(key: &std::path::Path, claims: &Value) -> Result<String, String> {
    use base64::Engine as _;
    use std::io::Write as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": "GOST3410_2012_256", "typ": "JWT", "sbt": "access", "ver": 1});
    let signed = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-engine", "gost", "-md_gost12_256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("openssl: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(signed.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(format!("{signed}.{}", b64.encode(&out.stdout)))
}

/// PKCE S256: base64url of the verifier's SHA-256.
fn pkce_s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[derive(serde::Deserialize)]
struct FaultBody {
    token: TokenFault,
}

async fn faults(AxumState(e): AxumState<Esia>, Json(f): Json<FaultBody>) -> StatusCode {
    e.fail_next_token(f.token);
    StatusCode::NO_CONTENT
}

async fn state_json(AxumState(e): AxumState<Esia>) -> Json<Value> {
    let s = e.lock();
    Json(json!({
        "clients": s.clients.keys().collect::<Vec<_>>(),
        "persons": persons::all().iter().map(|p| json!({"oid": p.oid, "name": format!("{} {}", p.last_name, p.first_name), "trusted": p.trusted})).collect::<Vec<_>>(),
        "codesIssued": s.codes.len(),
        "codesUnused": s.codes.values().filter(|g| !g.used).count(),
        "refusals": s.refusals,
        "logouts": s.logouts,
    }))
}
