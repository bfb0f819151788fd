//! Updating slots: booking, cancelling and rescheduling in Vizit reach Bitrix24 as calls in the
//! outbound queue (queued by `subscriber.rs` from the consultation's events). This is their
//! executor: calls run in order per consultation, are retried with backoff while Bitrix24 is
//! down (never lost), and are claimed with a lease so several Vizit nodes never run one twice
//! at the same time (`platform/outbound.rs`).
//!
//! `booking.add` has no idempotency key in Bitrix24. A first attempt adds; any later attempt
//! first looks for a booking in the consultation's window whose name carries the consultation id
//! (a previous attempt may have landed without us hearing the answer) and adopts it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::client::{B24Error, DatePeriod, Moment, NewBooking};
use super::repo;
use super::source::{Bitrix24, SYSTEM};
use crate::platform::audit::audit;
use crate::platform::outbound::{Call, Executor, NewCall, Outcome, enqueue};
use crate::platform::{BoxFuture, Clock, Db};

pub const ADD: &str = "booking.add";
pub const UPDATE: &str = "booking.update";
pub const DELETE: &str = "booking.delete";
pub const LINK_CLIENT: &str = "booking.client.set";

/// The cancel reason of a consultation Bitrix24 refused.
pub const SLOT_TAKEN_REASON: &str = "время уже занято в расписании клиники";

/// The `name` of a Bitrix24 booking made for a consultation (it carries our id, for
/// reconciliation; no personal data).
pub fn booking_name(consultation: &str) -> String {
    format!("Телеконсультация Vizit {consultation}")
}

/// Runs Bitrix24's calls from the outbound queue.
pub struct BookingCalls {
    db: Db,
    clock: Clock,
    b: Arc<Bitrix24>,
}

impl BookingCalls {
    pub fn new(db: Db, clock: Clock, b: Arc<Bitrix24>) -> BookingCalls {
        BookingCalls { db, clock, b }
    }
}

impl Executor for BookingCalls {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn inline_timeout(&self) -> Duration {
        self.b.settings.inline_timeout
    }

    fn execute<'a>(
        &'a self,
        call: &'a Call,
        inline: bool,
    ) -> BoxFuture<'a, Result<Outcome, sqlx::Error>> {
        Box::pin(async move {
            match self.execute(call, inline).await {
                Ok(outcome) => Ok(outcome),
                // A method error no retry can fix: failed for good, for an admin.
                Err(Step::B24(e)) if e.is_method_error() => Ok(Outcome::Failed(e.to_string())),
                Err(Step::B24(e)) => Ok(Outcome::Retry(e.to_string())),
                Err(Step::Other(e)) => Ok(Outcome::Retry(format!("{e:#}"))),
                Err(Step::Db(e)) => Err(e),
            }
        })
    }

    fn finished(&self, call: &Call, outcome: &Outcome) {
        if call.operation == DELETE && *outcome == Outcome::Done {
            // The slot is free in Bitrix24 again: show it without waiting for the next round.
            self.b.request_sync();
        }
    }
}

enum Step {
    B24(B24Error),
    Db(sqlx::Error),
    Other(anyhow::Error),
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

impl BookingCalls {
    /// `inline`: the request that queued the call is waiting for it and handles a refused move
    /// itself (it undoes the reschedule) instead of flagging a conflict.
    async fn execute(&self, call: &Call, inline: bool) -> Result<Outcome, Step> {
        let b = &*self.b;
        let attempt = call.attempt;
        let Some(t) = repo::target(&self.db.pool, &call.consultation_id).await? else {
            return Ok(Outcome::Failed("the consultation does not exist".into()));
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
                    return Ok(Outcome::Done);
                }
                let Some(resource) = t
                    .bitrix_resource_id
                    .as_deref()
                    .and_then(|r| r.parse::<i64>().ok())
                else {
                    return Ok(Outcome::Failed(
                        "the doctor is not linked to a Bitrix24 resource".into(),
                    ));
                };
                let name = booking_name(id);
                let mut found = None;
                if attempt > 1 {
                    // A previous attempt may have landed, possibly at a time the consultation has
                    // since left (a reschedule): look over the whole horizon.
                    let now = self.clock.now_ms() / 1000;
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
                        let mut tx = self.db.begin_write().await?;
                        repo::set_booking(&mut tx, id, booking).await?;
                        if t.crm_contact_id.is_some() {
                            let link = NewCall {
                                system: SYSTEM,
                                operation: LINK_CLIENT,
                                consultation_id: id,
                                payload: None,
                            };
                            enqueue(&mut tx, link, self.clock.now_ms()).await?;
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
                        Ok(Outcome::Done)
                    }
                    Err(e) if e.code() == Some("1018") => {
                        self.slot_taken(id).await?;
                        Ok(Outcome::Refused)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            UPDATE => {
                let Some(booking) = booking_id else {
                    return Ok(Outcome::Done);
                };
                if matches!(t.status.as_str(), "cancelled" | "expired") {
                    return Ok(Outcome::Done);
                }
                match b.client.move_booking(booking, &period).await {
                    Ok(()) => {
                        repo::moved(&self.db.pool, id).await?;
                        Ok(Outcome::Done)
                    }
                    Err(e) if e.code() == Some("1018") => {
                        if !inline {
                            self.flag(id, "the new time is taken in Bitrix24").await?;
                        }
                        Ok(Outcome::Refused)
                    }
                    Err(e) if e.code() == Some("1019") => {
                        self.flag(id, "the booking was deleted in Bitrix24").await?;
                        Ok(Outcome::Gone)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            DELETE => {
                let Some(booking) = booking_id else {
                    return Ok(Outcome::Done);
                };
                b.client.delete_booking(booking).await?;
                let mut conn = self.db.pool.acquire().await?;
                repo::set_sync(&mut conn, id, "released").await?;
                Ok(Outcome::Done)
            }
            LINK_CLIENT => {
                let (Some(booking), Some(contact)) = (
                    booking_id,
                    t.crm_contact_id
                        .as_deref()
                        .and_then(|c| c.parse::<i64>().ok()),
                ) else {
                    return Ok(Outcome::Done);
                };
                match b.client.set_contact(booking, contact).await {
                    Ok(()) => Ok(Outcome::Done),
                    Err(e) if matches!(e.code(), Some("1021" | "1019")) => Ok(Outcome::Done),
                    Err(e) => Err(e.into()),
                }
            }
            other => Ok(Outcome::Failed(format!("unknown operation {other}"))),
        }
    }

    /// Bitrix24 had the time booked first: the consultation is not confirmed. It is cancelled
    /// by the clinic with a reason the patient understands, and the slot is blocked until the
    /// next sync.
    async fn slot_taken(&self, id: &str) -> Result<(), Step> {
        let Some(bookings) = self.b.bookings() else {
            return Err(Step::Other(anyhow::anyhow!(
                "the Bitrix24 integration is not wired to the consultations"
            )));
        };
        bookings
            .refuse(id, SLOT_TAKEN_REASON)
            .await
            .map_err(Step::Other)?;
        let mut conn = self.db.pool.acquire().await?;
        repo::set_sync(&mut conn, id, "conflict").await?;
        tracing::info!(consultation = %id, "Bitrix24 had the slot booked first; the consultation was not confirmed");
        Ok(())
    }

    async fn flag(&self, id: &str, reason: &str) -> Result<(), Step> {
        match self.b.bookings() {
            Some(bookings) => {
                bookings.flag_conflict(id, reason).await?;
                Ok(())
            }
            None => Err(Step::Other(anyhow::anyhow!(
                "the Bitrix24 integration is not wired to the consultations"
            ))),
        }
    }
}
