//! The SQL of identity: `esia_accounts`, `personal_data`, `consents`, `esia_logins`,
//! `esia_registrations`, `identifications`.

use sqlx::{AnyConnection, Row};

use crate::domain::UserId;

// ---- sign-ins in progress ------------------------------------------------------------------

pub async fn insert_login(
    conn: &mut AnyConnection,
    state: &str,
    nonce_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO esia_logins (state, nonce_hash, created_at) VALUES ($1, $2, $3)")
        .bind(state)
        .bind(nonce_hash)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Use a sign-in once: true if it existed, was this browser's, unused and recent enough.
pub async fn use_login(
    conn: &mut AnyConnection,
    state: &str,
    nonce_hash: &str,
    not_before: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE esia_logins SET used_at = $4 WHERE state = $1 AND nonce_hash = $2 \
         AND used_at IS NULL AND created_at >= $3",
    )
    .bind(state)
    .bind(nonce_hash)
    .bind(not_before)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forget sign-ins and registrations older than `before`.
pub async fn purge(conn: &mut AnyConnection, before: i64) -> Result<u64, sqlx::Error> {
    let a = sqlx::query("DELETE FROM esia_logins WHERE created_at < $1")
        .bind(before)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let b = sqlx::query("DELETE FROM esia_registrations WHERE created_at < $1")
        .bind(before)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(a + b)
}

// ---- registrations waiting for consents ---------------------------------------------------

pub struct Registration {
    pub id: String,
    pub nonce_hash: String,
    pub oid: String,
    pub trusted: bool,
    /// JSON of [`super::person::PersonalData`].
    pub data: String,
    pub scopes: String,
    pub created_at: i64,
}

pub async fn insert_registration(
    conn: &mut AnyConnection,
    r: &Registration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO esia_registrations (id, nonce_hash, oid, trusted, data, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.id)
    .bind(&r.nonce_hash)
    .bind(&r.oid)
    .bind(i64::from(r.trusted))
    .bind(&r.data)
    .bind(&r.scopes)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn registration(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Registration>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, nonce_hash, oid, trusted, data, scopes, created_at FROM esia_registrations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Registration {
            id: r.try_get("id")?,
            nonce_hash: r.try_get("nonce_hash")?,
            oid: r.try_get("oid")?,
            trusted: r.try_get::<i64, _>("trusted")? != 0,
            data: r.try_get("data")?,
            scopes: r.try_get("scopes")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
}

/// Remove a registration; false if it was gone already (finished in another tab).
pub async fn delete_registration(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM esia_registrations WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

// ---- ESIA accounts and personal data --------------------------------------------------------

/// The patient an ESIA account belongs to (enabled or not) and whether they are disabled.
pub async fn account_user(
    conn: &mut AnyConnection,
    oid: &str,
) -> Result<Option<(UserId, String, bool)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, u.name, u.disabled_at FROM esia_accounts a JOIN users u ON u.id = a.user_id WHERE a.oid = $1",
    )
    .bind(oid)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok((
            UserId::from_stored(r.try_get("id")?),
            r.try_get("name")?,
            r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        ))
    })
    .transpose()
}

/// Whether the user has an ESIA account linked already.
pub async fn has_account(conn: &mut AnyConnection, user: &UserId) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT oid FROM esia_accounts WHERE user_id = $1")
        .bind(user.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// The user's ESIA `oid` and trust at their last sign-in.
pub async fn account_of(
    conn: &mut AnyConnection,
    user: &str,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT oid, trusted FROM esia_accounts WHERE user_id = $1")
            .bind(user)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(oid, t)| (oid, t != 0)))
}

pub async fn insert_account(
    conn: &mut AnyConnection,
    oid: &str,
    user: &UserId,
    trusted: bool,
    linked_by: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO esia_accounts (oid, user_id, trusted, linked_at, linked_by, last_login_at) \
         VALUES ($1, $2, $3, $4, $5, $4)",
    )
    .bind(oid)
    .bind(user.as_str())
    .bind(i64::from(trusted))
    .bind(now)
    .bind(linked_by)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn touch_account(
    conn: &mut AnyConnection,
    oid: &str,
    trusted: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE esia_accounts SET trusted = $2, last_login_at = $3 WHERE oid = $1")
        .bind(oid)
        .bind(i64::from(trusted))
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Store (or replace) what ESIA gave about the user.
pub async fn put_personal_data(
    conn: &mut AnyConnection,
    user: &UserId,
    data: &str,
    scopes: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO personal_data (user_id, source, data, scopes, fetched_at) VALUES ($1, 'esia', $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET source = 'esia', data = $2, scopes = $3, fetched_at = $4",
    )
    .bind(user.as_str())
    .bind(data)
    .bind(scopes)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// (data JSON, scopes, fetched_at) of a user.
pub async fn personal_data(
    conn: &mut AnyConnection,
    user: &str,
) -> Result<Option<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT data, scopes, fetched_at FROM personal_data WHERE user_id = $1")
        .bind(user)
        .fetch_optional(conn)
        .await
}

// ---- consents ----------------------------------------------------------------------------------

pub async fn insert_consent(
    conn: &mut AnyConnection,
    user: &UserId,
    kind: &str,
    version: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consents (id, user_id, kind, version, given_at, ip) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_id, kind, version) WHERE withdrawn_at IS NULL DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(user.as_str())
    .bind(kind)
    .bind(version)
    .bind(now)
    .bind(ip.map(str::to_owned))
    .execute(conn)
    .await?;
    Ok(())
}

/// (kind, version, given_at) of the user's consents in force.
pub async fn consents(
    conn: &mut AnyConnection,
    user: &str,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, version, given_at FROM consents WHERE user_id = $1 AND withdrawn_at IS NULL ORDER BY given_at",
    )
    .bind(user)
    .fetch_all(conn)
    .await
}

// ---- identifications -----------------------------------------------------------------------

pub struct Identification {
    pub user_id: String,
    pub role: String,
    pub method: String,
    pub esia_oid: Option<String>,
    pub trusted: Option<bool>,
    pub at: i64,
}

pub async fn insert_identification(
    conn: &mut AnyConnection,
    consultation: &str,
    i: &Identification,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO identifications (id, consultation_id, user_id, role, method, esia_oid, trusted, identified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(consultation)
    .bind(&i.user_id)
    .bind(&i.role)
    .bind(&i.method)
    .bind(i.esia_oid.clone())
    .bind(i.trusted.map(i64::from))
    .bind(i.at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn identifications(
    conn: &mut AnyConnection,
    consultation: &str,
) -> Result<Vec<Identification>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT user_id, role, method, esia_oid, trusted, identified_at FROM identifications \
         WHERE consultation_id = $1 ORDER BY identified_at, id",
    )
    .bind(consultation)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Identification {
                user_id: r.try_get("user_id")?,
                role: r.try_get("role")?,
                method: r.try_get("method")?,
                esia_oid: r.try_get("esia_oid")?,
                trusted: r.try_get::<Option<i64>, _>("trusted")?.map(|t| t != 0),
                at: r.try_get("identified_at")?,
            })
        })
        .collect()
}
