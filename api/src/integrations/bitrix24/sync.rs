//! Getting slots: Bitrix24's templates minus its bookings become Vizit's free slots, per linked
//! doctor, over the configured horizon; and consultations whose booking changed in Bitrix24 are
//! flagged for the clinic.
//!
//! Who wins (also in `docs/bitrix24.md`):
//! - Bitrix24 owns the schedule. A free slot that Bitrix24 no longer offers (template changed,
//!   booked there) leaves Vizit; one it offers again comes back.
//! - Vizit owns the consultations it booked. If Bitrix24 deletes or moves their booking, the
//!   consultation is neither cancelled nor moved automatically (a paid patient is waiting): it is
//!   flagged `slotConflict` for the clinic to resolve, and the flag clears by itself once the
//!   booking matches again.
//! - A slot booked in both places at once goes to whoever reached Bitrix24 first: a Vizit booking
//!   refused with 1018 is cancelled as "slot taken" (see `outbound.rs`).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::Bitrix24;
use super::client::{B24Error, Booking};
use super::schedule::{self, Interval};
use crate::service::{audit, outbox};
use crate::{ApiState, now_ms};

/// What one synchronisation did.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// Resources Bitrix24 listed.
    pub resources: usize,
    /// Vizit doctors linked to one of them.
    pub doctors_linked: usize,
    /// Doctors created for resources no doctor was linked to (`bitrix24.create_doctors`).
    pub doctors_created: usize,
    /// Bookings in the horizon.
    pub bookings: usize,
    pub slots_added: usize,
    pub slots_removed: usize,
    pub slots_restored: usize,
    pub conflicts_flagged: usize,
    pub conflicts_cleared: usize,
    /// Template ranges that could not be laid out (the doctor keeps the slots of the others).
    pub bad_templates: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Bitrix24(#[from] B24Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// One full synchronisation (one at a time per process).
pub async fn sync(state: &ApiState, b: &Bitrix24) -> Result<SyncReport, SyncError> {
    let _one = b.sync_lock.lock().await;
    let started = now_ms();
    let outcome = sync_inner(state, b).await;
    b.metrics.sync(outcome.is_ok());
    let (ok, error, report) = match &outcome {
        Ok(r) => (true, None, serde_json::to_string(r).ok()),
        Err(e) => (false, Some(e.to_string()), None),
    };
    let recorded = sqlx::query(
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
    .execute(&state.db.pool)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not record the Bitrix24 sync state");
    }
    outcome
}

async fn sync_inner(state: &ApiState, b: &Bitrix24) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let now = now_ms();
    let window = (
        now / 1000,
        (now + b.settings.horizon.as_millis() as i64) / 1000,
    );

    let resources = b.client.resources(b.settings.resource_type_id).await?;
    report.resources = resources.len();
    let ids: Vec<i64> = resources.iter().map(|r| r.id).collect();
    let templates = b.client.templates(&ids).await?;

    let (mut linked, disabled) = linked_doctors(state).await?;
    if b.settings.create_doctors {
        let unlinked: Vec<&super::client::Resource> = resources
            .iter()
            .filter(|r| !linked.contains_key(&r.id))
            .collect();
        for r in unlinked {
            let tz = templates
                .get(&r.id)
                .and_then(|t| t.first())
                .map(|t| t.timezone.clone())
                .unwrap_or_else(|| "Europe/Moscow".to_owned());
            let doctor = import_doctor(state, r, &tz).await?;
            linked.insert(r.id, doctor);
            report.doctors_created += 1;
        }
    }
    report.doctors_linked = linked.len();

    let bookings = b.client.bookings(window.0, window.1).await?;
    report.bookings = bookings.len();

    let known: HashSet<i64> = ids.iter().copied().collect();
    for (resource, doctor) in &linked {
        // A resource gone from Bitrix24, or a disabled doctor, offers nothing any more.
        let ranges = if known.contains(resource) && !disabled.contains(doctor) {
            templates.get(resource).cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        let free = match schedule::free_slots(&ranges, &bookings, *resource, window.0, window.1) {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(resource, error = %e, "Bitrix24 template skipped");
                report
                    .bad_templates
                    .push(format!("resource {resource}: {e}"));
                // Keep what the valid ranges give.
                ranges
                    .iter()
                    .filter_map(|r| {
                        schedule::free_slots(
                            std::slice::from_ref(r),
                            &bookings,
                            *resource,
                            window.0,
                            window.1,
                        )
                        .ok()
                    })
                    .flatten()
                    .collect()
            }
        };
        let tz = ranges
            .first()
            .map(|r| r.timezone.as_str())
            .unwrap_or("Europe/Moscow");
        apply_slots(state, b, doctor, *resource, tz, &free, window, &mut report).await?;
    }

    check_consultations(state, b, &bookings, &mut report).await?;
    Ok(report)
}

/// Doctors linked to a resource (disabled ones included: their resource is not "unlinked"), and
/// the set of those that are disabled.
async fn linked_doctors(
    state: &ApiState,
) -> Result<(HashMap<i64, String>, HashSet<String>), sqlx::Error> {
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT d.user_id, d.bitrix_resource_id, u.disabled_at FROM doctors d JOIN users u ON u.id = d.user_id \
         WHERE d.bitrix_resource_id IS NOT NULL",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let disabled = rows
        .iter()
        .filter(|r| r.2.is_some())
        .map(|r| r.0.clone())
        .collect();
    let linked = rows
        .into_iter()
        .filter_map(|(doctor, resource, _)| resource.parse::<i64>().ok().map(|r| (r, doctor)))
        .collect();
    Ok((linked, disabled))
}

/// A doctor record for a resource (no login until an admin gives one).
async fn import_doctor(
    state: &ApiState,
    r: &super::client::Resource,
    tz: &str,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let name: String = r.name.trim().chars().take(200).collect();
    let name = if name.is_empty() {
        format!("Врач #{}", r.id)
    } else {
        name
    };
    let specialty: String = r
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("Врач")
        .chars()
        .take(200)
        .collect();
    let mut tx = state.db.begin_write().await?;
    sqlx::query("INSERT INTO users (id, role, name, created_at) VALUES ($1, 'doctor', $2, $3)")
        .bind(&id)
        .bind(&name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO doctors (user_id, specialty, bitrix_resource_id, time_zone) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(&specialty)
        .bind(r.id.to_string())
        .bind(tz)
        .execute(&mut *tx)
        .await?;
    audit(
        &mut tx,
        None,
        "doctor.import",
        "user",
        Some(&id),
        json!({"bitrixResourceId": r.id}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(resource = r.id, doctor = %id, "doctor created from a Bitrix24 resource");
    Ok(id)
}

/// Make the doctor's Bitrix24-sourced slots in the window equal `free` (never touching a held or
/// booked slot, nor slots created by hand).
#[allow(clippy::too_many_arguments)]
async fn apply_slots(
    state: &ApiState,
    b: &Bitrix24,
    doctor: &str,
    resource: i64,
    tz: &str,
    free: &[Interval],
    window: (i64, i64),
    report: &mut SyncReport,
) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin_write().await?;
    let existing: Vec<(String, i64, i64, String)> = sqlx::query_as(
        "SELECT id, starts_at, ends_at, status FROM slots WHERE doctor_id = $1 AND source = 'bitrix24' \
         AND starts_at >= $2 AND starts_at < $3",
    )
    .bind(doctor)
    .bind(window.0 * 1000)
    .bind(window.1 * 1000)
    .fetch_all(&mut *tx)
    .await?;
    let by_start: HashMap<i64, &(String, i64, i64, String)> =
        existing.iter().map(|s| (s.1, s)).collect();
    let wanted: HashSet<i64> = free.iter().map(|i| i.start * 1000).collect();
    let now = now_ms();
    for slot in free {
        let (start, end) = (slot.start * 1000, slot.end * 1000);
        match by_start.get(&start) {
            None => {
                let added = sqlx::query(
                    "INSERT INTO slots (id, doctor_id, starts_at, ends_at, time_zone, status, price_kopecks, external_id, created_at, source) \
                     VALUES ($1, $2, $3, $4, $5, 'free', $6, $7, $8, 'bitrix24') ON CONFLICT DO NOTHING",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(doctor)
                .bind(start)
                .bind(end)
                .bind(tz)
                .bind(b.settings.price_kopecks)
                .bind(format!("b24:{resource}:{}", slot.start))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                report.slots_added += added as usize;
            }
            Some((id, _, old_end, status)) => {
                if status == "blocked" {
                    report.slots_restored += sqlx::query(
                        "UPDATE slots SET status = 'free', ends_at = $1, time_zone = $2 WHERE id = $3 AND status = 'blocked'",
                    )
                    .bind(end)
                    .bind(tz)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() as usize;
                } else if status == "free" && *old_end != end {
                    sqlx::query("UPDATE slots SET ends_at = $1 WHERE id = $2 AND status = 'free'")
                        .bind(end)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
    }
    for (id, start, _, status) in &existing {
        if status != "free" || wanted.contains(start) {
            continue;
        }
        // Gone from Bitrix24: delete it, or block it if a past consultation refers to it.
        let deleted = sqlx::query(
            "DELETE FROM slots WHERE id = $1 AND status = 'free' \
             AND NOT EXISTS (SELECT 1 FROM consultations c WHERE c.slot_id = slots.id)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let blocked = if deleted == 0 {
            sqlx::query("UPDATE slots SET status = 'blocked' WHERE id = $1 AND status = 'free'")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        } else {
            0
        };
        report.slots_removed += (deleted + blocked) as usize;
    }
    tx.commit().await?;
    Ok(())
}

/// Flag (or clear) consultations whose Bitrix24 booking no longer matches them.
async fn check_consultations(
    state: &ApiState,
    b: &Bitrix24,
    bookings: &[Booking],
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    type Live = (String, String, i64, i64, Option<i64>, Option<String>);
    let rows: Vec<Live> = sqlx::query_as(
        "SELECT c.id, c.external_booking_id, c.starts_at, c.ends_at, c.slot_conflict_at, d.bitrix_resource_id \
         FROM consultations c JOIN doctors d ON d.user_id = c.doctor_id \
         WHERE c.status IN ('booked', 'paid') AND c.external_sync = 'synced' \
         AND c.external_booking_id IS NOT NULL AND c.ends_at > $1",
    )
    .bind(now_ms())
    .fetch_all(&state.db.pool)
    .await?;
    let by_id: HashMap<i64, &Booking> = bookings.iter().map(|b| (b.id, b)).collect();
    for (id, booking_id, starts, ends, flagged, resource) in rows {
        let Ok(booking_id) = booking_id.parse::<i64>() else {
            continue;
        };
        let booking = match by_id.get(&booking_id) {
            Some(b) => Some((*b).clone()),
            // Not in the window: deleted, or moved out of it.
            None => b.client.booking(booking_id).await?,
        };
        let resource = resource.and_then(|r| r.parse::<i64>().ok());
        let matches = |bk: &Option<Booking>| {
            bk.as_ref().is_some_and(|bk| {
                resource.is_none_or(|r| bk.resource_ids.contains(&r))
                    && bk.date_period.from.timestamp * 1000 == starts
                    && bk.date_period.to.timestamp * 1000 == ends
            })
        };
        // The list may predate a move Vizit itself just made: look again before flagging.
        let booking = if !matches(&booking) && by_id.contains_key(&booking_id) {
            b.client.booking(booking_id).await?
        } else {
            booking
        };
        let problem = match booking {
            None => Some("the booking was deleted in Bitrix24".to_owned()),
            Some(bk) if resource.is_some_and(|r| !bk.resource_ids.contains(&r)) => {
                Some("the booking was given to another resource in Bitrix24".to_owned())
            }
            Some(bk)
                if bk.date_period.from.timestamp * 1000 != starts
                    || bk.date_period.to.timestamp * 1000 != ends =>
            {
                Some(format!(
                    "the booking was moved in Bitrix24 to {}–{}",
                    crate::routes::to_rfc3339(bk.date_period.from.timestamp * 1000),
                    crate::routes::to_rfc3339(bk.date_period.to.timestamp * 1000)
                ))
            }
            Some(_) => None,
        };
        match (problem, flagged) {
            (Some(reason), None) if flag_conflict(state, &id, &reason).await? => {
                report.conflicts_flagged += 1;
            }
            (None, Some(_)) => {
                let mut tx = state.db.begin_write().await?;
                let cleared = sqlx::query(
                    "UPDATE consultations SET slot_conflict_at = NULL, slot_conflict = NULL WHERE id = $1 AND slot_conflict_at IS NOT NULL",
                )
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if cleared == 1 {
                    audit(
                        &mut tx,
                        None,
                        "consultation.slot_conflict_cleared",
                        "consultation",
                        Some(&id),
                        serde_json::Value::Null,
                    )
                    .await?;
                    report.conflicts_cleared += 1;
                }
                tx.commit().await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Flag a consultation for the clinic: the outbox tells whoever notifies admins.
pub async fn flag_conflict(state: &ApiState, id: &str, reason: &str) -> Result<bool, sqlx::Error> {
    let mut tx = state.db.begin_write().await?;
    let flagged = sqlx::query(
        "UPDATE consultations SET slot_conflict_at = $1, slot_conflict = $2 WHERE id = $3 AND slot_conflict_at IS NULL",
    )
    .bind(now_ms())
    .bind(reason)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if flagged {
        outbox(
            &mut tx,
            "consultation.slot_conflict",
            id,
            json!({"consultationId": id, "reason": reason}),
        )
        .await?;
        audit(
            &mut tx,
            None,
            "consultation.slot_conflict",
            "consultation",
            Some(id),
            json!({"reason": reason}),
        )
        .await?;
        tracing::warn!(consultation = %id, reason, "slot conflict with Bitrix24 flagged for the clinic");
    }
    tx.commit().await?;
    Ok(flagged)
}
