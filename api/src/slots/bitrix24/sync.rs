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
use utoipa::ToSchema;

use super::client::{B24Error, Booking, Resource};
use super::repo;
use super::schedule::{self, Interval};
use super::source::Bitrix24;
use crate::http::to_rfc3339;
use crate::people;
use crate::state::ApiState;

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
    let started = state.now();
    let outcome = sync_inner(state, b).await;
    b.metrics.sync(outcome.is_ok());
    let (error, report) = match &outcome {
        Ok(r) => (None, serde_json::to_string(r).ok()),
        Err(e) => (Some(e.to_string()), None),
    };
    let recorded = super::repo::sync_done(&state.db.pool, started, error, report).await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not record the Bitrix24 sync state");
    }
    outcome
}

async fn sync_inner(state: &ApiState, b: &Bitrix24) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let now = state.now();
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
        let unlinked: Vec<&Resource> = resources
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
    let rows = repo::linked_doctors(&state.db.pool).await?;
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
async fn import_doctor(state: &ApiState, r: &Resource, tz: &str) -> Result<String, sqlx::Error> {
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
    let id = people::import_doctor(&state.core(), &name, &specialty, &r.id.to_string(), tz).await?;
    tracing::info!(resource = r.id, doctor = %id, "doctor created from a Bitrix24 resource");
    Ok(id.into())
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
    let existing = repo::source_slots(&mut tx, doctor, window.0 * 1000, window.1 * 1000).await?;
    let by_start: HashMap<i64, &(String, i64, i64, String)> =
        existing.iter().map(|s| (s.1, s)).collect();
    let wanted: HashSet<i64> = free.iter().map(|i| i.start * 1000).collect();
    let now = state.now();
    for slot in free {
        let (start, end) = (slot.start * 1000, slot.end * 1000);
        match by_start.get(&start) {
            None => {
                let added = repo::add_slot(
                    &mut tx,
                    repo::SourceSlot {
                        doctor,
                        starts_at: start,
                        ends_at: end,
                        time_zone: tz,
                        // The doctor's own price wins, if the clinic prices per doctor.
                        price_kopecks: b.settings.price_kopecks,
                        external_id: &format!("b24:{resource}:{}", slot.start),
                    },
                    now,
                )
                .await?;
                report.slots_added += usize::from(added);
            }
            Some((id, _, old_end, status)) => {
                if status == "blocked" {
                    report.slots_restored +=
                        usize::from(repo::restore_slot(&mut tx, id, end, tz).await?);
                } else if status == "free" && *old_end != end {
                    repo::stretch_slot(&mut tx, id, end).await?;
                }
            }
        }
    }
    for (id, start, _, status) in &existing {
        if status != "free" || wanted.contains(start) {
            continue;
        }
        // Gone from Bitrix24: delete it, or block it if a past consultation refers to it.
        report.slots_removed += usize::from(repo::withdraw_slot(&mut tx, id).await?);
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
    let rows = repo::synced_live(&state.db.pool, state.now()).await?;
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
                    to_rfc3339(bk.date_period.from.timestamp * 1000),
                    to_rfc3339(bk.date_period.to.timestamp * 1000)
                ))
            }
            Some(_) => None,
        };
        let Some(bookings) = b.bookings() else {
            continue;
        };
        match (problem, flagged) {
            (Some(reason), None) if bookings.flag_conflict(&id, &reason).await? => {
                report.conflicts_flagged += 1;
            }
            (None, Some(_)) if bookings.clear_conflict(&id).await? => {
                report.conflicts_cleared += 1;
            }
            _ => {}
        }
    }
    Ok(())
}
