//! Fiscal receipts: after each succeeded payment and refund the provider registers a receipt
//! (no notification says when); a job looks for it — soon, then less often — and stores its
//! fiscal data (ФН, ФД, ФП, time), which raises `receipt.registered` (the patient is e-mailed
//! the receipt). One not registered within `receipt_deadline` is flagged to the clinic's admins
//! (`receipt.overdue`) and still looked for.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::AnyConnection;

use super::repo::{self, Fiscal, ReceiptRow};
use super::settings::Payments;
use crate::domain::EventKind;
use crate::platform::BoxFuture;
use crate::platform::audit::audit;
use crate::platform::scheduler::{Due, Job, schedule_at};
use crate::state::Core;

/// The scheduler's kind of a look for a receipt.
pub const KIND: &str = "payments.receipt";
/// After it is flagged, a receipt is looked for this often.
const LATE_LOOK: Duration = Duration::from_secs(30 * 60);
/// Longest wait between two looks before the deadline.
const MAX_LOOK: Duration = Duration::from_secs(10 * 60);

/// Expect the receipt of a succeeded payment (`refund`: `None`) or refund, in the caller's
/// transaction: a pending receipt and its first look.
pub async fn expect(
    conn: &mut AnyConnection,
    p: &Payments,
    now: i64,
    payment: &str,
    refund: Option<&str>,
    amount: i64,
) -> Result<(), sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    if repo::insert_receipt(&mut *conn, &id, payment, refund, amount, now).await? {
        let due = now + p.settings.receipt_first_look.as_millis() as i64;
        schedule_at(
            conn,
            now,
            KIND,
            &format!("receipt:{id}"),
            due,
            Some(json!({"receipt": id})),
        )
        .await?;
    }
    Ok(())
}

/// A registered receipt and where it goes (the e-mail given for it; `None`: a phone only, to
/// which the provider sends it), for the message that carries it to the patient.
pub async fn for_email(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<(ReceiptRow, Option<String>)>, sqlx::Error> {
    let Some(r) = repo::receipt(&mut *conn, id)
        .await?
        .filter(|r| r.status == "registered")
    else {
        return Ok(None);
    };
    let email = repo::payment(conn, &r.payment_id)
        .await?
        .and_then(|p| p.receipt_email);
    Ok(Some((r, email)))
}

/// The receipt's e-mail reached the patient's mail server.
pub async fn emailed(conn: &mut AnyConnection, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE receipts SET emailed_at = $2 WHERE id = $1 AND emailed_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The job: one look for one receipt.
pub struct Look {
    pub core: Core,
    pub payments: Arc<Payments>,
}

impl Job for Look {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run<'a>(&'a self, job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(id) = job.payload.as_ref().and_then(|p| p["receipt"].as_str()) else {
                return Ok(());
            };
            look(&self.core, &self.payments, id).await
        })
    }
}

async fn look(core: &Core, p: &Payments, id: &str) -> anyhow::Result<()> {
    let mut conn = core.db.pool.acquire().await?;
    let Some(r) = repo::receipt(&mut conn, id).await? else {
        return Ok(());
    };
    if r.status == "registered" {
        return Ok(());
    }
    let payment = repo::payment(&mut conn, &r.payment_id).await?;
    let refund = match &r.refund_id {
        Some(rid) => repo::refund(&mut conn, rid).await?,
        None => None,
    };
    drop(conn);
    let found = match (&r.refund_id, &refund, &payment) {
        (Some(_), Some(refund), _) => match &refund.provider_refund_id {
            Some(pid) => p.client.refund_receipts(pid).await?,
            None => Vec::new(),
        },
        (None, _, Some(payment)) => match &payment.provider_payment_id {
            Some(pid) => p.client.payment_receipts(pid).await?,
            None => Vec::new(),
        },
        _ => return Ok(()),
    };
    let wanted = if r.refund_id.is_some() {
        "refund"
    } else {
        "payment"
    };
    let registered = found
        .into_iter()
        .find(|x| x.kind == wanted && x.is_registered());
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    match registered {
        Some(x) => {
            let items = serde_json::to_string(
                &x.items
                    .iter()
                    .map(|i| {
                        json!({"description": i.description, "quantity": i.quantity,
                               "amountKopecks": i.amount.kopecks(), "vatCode": i.vat_code,
                               "paymentSubject": i.payment_subject, "paymentMode": i.payment_mode,
                               "measure": i.measure})
                    })
                    .collect::<Vec<_>>(),
            )?;
            let stored = repo::registered(
                &mut tx,
                id,
                Fiscal {
                    provider_receipt_id: &x.id,
                    document_number: x.fiscal_document_number.as_deref().unwrap_or_default(),
                    storage_number: x.fiscal_storage_number.as_deref().unwrap_or_default(),
                    attribute: x.fiscal_attribute.as_deref().unwrap_or_default(),
                    registered_at: x.registered_at.as_deref().unwrap_or_default(),
                    provider_id: x.fiscal_provider_id.as_deref(),
                    items: &items,
                },
                now,
            )
            .await?;
            if stored {
                let consultation = payment.as_ref().map(|p| p.consultation_id.clone());
                core.outbox
                    .emit(
                        &mut tx,
                        EventKind::ReceiptRegistered.as_str(),
                        consultation.as_deref(),
                        json!({"receiptId": id, "kind": wanted, "paymentId": r.payment_id,
                               "refundId": r.refund_id,
                               "taxSystemCode": p.settings.tax_system_code}),
                    )
                    .await?;
                audit(
                    &mut tx,
                    None,
                    "receipt.registered",
                    "receipt",
                    Some(id),
                    json!({"fiscalDocumentNumber": x.fiscal_document_number}),
                )
                .await?;
            }
        }
        None => {
            let overdue = now - r.created_at >= p.settings.receipt_deadline.as_millis() as i64;
            let flag_now = overdue && r.flagged_at.is_none();
            repo::looked(&mut tx, id, overdue, now).await?;
            if flag_now {
                let consultation = payment.as_ref().map(|p| p.consultation_id.clone());
                core.outbox
                    .emit(
                        &mut tx,
                        EventKind::ReceiptOverdue.as_str(),
                        consultation.as_deref(),
                        json!({"receiptId": id, "kind": wanted, "paymentId": r.payment_id}),
                    )
                    .await?;
                audit(
                    &mut tx,
                    None,
                    "receipt.overdue",
                    "receipt",
                    Some(id),
                    json!({}),
                )
                .await?;
                tracing::warn!(receipt = %id, "a receipt was not registered in time; flagged to admins");
            }
            let wait = next_look(p, &r, overdue);
            schedule_at(
                &mut tx,
                now,
                KIND,
                &format!("receipt:{id}"),
                now + wait.as_millis() as i64,
                Some(json!({"receipt": id})),
            )
            .await?;
        }
    }
    tx.commit().await?;
    core.outbox.notify();
    Ok(())
}

/// The wait before the next look: the first look's delay doubling, at most 10 min; every
/// 30 min once overdue.
fn next_look(p: &Payments, r: &ReceiptRow, overdue: bool) -> Duration {
    if overdue {
        return LATE_LOOK;
    }
    let first = p.settings.receipt_first_look;
    first
        .saturating_mul(1 << r.attempts.clamp(0, 16) as u32)
        .min(MAX_LOOK)
}
