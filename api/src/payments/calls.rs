//! The executor of YooKassa's calls from the outbound queue: create a payment, capture or
//! release a held one, refund. Each call carries the idempotence key stored with its row (or
//! derived from it), so a repeat after a lost answer finds the first result; what YooKassa
//! answers is applied like a notification would be.

use std::sync::Arc;
use std::time::Duration;

use vizit_integrations::yookassa::{self, Amount, Error as YkError};

use super::repo;
use super::service::{self, CANCEL, CAPTURE, CREATE, REFUND};
use super::settings::{Payments, SYSTEM};
use crate::consultations;
use crate::domain::ConsultationStatus;
use crate::platform::BoxFuture;
use crate::platform::outbound::{Call, Executor, Outcome};
use crate::state::Core;

pub struct PaymentCalls {
    pub core: Core,
    pub payments: Arc<Payments>,
}

/// How a provider error ends a call.
fn outcome(e: &YkError) -> Outcome {
    if e.is_retryable() {
        Outcome::Retry(e.to_string())
    } else {
        match e {
            // A 200 with a body we cannot read: the call may have worked; repeat with the key.
            YkError::Malformed { .. } => Outcome::Retry(e.to_string()),
            _ => Outcome::Failed(e.to_string()),
        }
    }
}

impl PaymentCalls {
    async fn run(&self, call: &Call) -> Result<Outcome, sqlx::Error> {
        let payload = call.payload.clone().unwrap_or_default();
        match call.operation.as_str() {
            CREATE => {
                self.create(payload["payment"].as_str().unwrap_or_default())
                    .await
            }
            CAPTURE | CANCEL => {
                let key = payload["key"].as_str().unwrap_or(&call.idempotency_key);
                self.settle_hold(
                    payload["payment"].as_str().unwrap_or_default(),
                    call.operation == CAPTURE,
                    key,
                )
                .await
            }
            REFUND => {
                self.refund(payload["refund"].as_str().unwrap_or_default())
                    .await
            }
            other => Ok(Outcome::Failed(format!("unknown operation {other}"))),
        }
    }

    async fn create(&self, id: &str) -> Result<Outcome, sqlx::Error> {
        let (core, p) = (&self.core, &*self.payments);
        let mut conn = core.db.pool.acquire().await?;
        let Some(row) = repo::payment(&mut conn, id).await? else {
            return Ok(Outcome::Failed(format!("no payment {id}")));
        };
        if row.status != "creating" {
            return Ok(Outcome::Done);
        }
        let consultation = consultations::summary(&mut conn, &row.consultation_id).await?;
        drop(conn);
        let Some(consultation) = consultation.filter(|c| c.status == ConsultationStatus::Booked)
        else {
            // Cancelled or expired before the payment was made: nothing to create.
            let mut tx = core.db.begin_write().await?;
            repo::set_status(
                &mut tx,
                &row.id,
                &["creating"],
                "canceled",
                Some(("merchant", "consultation_closed")),
                core.now(),
            )
            .await?;
            tx.commit().await?;
            return Ok(Outcome::Done);
        };
        let request = service::new_payment(p, &row, &consultation.doctor_specialty);
        match p
            .client
            .create_payment(&request, &row.idempotence_key)
            .await
        {
            Ok(y) => {
                let mut tx = core.db.begin_write().await?;
                repo::created(
                    &mut tx,
                    &row.id,
                    &y.id,
                    "pending",
                    y.confirmation_url(),
                    core.now(),
                )
                .await?;
                tx.commit().await?;
                if y.status != yookassa::PaymentStatus::Pending {
                    self.apply(&y).await?;
                }
                Ok(Outcome::Done)
            }
            Err(e) => {
                repo::set_error(&core.db.pool, &row.id, &e.to_string(), core.now()).await?;
                let out = outcome(&e);
                if let Outcome::Failed(_) = out {
                    let mut tx = core.db.begin_write().await?;
                    repo::set_status(&mut tx, &row.id, &["creating"], "failed", None, core.now())
                        .await?;
                    tx.commit().await?;
                }
                Ok(out)
            }
        }
    }

    /// Capture (charge) or cancel (release) a payment waiting for capture.
    async fn settle_hold(
        &self,
        id: &str,
        capture: bool,
        key: &str,
    ) -> Result<Outcome, sqlx::Error> {
        let (core, p) = (&self.core, &*self.payments);
        let mut conn = core.db.pool.acquire().await?;
        let Some(row) = repo::payment(&mut conn, id).await? else {
            return Ok(Outcome::Failed(format!("no payment {id}")));
        };
        drop(conn);
        let Some(provider_id) = row.provider_payment_id.as_deref() else {
            return Ok(Outcome::Failed("the payment has no provider id".into()));
        };
        let answer = if capture {
            p.client.capture(provider_id, key).await
        } else {
            p.client.cancel(provider_id, key).await
        };
        match answer {
            Ok(y) => {
                self.apply(&y).await?;
                Ok(Outcome::Done)
            }
            // Refused (e.g. captured or canceled meanwhile): read it back and apply that.
            Err(e @ YkError::Refused { .. }) => match p.client.payment(provider_id).await {
                Ok(y) => {
                    self.apply(&y).await?;
                    Ok(Outcome::Done)
                }
                Err(_) => Ok(outcome(&e)),
            },
            Err(e) => Ok(outcome(&e)),
        }
    }

    async fn refund(&self, id: &str) -> Result<Outcome, sqlx::Error> {
        let (core, p) = (&self.core, &*self.payments);
        let mut conn = core.db.pool.acquire().await?;
        let Some(r) = repo::refund(&mut conn, id).await? else {
            return Ok(Outcome::Failed(format!("no refund {id}")));
        };
        if r.status != "creating" {
            return Ok(Outcome::Done);
        }
        let Some(payment) = repo::payment(&mut conn, &r.payment_id).await? else {
            return Ok(Outcome::Failed("the refund's payment is gone".into()));
        };
        let specialty = consultations::summary(&mut conn, &r.consultation_id)
            .await?
            .map(|c| c.doctor_specialty)
            .unwrap_or_default();
        drop(conn);
        let Some(provider_id) = payment.provider_payment_id.clone() else {
            return Ok(Outcome::Failed("the payment has no provider id".into()));
        };
        let request = yookassa::NewRefund {
            payment_id: provider_id,
            amount: Amount(r.amount_kopecks),
            description: r.reason.chars().take(250).collect(),
            receipt: service::receipt(p, &payment, &specialty, r.amount_kopecks),
            metadata: [
                ("consultation_id".to_owned(), r.consultation_id.clone()),
                ("refund_id".to_owned(), r.id.clone()),
            ]
            .into(),
        };
        match p.client.create_refund(&request, &r.idempotence_key).await {
            Ok(y) => {
                let mut tx = core.db.begin_write().await?;
                repo::refund_created(&mut tx, &r.id, &y.id, core.now()).await?;
                tx.commit().await?;
                if let Err(e) = service::apply_refund(core, p, &y).await {
                    tracing::warn!(refund = %r.id, error = %e, "a refund's answer could not be applied; reconciliation will");
                }
                Ok(Outcome::Done)
            }
            Err(e) => {
                let out = outcome(&e);
                repo::refund_error(
                    &core.db.pool,
                    &r.id,
                    &e.to_string(),
                    matches!(out, Outcome::Failed(_)),
                    core.now(),
                )
                .await?;
                Ok(out)
            }
        }
    }

    async fn apply(&self, y: &yookassa::Payment) -> Result<(), sqlx::Error> {
        match service::apply_payment(&self.core, &self.payments, y).await {
            Ok(_) => Ok(()),
            Err(service::Error::Db(e)) => Err(e),
            Err(e) => {
                tracing::warn!(payment = %y.id, error = %e, "a payment's answer could not be applied; reconciliation will");
                Ok(())
            }
        }
    }
}

impl Executor for PaymentCalls {
    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn inline_timeout(&self) -> Duration {
        self.payments.settings.inline_timeout
    }

    fn execute<'a>(
        &'a self,
        call: &'a Call,
        _inline: bool,
    ) -> BoxFuture<'a, Result<Outcome, sqlx::Error>> {
        Box::pin(self.run(call))
    }

    fn finished(&self, call: &Call, outcome: &Outcome) {
        if let Outcome::Failed(e) = outcome {
            tracing::error!(call = call.id, operation = %call.operation, error = %e,
                            "a YooKassa call failed for good; an admin can retry it");
        }
    }
}
