//! Jobs on the scheduler: reconciliation (payments and refunds whose state has not moved for a
//! while are read back, so a lost notification costs minutes, not money; succeeded payments
//! whose consultation still waits — a stop between the two — are applied again), and marking
//! free consultations paid.

use std::sync::Arc;

use super::repo;
use super::service;
use super::settings::Payments;
use super::subscriber::FREE;
use crate::consultations;
use crate::domain::{ConsultationId, Transition};
use crate::platform::BoxFuture;
use crate::platform::scheduler::{Due, Job};
use crate::state::Core;

/// The scheduler's kind of the reconciliation.
pub const RECONCILE: &str = "payments.reconcile";

pub struct Reconcile {
    pub core: Core,
    pub payments: Arc<Payments>,
}

impl Job for Reconcile {
    fn kind(&self) -> &'static str {
        RECONCILE
    }

    fn run<'a>(&'a self, _job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let n = reconcile(&self.core, &self.payments).await?;
            if n > 0 {
                tracing::info!(count = n, "payments reconciled with YooKassa");
            }
            Ok(())
        })
    }
}

/// Read back what has not moved for `reconcile_after`, and apply it. Returns how many changed.
pub async fn reconcile(core: &Core, p: &Payments) -> anyhow::Result<usize> {
    let before = core.now() - p.settings.reconcile_after.as_millis() as i64;
    let mut changed = 0;
    for row in repo::stale_payments(&core.db.pool, before).await? {
        let Some(pid) = row.provider_payment_id.as_deref() else {
            continue;
        };
        match p.client.payment(pid).await {
            Ok(y) => {
                if let service::Applied::Moved(_) = service::apply_payment(core, p, &y).await? {
                    changed += 1;
                } else {
                    // Nothing new: look again only after another `reconcile_after`.
                    repo::touch(&core.db.pool, &row.id, core.now()).await?;
                }
            }
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(payment = %row.id, error = %e, "a payment could not be read back")
            }
        }
    }
    for r in repo::stale_refunds(&core.db.pool, before).await? {
        let Some(rid) = r.provider_refund_id.as_deref() else {
            continue;
        };
        match p.client.refund(rid).await {
            Ok(y) => {
                if let service::Applied::Moved(_) = service::apply_refund(core, p, &y).await? {
                    changed += 1;
                } else {
                    // As for payments: look again only after another `reconcile_after`.
                    repo::touch_refund(&core.db.pool, &r.id, core.now()).await?;
                }
            }
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => tracing::warn!(refund = %r.id, error = %e, "a refund could not be read back"),
        }
    }
    for row in repo::succeeded_unapplied(&core.db.pool).await? {
        service::settle_succeeded(core, p, &row).await?;
        changed += 1;
    }
    Ok(changed)
}

/// A free consultation needs no payment: it is paid at once.
pub struct Free {
    pub core: Core,
}

impl Job for Free {
    fn kind(&self) -> &'static str {
        FREE
    }

    fn run<'a>(&'a self, job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(id) = job
                .payload
                .as_ref()
                .and_then(|p| p["consultation"].as_str())
                .and_then(|c| c.parse::<ConsultationId>().ok())
            else {
                return Ok(());
            };
            match consultations::transition(
                &self.core,
                None,
                &id,
                Transition::MarkPaid,
                consultations::TransitionData::default(),
            )
            .await
            {
                Ok(_)
                | Err(
                    consultations::Error::Transition(_)
                    | consultations::Error::ConcurrentChange
                    | consultations::Error::NotFound(_),
                ) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }
}
