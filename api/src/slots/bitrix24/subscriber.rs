//! Bitrix24 hears of bookings through the outbox: a booked consultation of a linked doctor
//! queues `booking.add`, a cancelled or expired one `booking.delete`, a moved one
//! `booking.update` — each in the transaction that records the event as delivered, so a call is
//! queued exactly once per event, in the consultation's order.

use std::sync::Arc;

use sqlx::AnyConnection;
use tokio::sync::Notify;

use super::outbound::{ADD, DELETE, UPDATE};
use super::repo;
use super::source::SYSTEM;
use crate::domain::EventKind;
use crate::platform::outbound::{NewCall, enqueue};
use crate::platform::outbox::{Event, Subscriber};
use crate::platform::{BoxFuture, Clock};

pub struct BookingSubscriber {
    clock: Clock,
    /// Wakes the worker once a call is queued.
    wake: Arc<Notify>,
}

impl BookingSubscriber {
    pub fn new(clock: Clock, wake: Arc<Notify>) -> BookingSubscriber {
        BookingSubscriber { clock, wake }
    }

    async fn handle_event(&self, conn: &mut AnyConnection, event: &Event) -> anyhow::Result<()> {
        let Some(id) = event.consultation_id.as_deref() else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let call = |operation| NewCall {
            system: SYSTEM,
            operation,
            consultation_id: id,
            payload: None,
        };
        let Some(kind) = EventKind::parse(&event.kind) else {
            return Ok(());
        };
        let queued = repo::sync_state(&mut *conn, id).await?;
        let queued = matches!(queued.as_deref(), Some("pending" | "synced"));
        // An undo goes back to where Bitrix24 still has it: nothing to move.
        let undo = event.payload.get("undo").and_then(|u| u.as_bool()) == Some(true);
        let operation = match kind {
            // Bookings with this doctor go to Bitrix24 when the doctor is linked.
            EventKind::ConsultationBooked => {
                repo::doctor_linked(&mut *conn, id).await?.then_some(ADD)
            }
            // Free the time in Bitrix24 too (after the add, if that is still queued).
            EventKind::ConsultationCancelled | EventKind::ConsultationExpired => {
                queued.then_some(DELETE)
            }
            EventKind::ConsultationRescheduled => (queued && !undo).then_some(UPDATE),
            _ => None,
        };
        let Some(operation) = operation else {
            return Ok(());
        };
        if operation != DELETE {
            // `pending` until Bitrix24 has the (new) time, so a sync meanwhile does not mistake
            // the difference for a change made in Bitrix24.
            repo::set_sync(&mut *conn, id, "pending").await?;
        }
        enqueue(conn, call(operation), now).await?;
        Ok(())
    }
}

impl Subscriber for BookingSubscriber {
    fn name(&self) -> &'static str {
        SYSTEM
    }

    fn wants(&self, kind: &str) -> bool {
        matches!(
            EventKind::parse(kind),
            Some(
                EventKind::ConsultationBooked
                    | EventKind::ConsultationCancelled
                    | EventKind::ConsultationExpired
                    | EventKind::ConsultationRescheduled
            )
        )
    }

    fn handle<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.handle_event(conn, event))
    }

    fn delivered(&self, _event: &Event) {
        self.wake.notify_one();
    }
}
