//! The rules of slots published by hand (admins and the portal); slots from Bitrix24 are the
//! sync's (`bitrix24/sync.rs`).

use super::repo::{self, NewSlot};
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
    pub price: Kopecks,
    pub external_id: Option<&'a str>,
}

/// Publish a free slot; returns its id and time zone.
pub async fn publish(
    core: &Core,
    caller: &Caller,
    s: Publish<'_>,
) -> Result<(SlotId, String), Error> {
    if !valid_length(s.starts_at, s.ends_at) {
        return Err(Error::BadLength);
    }
    let doctor_tz = repo::doctor_time_zone(&core.db.pool, s.doctor)
        .await?
        .ok_or(Error::NoDoctor)?;
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
            price_kopecks: s.price.get(),
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
    Ok((id, time_zone))
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

/// Every enabled doctor: (id, name, specialty, time zone).
pub async fn doctors(core: &Core) -> Result<Vec<(String, String, String, String)>, Error> {
    Ok(repo::doctors(&core.db.pool).await?)
}
