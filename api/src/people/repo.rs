//! The SQL of people: users (patients and staff), doctors, sessions and API keys.

use sqlx::{AnyConnection, AnyPool, Row};

use crate::domain::{ApiKeyId, Role, UserId};

fn role_of(s: &str) -> Result<Role, sqlx::Error> {
    Role::parse(s).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {s}").into()))
}

/// A person who may log in with a password.
pub struct LoginUser {
    pub id: UserId,
    pub role: Role,
    pub name: String,
    pub password_hash: Option<String>,
}

/// An enabled staff member by e-mail (patients have no password).
pub async fn staff_by_email(pool: &AnyPool, email: &str) -> Result<Option<LoginUser>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, role, name, password_hash FROM users WHERE email = $1 AND disabled_at IS NULL AND role <> 'patient'",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(LoginUser {
            id: UserId::from_stored(row.try_get("id")?),
            role: role_of(&row.try_get::<String, _>("role")?)?,
            name: row.try_get("name")?,
            password_hash: row.try_get("password_hash")?,
        })
    })
    .transpose()
}

/// The user of an open, unexpired session whose account is enabled.
pub async fn session_user(
    pool: &AnyPool,
    token_hash: &str,
    now: i64,
) -> Result<Option<(UserId, Role, String, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, u.role, u.name, s.method FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
         AND u.disabled_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok((
            UserId::from_stored(row.try_get("id")?),
            role_of(&row.try_get::<String, _>("role")?)?,
            row.try_get("name")?,
            row.try_get("method")?,
        ))
    })
    .transpose()
}

/// The id of an unrevoked API key.
pub async fn api_key_by_hash(
    pool: &AnyPool,
    key_hash: &str,
) -> Result<Option<ApiKeyId>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id,)| ApiKeyId::from_stored(id)))
}

pub async fn insert_session(
    pool: &AnyPool,
    token_hash: &str,
    user: &UserId,
    method: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (token_hash, user_id, method, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(token_hash)
        .bind(user.as_str())
        .bind(method)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn revoke_session(pool: &AnyPool, token_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2")
        .bind(now)
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// A new patient.
#[derive(Default)]
pub struct NewPatient<'a> {
    pub name: &'a str,
    pub email: Option<String>,
    pub phone: Option<&'a str>,
    pub crm_contact_id: Option<i64>,
    /// 11 digits, checked.
    pub snils: Option<String>,
    /// `yyyy-mm-dd`.
    pub birth_date: Option<String>,
}

pub async fn insert_patient(
    conn: &mut AnyConnection,
    id: &UserId,
    p: NewPatient<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, role, email, name, phone, created_at, crm_contact_id, snils, birth_date) \
         VALUES ($1, 'patient', $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(p.email)
    .bind(p.name)
    .bind(p.phone.map(str::to_owned))
    .bind(now)
    .bind(p.crm_contact_id.map(|c| c.to_string()))
    .bind(p.snils)
    .bind(p.birth_date)
    .execute(conn)
    .await?;
    Ok(())
}

/// An enabled patient the clinic registered, as candidates for linking an ESIA account.
pub struct PatientRecord {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub snils: Option<String>,
    pub birth_date: Option<String>,
    pub disabled: bool,
}

/// At most this many candidates are read; more means the match is not for a machine to make.
pub const MAX_CANDIDATES: usize = 500;

/// Patients (disabled ones too) with this SNILS, or with this birth date — at most
/// [`MAX_CANDIDATES`] + 1.
pub async fn patients_matching(
    conn: &mut AnyConnection,
    snils: Option<&str>,
    birth_date: Option<&str>,
) -> Result<Vec<PatientRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, email, phone, snils, birth_date, disabled_at FROM users \
         WHERE role = 'patient' \
         AND ((snils IS NOT NULL AND snils = $1) OR (birth_date IS NOT NULL AND birth_date = $2)) \
         ORDER BY created_at LIMIT 501",
    )
    .bind(snils.map(str::to_owned))
    .bind(birth_date.map(str::to_owned))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PatientRecord {
                id: UserId::from_stored(r.try_get("id")?),
                name: r.try_get("name")?,
                email: r.try_get("email")?,
                phone: r.try_get("phone")?,
                snils: r.try_get("snils")?,
                birth_date: r.try_get("birth_date")?,
                disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
            })
        })
        .collect()
}

/// Fill a patient's verified identifiers where the record has none (an ESIA sign-in).
pub async fn complete_patient(
    conn: &mut AnyConnection,
    id: &UserId,
    snils: Option<&str>,
    birth_date: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET snils = COALESCE(snils, $2), birth_date = COALESCE(birth_date, $3) WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(snils.map(str::to_owned))
    .bind(birth_date.map(str::to_owned))
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a user exists and is not disabled.
pub async fn is_enabled(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM users WHERE id = $1 AND disabled_at IS NULL")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.is_some())
}

/// The name of an enabled patient.
pub async fn active_patient_name(
    conn: &mut AnyConnection,
    id: &UserId,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT name FROM users WHERE id = $1 AND role = 'patient' AND disabled_at IS NULL",
    )
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(n,)| n))
}

/// A person's e-mail and phone, as registered.
pub async fn contact(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT email, phone FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.unwrap_or_default())
}

/// Whether a user has this e-mail, in the caller's transaction.
pub async fn email_in_use(conn: &mut AnyConnection, email: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

pub async fn user_id_by_email(pool: &AnyPool, email: &str) -> Result<Option<UserId>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id,)| UserId::from_stored(id)))
}

/// A staff user row, in the caller's transaction.
pub struct NewStaffRow<'a> {
    pub id: &'a UserId,
    pub role: Role,
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub name: &'a str,
}

pub async fn insert_staff(
    conn: &mut AnyConnection,
    s: NewStaffRow<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO users (id, role, email, password_hash, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(s.id.as_str())
        .bind(s.role.as_str())
        .bind(s.email.map(str::to_owned))
        .bind(s.password_hash.map(str::to_owned))
        .bind(s.name)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// A doctor's row beside their user row.
pub struct DoctorRow<'a> {
    pub specialty: &'a str,
    pub bitrix_resource_id: Option<&'a str>,
    pub time_zone: &'a str,
}

pub async fn insert_doctor(
    conn: &mut AnyConnection,
    id: &UserId,
    d: DoctorRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO doctors (user_id, specialty, bitrix_resource_id, time_zone) VALUES ($1, $2, $3, $4)")
        .bind(id.as_str())
        .bind(d.specialty)
        .bind(d.bitrix_resource_id.map(str::to_owned))
        .bind(d.time_zone)
        .execute(conn)
        .await?;
    Ok(())
}

pub struct StaffRow {
    pub id: String,
    pub role: Role,
    pub email: Option<String>,
    pub name: String,
    pub disabled: bool,
}

pub async fn list_staff(pool: &AnyPool) -> Result<Vec<StaffRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, role, email, name, disabled_at FROM users WHERE role <> 'patient' ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(StaffRow {
                id: row.try_get("id")?,
                role: role_of(&row.try_get::<String, _>("role")?)?,
                email: row.try_get("email")?,
                name: row.try_get("name")?,
                disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
            })
        })
        .collect()
}

/// Disable an enabled staff member and end their sessions; false if there is none.
pub async fn disable_staff(
    conn: &mut AnyConnection,
    user: &UserId,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let disabled = sqlx::query(
        "UPDATE users SET disabled_at = $1 WHERE id = $2 AND role <> 'patient' AND disabled_at IS NULL",
    )
    .bind(now)
    .bind(user.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if disabled == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

pub async fn insert_api_key(
    pool: &AnyPool,
    id: &ApiKeyId,
    name: &str,
    key_hash: &str,
    now: i64,
    created_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO api_keys (id, name, key_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(id.as_str())
        .bind(name)
        .bind(key_hash)
        .bind(now)
        .bind(created_by)
        .execute(pool)
        .await?;
    Ok(())
}

/// (id, name, created_at, revoked_at) of every API key, oldest first.
pub async fn list_api_keys(
    pool: &AnyPool,
) -> Result<Vec<(String, String, i64, Option<i64>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
        .fetch_all(pool)
        .await
}

/// Revoke an unrevoked key; false if there is none.
pub async fn revoke_api_key(pool: &AnyPool, id: &ApiKeyId, now: i64) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id.as_str())
        .execute(pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}
