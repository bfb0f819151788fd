//! The rules of consultations, on domain types: book, the state transitions, reschedule, join,
//! the lists. Each change runs in one transaction that also writes its domain event to the
//! outbox and its audit entry, so a change is never half-applied or unrecorded. Nothing here
//! names an external system: whoever must hear of a change subscribes to its event.

use serde_json::json;
use vizit_signaling::{CallRole, TokenKeys};

use super::repo::{self, ConsultationRow, Filter, Flagged, NewConsultation, StatusChange};
use crate::domain::{
    Caller, CancelledBy, ConsultationId, ConsultationStatus, EventKind, JoinRefusal, JoinWindow,
    Role, SlotId, SlotStatus, Transition, TransitionError, UserId, next_status,
};
use crate::people;
use crate::platform::audit::{audit, audit_list_read};
use crate::platform::outbound::{Outbound, Outcome};
use crate::slots;
use crate::state::Core;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the slot is no longer free; choose another")]
    SlotTaken,
    #[error("this time was just booked at the clinic; choose another slot")]
    TakenAtSource,
    #[error("the slot has already started")]
    SlotInPast,
    #[error("the consultation is already at this slot")]
    SameSlot,
    #[error("a {} consultation cannot be rescheduled", .0.as_str())]
    NotReschedulable(ConsultationStatus),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the consultation changed meanwhile; reload it")]
    ConcurrentChange,
    #[error(transparent)]
    Join(#[from] JoinRefusal),
    #[error("database: {0}")]
    Db(#[source] sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(e)
    }
}

/// A unique index said the slot has a live consultation already.
fn slot_taken(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::SlotTaken,
        _ => Error::Db(e),
    }
}

/// Patients and doctors see only their own consultations; the clinic sees all. Someone else's
/// consultation is "not found", so ids cannot be probed.
pub fn visible_to(row: &ConsultationRow, caller: &Caller) -> bool {
    match caller.role() {
        Some(Role::Patient) => caller.user_id() == Some(row.patient_id.as_str()),
        Some(Role::Doctor) => caller.user_id() == Some(row.doctor_id.as_str()),
        Some(Role::Admin | Role::HeadDoctor) | None => true,
    }
}

/// Who may cancel, as whom.
pub fn cancelled_by(caller: &Caller) -> CancelledBy {
    match caller.role() {
        Some(Role::Patient) => CancelledBy::Patient,
        Some(Role::Doctor) => CancelledBy::Doctor,
        _ => CancelledBy::Clinic,
    }
}

/// Book a free slot for a patient: the slot is held and a consultation awaits payment.
pub async fn book(
    core: &Core,
    caller: &Caller,
    slot_id: &SlotId,
    patient: &UserId,
) -> Result<ConsultationId, Error> {
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    if !slots::take(&mut tx, slot_id, SlotStatus::Held, None, now).await? {
        return Err(match slots::find(&mut tx, slot_id).await? {
            None => Error::NotFound("slot"),
            Some(s) if s.starts_at <= now => Error::SlotInPast,
            Some(_) => Error::SlotTaken,
        });
    }
    if people::service::active_patient(&mut tx, patient)
        .await?
        .is_none()
    {
        return Err(Error::NotFound("patient"));
    }
    let slot = slots::find(&mut tx, slot_id)
        .await?
        .ok_or(Error::NotFound("slot"))?;
    let id = ConsultationId::new();
    let pay_by = now + core.settings.pay_within.as_millis() as i64;
    repo::insert(
        &mut tx,
        NewConsultation {
            id: &id,
            slot: slot_id,
            doctor: &slot.doctor_id,
            patient,
            price_kopecks: slot.price_kopecks,
            starts_at: slot.starts_at,
            ends_at: slot.ends_at,
            time_zone: &slot.time_zone,
            pay_by,
        },
        now,
    )
    .await
    .map_err(slot_taken)?;
    core.outbox
        .emit(
            &mut tx,
            EventKind::ConsultationBooked.as_str(),
            Some(id.as_str()),
            json!({"consultationId": id, "slotId": slot_id, "doctorId": slot.doctor_id, "patientId": patient,
                   "payBy": pay_by, "priceKopecks": slot.price_kopecks, "startsAt": slot.starts_at}),
        )
        .await?;
    audit(
        &mut tx,
        Some(caller),
        "consultation.book",
        "consultation",
        Some(id.as_str()),
        json!({"slotId": slot_id}),
    )
    .await?;
    tx.commit().await?;
    core.outbox.notify();
    Ok(id)
}

/// Hand a consultation's new events to their subscribers now, and wait (bounded) for the calls
/// to external systems they queued: a slot source may refuse the time. `None`: no external
/// system takes part.
pub async fn settle(core: &Core, outbound: &Outbound, id: &ConsultationId) -> Option<Outcome> {
    if let Err(e) = core.outbox.dispatch_consultation(id.as_str()).await {
        tracing::warn!(consultation = %id, error = %e, "outbox: could not deliver now; the dispatcher will");
    }
    outbound.deliver_consultation(id.as_str()).await
}

/// What other capabilities need to know of a consultation, read in their transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub status: ConsultationStatus,
    pub starts_at: i64,
    pub ends_at: i64,
    pub patient_id: String,
    pub doctor_id: String,
    pub price_kopecks: i64,
    pub doctor_specialty: String,
}

pub async fn summary(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<Summary>, sqlx::Error> {
    let Some(row) = repo::load(conn, id).await? else {
        return Ok(None);
    };
    Ok(Some(Summary {
        status: row.status()?,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        patient_id: row.patient_id,
        doctor_id: row.doctor_id,
        price_kopecks: row.price_kopecks,
        doctor_specialty: row.doctor_specialty,
    }))
}

pub async fn load(core: &Core, id: &ConsultationId) -> Result<Option<ConsultationRow>, Error> {
    let mut conn = core.db.pool.acquire().await?;
    Ok(repo::load(&mut conn, id.as_str()).await?)
}

/// A consultation the caller may see (its read is audited).
pub async fn get(
    core: &Core,
    caller: &Caller,
    id: &ConsultationId,
) -> Result<ConsultationRow, Error> {
    let mut conn = core.db.pool.acquire().await?;
    let row = repo::load(&mut conn, id.as_str())
        .await?
        .filter(|r| visible_to(r, caller))
        .ok_or(Error::NotFound("consultation"))?;
    audit(
        &mut conn,
        Some(caller),
        "consultation.read",
        "consultation",
        Some(id.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    Ok(row)
}

/// Lock a consultation for this transaction and load it. A caller who may not see it gets
/// "not found".
async fn lock_visible(
    conn: &mut sqlx::AnyConnection,
    caller: Option<&Caller>,
    id: &str,
    now: i64,
) -> Result<ConsultationRow, Error> {
    let touched = repo::touch(&mut *conn, id, now).await?;
    match (touched, repo::load(conn, id).await?) {
        (true, Some(row)) if caller.is_none_or(|c| visible_to(&row, c)) => Ok(row),
        _ => Err(Error::NotFound("consultation")),
    }
}

/// Extra data a transition stores.
#[derive(Debug, Default, Clone, Copy)]
pub struct TransitionData<'a> {
    pub reason: Option<&'a str>,
    pub conclusion: Option<&'a str>,
    /// A cancellation leaves the slot blocked instead of free (the time is taken elsewhere).
    pub block_slot: bool,
}

/// Apply a state transition, with its side effects on the slot, the outbox and the audit log.
/// A caller who may not see the consultation gets "not found".
pub async fn transition(
    core: &Core,
    caller: Option<&Caller>,
    id: &ConsultationId,
    transition: Transition,
    extra: TransitionData<'_>,
) -> Result<ConsultationRow, Error> {
    let now = core.now();
    let id = id.as_str();
    let mut tx = core.db.begin_write().await?;
    let row = lock_visible(&mut tx, caller, id, now).await?;
    let from = row.status()?;
    let to = next_status(from, transition)?;
    let (stamp, slot_status) = match transition {
        Transition::MarkPaid => ("paid_at", Some(SlotStatus::Booked)),
        Transition::Start => ("started_at", None),
        Transition::Complete => ("completed_at", Some(SlotStatus::Booked)),
        Transition::Cancel(_) => ("cancelled_at", Some(SlotStatus::Free)),
        Transition::Expire => ("cancelled_at", Some(SlotStatus::Free)),
    };
    let (cancelled_by, reason) = match transition {
        Transition::Cancel(by) => (Some(by.as_str()), extra.reason),
        Transition::Expire => (None, Some("not paid in time")),
        _ => (None, None),
    };
    let changed = repo::change_status(
        &mut tx,
        id,
        StatusChange {
            from,
            to,
            stamp,
            cancelled_by,
            reason,
            conclusion: extra.conclusion,
        },
        now,
    )
    .await?;
    if !changed {
        return Err(Error::ConcurrentChange);
    }
    let slot_status = match (slot_status, transition) {
        (Some(_), Transition::Cancel(_)) if extra.block_slot => Some(SlotStatus::Blocked),
        (s, _) => s,
    };
    if let Some(slot_status) = slot_status {
        slots::set_status(&mut tx, &row.slot_id, slot_status).await?;
    }
    core.outbox
        .emit(
            &mut tx,
            transition.event().as_str(),
            Some(id),
            json!({"consultationId": id, "from": from.as_str(), "to": to.as_str(), "cancelledBy": cancelled_by,
                   "startsAt": row.starts_at, "at": now}),
        )
        .await?;
    audit(
        &mut tx,
        caller,
        &format!("consultation.{}", to.as_str()),
        "consultation",
        Some(id),
        json!({"from": from.as_str(), "to": to.as_str()}),
    )
    .await?;
    let row = repo::load(&mut tx, id)
        .await?
        .ok_or(Error::NotFound("consultation"))?;
    tx.commit().await?;
    core.outbox.notify();
    Ok(row)
}

/// Why a consultation moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Someone asked for the new slot: external systems follow.
    Requested,
    /// Back to where it was, because the slot source refused the new time: it never moved
    /// there, so nobody outside follows this one.
    Undo,
}

/// Move a booked or paid consultation to another free slot of the same doctor. The slot it
/// leaves becomes `left_slot`. Returns the consultation and the slot it left.
pub async fn reschedule(
    core: &Core,
    caller: Option<&Caller>,
    id: &ConsultationId,
    new_slot: &SlotId,
    why: Move,
    left_slot: SlotStatus,
) -> Result<(ConsultationRow, String), Error> {
    let now = core.now();
    let id = id.as_str();
    let mut tx = core.db.begin_write().await?;
    let row = lock_visible(&mut tx, caller, id, now).await?;
    let status = row.status()?;
    if !matches!(
        status,
        ConsultationStatus::Booked | ConsultationStatus::Paid
    ) {
        return Err(Error::NotReschedulable(status));
    }
    if row.slot_id == new_slot.as_str() {
        return Err(Error::SameSlot);
    }
    let taken_as = if status == ConsultationStatus::Paid {
        SlotStatus::Booked
    } else {
        SlotStatus::Held
    };
    if !slots::take(&mut tx, new_slot, taken_as, Some(&row.doctor_id), now).await? {
        return Err(match slots::find(&mut tx, new_slot).await? {
            Some(s) if s.doctor_id == row.doctor_id => Error::SlotTaken,
            _ => Error::NotFound("slot"),
        });
    }
    slots::leave(&mut tx, &row.slot_id, left_slot).await?;
    let slot = slots::find(&mut tx, new_slot)
        .await?
        .ok_or(Error::NotFound("slot"))?;
    repo::move_to(
        &mut tx,
        id,
        new_slot,
        slot.starts_at,
        slot.ends_at,
        &slot.time_zone,
    )
    .await
    .map_err(slot_taken)?;
    core.outbox
        .emit(
            &mut tx,
            EventKind::ConsultationRescheduled.as_str(),
            Some(id),
            json!({"consultationId": id, "fromSlotId": row.slot_id, "toSlotId": new_slot,
                   "fromStartsAt": row.starts_at, "toStartsAt": slot.starts_at, "undo": why == Move::Undo}),
        )
        .await?;
    audit(
        &mut tx,
        caller,
        "consultation.reschedule",
        "consultation",
        Some(id),
        json!({"fromSlotId": row.slot_id, "toSlotId": new_slot}),
    )
    .await?;
    let updated = repo::load(&mut tx, id)
        .await?
        .ok_or(Error::NotFound("consultation"))?;
    tx.commit().await?;
    core.outbox.notify();
    Ok((updated, row.slot_id))
}

/// Flag a consultation for the clinic: its booked time changed in the slot source. The outbox
/// tells whoever notifies admins. False if it was flagged already.
pub async fn flag_conflict(core: &Core, id: &str, reason: &str) -> Result<bool, sqlx::Error> {
    let mut tx = core.db.begin_write().await?;
    let flagged = repo::flag_slot_conflict(&mut tx, id, reason, core.now()).await?;
    if flagged {
        core.outbox
            .emit(
                &mut tx,
                EventKind::ConsultationSlotConflict.as_str(),
                Some(id),
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
        tracing::warn!(consultation = %id, reason, "slot conflict flagged for the clinic");
    }
    tx.commit().await?;
    if flagged {
        core.outbox.notify();
    }
    Ok(flagged)
}

/// The booked time matches the slot source again: the flag goes. False if none was set.
pub async fn clear_conflict(core: &Core, id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = core.db.begin_write().await?;
    let cleared = repo::clear_slot_conflict(&mut tx, id).await?;
    if cleared {
        audit(
            &mut tx,
            None,
            "consultation.slot_conflict_cleared",
            "consultation",
            Some(id),
            serde_json::Value::Null,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(cleared)
}

/// A join token for the consultation's Room: only its patient and doctor, only once paid, only
/// in the window around the slot. The first join starts the consultation. Returns the token
/// and when it expires.
pub async fn join(
    core: &Core,
    keys: &TokenKeys,
    caller: &Caller,
    id: &ConsultationId,
    role: CallRole,
) -> Result<(String, i64), Error> {
    let row = load(core, id)
        .await?
        .filter(|r| visible_to(r, caller))
        .ok_or(Error::NotFound("consultation"))?;
    let status = row.status()?;
    let now = core.now();
    let window = JoinWindow::around(
        row.starts_at,
        row.ends_at,
        core.settings.join_before,
        core.settings.join_grace,
    );
    window.admits(status, now)?;
    if status == ConsultationStatus::Paid {
        // The first join starts the consultation; the other party may have just done so.
        match transition(
            core,
            Some(caller),
            id,
            Transition::Start,
            TransitionData::default(),
        )
        .await
        {
            Ok(_) | Err(Error::Transition(_) | Error::ConcurrentChange) => {}
            Err(e) => return Err(e),
        }
    }
    let ttl = window.token_ttl(now);
    let token = keys.issue_for_consultation(
        id.as_str(),
        caller.user_id().unwrap_or_default(),
        role,
        caller.name(),
        ttl,
        row.starts_at.max(0) as u64,
    );
    let mut conn = core.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(caller),
        "consultation.join",
        "consultation",
        Some(id.as_str()),
        serde_json::Value::Null,
    )
    .await?;
    drop(conn);
    // How this party was identified (ESIA oid and trust, or the kind of session): the
    // telemedicine procedure wants it on the consultation's record.
    crate::identity::record_identification(core, caller, id.as_str()).await?;
    Ok((token, now + ttl.as_millis() as i64))
}

/// Why a join token no longer admits its holder to a consultation's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRefusal {
    NotFound,
    NotAParty,
    NotPaid,
    Expired,
    Cancelled,
    Completed,
    AccountDisabled,
}

impl CallRefusal {
    /// In words for the client (the signaling server's refusal, the chat's 403).
    pub fn words(self) -> &'static str {
        match self {
            CallRefusal::NotFound => "the consultation does not exist",
            CallRefusal::NotAParty => "this link is not for a party of the consultation",
            CallRefusal::NotPaid | CallRefusal::Expired => "the consultation is not paid",
            CallRefusal::Cancelled => "the consultation was cancelled",
            CallRefusal::Completed => "the consultation is closed",
            CallRefusal::AccountDisabled => "the account is disabled",
        }
    }
}

/// Whether a join token issued earlier still admits `participant` to the call of consultation
/// `id`: they must be its doctor or patient with an enabled account, and the consultation paid
/// or in progress (not cancelled, closed or expired since). `Ok(Ok(row))`: admitted, with the
/// consultation; `Ok(Err(why))`: refused.
pub async fn admits_call(
    core: &Core,
    id: &str,
    participant: &str,
) -> anyhow::Result<Result<ConsultationRow, CallRefusal>> {
    let mut conn = core.db.pool.acquire().await?;
    let Some(row) = repo::load(&mut conn, id).await? else {
        return Ok(Err(CallRefusal::NotFound));
    };
    drop(conn);
    if row.doctor_id != participant && row.patient_id != participant {
        return Ok(Err(CallRefusal::NotAParty));
    }
    match row.status().map_err(|e| anyhow::anyhow!("{e}"))? {
        ConsultationStatus::Paid | ConsultationStatus::InProgress => {}
        ConsultationStatus::Completed => return Ok(Err(CallRefusal::Completed)),
        ConsultationStatus::Cancelled => return Ok(Err(CallRefusal::Cancelled)),
        ConsultationStatus::Booked => return Ok(Err(CallRefusal::NotPaid)),
        ConsultationStatus::Expired => return Ok(Err(CallRefusal::Expired)),
    }
    if !crate::people::account_enabled(core, participant)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        return Ok(Err(CallRefusal::AccountDisabled));
    }
    Ok(Ok(row))
}

/// One page of the consultations the caller may see (the read is audited).
pub async fn list(
    core: &Core,
    caller: &Caller,
    mut filter: Filter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<ConsultationRow>), Error> {
    match caller.role() {
        Some(Role::Patient) => filter.patient_of = caller.user_id().map(str::to_owned),
        Some(Role::Doctor) => filter.doctor_of = caller.user_id().map(str::to_owned),
        _ => {}
    }
    let (total, rows) = repo::list(&core.db.pool, &filter, limit, offset).await?;
    // What was asked, so a search (the people a name matched, a state, a day) is its own entry;
    // the page's unchanged poll is one entry per ten minutes.
    let asked = json!({
        "from": filter.from,
        "to": filter.to,
        "status": filter.status,
        "doctorId": filter.doctor.as_ref().map(|d| d.to_string()),
        "people": filter.people,
        "offset": offset,
    });
    let mut conn = core.db.pool.acquire().await?;
    audit_list_read(
        &mut conn,
        caller,
        "consultation.list",
        "consultation",
        asked,
    )
    .await?;
    Ok((total, rows))
}

/// One page of the consultations the clinic must look at (the read is audited as `action`).
pub async fn flagged(
    core: &Core,
    caller: &Caller,
    which: Flagged,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<ConsultationRow>), Error> {
    let (total, rows) = repo::flagged(&core.db.pool, which, limit, offset).await?;
    let action = match which {
        Flagged::Overdue => "consultation.list_overdue",
        Flagged::SlotConflict => "consultation.list_slot_conflicts",
    };
    let mut conn = core.db.pool.acquire().await?;
    audit_list_read(
        &mut conn,
        caller,
        action,
        "consultation",
        serde_json::Value::Null,
    )
    .await?;
    Ok((total, rows))
}
