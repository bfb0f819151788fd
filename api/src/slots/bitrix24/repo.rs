//! The SQL of the Bitrix24 slot source: its columns on consultations (`external_booking_id`,
//! `external_sync`), its doctors' links, the slots it owns (`source = 'bitrix24'`), and its
//! health in `integration_state`.

use sqlx::{AnyConnection, AnyPool};

use super::source::SYSTEM;

/// Is the consultation's doctor linked to a Bitrix24 resource?
pub async fn doctor_linked(
    conn: &mut AnyConnection,
    consultation: &str,
) -> Result<bool, sqlx::Error> {
    let linked: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT d.bitrix_resource_id FROM consultations c JOIN doctors d ON d.user_id = c.doctor_id WHERE c.id = $1",
    )
    .bind(consultation)
    .fetch_optional(conn)
    .await?;
    Ok(linked.is_some_and(|(r,)| r.is_some()))
}

/// Where the consultation's booking stands in Bitrix24 (`None`: not pushed there).
pub async fn sync_state(
    conn: &mut AnyConnection,
    consultation: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT external_sync FROM consultations WHERE id = $1")
            .bind(consultation)
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(s,)| s))
}

pub async fn set_sync(
    conn: &mut AnyConnection,
    consultation: &str,
    state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE consultations SET external_sync = $1 WHERE id = $2")
        .bind(state)
        .bind(consultation)
        .execute(conn)
        .await?;
    Ok(())
}

/// The booking was made: its id, and `synced`.
pub async fn set_booking(
    conn: &mut AnyConnection,
    consultation: &str,
    booking: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consultations SET external_booking_id = $1, external_sync = 'synced' WHERE id = $2",
    )
    .bind(booking.to_string())
    .bind(consultation)
    .execute(conn)
    .await?;
    Ok(())
}

/// A move reached Bitrix24: `synced` again (unless something else happened meanwhile).
pub async fn moved(pool: &AnyPool, consultation: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE consultations SET external_sync = 'synced' WHERE id = $1 AND external_sync = 'pending'")
        .bind(consultation)
        .execute(pool)
        .await?;
    Ok(())
}

/// What a call about a consultation needs to know of it.
#[derive(sqlx::FromRow)]
pub struct Target {
    pub status: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub time_zone: String,
    pub external_booking_id: Option<String>,
    pub bitrix_resource_id: Option<String>,
    pub crm_contact_id: Option<String>,
}

pub async fn target(pool: &AnyPool, consultation: &str) -> Result<Option<Target>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.status, c.starts_at, c.ends_at, c.time_zone, c.external_booking_id, \
         d.bitrix_resource_id, p.crm_contact_id FROM consultations c \
         JOIN doctors d ON d.user_id = c.doctor_id JOIN users p ON p.id = c.patient_id WHERE c.id = $1",
    )
    .bind(consultation)
    .fetch_optional(pool)
    .await
}

/// Health of the integration, for admins.
pub type StateRow = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// (last sync, last success, last error, its time, last event, last report).
pub async fn health(pool: &AnyPool) -> Result<Option<StateRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT last_sync_at, last_success_at, last_error, last_error_at, last_event_at, last_report FROM integration_state WHERE system = 'bitrix24'",
    )
    .fetch_optional(pool)
    .await
}

pub async fn event_received(pool: &AnyPool, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO integration_state (system, last_event_at) VALUES ('bitrix24', $1) \
         ON CONFLICT (system) DO UPDATE SET last_event_at = excluded.last_event_at",
    )
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Record a synchronisation that started at `started`: its error, or its report.
pub async fn sync_done(
    pool: &AnyPool,
    started: i64,
    error: Option<String>,
    report: Option<String>,
) -> Result<(), sqlx::Error> {
    let ok = error.is_none();
    sqlx::query(
        "INSERT INTO integration_state (system, last_sync_at, last_success_at, last_error, last_error_at, last_report) \
         VALUES ('bitrix24', $1, $2, $3, $4, $5) \
         ON CONFLICT (system) DO UPDATE SET last_sync_at = excluded.last_sync_at, \
         last_success_at = COALESCE(excluded.last_success_at, integration_state.last_success_at), \
         last_error = CASE WHEN excluded.last_error IS NULL THEN integration_state.last_error ELSE excluded.last_error END, \
         last_error_at = COALESCE(excluded.last_error_at, integration_state.last_error_at), \
         last_report = COALESCE(excluded.last_report, integration_state.last_report)",
    )
    .bind(started)
    .bind(ok.then_some(started))
    .bind(error.clone())
    .bind(error.as_ref().map(|_| started))
    .bind(report)
    .execute(pool)
    .await?;
    Ok(())
}

/// A count for the status page.
pub async fn count(pool: &AnyPool, sql: &'static str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await?;
    Ok(n)
}

/// (doctor, resource, disabled at) of every doctor linked to a resource.
pub async fn linked_doctors(
    pool: &AnyPool,
) -> Result<Vec<(String, String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.user_id, d.bitrix_resource_id, u.disabled_at FROM doctors d JOIN users u ON u.id = d.user_id \
         WHERE d.bitrix_resource_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
}

/// (id, starts, ends, status) of a doctor's Bitrix24-sourced slots starting in [from, to).
pub async fn source_slots(
    conn: &mut AnyConnection,
    doctor: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(String, i64, i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, starts_at, ends_at, status FROM slots WHERE doctor_id = $1 AND source = 'bitrix24' \
         AND starts_at >= $2 AND starts_at < $3",
    )
    .bind(doctor)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// A free slot Bitrix24 offers.
pub struct SourceSlot<'a> {
    pub doctor: &'a str,
    pub starts_at: i64,
    pub ends_at: i64,
    pub time_zone: &'a str,
    pub price_kopecks: i64,
    /// `b24:<resource>:<start>`: the same slot found again is not added twice.
    pub external_id: &'a str,
}

/// Add it unless the doctor has a slot at that time; true if added.
pub async fn add_slot(
    conn: &mut AnyConnection,
    s: SourceSlot<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO slots (id, doctor_id, starts_at, ends_at, time_zone, status, price_kopecks, external_id, created_at, source) \
         VALUES ($1, $2, $3, $4, $5, 'free', \
                 COALESCE((SELECT price_kopecks FROM doctors WHERE user_id = $2), $6), $7, $8, 'bitrix24') \
         ON CONFLICT DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(s.doctor)
    .bind(s.starts_at)
    .bind(s.ends_at)
    .bind(s.time_zone)
    .bind(s.price_kopecks)
    .bind(s.external_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// A blocked slot Bitrix24 offers again is free; true if it was blocked.
pub async fn restore_slot(
    conn: &mut AnyConnection,
    id: &str,
    ends_at: i64,
    time_zone: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE slots SET status = 'free', ends_at = $1, time_zone = $2, \
         price_kopecks = COALESCE((SELECT d.price_kopecks FROM doctors d WHERE d.user_id = slots.doctor_id), price_kopecks) \
         WHERE id = $3 AND status = 'blocked'",
    )
    .bind(ends_at)
    .bind(time_zone)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// A free slot's end moved in Bitrix24's template.
pub async fn stretch_slot(
    conn: &mut AnyConnection,
    id: &str,
    ends_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE slots SET ends_at = $1 WHERE id = $2 AND status = 'free'")
        .bind(ends_at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A free slot Bitrix24 no longer offers: deleted, or blocked if a past consultation refers to
/// it. True if it went either way.
pub async fn withdraw_slot(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM slots WHERE id = $1 AND status = 'free' \
         AND NOT EXISTS (SELECT 1 FROM consultations c WHERE c.slot_id = slots.id)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if deleted == 1 {
        return Ok(true);
    }
    let blocked =
        sqlx::query("UPDATE slots SET status = 'blocked' WHERE id = $1 AND status = 'free'")
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(blocked == 1)
}

/// A live consultation whose booking Bitrix24 holds: (id, booking id, starts, ends, conflict
/// flagged at, the doctor's resource).
pub type Live = (String, String, i64, i64, Option<i64>, Option<String>);

/// Live consultations synced to Bitrix24 and not over. Those with events Bitrix24's subscriber
/// has not handled yet are left out: their booking may be about to move (a reschedule whose
/// call is not queued yet), and a difference now is not a change made in Bitrix24.
pub async fn synced_live(pool: &AnyPool, now: i64) -> Result<Vec<Live>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.external_booking_id, c.starts_at, c.ends_at, c.slot_conflict_at, d.bitrix_resource_id \
         FROM consultations c JOIN doctors d ON d.user_id = c.doctor_id \
         WHERE c.status IN ('booked', 'paid') AND c.external_sync = 'synced' \
         AND c.external_booking_id IS NOT NULL AND c.ends_at > $1 \
         AND NOT EXISTS (SELECT 1 FROM outbox_deliveries od WHERE od.subscriber = $2 \
                         AND od.consultation_id = c.id AND od.status = 'pending')",
    )
    .bind(now)
    .bind(SYSTEM)
    .fetch_all(pool)
    .await
}
