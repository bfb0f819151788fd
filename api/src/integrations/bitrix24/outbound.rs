//! Updating slots: booking, cancelling and rescheduling in Vizit reach Bitrix24 through the
//! `outbound_calls` table, written in the same transaction as the change. Calls run in order per
//! consultation, are retried with backoff while Bitrix24 is down (never lost), and are claimed
//! with a lease so several Vizit nodes never run one twice at the same time.
//!
//! `booking.add` has no idempotency key in Bitrix24. A first attempt adds; any later attempt
//! first looks for a booking in the consultation's window whose name carries the consultation id
//! (a previous attempt may have landed without us hearing the answer) and adopts it.

use serde_json::json;
use sqlx::AnyConnection;

use super::Bitrix24;
use super::client::{B24Error, DatePeriod, Moment, NewBooking};
use crate::domain::{CancelledBy, Transition};
use crate::service::{self, TransitionData, audit};
use crate::{ApiError, ApiState, now_ms};

pub const ADD: &str = "booking.add";
pub const UPDATE: &str = "booking.update";
pub const DELETE: &str = "booking.delete";
pub const LINK_CLIENT: &str = "booking.client.set";

/// A claimed call is someone else's for this long: longer than the slowest call can take
/// (retries × request timeout + backoff + pacing).
const LEASE_MS: i64 = 10 * 60_000;
/// Longest wait between attempts.
const MAX_BACKOFF_MS: i64 = 5 * 60_000;

/// Queue a call (inside the caller's transaction).
pub async fn enqueue(
    conn: &mut AnyConnection,
    consultation: &str,
    operation: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO outbound_calls (system, operation, consultation_id, status, next_attempt_at, created_at) \
         VALUES ('bitrix24', $1, $2, 'pending', $3, $4)",
    )
    .bind(operation)
    .bind(consultation)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Done,
    /// Bitrix24 refused the time (1018): the consultation was cancelled or flagged.
    Conflict,
    /// The booking is gone from Bitrix24 (moved or deleted there): the consultation was flagged.
    Gone,
    /// Not delivered yet; will be retried.
    Pending(String),
    /// Given up (a method error no retry can fix); an admin can retry it.
    Failed(String),
}

/// The `name` of a Bitrix24 booking made for a consultation (it carries our id, for
/// reconciliation; no personal data).
pub fn booking_name(consultation: &str) -> String {
    format!("Телеконсультация Vizit {consultation}")
}

#[derive(sqlx::FromRow)]
struct Call {
    id: i64,
    operation: String,
    consultation_id: String,
}

#[derive(sqlx::FromRow)]
struct Target {
    status: String,
    starts_at: i64,
    ends_at: i64,
    time_zone: String,
    external_booking_id: Option<String>,
    bitrix_resource_id: Option<String>,
    crm_contact_id: Option<String>,
}

/// A claimed call: the attempt number this is, and the lease that proves it is ours.
struct Claimed {
    attempt: i64,
    lease: i64,
}

/// Claim a call (`due_only`: the worker respects the backoff; a waiting request does not).
/// `None` if someone else holds it, it is not due, or it is over.
async fn claim(state: &ApiState, id: i64, due_only: bool) -> Result<Option<Claimed>, sqlx::Error> {
    let now = now_ms();
    let lease = now + LEASE_MS;
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE outbound_calls SET locked_until = $1, attempts = attempts + 1 \
         WHERE id = $2 AND status = 'pending' AND (locked_until IS NULL OR locked_until < $3) \
         AND ($4 = 0 OR next_attempt_at <= $3) RETURNING attempts",
    )
    .bind(lease)
    .bind(id)
    .bind(now)
    .bind(i64::from(due_only))
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(row.map(|(attempt,)| Claimed { attempt, lease }))
}

/// Run every due call, oldest first, each consultation's calls in order. Returns how many ran.
pub async fn deliver_due(state: &ApiState, b: &Bitrix24) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    let due: Vec<Call> = sqlx::query_as(
        "SELECT o.id, o.operation, o.consultation_id FROM outbound_calls o \
         WHERE o.status = 'pending' AND o.next_attempt_at <= $1 AND (o.locked_until IS NULL OR o.locked_until < $2) \
         AND NOT EXISTS (SELECT 1 FROM outbound_calls e WHERE e.consultation_id = o.consultation_id \
                         AND e.status = 'pending' AND e.id < o.id) \
         ORDER BY o.id LIMIT 50",
    )
    .bind(now)
    .bind(now)
    .fetch_all(&state.db.pool)
    .await?;
    let mut ran = 0;
    for call in due {
        if let Some(claimed) = claim(state, call.id, true).await? {
            run(state, b, &call, &claimed, false).await?;
            ran += 1;
        }
    }
    Ok(ran)
}

/// Run a consultation's pending calls now, in order (the request that booked it waits for the
/// answer). The last outcome, or `Pending` when another node holds a call.
pub async fn deliver_consultation(
    state: &ApiState,
    b: &Bitrix24,
    consultation: &str,
) -> Result<Delivery, sqlx::Error> {
    let calls: Vec<Call> = sqlx::query_as(
        "SELECT id, operation, consultation_id FROM outbound_calls \
         WHERE consultation_id = $1 AND status = 'pending' ORDER BY id",
    )
    .bind(consultation)
    .fetch_all(&state.db.pool)
    .await?;
    let mut last = Delivery::Done;
    for call in calls {
        let Some(claimed) = claim(state, call.id, false).await? else {
            return Ok(Delivery::Pending("another worker is delivering it".into()));
        };
        last = run(state, b, &call, &claimed, true).await?;
        if last != Delivery::Done {
            break;
        }
    }
    Ok(last)
}

/// Execute one claimed call and record how it ended.
async fn run(
    state: &ApiState,
    b: &Bitrix24,
    call: &Call,
    claimed: &Claimed,
    inline: bool,
) -> Result<Delivery, sqlx::Error> {
    let attempt = claimed.attempt;
    let outcome = execute(state, b, call, attempt, inline).await;
    let now = now_ms();
    let (status, outcome_text, error, delivery) = match outcome {
        Ok(Delivery::Done) => ("done", Some("delivered"), None, Delivery::Done),
        Ok(Delivery::Conflict) => ("done", Some("conflict"), None, Delivery::Conflict),
        Ok(Delivery::Gone) => ("done", Some("gone"), None, Delivery::Gone),
        Ok(Delivery::Failed(e)) => ("failed", None, Some(e.clone()), Delivery::Failed(e)),
        Ok(Delivery::Pending(e)) => ("pending", None, Some(e.clone()), Delivery::Pending(e)),
        Err(Step::B24(e)) if e.is_method_error() => {
            let text = e.to_string();
            ("failed", None, Some(text.clone()), Delivery::Failed(text))
        }
        Err(Step::B24(e)) => {
            let text = e.to_string();
            ("pending", None, Some(text.clone()), Delivery::Pending(text))
        }
        Err(Step::Db(e)) => return Err(e),
        Err(Step::Api(e)) => {
            let text = e.to_string();
            ("pending", None, Some(text.clone()), Delivery::Pending(text))
        }
    };
    let backoff = (1000_i64 << attempt.clamp(0, 20)).min(MAX_BACKOFF_MS);
    sqlx::query(
        "UPDATE outbound_calls SET status = $1, outcome = COALESCE($2, outcome), last_error = $3, locked_until = NULL, \
         next_attempt_at = $4, done_at = $5 WHERE id = $6 AND locked_until = $7",
    )
    .bind(status)
    .bind(outcome_text)
    .bind(error.clone())
    .bind(now + backoff)
    .bind((status != "pending").then_some(now))
    .bind(call.id)
    .bind(claimed.lease)
    .execute(&state.db.pool)
    .await?;
    match &delivery {
        Delivery::Pending(e) => {
            tracing::warn!(call = call.id, operation = %call.operation, attempt, error = %e, "Bitrix24 update not delivered; retrying later")
        }
        Delivery::Failed(e) => {
            tracing::error!(call = call.id, operation = %call.operation, error = %e, "Bitrix24 update failed for good; an admin can retry it")
        }
        _ => {}
    }
    if call.operation == DELETE && delivery == Delivery::Done {
        // The slot is free in Bitrix24 again: show it without waiting for the next round.
        b.request_sync();
    }
    Ok(delivery)
}

enum Step {
    B24(B24Error),
    Db(sqlx::Error),
    Api(ApiError),
}

impl From<B24Error> for Step {
    fn from(e: B24Error) -> Self {
        Step::B24(e)
    }
}

impl From<sqlx::Error> for Step {
    fn from(e: sqlx::Error) -> Self {
        Step::Db(e)
    }
}

/// `inline`: the request that queued the call is waiting for it and handles a refused move
/// itself (it undoes the reschedule) instead of flagging a conflict.
async fn execute(
    state: &ApiState,
    b: &Bitrix24,
    call: &Call,
    attempt: i64,
    inline: bool,
) -> Result<Delivery, Step> {
    let target: Option<Target> = sqlx::query_as(
        "SELECT c.status, c.starts_at, c.ends_at, c.time_zone, c.external_booking_id, \
         d.bitrix_resource_id, p.crm_contact_id FROM consultations c \
         JOIN doctors d ON d.user_id = c.doctor_id JOIN users p ON p.id = c.patient_id WHERE c.id = $1",
    )
    .bind(&call.consultation_id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(t) = target else {
        return Ok(Delivery::Failed("the consultation does not exist".into()));
    };
    let booking_id = t
        .external_booking_id
        .as_deref()
        .and_then(|s| s.parse::<i64>().ok());
    let period = DatePeriod {
        from: Moment {
            timestamp: t.starts_at / 1000,
            timezone: t.time_zone.clone(),
        },
        to: Moment {
            timestamp: t.ends_at / 1000,
            timezone: t.time_zone.clone(),
        },
    };
    let id = call.consultation_id.as_str();
    match call.operation.as_str() {
        ADD => {
            if booking_id.is_some()
                || matches!(t.status.as_str(), "cancelled" | "expired" | "completed")
            {
                return Ok(Delivery::Done);
            }
            let Some(resource) = t
                .bitrix_resource_id
                .as_deref()
                .and_then(|r| r.parse::<i64>().ok())
            else {
                return Ok(Delivery::Failed(
                    "the doctor is not linked to a Bitrix24 resource".into(),
                ));
            };
            let name = booking_name(id);
            let mut found = None;
            if attempt > 1 {
                // A previous attempt may have landed, possibly at a time the consultation has
                // since left (a reschedule): look over the whole horizon.
                let now = now_ms() / 1000;
                let horizon = b.settings.horizon.as_secs() as i64;
                found = b
                    .client
                    .bookings(now - 86_400, (now + horizon).max(period.to.timestamp))
                    .await?
                    .into_iter()
                    .find(|bk| bk.name.as_deref() == Some(name.as_str()))
                    .map(|bk| bk.id);
            }
            let created = match found {
                Some(existing) => Ok(existing),
                None => {
                    b.client
                        .add_booking(&NewBooking {
                            name,
                            description: format!("Vizit consultation {id}"),
                            resource_ids: vec![resource],
                            date_period: period,
                        })
                        .await
                }
            };
            match created {
                Ok(booking) => {
                    let mut tx = state.db.begin_write().await?;
                    sqlx::query("UPDATE consultations SET external_booking_id = $1, external_sync = 'synced' WHERE id = $2")
                        .bind(booking.to_string())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if t.crm_contact_id.is_some() {
                        enqueue(&mut tx, id, LINK_CLIENT).await?;
                    }
                    audit(
                        &mut tx,
                        None,
                        "bitrix24.booking_created",
                        "consultation",
                        Some(id),
                        json!({"bookingId": booking}),
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(Delivery::Done)
                }
                Err(e) if e.code() == Some("1018") => {
                    slot_taken(state, id).await?;
                    Ok(Delivery::Conflict)
                }
                Err(e) => Err(e.into()),
            }
        }
        UPDATE => {
            let Some(booking) = booking_id else {
                return Ok(Delivery::Done);
            };
            if matches!(t.status.as_str(), "cancelled" | "expired") {
                return Ok(Delivery::Done);
            }
            match b.client.move_booking(booking, &period).await {
                Ok(()) => {
                    sqlx::query("UPDATE consultations SET external_sync = 'synced' WHERE id = $1 AND external_sync = 'pending'")
                        .bind(id)
                        .execute(&state.db.pool)
                        .await?;
                    Ok(Delivery::Done)
                }
                Err(e) if e.code() == Some("1018") => {
                    if !inline {
                        super::sync::flag_conflict(state, id, "the new time is taken in Bitrix24")
                            .await?;
                    }
                    Ok(Delivery::Conflict)
                }
                Err(e) if e.code() == Some("1019") => {
                    super::sync::flag_conflict(state, id, "the booking was deleted in Bitrix24")
                        .await?;
                    Ok(Delivery::Gone)
                }
                Err(e) => Err(e.into()),
            }
        }
        DELETE => {
            let Some(booking) = booking_id else {
                return Ok(Delivery::Done);
            };
            b.client.delete_booking(booking).await?;
            sqlx::query("UPDATE consultations SET external_sync = 'released' WHERE id = $1")
                .bind(id)
                .execute(&state.db.pool)
                .await?;
            Ok(Delivery::Done)
        }
        LINK_CLIENT => {
            let (Some(booking), Some(contact)) = (
                booking_id,
                t.crm_contact_id
                    .as_deref()
                    .and_then(|c| c.parse::<i64>().ok()),
            ) else {
                return Ok(Delivery::Done);
            };
            match b.client.set_contact(booking, contact).await {
                Ok(()) => Ok(Delivery::Done),
                Err(e) if matches!(e.code(), Some("1021" | "1019")) => Ok(Delivery::Done),
                Err(e) => Err(e.into()),
            }
        }
        other => Ok(Delivery::Failed(format!("unknown operation {other}"))),
    }
}

/// Bitrix24 had the time booked first: the consultation is not confirmed. It is cancelled by the
/// clinic with a reason the patient understands, and the slot is blocked until the next sync.
async fn slot_taken(state: &ApiState, id: &str) -> Result<(), Step> {
    let cancelled = service::transition(
        state,
        None,
        id,
        Transition::Cancel(CancelledBy::Clinic),
        TransitionData {
            reason: Some(SLOT_TAKEN_REASON),
            conclusion: None,
            block_slot: true,
        },
    )
    .await;
    match cancelled {
        Ok(_) | Err(ApiError::Transition(_)) => {}
        Err(e) => return Err(Step::Api(e)),
    }
    sqlx::query("UPDATE consultations SET external_sync = 'conflict' WHERE id = $1")
        .bind(id)
        .execute(&state.db.pool)
        .await?;
    tracing::info!(consultation = %id, "Bitrix24 had the slot booked first; the consultation was not confirmed");
    Ok(())
}

/// The cancel reason of a consultation Bitrix24 refused.
pub const SLOT_TAKEN_REASON: &str = "время уже занято в расписании клиники";
