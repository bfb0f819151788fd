//! The SQL of the recordings catalogue and the consents given in calls.

use sqlx::{AnyConnection, AnyPool};

/// A catalogued recording, with its consultation's start and doctor.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordingRow {
    pub id: String,
    pub consultation_id: String,
    pub starts_at: i64,
    pub doctor_name: String,
    pub patient_name: String,
    /// The consultation's patient (a patient reads only their own recordings).
    pub patient_id: String,
    pub kind: String,
    pub participant_role: Option<String>,
    pub status: String,
    pub content_type: String,
    pub storage_key: String,
    pub started_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub legal_hold_at: Option<i64>,
    pub created_at: i64,
    pub stored_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub error: Option<String>,
}

const SELECT: &str = "SELECT r.id, r.consultation_id, c.starts_at, u.name AS doctor_name, pu.name AS patient_name, \
    c.patient_id, r.kind, r.participant_role, \
    r.status, r.content_type, r.storage_key, r.started_at, r.duration_ms, r.size_bytes, r.sha256, r.legal_hold_at, \
    r.created_at, r.stored_at, r.deleted_at, r.error \
    FROM recordings r JOIN consultations c ON c.id = r.consultation_id JOIN users u ON u.id = c.doctor_id \
    JOIN users pu ON pu.id = c.patient_id";

/// A row to catalogue before its file exists.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub kind: &'a str,
    pub participant_role: Option<&'a str>,
    pub status: &'a str,
    pub content_type: &'a str,
    pub storage_key: &'a str,
}

pub async fn insert(conn: &mut AnyConnection, r: NewRow<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recordings (id, consultation_id, kind, participant_role, status, content_type, storage_key, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.id)
    .bind(r.consultation_id)
    .bind(r.kind)
    .bind(r.participant_role.map(str::to_owned))
    .bind(r.status)
    .bind(r.content_type)
    .bind(r.storage_key)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// (storage key, content type) of a recording.
pub async fn key_and_type(
    pool: &AnyPool,
    id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT storage_key, content_type FROM recordings WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn uploading(
    pool: &AnyPool,
    id: &str,
    started_at: Option<i64>,
    duration_ms: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET status = 'uploading', started_at = COALESCE($1, started_at), \
         duration_ms = COALESCE($2, duration_ms) WHERE id = $3",
    )
    .bind(started_at)
    .bind(duration_ms)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_size(
    pool: &AnyPool,
    id: &str,
    size: i64,
    sha256: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET size_bytes = $1, sha256 = $2 WHERE id = $3")
        .bind(size)
        .bind(sha256)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_error(pool: &AnyPool, id: &str, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET error = $1 WHERE id = $2")
        .bind(error)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn failed(pool: &AnyPool, id: &str, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET status = 'failed', error = $1 WHERE id = $2")
        .bind(why)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn stored(
    conn: &mut AnyConnection,
    id: &str,
    size: i64,
    sha256: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET status = 'stored', size_bytes = $1, sha256 = $2, stored_at = $3 \
         WHERE id = $4 AND status IN ('uploading', 'failed')",
    )
    .bind(size)
    .bind(sha256)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// (id, status, content type) of recordings a stop interrupted.
pub async fn interrupted(pool: &AnyPool) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, status, content_type FROM recordings \
         WHERE status IN ('recording', 'processing', 'uploading')",
    )
    .fetch_all(pool)
    .await
}

/// One page of the catalogue, newest first, and the total; `patient`: only that patient's
/// consultations' recordings.
pub async fn list(
    pool: &AnyPool,
    consultation: Option<String>,
    status: Option<String>,
    patient: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<RecordingRow>), sqlx::Error> {
    let filter = " WHERE ($1 IS NULL OR r.consultation_id = $1) AND ($2 IS NULL OR r.status = $2) \
        AND ($3 IS NULL OR c.patient_id = $3)";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM recordings r JOIN consultations c ON c.id = r.consultation_id{filter}"
    )))
    .bind(consultation.clone())
    .bind(status.clone())
    .bind(patient.clone())
    .fetch_one(pool)
    .await?;
    let rows: Vec<RecordingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT}{filter} ORDER BY r.created_at DESC, r.id LIMIT $4 OFFSET $5"
    )))
    .bind(consultation)
    .bind(status)
    .bind(patient)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((total, rows))
}

pub async fn load(pool: &AnyPool, id: &str) -> Result<Option<RecordingRow>, sqlx::Error> {
    sqlx::query_as::<_, RecordingRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn set_hold(
    conn: &mut AnyConnection,
    id: &str,
    at: Option<i64>,
    by: Option<String>,
    reason: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET legal_hold_at = $1, legal_hold_by = $2, legal_hold_reason = $3 WHERE id = $4")
        .bind(at)
        .bind(by)
        .bind(reason)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Recordings the retention deletes: stored before `cutoff` and not held, and those whose
/// object deletion is still `pending`. (id, storage key, status), oldest first.
pub async fn due_for_deletion(
    pool: &AnyPool,
    cutoff: i64,
    pending: &str,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, storage_key, status FROM recordings WHERE (status = 'stored' AND legal_hold_at IS NULL \
         AND COALESCE(stored_at, created_at) < $1) OR (status = 'deleted' AND error = $2) ORDER BY created_at LIMIT 500",
    )
    .bind(cutoff)
    .bind(pending)
    .fetch_all(pool)
    .await
}

/// Mark a stored, unheld recording deleted by retention; false if that no longer holds.
pub async fn mark_deleted(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
    pending: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE recordings SET status = 'deleted', deleted_at = $1, deleted_reason = 'retention', error = $2 \
         WHERE id = $3 AND status = 'stored' AND legal_hold_at IS NULL",
    )
    .bind(now)
    .bind(pending)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn object_deleted(pool: &AnyPool, id: &str, pending: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET error = NULL WHERE id = $1 AND error = $2")
        .bind(id)
        .bind(pending)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn insert_consent(
    conn: &mut AnyConnection,
    consultation: &str,
    user: &str,
    role: &str,
    consent: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recording_consents (id, consultation_id, user_id, role, consent, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(consultation)
    .bind(user)
    .bind(role)
    .bind(i32::from(consent))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
