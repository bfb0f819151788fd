//! The rules of people: who may be created with what, logging in, sessions, API keys, disabling
//! staff. Each change that matters is audited.

use serde_json::json;

use super::credentials::{API_KEY_PREFIX, SESSION_PREFIX, new_secret, secret_hash};
use super::repo::{self, DoctorRow, NewStaffRow};
pub use super::repo::{MAX_CANDIDATES, NewPatient, PatientRecord, StaffRow};
use crate::domain::{ApiKeyId, Caller, Principal, Role, UserId};
use crate::platform::audit::{audit, audit_list_read};
use crate::platform::{Db, now_ms};
use crate::state::Core;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidField(String),
    #[error("the password must be at least 10 characters")]
    WeakPassword,
    #[error("a user with this e-mail exists")]
    EmailTaken,
    #[error("wrong e-mail or password")]
    WrongCredentials,
    /// Too many failed logins for the account or from the address: retry after these seconds.
    #[error("too many failed logins; try again in {0} s")]
    TooManyAttempts(u64),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("an admin cannot disable their own account")]
    CannotDisableSelf,
    #[error("the session or API key has expired or was revoked")]
    InvalidCredentials,
    #[error("database: {0}")]
    Db(#[source] sqlx::Error),
    #[error("internal: {0}")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(e)
    }
}

/// A unique e-mail taken already, or another database error.
fn email_taken(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::EmailTaken,
        _ => Error::Db(e),
    }
}

/// A staff member to create (admin API and `vizit user create`).
pub struct NewStaff<'a> {
    pub role: Role,
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub specialty: Option<&'a str>,
    pub time_zone: Option<&'a str>,
    pub bitrix_resource_id: Option<&'a str>,
}

/// An e-mail address as stored: trimmed, lower case, plausibly an address.
pub fn normalized_email(email: &str) -> Result<String, Error> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(Error::InvalidField("email is not an e-mail address".into()));
    }
    Ok(email)
}

/// Create a staff member (the admin API, `vizit user create`, demo mode). Works on the
/// database alone, so tools use it without a running server.
pub async fn create_staff_user(db: &Db, staff: NewStaff<'_>) -> Result<UserId, Error> {
    if staff.role == Role::Patient {
        return Err(Error::InvalidField(
            "patients are registered, not created as staff".into(),
        ));
    }
    let email = normalized_email(staff.email)?;
    let name = staff.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::InvalidField(
            "name must be 1 to 200 characters".into(),
        ));
    }
    if staff.password.chars().count() < 10 {
        return Err(Error::WeakPassword);
    }
    if staff.role == Role::Doctor && staff.specialty.is_none_or(|s| s.trim().is_empty()) {
        return Err(Error::InvalidField("a doctor needs a specialty".into()));
    }
    let hash = super::guard::hash_password_off_thread(staff.password).await?;
    let id = UserId::new();
    let mut tx = db.begin_write().await?;
    repo::insert_staff(
        &mut tx,
        NewStaffRow {
            id: &id,
            role: staff.role,
            email: Some(&email),
            password_hash: Some(&hash),
            name,
        },
        now_ms(),
    )
    .await
    .map_err(email_taken)?;
    if staff.role == Role::Doctor {
        repo::insert_doctor(
            &mut tx,
            &id,
            DoctorRow {
                specialty: staff.specialty.unwrap_or_default().trim(),
                bitrix_resource_id: staff.bitrix_resource_id,
                time_zone: staff.time_zone.unwrap_or("Europe/Moscow"),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// A doctor made for a resource of an external schedule (no login until an admin gives one).
pub async fn import_doctor(
    core: &Core,
    name: &str,
    specialty: &str,
    resource_id: &str,
    time_zone: &str,
) -> Result<UserId, sqlx::Error> {
    let id = UserId::new();
    let mut tx = core.db.begin_write().await?;
    repo::insert_staff(
        &mut tx,
        NewStaffRow {
            id: &id,
            role: Role::Doctor,
            email: None,
            password_hash: None,
            name,
        },
        core.now(),
    )
    .await?;
    repo::insert_doctor(
        &mut tx,
        &id,
        DoctorRow {
            specialty,
            bitrix_resource_id: Some(resource_id),
            time_zone,
        },
    )
    .await?;
    audit(
        &mut tx,
        None,
        "doctor.import",
        "user",
        Some(id.as_str()),
        json!({"bitrixResourceId": resource_id.parse::<i64>().ok()}),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A patient has no password: they sign in through the portal (later ESIA) or the demo login.
pub async fn register_patient(core: &Core, p: NewPatient<'_>) -> Result<UserId, Error> {
    let id = UserId::new();
    let mut conn = core.db.pool.acquire().await?;
    repo::insert_patient(&mut conn, &id, p, core.now())
        .await
        .map_err(email_taken)?;
    Ok(id)
}

/// A new patient in the caller's transaction (ESIA registration).
pub async fn insert_patient(
    conn: &mut sqlx::AnyConnection,
    p: NewPatient<'_>,
    now: i64,
) -> Result<UserId, Error> {
    let id = UserId::new();
    repo::insert_patient(conn, &id, p, now)
        .await
        .map_err(email_taken)?;
    Ok(id)
}

/// Enabled patients with this SNILS or birth date (candidates for linking an ESIA account).
pub async fn patients_matching(
    conn: &mut sqlx::AnyConnection,
    snils: Option<&str>,
    birth_date: Option<&str>,
) -> Result<Vec<PatientRecord>, sqlx::Error> {
    repo::patients_matching(conn, snils, birth_date).await
}

/// Whether a user has this e-mail, in the caller's transaction.
pub async fn email_in_use(
    conn: &mut sqlx::AnyConnection,
    email: &str,
) -> Result<bool, sqlx::Error> {
    repo::email_in_use(conn, email).await
}

/// Fill in a patient's SNILS and birth date where the record has none.
pub async fn complete_patient(
    conn: &mut sqlx::AnyConnection,
    id: &UserId,
    snils: Option<&str>,
    birth_date: Option<&str>,
) -> Result<(), sqlx::Error> {
    repo::complete_patient(conn, id, snils, birth_date).await
}

/// The portal registers a patient (audited as theirs).
pub async fn create_patient(
    core: &Core,
    caller: &Caller,
    p: NewPatient<'_>,
) -> Result<UserId, Error> {
    let id = register_patient(core, p).await?;
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "patient.create",
        "user",
        Some(id.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    Ok(id)
}

/// Demo mode: a new patient named `name` and a session for them.
pub async fn dev_login(
    core: &Core,
    name: &str,
    ip: Option<String>,
) -> Result<(UserId, String, i64), Error> {
    let id = register_patient(
        core,
        NewPatient {
            name,
            ..NewPatient::default()
        },
    )
    .await?;
    let (token, expires) = create_session(core, &id, crate::domain::caller::DEMO_SESSION).await?;
    let caller = Caller {
        principal: Principal::User {
            id: id.clone(),
            role: Role::Patient,
            name: name.to_owned(),
        },
        ip,
        via: Some(crate::domain::caller::DEMO_SESSION.into()),
    };
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(&caller),
        "session.dev_login",
        "user",
        Some(id.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    Ok((id, token, expires))
}

/// An admin creates a staff member (audited).
pub async fn create_staff(
    core: &Core,
    caller: &Caller,
    staff: NewStaff<'_>,
) -> Result<UserId, Error> {
    let role = staff.role;
    let id = create_staff_user(&core.db, staff).await?;
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "staff.create",
        "user",
        Some(id.as_str()),
        json!({"role": role}),
    )
    .await?;
    Ok(id)
}

/// Every staff member, for an admin (the read is audited).
pub async fn list_staff(core: &Core, caller: &Caller) -> Result<Vec<StaffRow>, Error> {
    let rows = repo::list_staff(&core.db.pool).await?;
    let mut conn = core.db.pool.acquire().await?;
    audit_list_read(
        &mut conn,
        caller,
        "staff.list",
        "user",
        serde_json::Value::Null,
    )
    .await?;
    Ok(rows)
}

/// The name of an enabled patient, read in the caller's transaction (a booking checks whom it
/// books for).
pub async fn active_patient(
    conn: &mut sqlx::AnyConnection,
    id: &UserId,
) -> Result<Option<String>, sqlx::Error> {
    repo::active_patient_name(conn, id).await
}

/// A person's e-mail and phone (for receipts and notifications), read in the caller's
/// transaction.
pub async fn contact(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    repo::contact(conn, id).await
}

/// The id of the user with this e-mail.
pub async fn user_by_email(core: &Core, email: &str) -> Result<Option<UserId>, sqlx::Error> {
    repo::user_id_by_email(&core.db.pool, email).await
}

/// A new session for a user, opened `via` (`password`, `portal`, `esia`, `demo`): the token
/// (shown once) and when it expires.
pub async fn create_session(
    core: &Core,
    user: &UserId,
    via: &str,
) -> Result<(String, i64), sqlx::Error> {
    let token = new_secret(SESSION_PREFIX);
    let now = core.now();
    let expires = now + core.settings.session_ttl.as_millis() as i64;
    repo::insert_session(&core.db.pool, &secret_hash(&token), user, via, now, expires).await?;
    Ok((token, expires))
}

/// Who a bearer secret belongs to: a session's person (and how the session was opened) or an
/// API key.
pub async fn authenticate(core: &Core, secret: &str) -> Result<(Principal, Option<String>), Error> {
    let hash = secret_hash(secret);
    if secret.starts_with(SESSION_PREFIX) {
        let (id, role, name, via) = repo::session_user(&core.db.pool, &hash, core.now())
            .await?
            .ok_or(Error::InvalidCredentials)?;
        return Ok((Principal::User { id, role, name }, via));
    }
    if secret.starts_with(API_KEY_PREFIX) {
        let key_id = repo::api_key_by_hash(&core.db.pool, &hash)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        return Ok((Principal::Service { key_id }, None));
    }
    Err(Error::InvalidCredentials)
}

/// Whether the user `id` exists and is not disabled.
pub async fn account_enabled(core: &Core, id: &str) -> Result<bool, Error> {
    let mut conn = core.db.pool.acquire().await?;
    Ok(repo::is_enabled(&mut conn, id).await?)
}

/// Check a staff member's password; a failure is audited and says the same for an unknown
/// e-mail and a wrong password, after the same work. Too many failures for the account or from
/// the address refuse the login before any check ([`Error::TooManyAttempts`]).
pub async fn login(
    core: &Core,
    email: &str,
    password: &str,
    ip: Option<String>,
) -> Result<(Caller, String, i64), Error> {
    let account = email.trim().to_lowercase();
    if account.len() > 254 {
        // No staff e-mail is this long (RFC 5321): nothing to check, nothing to keep.
        return Err(Error::WrongCredentials);
    }
    let guard = &core.logins;
    if let Err(locked) = guard.reserve(&account, ip.as_deref(), core.now()) {
        return Err(Error::TooManyAttempts(locked.retry_after_secs));
    }
    let found = repo::staff_by_email(&core.db.pool, &account).await?;
    let hash = found.as_ref().and_then(|u| u.password_hash.as_deref());
    let verified = guard.verify(password, hash).await;
    let user = found.filter(|_| verified);
    let Some(user) = user else {
        let mut conn = core.db.pool.acquire().await?;
        audit(
            &mut conn,
            None,
            "session.login_failed",
            "user",
            None,
            json!({"ip": ip}),
        )
        .await?;
        return Err(Error::WrongCredentials);
    };
    guard.succeeded(&account, ip.as_deref());
    let (token, expires) = create_session(core, &user.id, "password").await?;
    let caller = Caller {
        principal: Principal::User {
            id: user.id.clone(),
            role: user.role,
            name: user.name,
        },
        ip,
        via: Some("password".into()),
    };
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(&caller),
        "session.login",
        "user",
        Some(user.id.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    Ok((caller, token, expires))
}

pub async fn logout(core: &Core, caller: &Caller, secret: &str) -> Result<(), sqlx::Error> {
    repo::revoke_session(&core.db.pool, &secret_hash(secret), core.now()).await?;
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "session.logout",
        "user",
        caller.user_id(),
        serde_json::Value::Null,
    )
    .await
}

/// The portal signs in a patient it authenticated itself.
pub async fn patient_session(
    core: &Core,
    caller: &Caller,
    patient: &UserId,
) -> Result<(String, String, i64), Error> {
    let mut conn = core.db.pool.acquire().await?;
    let name = repo::active_patient_name(&mut conn, patient)
        .await?
        .ok_or(Error::NotFound("patient"))?;
    drop(conn);
    let (token, expires) = create_session(core, patient, "portal").await?;
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "session.create",
        "user",
        Some(patient.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    Ok((name, token, expires))
}

/// Disable a staff account: it can no longer log in, and its sessions end now.
pub async fn disable_staff(core: &Core, caller: &Caller, user: &UserId) -> Result<(), Error> {
    if caller.user() == Some(user) {
        return Err(Error::CannotDisableSelf);
    }
    let mut tx = core.db.begin_write().await?;
    if !repo::disable_staff(&mut tx, user, core.now()).await? {
        return Err(Error::NotFound("staff member"));
    }
    audit(
        &mut tx,
        Some(caller),
        "staff.disable",
        "user",
        Some(user.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A new API key for the portal: its id and the key itself (shown once, never stored).
pub async fn create_api_key(
    core: &Core,
    caller: &Caller,
    name: &str,
) -> Result<(ApiKeyId, String), sqlx::Error> {
    let id = ApiKeyId::new();
    let key = new_secret(API_KEY_PREFIX);
    repo::insert_api_key(
        &core.db.pool,
        &id,
        name,
        &secret_hash(&key),
        core.now(),
        caller.user_id().unwrap_or_default(),
    )
    .await?;
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "api_key.create",
        "api_key",
        Some(id.as_str()),
        json!({"name": name}),
    )
    .await?;
    Ok((id, key))
}

pub async fn revoke_api_key(core: &Core, caller: &Caller, key: &ApiKeyId) -> Result<(), Error> {
    if !repo::revoke_api_key(&core.db.pool, key, core.now()).await? {
        return Err(Error::NotFound("API key"));
    }
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "api_key.revoke",
        "api_key",
        Some(key.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    Ok(())
}

/// (id, name, created_at, revoked_at) of every API key, oldest first.
pub async fn list_api_keys(
    core: &Core,
) -> Result<Vec<(String, String, i64, Option<i64>)>, sqlx::Error> {
    repo::list_api_keys(&core.db.pool).await
}
