//! Payments hear of consultations through the outbox: a booked paid consultation gets a
//! payment attempt (its create call queued), a free one is paid at once (a scheduled job: a
//! subscriber writes only in its delivery's transaction), a cancelled or expired one releases
//! or refunds its payment. A receipt's e-mail sent (`email.sent`) marks the receipt e-mailed.

use std::sync::Arc;

use serde_json::json;
use sqlx::AnyConnection;

use super::settings::Payments;
use super::{receipts, service};
use crate::domain::EventKind;
use crate::platform::outbox::{Event, Subscriber};
use crate::platform::scheduler::schedule_at;
use crate::platform::{BoxFuture, Clock};

/// The scheduler's kind of "mark a free consultation paid".
pub const FREE: &str = "payments.free";

pub struct ConsultationPayments {
    pub clock: Clock,
    pub payments: Arc<Payments>,
}

impl ConsultationPayments {
    async fn handle_event(&self, conn: &mut AnyConnection, event: &Event) -> anyhow::Result<()> {
        if EventKind::parse(&event.kind) == Some(EventKind::EmailSent) {
            let p = &event.payload;
            if let ("receipt", Some(receipt)) =
                (p["kind"].as_str().unwrap_or_default(), p["refId"].as_str())
            {
                receipts::emailed(conn, receipt, event.created_at).await?;
            }
            return Ok(());
        }
        let Some(consultation) = event.consultation_id.as_deref() else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let p = &event.payload;
        match EventKind::parse(&event.kind) {
            Some(EventKind::ConsultationBooked) => {
                let price = p["priceKopecks"].as_i64().unwrap_or(0);
                if price <= 0 {
                    schedule_at(
                        conn,
                        now,
                        FREE,
                        &format!("free:{consultation}"),
                        now,
                        Some(json!({"consultation": consultation})),
                    )
                    .await?;
                    return Ok(());
                }
                let patient = p["patientId"].as_str().unwrap_or_default();
                let (email, phone) = service::registered_contact(&mut *conn, patient).await?;
                // None: the patient's checkout came first and made the attempt.
                service::start_attempt(
                    conn,
                    &self.payments,
                    consultation,
                    price,
                    email.as_deref(),
                    phone.as_deref(),
                    now,
                )
                .await?;
            }
            Some(EventKind::ConsultationCancelled | EventKind::ConsultationExpired) => {
                service::on_closed(
                    conn,
                    &self.payments,
                    consultation,
                    p["cancelledBy"].as_str(),
                    p["at"].as_i64().unwrap_or(event.created_at),
                    p["startsAt"].as_i64().unwrap_or(i64::MAX),
                    now,
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl Subscriber for ConsultationPayments {
    fn name(&self) -> &'static str {
        "payments"
    }

    fn wants(&self, kind: &str) -> bool {
        matches!(
            EventKind::parse(kind),
            Some(
                EventKind::ConsultationBooked
                    | EventKind::ConsultationCancelled
                    | EventKind::ConsultationExpired
                    | EventKind::EmailSent
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
        self.payments.wake();
    }
}
