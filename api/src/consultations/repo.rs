//! The SQL of consultations.

use sqlx::{AnyConnection, AnyPool};

use crate::domain::{ConsultationId, ConsultationStatus, SlotId, UserId};

/// A consultation as stored, with its parties' names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsultationRow {
    pub id: String,
    pub slot_id: String,
    pub doctor_id: String,
    pub patient_id: String,
    pub status: String,
    pub price_kopecks: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub time_zone: String,
    pub booked_at: i64,
    pub pay_by: i64,
    pub paid_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub cancelled_by: Option<String>,
    pub cancel_reason: Option<String>,
    pub conclusion: Option<String>,
    pub overdue_at: Option<i64>,
    pub external_booking_id: Option<String>,
    pub external_sync: Option<String>,
    pub slot_conflict: Option<String>,
    pub doctor_name: String,
    pub doctor_specialty: String,
    pub patient_name: String,
}

impl ConsultationRow {
    /// The stored status; the database's CHECK admits only known ones.
    pub fn status(&self) -> Result<ConsultationStatus, sqlx::Error> {
        ConsultationStatus::parse(&self.status).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown consultation status {}", self.status).into())
        })
    }
}

const SELECT: &str = "SELECT c.id, c.slot_id, c.doctor_id, c.patient_id, c.status, \
    c.price_kopecks, c.starts_at, c.ends_at, c.time_zone, c.booked_at, c.pay_by, c.paid_at, \
    c.started_at, c.completed_at, c.cancelled_at, c.cancelled_by, c.cancel_reason, c.conclusion, \
    c.overdue_at, c.external_booking_id, c.external_sync, c.slot_conflict, d.name AS doctor_name, dp.specialty AS doctor_specialty, p.name AS patient_name \
    FROM consultations c JOIN users d ON d.id = c.doctor_id JOIN doctors dp ON dp.user_id = c.doctor_id \
    JOIN users p ON p.id = c.patient_id";

pub async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ConsultationRow>, sqlx::Error> {
    sqlx::query_as::<_, ConsultationRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Touch a consultation first in a transaction, so the write lock (SQLite) or the row lock
/// (PostgreSQL) is ours before we read it. False if it does not exist.
pub async fn touch(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("UPDATE consultations SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// A new booking.
pub struct NewConsultation<'a> {
    pub id: &'a ConsultationId,
    pub slot: &'a SlotId,
    pub doctor: &'a str,
    pub patient: &'a UserId,
    pub price_kopecks: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub time_zone: &'a str,
    pub pay_by: i64,
}

pub async fn insert(
    conn: &mut AnyConnection,
    c: NewConsultation<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consultations (id, slot_id, doctor_id, patient_id, status, price_kopecks, starts_at, \
         ends_at, time_zone, booked_at, pay_by, updated_at) \
         VALUES ($1, $2, $3, $4, 'booked', $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.id.as_str())
    .bind(c.slot.as_str())
    .bind(c.doctor)
    .bind(c.patient.as_str())
    .bind(c.price_kopecks)
    .bind(c.starts_at)
    .bind(c.ends_at)
    .bind(c.time_zone)
    .bind(now)
    .bind(c.pay_by)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A change of status, with what it stores.
pub struct StatusChange<'a> {
    pub from: ConsultationStatus,
    pub to: ConsultationStatus,
    /// The time column the change sets (`paid_at`, `started_at`, …).
    pub stamp: &'static str,
    pub cancelled_by: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub conclusion: Option<&'a str>,
}

/// Apply a status change if the consultation is still in `from`; false if it changed meanwhile.
pub async fn change_status(
    conn: &mut AnyConnection,
    id: &str,
    c: StatusChange<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE consultations SET status = $1, {} = $2, cancelled_by = COALESCE($3, cancelled_by), \
         cancel_reason = COALESCE($4, cancel_reason), conclusion = COALESCE($5, conclusion), updated_at = $6 \
         WHERE id = $7 AND status = $8",
        c.stamp
    )))
    .bind(c.to.as_str())
    .bind(now)
    .bind(c.cancelled_by)
    .bind(c.reason)
    .bind(c.conclusion)
    .bind(now)
    .bind(id)
    .bind(c.from.as_str())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Move a consultation to another slot's time; a slot conflict flag no longer applies.
pub async fn move_to(
    conn: &mut AnyConnection,
    id: &str,
    slot: &SlotId,
    starts_at: i64,
    ends_at: i64,
    time_zone: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consultations SET slot_id = $1, starts_at = $2, ends_at = $3, time_zone = $4, \
         slot_conflict_at = NULL, slot_conflict = NULL WHERE id = $5",
    )
    .bind(slot.as_str())
    .bind(starts_at)
    .bind(ends_at)
    .bind(time_zone)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which consultations a list shows.
pub struct Filter {
    pub from: i64,
    pub to: i64,
    pub status: Option<ConsultationStatus>,
    pub doctor: Option<UserId>,
    /// Only this patient's…
    pub patient_of: Option<String>,
    /// …or this doctor's (the caller's own).
    pub doctor_of: Option<String>,
    /// Only those whose patient or doctor is one of these people (a search by name); `Some`
    /// and empty: none.
    pub people: Option<Vec<String>>,
}

/// The people (patients and doctors) whose name contains `q`, ignoring case in any alphabet
/// (SQLite's `LOWER` knows only ASCII, so the names are compared here): at most `max`.
pub async fn people_named(pool: &AnyPool, q: &str, max: usize) -> Result<Vec<String>, sqlx::Error> {
    let needle = q.trim().to_lowercase();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, name FROM users WHERE role IN ('patient', 'doctor')")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, name)| name.to_lowercase().contains(&needle))
        .map(|(id, _)| id)
        .take(max)
        .collect())
}

/// One page of consultations by start time, and the total.
pub async fn list(
    pool: &AnyPool,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<ConsultationRow>), sqlx::Error> {
    // Patients and doctors see their own; the clinic sees all.
    let (mine_column, mine) = match (&f.patient_of, &f.doctor_of) {
        (Some(p), _) => ("c.patient_id", Some(p.clone())),
        (None, Some(d)) => ("c.doctor_id", Some(d.clone())),
        (None, None) => ("c.patient_id", None),
    };
    let people = f.people.clone().unwrap_or_default();
    let named = match &f.people {
        None => String::new(),
        Some(ids) if ids.is_empty() => " AND 1 = 0".to_owned(),
        Some(ids) => {
            let list = crate::platform::db::placeholders(8, ids.len());
            format!(" AND (c.patient_id IN ({list}) OR c.doctor_id IN ({list}))")
        }
    };
    let filter = format!(
        " WHERE c.starts_at >= $1 AND c.starts_at < $2 AND ($3 IS NULL OR c.status = $3) \
         AND ($4 IS NULL OR c.doctor_id = $4) AND ($5 IS NULL OR {mine_column} = $5) \
         AND $6 = $6 AND $7 = $7{named}"
    );
    let status = f.status.map(|s| s.as_str().to_owned());
    let doctor = f.doctor.as_ref().map(|d| d.to_string());
    let mut count = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM consultations c{filter}"
    )))
    .bind(f.from)
    .bind(f.to)
    .bind(status.clone())
    .bind(doctor.clone())
    .bind(mine.clone())
    .bind(limit)
    .bind(offset);
    for id in &people {
        count = count.bind(id.clone());
    }
    let (total,): (i64,) = count.fetch_one(pool).await?;
    let mut select = sqlx::query_as::<_, ConsultationRow>(sqlx::AssertSqlSafe(format!(
        "{SELECT}{filter} ORDER BY c.starts_at, c.id LIMIT $6 OFFSET $7"
    )))
    .bind(f.from)
    .bind(f.to)
    .bind(status)
    .bind(doctor)
    .bind(mine)
    .bind(limit)
    .bind(offset);
    for id in &people {
        select = select.bind(id.clone());
    }
    let rows = select.fetch_all(pool).await?;
    Ok((total, rows))
}

/// Lists of consultations the clinic must look at.
#[derive(Debug, Clone, Copy)]
pub enum Flagged {
    /// Not closed in time.
    Overdue,
    /// Their booked time changed in the slot source.
    SlotConflict,
}

pub async fn flagged(
    pool: &AnyPool,
    which: Flagged,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<ConsultationRow>), sqlx::Error> {
    let (where_, order) = match which {
        Flagged::Overdue => (
            " WHERE c.overdue_at IS NOT NULL AND c.status IN ('paid', 'in_progress')",
            "c.ends_at",
        ),
        Flagged::SlotConflict => (
            " WHERE c.slot_conflict_at IS NOT NULL AND c.status IN ('booked', 'paid', 'in_progress')",
            "c.starts_at",
        ),
    };
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM consultations c{where_}"
    )))
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as::<_, ConsultationRow>(sqlx::AssertSqlSafe(format!(
        "{SELECT}{where_} ORDER BY {order}, c.id LIMIT $1 OFFSET $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((total, rows))
}

/// Bookings not paid by now.
pub async fn unpaid(pool: &AnyPool, now: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM consultations WHERE status = 'booked' AND pay_by < $1")
            .bind(now)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Consultations under way or paid whose slot ended before `limit`, not flagged yet.
pub async fn overdue_candidates(pool: &AnyPool, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM consultations WHERE status IN ('paid', 'in_progress') AND ends_at < $1 AND overdue_at IS NULL",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Flag one as overdue; false if it was flagged or closed meanwhile.
pub async fn flag_overdue(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE consultations SET overdue_at = $1 WHERE id = $2 AND overdue_at IS NULL \
         AND status IN ('paid', 'in_progress')",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Flag a slot conflict; false if one is flagged already.
pub async fn flag_slot_conflict(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE consultations SET slot_conflict_at = $1, slot_conflict = $2 WHERE id = $3 AND slot_conflict_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Clear a slot conflict; false if none was flagged.
pub async fn clear_slot_conflict(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE consultations SET slot_conflict_at = NULL, slot_conflict = NULL WHERE id = $1 AND slot_conflict_at IS NOT NULL",
    )
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}
