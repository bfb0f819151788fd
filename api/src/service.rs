//! Business operations on domain types. Each change runs in one transaction that also writes the
//! outbox event and the audit entry, so a change is never half-applied or unrecorded.

use serde::Serialize;
use serde_json::json;
use sqlx::{AnyConnection, Row};

use crate::auth::Caller;
use crate::domain::{CancelledBy, ConsultationStatus, Role, Transition, next_status};
use crate::error::ApiError;
use crate::integrations::bitrix24;
use crate::{ApiState, now_ms};

/// Bookings with this doctor go to Bitrix24: the integration is on and the doctor is linked.
async fn pushes_to_bitrix24(
    state: &ApiState,
    conn: &mut AnyConnection,
    doctor_id: &str,
) -> Result<bool, sqlx::Error> {
    if state.bitrix24.is_none() {
        return Ok(false);
    }
    let linked: Option<(Option<String>,)> =
        sqlx::query_as("SELECT bitrix_resource_id FROM doctors WHERE user_id = $1")
            .bind(doctor_id)
            .fetch_optional(conn)
            .await?;
    Ok(linked.is_some_and(|(r,)| r.is_some()))
}

/// Append one entry to the audit log.
pub async fn audit(
    conn: &mut AnyConnection,
    caller: Option<&Caller>,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let (kind, id, role) = caller
        .map(Caller::actor)
        .unwrap_or(("system", None, "system"));
    sqlx::query(
        "INSERT INTO audit_log (at, actor_kind, actor_id, actor_role, action, object_type, object_id, ip, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(now_ms())
    .bind(kind)
    .bind(id.map(str::to_owned))
    .bind(role)
    .bind(action)
    .bind(object_type)
    .bind(object_id.map(str::to_owned))
    .bind(caller.and_then(|c| c.ip.clone()))
    .bind(if details.is_null() { None } else { Some(details.to_string()) })
    .execute(conn)
    .await?;
    Ok(())
}

/// Write a domain event to the outbox (same transaction as the change it reports).
pub async fn outbox(
    conn: &mut AnyConnection,
    event: &str,
    consultation_id: &str,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (event, consultation_id, payload, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(event)
    .bind(consultation_id)
    .bind(payload.to_string())
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// A consultation as stored.
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

pub const CONSULTATION_SELECT: &str = "SELECT c.id, c.slot_id, c.doctor_id, c.patient_id, c.status, \
    c.price_kopecks, c.starts_at, c.ends_at, c.time_zone, c.booked_at, c.pay_by, c.paid_at, \
    c.started_at, c.completed_at, c.cancelled_at, c.cancelled_by, c.cancel_reason, c.conclusion, \
    c.overdue_at, c.external_booking_id, c.external_sync, c.slot_conflict, d.name AS doctor_name, dp.specialty AS doctor_specialty, p.name AS patient_name \
    FROM consultations c JOIN users d ON d.id = c.doctor_id JOIN doctors dp ON dp.user_id = c.doctor_id \
    JOIN users p ON p.id = c.patient_id";

impl ConsultationRow {
    pub fn status(&self) -> Result<ConsultationStatus, ApiError> {
        ConsultationStatus::parse(&self.status)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("unknown status {}", self.status)))
    }

    /// Patients and doctors see only their own consultations; the clinic sees all. Someone
    /// else's consultation is "not found", so ids cannot be probed.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        match caller.role() {
            Some(Role::Patient) => caller.user_id() == Some(self.patient_id.as_str()),
            Some(Role::Doctor) => caller.user_id() == Some(self.doctor_id.as_str()),
            Some(Role::Admin | Role::HeadDoctor) | None => true,
        }
    }
}

pub async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ConsultationRow>, sqlx::Error> {
    sqlx::query_as::<_, ConsultationRow>(sqlx::AssertSqlSafe(format!(
        "{CONSULTATION_SELECT} WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Book a free slot for a patient: the slot is held and a consultation awaits payment.
pub async fn book(
    state: &ApiState,
    caller: &Caller,
    slot_id: &str,
    patient_id: &str,
) -> Result<String, ApiError> {
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    // The write comes first, so on SQLite the transaction holds the write lock from here, and on
    // PostgreSQL a concurrent booking waits on the row and then finds it no longer free.
    let held = sqlx::query(
        "UPDATE slots SET status = 'held' WHERE id = $1 AND status = 'free' AND starts_at > $2",
    )
    .bind(slot_id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if held != 1 {
        let status: Option<(String, i64)> =
            sqlx::query_as("SELECT status, starts_at FROM slots WHERE id = $1")
                .bind(slot_id)
                .fetch_optional(&mut *tx)
                .await?;
        return Err(match status {
            None => ApiError::NotFound("slot"),
            Some((_, starts_at)) if starts_at <= now => {
                ApiError::conflict("slot_in_past", "the slot has already started")
            }
            Some(_) => {
                ApiError::conflict("slot_taken", "the slot is no longer free; choose another")
            }
        });
    }
    let patient_ok: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE id = $1 AND role = 'patient' AND disabled_at IS NULL",
    )
    .bind(patient_id)
    .fetch_optional(&mut *tx)
    .await?;
    if patient_ok.is_none() {
        return Err(ApiError::NotFound("patient"));
    }
    let (doctor_id, starts_at, ends_at, time_zone, price): (String, i64, i64, String, i64) = sqlx::query_as(
        "SELECT doctor_id, starts_at, ends_at, time_zone, price_kopecks FROM slots WHERE id = $1",
    )
    .bind(slot_id)
    .fetch_one(&mut *tx)
    .await?;
    let id = uuid::Uuid::new_v4().to_string();
    let pay_by = now + state.settings.pay_within.as_millis() as i64;
    let push = pushes_to_bitrix24(state, &mut tx, &doctor_id).await?;
    sqlx::query(
        "INSERT INTO consultations (id, slot_id, doctor_id, patient_id, status, price_kopecks, starts_at, \
         ends_at, time_zone, booked_at, pay_by, updated_at, external_sync) \
         VALUES ($1, $2, $3, $4, 'booked', $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&id)
    .bind(slot_id)
    .bind(&doctor_id)
    .bind(patient_id)
    .bind(price)
    .bind(starts_at)
    .bind(ends_at)
    .bind(&time_zone)
    .bind(now)
    .bind(pay_by)
    .bind(now)
    .bind(push.then_some("pending"))
    .execute(&mut *tx)
    .await
    .map_err(ApiError::on_unique("slot_taken", "the slot is no longer free; choose another"))?;
    if push {
        bitrix24::outbound::enqueue(&mut tx, &id, bitrix24::outbound::ADD).await?;
    }
    outbox(
        &mut tx,
        "consultation.booked",
        &id,
        json!({"consultationId": id, "slotId": slot_id, "doctorId": doctor_id, "patientId": patient_id, "payBy": pay_by}),
    )
    .await?;
    audit(
        &mut tx,
        Some(caller),
        "consultation.book",
        "consultation",
        Some(&id),
        json!({"slotId": slot_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Lock a consultation for this transaction and load it: the row is touched first, so the write
/// lock is ours before we read (see `book`). A caller who may not see it gets "not found".
async fn lock_visible(
    conn: &mut AnyConnection,
    caller: Option<&Caller>,
    id: &str,
    now: i64,
) -> Result<ConsultationRow, ApiError> {
    let touched = sqlx::query("UPDATE consultations SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    match (touched, load(conn, id).await?) {
        (1, Some(row)) if caller.is_none_or(|c| row.visible_to(c)) => Ok(row),
        _ => Err(ApiError::NotFound("consultation")),
    }
}

/// Apply a state transition, with its side effects on the slot, the outbox and the audit log.
/// A caller who may not see the consultation gets "not found".
pub async fn transition(
    state: &ApiState,
    caller: Option<&Caller>,
    id: &str,
    transition: Transition,
    extra: TransitionData<'_>,
) -> Result<ConsultationRow, ApiError> {
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    let row = lock_visible(&mut tx, caller, id, now).await?;
    let from = row.status()?;
    let to = next_status(from, transition)?;
    let (column, slot_status) = match transition {
        Transition::MarkPaid => ("paid_at", Some("booked")),
        Transition::Start => ("started_at", None),
        Transition::Complete => ("completed_at", Some("booked")),
        Transition::Cancel(_) => ("cancelled_at", Some("free")),
        Transition::Expire => ("cancelled_at", Some("free")),
    };
    let (cancelled_by, reason) = match transition {
        Transition::Cancel(by) => (Some(by.as_str()), extra.reason),
        Transition::Expire => (None, Some("not paid in time")),
        _ => (None, None),
    };
    let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE consultations SET status = $1, {column} = $2, cancelled_by = COALESCE($3, cancelled_by), \
         cancel_reason = COALESCE($4, cancel_reason), conclusion = COALESCE($5, conclusion), updated_at = $6 \
         WHERE id = $7 AND status = $8"
    )))
    .bind(to.as_str())
    .bind(now)
    .bind(cancelled_by)
    .bind(reason)
    .bind(extra.conclusion)
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated != 1 {
        return Err(ApiError::conflict(
            "concurrent_change",
            "the consultation changed meanwhile; reload it",
        ));
    }
    if matches!(transition, Transition::Cancel(_) | Transition::Expire)
        && matches!(row.external_sync.as_deref(), Some("pending" | "synced"))
    {
        // Free the time in Bitrix24 too (after the add, if that is still queued).
        bitrix24::outbound::enqueue(&mut tx, id, bitrix24::outbound::DELETE).await?;
    }
    let slot_status = match (slot_status, transition) {
        (Some(_), Transition::Cancel(_)) if extra.block_slot => Some("blocked"),
        (s, _) => s,
    };
    if let Some(slot_status) = slot_status {
        sqlx::query("UPDATE slots SET status = $1 WHERE id = $2 AND status <> 'blocked'")
            .bind(slot_status)
            .bind(&row.slot_id)
            .execute(&mut *tx)
            .await?;
    }
    outbox(
        &mut tx,
        transition.event(),
        id,
        json!({"consultationId": id, "from": from.as_str(), "to": to.as_str(), "cancelledBy": cancelled_by}),
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
    let row = load(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("consultation"))?;
    tx.commit().await?;
    Ok(row)
}

/// Move a booked or paid consultation to another free slot of the same doctor. The old slot is
/// released, the Bitrix24 booking is moved through the outbox (unless `push` is false: undoing a
/// move Bitrix24 refused). Returns the consultation and the slot it left.
pub async fn reschedule(
    state: &ApiState,
    caller: Option<&Caller>,
    id: &str,
    new_slot: &str,
    push: bool,
    left_slot_status: &str,
) -> Result<(ConsultationRow, String), ApiError> {
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    let row = lock_visible(&mut tx, caller, id, now).await?;
    let status = row.status()?;
    if !matches!(
        status,
        ConsultationStatus::Booked | ConsultationStatus::Paid
    ) {
        return Err(ApiError::conflict(
            "invalid_transition",
            format!("a {} consultation cannot be rescheduled", status.as_str()),
        ));
    }
    if row.slot_id == new_slot {
        return Err(ApiError::conflict(
            "same_slot",
            "the consultation is already at this slot",
        ));
    }
    let slot_status = if status == ConsultationStatus::Paid {
        "booked"
    } else {
        "held"
    };
    let held = sqlx::query(
        "UPDATE slots SET status = $1 WHERE id = $2 AND doctor_id = $3 AND status = 'free' AND starts_at > $4",
    )
    .bind(slot_status)
    .bind(new_slot)
    .bind(&row.doctor_id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if held != 1 {
        let exists: Option<(String,)> = sqlx::query_as("SELECT doctor_id FROM slots WHERE id = $1")
            .bind(new_slot)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match exists {
            Some((doctor,)) if doctor == row.doctor_id => {
                ApiError::conflict("slot_taken", "the slot is no longer free; choose another")
            }
            _ => ApiError::NotFound("slot"),
        });
    }
    sqlx::query("UPDATE slots SET status = $1 WHERE id = $2 AND status IN ('held', 'booked')")
        .bind(left_slot_status)
        .bind(&row.slot_id)
        .execute(&mut *tx)
        .await?;
    let (starts_at, ends_at, time_zone): (i64, i64, String) =
        sqlx::query_as("SELECT starts_at, ends_at, time_zone FROM slots WHERE id = $1")
            .bind(new_slot)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "UPDATE consultations SET slot_id = $1, starts_at = $2, ends_at = $3, time_zone = $4, \
         slot_conflict_at = NULL, slot_conflict = NULL WHERE id = $5",
    )
    .bind(new_slot)
    .bind(starts_at)
    .bind(ends_at)
    .bind(&time_zone)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(ApiError::on_unique(
        "slot_taken",
        "the slot is no longer free; choose another",
    ))?;
    if push && matches!(row.external_sync.as_deref(), Some("pending" | "synced")) {
        // `pending` until Bitrix24 has the new time, so a sync meanwhile does not mistake the
        // difference for a change made in Bitrix24.
        sqlx::query("UPDATE consultations SET external_sync = 'pending' WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        bitrix24::outbound::enqueue(&mut tx, id, bitrix24::outbound::UPDATE).await?;
    }
    outbox(
        &mut tx,
        "consultation.rescheduled",
        id,
        json!({"consultationId": id, "fromSlotId": row.slot_id, "toSlotId": new_slot}),
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
    let updated = load(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("consultation"))?;
    tx.commit().await?;
    Ok((updated, row.slot_id))
}

/// Extra data a transition stores.
#[derive(Debug, Default, Clone, Copy)]
pub struct TransitionData<'a> {
    pub reason: Option<&'a str>,
    pub conclusion: Option<&'a str>,
    /// A cancellation leaves the slot blocked instead of free (the time is taken elsewhere).
    pub block_slot: bool,
}

/// Who may cancel, as whom.
pub fn cancelled_by(caller: &Caller) -> CancelledBy {
    match caller.role() {
        Some(Role::Patient) => CancelledBy::Patient,
        Some(Role::Doctor) => CancelledBy::Doctor,
        _ => CancelledBy::Clinic,
    }
}

/// Summary of one background pass.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct JobReport {
    pub expired: usize,
    pub overdue: usize,
    /// Recordings deleted by the retention policy.
    pub recordings_deleted: usize,
}

/// Expire unpaid bookings (releasing their slots) and flag consultations not closed in time.
pub async fn run_jobs(state: &ApiState) -> Result<JobReport, ApiError> {
    let now = now_ms();
    let mut report = JobReport::default();
    let unpaid: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM consultations WHERE status = 'booked' AND pay_by < $1")
            .bind(now)
            .fetch_all(&state.db.pool)
            .await?;
    for (id,) in unpaid {
        match transition(
            state,
            None,
            &id,
            Transition::Expire,
            TransitionData::default(),
        )
        .await
        {
            Ok(_) => report.expired += 1,
            // Paid or cancelled meanwhile: nothing to expire.
            Err(ApiError::Transition(_) | ApiError::Conflict { .. } | ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let limit = now - state.settings.overdue_after.as_millis() as i64;
    let overdue: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM consultations WHERE status IN ('paid', 'in_progress') AND ends_at < $1 AND overdue_at IS NULL",
    )
    .bind(limit)
    .fetch_all(&state.db.pool)
    .await?;
    for (id,) in overdue {
        let mut tx = state.db.begin_write().await?;
        let flagged = sqlx::query(
            "UPDATE consultations SET overdue_at = $1 WHERE id = $2 AND overdue_at IS NULL \
             AND status IN ('paid', 'in_progress')",
        )
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if flagged == 1 {
            outbox(
                &mut tx,
                "consultation.overdue",
                &id,
                json!({"consultationId": id}),
            )
            .await?;
            audit(
                &mut tx,
                None,
                "consultation.overdue",
                "consultation",
                Some(&id),
                serde_json::Value::Null,
            )
            .await?;
            report.overdue += 1;
        }
        tx.commit().await?;
    }
    report.recordings_deleted = crate::recordings::apply_retention(state).await?;
    Ok(report)
}

/// The count of rows, for list pages.
pub fn count_of(row: &sqlx::any::AnyRow) -> Result<i64, sqlx::Error> {
    row.try_get::<i64, _>(0)
}
