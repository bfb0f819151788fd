//! The rules of slots published by hand (admins and the portal); slots from Bitrix24 are the
//! sync's (`bitrix24/sync.rs`).

use super::repo::{self, DoctorRow, NewSlot};
use crate::domain::{Caller, Kopecks, SlotId, UserId};
use crate::platform::audit::audit;
use crate::state::Core;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("doctor not found")]
    NoDoctor,
    #[error("endsAt must be after startsAt, at most 8 hours later")]
    BadLength,
    #[error("timeZone must be 1 to 64 characters")]
    BadTimeZone,
    #[error("the doctor already has a slot at this time")]
    SlotExists,
    #[error(
        "priceKopecks is needed: the doctor has no price of their own (PUT /doctors/{{id}}/price)"
    )]
    PriceRequired,
    #[error(transparent)]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(e)
    }
}

/// Longest slot.
const MAX_LENGTH_MS: i64 = 8 * 3_600_000;

/// A slot ends after it starts, at most 8 hours later.
pub fn valid_length(starts_at: i64, ends_at: i64) -> bool {
    ends_at > starts_at && ends_at - starts_at <= MAX_LENGTH_MS
}

/// A slot to publish.
pub struct Publish<'a> {
    pub doctor: &'a UserId,
    pub starts_at: i64,
    pub ends_at: i64,
    /// `None`: the doctor's.
    pub time_zone: Option<&'a str>,
    /// `None`: the doctor's own price.
    pub price: Option<Kopecks>,
    pub external_id: Option<&'a str>,
}

/// Publish a free slot; returns its id, time zone and price.
pub async fn publish(
    core: &Core,
    caller: &Caller,
    s: Publish<'_>,
) -> Result<(SlotId, String, i64), Error> {
    if !valid_length(s.starts_at, s.ends_at) {
        return Err(Error::BadLength);
    }
    let mut conn = core.db.pool.acquire().await?;
    let doctor = repo::doctor(&mut conn, s.doctor.as_str())
        .await?
        .ok_or(Error::NoDoctor)?;
    drop(conn);
    let doctor_tz = doctor.time_zone;
    let price = match (s.price, doctor.price_kopecks) {
        (Some(p), _) => p.get(),
        (None, Some(p)) => p,
        (None, None) => return Err(Error::PriceRequired),
    };
    let time_zone = match s.time_zone.map(str::trim) {
        Some(tz) if tz.is_empty() || tz.chars().count() > 64 => return Err(Error::BadTimeZone),
        Some(tz) => tz.to_owned(),
        None => doctor_tz,
    };
    let id = SlotId::new();
    repo::insert(
        &core.db.pool,
        NewSlot {
            id: &id,
            doctor: s.doctor,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            time_zone: &time_zone,
            price_kopecks: price,
            doctors_price: s.price.is_none(),
            external_id: s.external_id,
        },
        core.now(),
    )
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::SlotExists,
        _ => Error::Db(e),
    })?;
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "slot.create",
        "slot",
        Some(id.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    Ok((id, time_zone, price))
}

/// A doctor's free slots starting in [from, to) and in the future.
pub async fn free(
    core: &Core,
    doctor: &UserId,
    from: i64,
    to: i64,
) -> Result<Vec<(String, i64, i64, String, i64)>, Error> {
    repo::doctor_time_zone(&core.db.pool, doctor)
        .await?
        .ok_or(Error::NoDoctor)?;
    Ok(repo::free_slots(&core.db.pool, doctor, from, to, core.now()).await?)
}

/// Every enabled doctor.
pub async fn doctors(core: &Core) -> Result<Vec<DoctorRow>, Error> {
    Ok(repo::doctors(&core.db.pool).await?)
}

/// The clinic prices a doctor (or stops doing so: `None`). With a price, the doctor's free
/// slots still to come take it at once, and so does every new one; booked slots keep the price
/// their patient booked at. Audited.
pub async fn set_price(
    core: &Core,
    caller: &Caller,
    doctor: &UserId,
    price: Option<Kopecks>,
) -> Result<DoctorRow, Error> {
    let mut tx = core.db.begin_write().await?;
    if repo::doctor(&mut tx, doctor.as_str()).await?.is_none() {
        return Err(Error::NoDoctor);
    }
    let price = price.map(Kopecks::get);
    let repriced = repo::set_doctor_price(&mut tx, doctor.as_str(), price, core.now()).await?;
    audit(
        &mut tx,
        Some(caller),
        "doctor.price",
        "doctor",
        Some(doctor.as_str()),
        serde_json::json!({"priceKopecks": price, "freeSlotsRepriced": repriced}),
    )
    .await?;
    let row = repo::doctor(&mut tx, doctor.as_str())
        .await?
        .ok_or(Error::NoDoctor)?;
    tx.commit().await?;
    Ok(row)
}
