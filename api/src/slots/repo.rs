//! The SQL of slots and doctors' listings. The in-transaction helpers at the end are what a
//! booking does to a slot; the consultations capability calls them through `slots::`.

use sqlx::{AnyConnection, AnyPool};

use crate::domain::{SlotId, SlotStatus, UserId};

/// A doctor as patients choose them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DoctorRow {
    pub id: String,
    pub name: String,
    pub specialty: String,
    pub time_zone: String,
    /// The doctor's own price; `None`: priced per slot.
    pub price_kopecks: Option<i64>,
}

const DOCTOR: &str = "SELECT u.id, u.name, d.specialty, d.time_zone, d.price_kopecks FROM doctors d \
    JOIN users u ON u.id = d.user_id";

/// Every enabled doctor, by name.
pub async fn doctors(pool: &AnyPool) -> Result<Vec<DoctorRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{DOCTOR} WHERE u.disabled_at IS NULL ORDER BY u.name, u.id"
    )))
    .fetch_all(pool)
    .await
}

pub async fn doctor(
    conn: &mut AnyConnection,
    doctor: &str,
) -> Result<Option<DoctorRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{DOCTOR} WHERE d.user_id = $1"
    )))
    .bind(doctor)
    .fetch_optional(conn)
    .await
}

/// Set (or clear) a doctor's own price; with a price, their free slots still to come take it.
/// Returns how many slots were repriced.
pub async fn set_doctor_price(
    conn: &mut AnyConnection,
    doctor: &str,
    price: Option<i64>,
    now: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE doctors SET price_kopecks = $2 WHERE user_id = $1")
        .bind(doctor)
        .bind(price)
        .execute(&mut *conn)
        .await?;
    let Some(price) = price else {
        return Ok(0);
    };
    let r = sqlx::query(
        "UPDATE slots SET price_kopecks = $2 WHERE doctor_id = $1 AND status = 'free' AND starts_at > $3 \
         AND price_kopecks <> $2",
    )
    .bind(doctor)
    .bind(price)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// A doctor's time zone; `None`: no such doctor.
pub async fn doctor_time_zone(
    pool: &AnyPool,
    doctor: &UserId,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT time_zone FROM doctors WHERE user_id = $1")
        .bind(doctor.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(tz,)| tz))
}

/// (id, starts, ends, time zone, price) of a doctor's free slots starting in [from, to) and
/// after `now`, at most 500.
pub async fn free_slots(
    pool: &AnyPool,
    doctor: &UserId,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Vec<(String, i64, i64, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, starts_at, ends_at, time_zone, price_kopecks FROM slots \
         WHERE doctor_id = $1 AND status = 'free' AND starts_at >= $2 AND starts_at < $3 AND starts_at > $4 \
         ORDER BY starts_at LIMIT 500",
    )
    .bind(doctor.as_str())
    .bind(from)
    .bind(to)
    .bind(now)
    .fetch_all(pool)
    .await
}

/// A slot to create by hand.
pub struct NewSlot<'a> {
    pub id: &'a SlotId,
    pub doctor: &'a UserId,
    pub starts_at: i64,
    pub ends_at: i64,
    pub time_zone: &'a str,
    pub price_kopecks: i64,
    /// The price is the doctor's: taken from the doctor as the row is written (a price set
    /// meanwhile wins over `price_kopecks`, read before).
    pub doctors_price: bool,
    pub external_id: Option<&'a str>,
}

pub async fn insert(pool: &AnyPool, s: NewSlot<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO slots (id, doctor_id, starts_at, ends_at, time_zone, status, price_kopecks, external_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'free', \
                 COALESCE((SELECT price_kopecks FROM doctors WHERE user_id = $2 AND $9 = 1), $6), $7, $8)",
    )
    .bind(s.id.as_str())
    .bind(s.doctor.as_str())
    .bind(s.starts_at)
    .bind(s.ends_at)
    .bind(s.time_zone)
    .bind(s.price_kopecks)
    .bind(s.external_id.map(str::to_owned))
    .bind(now)
    .bind(i64::from(s.doctors_price))
    .execute(pool)
    .await?;
    Ok(())
}

/// A slot as a booking sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Slot {
    pub doctor_id: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub time_zone: String,
    pub price_kopecks: i64,
    pub status: String,
}

pub async fn find(conn: &mut AnyConnection, slot: &SlotId) -> Result<Option<Slot>, sqlx::Error> {
    sqlx::query_as(
        "SELECT doctor_id, starts_at, ends_at, time_zone, price_kopecks, status FROM slots WHERE id = $1",
    )
    .bind(slot.as_str())
    .fetch_optional(conn)
    .await
}

/// Take a free future slot for a booking (status `to`), optionally only of `doctor`. The write
/// comes first in the transaction, so on SQLite the transaction holds the write lock from here,
/// and on PostgreSQL a concurrent booking waits on the row and then finds it no longer free.
/// False if it was not free, not in the future, or not the doctor's.
pub async fn take(
    conn: &mut AnyConnection,
    slot: &SlotId,
    to: SlotStatus,
    doctor: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE slots SET status = $1 WHERE id = $2 AND status = 'free' AND starts_at > $3 \
         AND ($4 IS NULL OR doctor_id = $4)",
    )
    .bind(to.as_str())
    .bind(slot.as_str())
    .bind(now)
    .bind(doctor.map(str::to_owned))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Set a slot's status, unless it is blocked (a blocked slot stays blocked until its source
/// offers it again).
pub async fn set_status(
    conn: &mut AnyConnection,
    slot: &str,
    to: SlotStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE slots SET status = $1, price_kopecks = {FREED_PRICE} WHERE id = $2 AND status <> 'blocked'"
    )))
    .bind(to.as_str())
    .bind(slot)
    .execute(conn)
    .await?;
    Ok(())
}

/// A slot freed again (`$1` is its new status) takes its doctor's current price, if the clinic
/// prices per doctor.
const FREED_PRICE: &str = "CASE WHEN $1 = 'free' THEN \
    COALESCE((SELECT d.price_kopecks FROM doctors d WHERE d.user_id = slots.doctor_id), price_kopecks) \
    ELSE price_kopecks END";

/// A slot a booking leaves (held or booked) becomes `to`.
pub async fn leave(
    conn: &mut AnyConnection,
    slot: &str,
    to: SlotStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE slots SET status = $1, price_kopecks = {FREED_PRICE} WHERE id = $2 AND status IN ('held', 'booked')"
    )))
    .bind(to.as_str())
        .bind(slot)
        .execute(conn)
        .await?;
    Ok(())
}
