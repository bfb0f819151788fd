//! The rules of identity:
//! - a sign-in starts with a fresh `state` bound to the browser (a nonce cookie whose hash is
//!   stored) and, when on, a PKCE challenge derived from that nonce;
//! - the callback uses the sign-in once, exchanges the code, verifies the tokens, checks the
//!   scopes and the account's confirmation, fetches the person;
//! - a known ESIA account signs in (its data refreshed); anyone else goes through the consent
//!   page first, and then becomes a new patient — or is linked to the patient the clinic
//!   registered, on a verified match only (SNILS, or name + birth date + a confirmed phone or
//!   e-mail), never on a weak one;
//! - each consent is recorded on its own with the version of its text and the time;
//! - ESIA's tokens live only for the callback: they are never stored.
//!
//! Every failure is a [`Failure`]: a page in Russian for the patient, a log line without
//! personal data for the operator, and no session, no patient.

use serde_json::json;
use sha2::{Digest, Sha256};
use vizit_integrations::esia::client::Error as EsiaError;
use vizit_integrations::esia::request::pkce_challenge;

use super::person::{self, PersonalData};
use super::repo::{self, Identification, Registration};
use super::settings::{CONSENT_KINDS, EsiaLogin};
use super::tokens::{self, TokenCheck, TokenError};
use crate::domain::{Caller, Principal, Role, UserId};
use crate::people::credentials::new_secret;
use crate::people::{self, NewPatient, PatientRecord};
use crate::platform::audit::audit;
use crate::state::Core;

/// Why a sign-in or registration ended without a session. Each is one page for the patient.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// `state` missing, unknown, used, from another browser, or too old.
    #[error("the sign-in is not this browser's or has expired")]
    State,
    /// The person refused on ESIA's page, or ESIA sent an error back.
    #[error("ESIA redirected with an error: {0}")]
    Refused(String),
    /// ESIA refused the token request (a used or expired code, a signature it rejects).
    #[error("ESIA refused the token request: {0}")]
    TokenRefused(String),
    #[error("ESIA is unavailable or answered something unexpected: {0}")]
    Unavailable(String),
    #[error("ESIA's tokens do not verify: {0}")]
    Token(#[from] TokenError),
    #[error("the scopes {0:?} were not granted")]
    Scopes(Vec<String>),
    #[error("the ESIA account is not confirmed")]
    Unconfirmed,
    #[error("the signer failed: {0}")]
    Signer(String),
    #[error("the person's data is unusable: {0}")]
    Person(String),
    /// The patient record this account belongs to is disabled.
    #[error("the patient record is disabled")]
    Disabled,
    #[error("not every required consent was given")]
    Consents,
    #[error("internal: {0}")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Internal(e.into())
    }
}

impl Failure {
    /// A short, stable name for logs and the page's `data-reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::State => "state",
            Failure::Refused(_) => "refused",
            Failure::TokenRefused(_) => "token_refused",
            Failure::Unavailable(_) => "unavailable",
            Failure::Token(_) => "token",
            Failure::Scopes(_) => "scopes",
            Failure::Unconfirmed => "unconfirmed",
            Failure::Signer(_) => "signer",
            Failure::Person(_) => "person",
            Failure::Disabled => "disabled",
            Failure::Consents => "consents",
            Failure::Internal(_) => "internal",
        }
    }
}

fn esia_failure(e: EsiaError) -> Failure {
    match e {
        EsiaError::Sign(s) => Failure::Signer(s.to_string()),
        EsiaError::Refused { .. } => {
            Failure::TokenRefused(e.esia_code().unwrap_or("no ESIA code").to_owned())
        }
        EsiaError::Unavailable(m) | EsiaError::Malformed(m) => Failure::Unavailable(m),
        EsiaError::StateMismatch => Failure::Unavailable("the token answer's state differs".into()),
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// PKCE's verifier for a sign-in: derived from the browser's nonce, so it is never stored.
fn code_verifier(nonce: &str, state: &str) -> String {
    sha256_hex(&format!("vizit esia pkce|{nonce}|{state}"))
}

/// A sign-in to start: where to send the browser, and the nonce the browser keeps.
pub struct Started {
    pub url: String,
    pub nonce: String,
}

pub async fn start(core: &Core, esia: &EsiaLogin) -> Result<Started, Failure> {
    let state = uuid::Uuid::new_v4().to_string();
    let nonce = new_secret("");
    let challenge = esia
        .pkce
        .then(|| pkce_challenge(&code_verifier(&nonce, &state)));
    let url = esia
        .client
        .authorize_url(&state, challenge.as_deref(), core.now())
        .await
        .map_err(esia_failure)?;
    let mut conn = core.db.pool.acquire().await?;
    repo::insert_login(&mut conn, &state, &sha256_hex(&nonce), core.now()).await?;
    Ok(Started { url, nonce })
}

/// What ESIA's redirect carried.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A callback's outcome.
pub enum Finished {
    /// Signed in: the session token and when it expires.
    Session { token: String, expires: i64 },
    /// The person has to give their consents first (the registration's id).
    Consents { registration: String },
}

/// A verified match among the patients the clinic registered (with whether it is disabled),
/// or None.
fn verified_match(
    p: &PersonalData,
    candidates: &[PatientRecord],
) -> Option<(UserId, &'static str, bool)> {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
            .replace('ё', "е")
    };
    let same = |a: &str, b: &str| norm(a) == norm(b);
    let name = p.full_name();
    let found: Vec<(UserId, &'static str, bool)> = candidates
        .iter()
        .filter_map(|c| {
            let name_ok = name.as_deref().is_some_and(|n| same(n, &c.name));
            let birth_ok = p.birth_date.is_some() && p.birth_date == c.birth_date;
            if let (Some(a), Some(b)) = (&p.snils, &c.snils) {
                // The same SNILS, and the record's name or birth date agrees: a SNILS typed
                // into the wrong record (a parent's into a child's) does not hand it over.
                return (a == b && (name_ok || birth_ok))
                    .then(|| (c.id.clone(), "snils", c.disabled));
            }
            let email_ok = matches!((&p.email, &c.email), (Some(a), Some(b)) if same(a, b));
            let phone_ok =
                matches!((&p.mobile, &c.phone), (Some(a), Some(b)) if person::same_phone(a, b));
            (name_ok && birth_ok && (email_ok || phone_ok))
                .then(|| (c.id.clone(), "name_birth_date_contact", c.disabled))
        })
        .collect();
    // Two records that both match are for the clinic to sort out, not for a guess.
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Handle ESIA's redirect: `nonce` is the browser's cookie.
pub async fn finish(
    core: &Core,
    esia: &EsiaLogin,
    cb: Callback,
    nonce: Option<&str>,
    ip: Option<String>,
) -> Result<Finished, Failure> {
    let (Some(state), Some(nonce)) = (cb.state.as_deref(), nonce) else {
        return Err(Failure::State);
    };
    let now = core.now();
    let not_before = now - esia.flow_ttl.as_millis() as i64;
    let mut conn = core.db.pool.acquire().await?;
    if !repo::use_login(&mut conn, state, &sha256_hex(nonce), not_before, now).await? {
        return Err(Failure::State);
    }
    drop(conn);
    if let Some(error) = cb.error {
        let code = cb
            .error_description
            .as_deref()
            .and_then(|d| d.split(':').next())
            .filter(|c| c.starts_with("ESIA-"))
            .unwrap_or(&error)
            .to_owned();
        return Err(Failure::Refused(code));
    }
    let code = cb
        .code
        .filter(|c| !c.is_empty() && c.len() <= 4096)
        .ok_or(Failure::State)?;
    let verifier = esia.pkce.then(|| code_verifier(nonce, state));
    let tokens = esia
        .client
        .exchange(&code, verifier.as_deref(), core.now())
        .await
        .map_err(esia_failure)?;
    let client_id = &esia.client.settings().client.client_id;
    let verified = tokens::verify(
        &tokens.access_token,
        tokens.id_token.as_deref(),
        &TokenCheck {
            keys: &esia.token_keys,
            issuer: &esia.issuer,
            client_id,
        },
    )
    .await?;
    let missing: Vec<String> = esia
        .required_scopes
        .iter()
        .filter(|s| !verified.scopes.contains(s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Scopes(missing));
    }
    let raw = esia
        .client
        .person(&verified.oid, &tokens.access_token)
        .await
        .map_err(|e| match e {
            // The person endpoint refusing a token it has just issued is ESIA misbehaving.
            EsiaError::Refused { .. } => Failure::Unavailable(format!(
                "the person endpoint refused: {}",
                e.esia_code().unwrap_or("no code")
            )),
            e => esia_failure(e),
        })?;
    drop(tokens);
    let data = person::parse(&raw).map_err(Failure::Person)?;
    drop(raw);
    // Confirmed per the person record; an id_token that says otherwise wins.
    let trusted = data.trusted && verified.trusted != Some(false);
    if !trusted && !esia.allow_unconfirmed {
        return Err(Failure::Unconfirmed);
    }
    let scopes = verified.scopes.join(" ");
    let data_json = serde_json::to_string(&data).map_err(|e| Failure::Internal(e.into()))?;

    let mut tx = core.db.begin_write().await?;
    if let Some((user, name, disabled)) = repo::account_user(&mut tx, &verified.oid).await? {
        if disabled {
            return Err(Failure::Disabled);
        }
        // Consents to the current texts: a new version asks again.
        let given: Vec<String> = repo::consents(&mut tx, user.as_str())
            .await?
            .into_iter()
            .filter(|(_, version, _)| *version == esia.consent_version)
            .map(|(kind, _, _)| kind)
            .collect();
        if CONSENT_KINDS.iter().all(|k| given.iter().any(|g| g == k)) {
            repo::touch_account(&mut tx, &verified.oid, trusted, now).await?;
            repo::put_personal_data(&mut tx, &user, &data_json, &scopes, now).await?;
            let caller = patient_caller(&user, &name, ip);
            audit(
                &mut tx,
                Some(&caller),
                "session.esia_login",
                "user",
                Some(user.as_str()),
                json!({"trusted": trusted}),
            )
            .await?;
            tx.commit().await?;
            let (token, expires) = people::create_session(core, &user, "esia").await?;
            return Ok(Finished::Session { token, expires });
        }
    }
    let registration = uuid::Uuid::new_v4().simple().to_string();
    repo::insert_registration(
        &mut tx,
        &Registration {
            id: registration.clone(),
            nonce_hash: sha256_hex(nonce),
            oid: verified.oid,
            trusted,
            data: data_json,
            scopes,
            created_at: now,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Finished::Consents { registration })
}

/// Another tab registered the same person a moment earlier: this one starts again (and then
/// signs in to that record).
fn raced(e: sqlx::Error) -> Failure {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Failure::State,
        _ => e.into(),
    }
}

fn patient_caller(user: &UserId, name: &str, ip: Option<String>) -> Caller {
    Caller {
        principal: Principal::User {
            id: user.clone(),
            role: Role::Patient,
            name: name.to_owned(),
        },
        ip,
        via: Some("esia".into()),
    }
}

/// A registration waiting for consents, as the consent page shows it.
pub struct Pending {
    pub data: PersonalData,
    /// The clinic has this person's record already (it will be linked, not duplicated).
    pub known: bool,
}

async fn pending_row(
    core: &Core,
    esia: &EsiaLogin,
    id: &str,
    nonce: Option<&str>,
) -> Result<Registration, Failure> {
    let nonce = nonce.ok_or(Failure::State)?;
    let mut conn = core.db.pool.acquire().await?;
    let row = repo::registration(&mut conn, id)
        .await?
        .ok_or(Failure::State)?;
    let fresh = core.now() - row.created_at <= esia.flow_ttl.as_millis() as i64;
    if row.nonce_hash != sha256_hex(nonce) || !fresh {
        return Err(Failure::State);
    }
    Ok(row)
}

fn data_of(row: &Registration) -> Result<PersonalData, Failure> {
    serde_json::from_str(&row.data).map_err(|e| Failure::Internal(e.into()))
}

/// The registration `id` of this browser, for the consent page.
pub async fn pending(
    core: &Core,
    esia: &EsiaLogin,
    id: &str,
    nonce: Option<&str>,
) -> Result<Pending, Failure> {
    let row = pending_row(core, esia, id, nonce).await?;
    let data = data_of(&row)?;
    let mut conn = core.db.pool.acquire().await?;
    let known = repo::account_user(&mut conn, &row.oid).await?.is_some()
        || (row.trusted && link_target(&mut conn, &data).await?.is_some());
    Ok(Pending { data, known })
}

/// The clinic's record to link, on a verified match; a disabled one is refused.
async fn link_target(
    conn: &mut sqlx::AnyConnection,
    data: &PersonalData,
) -> Result<Option<(UserId, &'static str)>, Failure> {
    if data.snils.is_none() && data.birth_date.is_none() {
        return Ok(None);
    }
    let mut candidates =
        people::patients_matching(conn, data.snils.as_deref(), data.birth_date.as_deref()).await?;
    if candidates.len() > people::MAX_CANDIDATES {
        // So many share the birth date that "exactly one matches" cannot be known.
        return Ok(None);
    }
    // A record linked to another ESIA account already is someone else's.
    let mut free = Vec::with_capacity(candidates.len());
    for c in candidates.drain(..) {
        if !repo::has_account(conn, &c.id).await? {
            free.push(c);
        }
    }
    match verified_match(data, &free) {
        Some((_, _, true)) => Err(Failure::Disabled),
        Some((user, how, false)) => Ok(Some((user, how))),
        None => Ok(None),
    }
}

/// The patient's answer on the consent page: each consent (kind → given).
pub struct Consents {
    pub personal_data: bool,
    pub health_data: bool,
    pub offer: bool,
}

/// Finish a registration: a new patient (or the clinic's record, linked on a verified match,
/// or the account's own patient who had withdrawn a consent), the consents, a session.
pub async fn register(
    core: &Core,
    esia: &EsiaLogin,
    id: &str,
    nonce: Option<&str>,
    consents: Consents,
    ip: Option<String>,
) -> Result<(String, i64), Failure> {
    let row = pending_row(core, esia, id, nonce).await?;
    if !(consents.personal_data && consents.health_data && consents.offer) {
        return Err(Failure::Consents);
    }
    let data = data_of(&row)?;
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    if !repo::delete_registration(&mut tx, id).await? {
        return Err(Failure::State);
    }
    let existing = repo::account_user(&mut tx, &row.oid).await?;
    let (user, name, action, details) = match existing {
        Some((_, _, true)) => return Err(Failure::Disabled),
        Some((user, name, false)) => {
            repo::touch_account(&mut tx, &row.oid, row.trusted, now).await?;
            (user, name, "identity.consents", json!({}))
        }
        None => {
            let target = if row.trusted {
                link_target(&mut tx, &data).await?
            } else {
                None
            };
            match target {
                Some((user, how)) => {
                    people::complete_patient(
                        &mut tx,
                        &user,
                        data.snils.as_deref(),
                        data.birth_date.as_deref(),
                    )
                    .await?;
                    repo::insert_account(&mut tx, &row.oid, &user, row.trusted, how, now)
                        .await
                        .map_err(raced)?;
                    let name = data.full_name().unwrap_or_default();
                    (user, name, "identity.link", json!({"by": how}))
                }
                None => {
                    let name = data
                        .full_name()
                        .unwrap_or_else(|| "Пациент Госуслуг".to_owned());
                    // A weak match (an e-mail or phone another record has) never merges: the
                    // new record goes without the contact the other one holds.
                    let email = match &data.email {
                        Some(e) if !people::email_in_use(&mut tx, e).await? => Some(e.clone()),
                        _ => None,
                    };
                    let user = people::insert_patient(
                        &mut tx,
                        NewPatient {
                            name: &name,
                            email,
                            phone: data.mobile.as_deref(),
                            snils: data.snils.clone(),
                            birth_date: data.birth_date.clone(),
                            ..NewPatient::default()
                        },
                        now,
                    )
                    .await
                    .map_err(|e| Failure::Internal(anyhow::anyhow!("{e}")))?;
                    repo::insert_account(
                        &mut tx,
                        &row.oid,
                        &user,
                        row.trusted,
                        "registration",
                        now,
                    )
                    .await
                    .map_err(raced)?;
                    (user, name, "patient.register", json!({"via": "esia"}))
                }
            }
        }
    };
    repo::put_personal_data(&mut tx, &user, &row.data, &row.scopes, now).await?;
    for kind in CONSENT_KINDS {
        repo::insert_consent(
            &mut tx,
            &user,
            kind,
            &esia.consent_version,
            ip.as_deref(),
            now,
        )
        .await?;
    }
    let caller = patient_caller(&user, &name, ip);
    let mut details = details;
    details["trusted"] = json!(row.trusted);
    details["consentVersion"] = json!(esia.consent_version);
    audit(
        &mut tx,
        Some(&caller),
        action,
        "user",
        Some(user.as_str()),
        details,
    )
    .await?;
    tx.commit().await?;
    let (token, expires) = people::create_session(core, &user, "esia").await?;
    Ok((token, expires))
}

/// The patient declined the consents: the registration and what ESIA gave are forgotten.
pub async fn decline(
    core: &Core,
    esia: &EsiaLogin,
    id: &str,
    nonce: Option<&str>,
) -> Result<(), Failure> {
    pending_row(core, esia, id, nonce).await?;
    let mut conn = core.db.pool.acquire().await?;
    repo::delete_registration(&mut conn, id).await?;
    Ok(())
}

/// Forget sign-ins and registrations nobody finished (run by the periodic jobs).
pub async fn purge(core: &Core, older_than: std::time::Duration) -> Result<u64, sqlx::Error> {
    let mut conn = core.db.pool.acquire().await?;
    repo::purge(&mut conn, core.now() - older_than.as_millis() as i64).await
}

/// What a patient's record holds about them from ESIA.
pub struct MyData {
    pub data: PersonalData,
    pub scopes: Vec<String>,
    pub fetched_at: i64,
    pub esia_oid: Option<String>,
    pub consents: Vec<(String, String, i64)>,
}

/// A patient's personal data; `reader` is audited when it is not the patient.
pub async fn personal_data(
    core: &Core,
    reader: &Caller,
    patient: &str,
) -> Result<Option<MyData>, sqlx::Error> {
    let mut conn = core.db.pool.acquire().await?;
    let row = repo::personal_data(&mut conn, patient).await?;
    let account = repo::account_of(&mut conn, patient).await?;
    let consents = repo::consents(&mut conn, patient).await?;
    if reader.user_id() != Some(patient) {
        audit(
            &mut conn,
            Some(reader),
            "personal_data.read",
            "user",
            Some(patient),
            json!({"found": row.is_some()}),
        )
        .await?;
    }
    Ok(row.map(|(data, scopes, fetched_at)| MyData {
        data: serde_json::from_str(&data).unwrap_or_default(),
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        fetched_at,
        esia_oid: account.map(|(oid, _)| oid),
        consents,
    }))
}

/// Record how `caller` was identified when joining `consultation`'s call.
pub async fn record_identification(
    core: &Core,
    caller: &Caller,
    consultation: &str,
) -> Result<(), sqlx::Error> {
    let (Some(user), Some(role)) = (caller.user_id(), caller.role()) else {
        return Ok(());
    };
    let mut conn = core.db.pool.acquire().await?;
    let method = caller.via.clone().unwrap_or_else(|| "session".into());
    let account = if method == "esia" {
        repo::account_of(&mut conn, user).await?
    } else {
        None
    };
    repo::insert_identification(
        &mut conn,
        consultation,
        &Identification {
            user_id: user.to_owned(),
            role: role.as_str().to_owned(),
            method,
            esia_oid: account.as_ref().map(|(oid, _)| oid.clone()),
            trusted: account.map(|(_, t)| t),
            at: core.now(),
        },
    )
    .await
}

/// How each party of a consultation was identified, oldest first.
pub async fn identifications(
    core: &Core,
    consultation: &str,
) -> Result<Vec<Identification>, sqlx::Error> {
    let mut conn = core.db.pool.acquire().await?;
    repo::identifications(&mut conn, consultation).await
}
