//! The rules of payments: a paid booking gets a payment at the provider with a 54-FZ receipt;
//! the provider's word on it (read back from its API, never taken from a notification as is)
//! moves the payment forward only, and a succeeded payment makes the consultation paid; a
//! payment that arrives for a booking no longer waiting for it is released or refunded;
//! cancellations refund by the clinic's rules; admins refund part of a payment with a reason.
//! Every change is audited and reported as a domain event.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::AnyConnection;
use vizit_integrations::yookassa::{
    self, Amount, Customer, Item, Measure, PaymentMode, PaymentStatus, PaymentSubject, ReceiptData,
    RefundStatus,
};

use super::receipts;
use super::repo::{self, NewPayment, NewRefund, PaymentRow, RefundRow};
use super::settings::{Payments, SYSTEM};
use crate::consultations;
use crate::domain::{Caller, ConsultationId, ConsultationStatus, EventKind, Role, Transition};
use crate::people;
use crate::platform::audit::audit;
use crate::platform::outbound::{NewCall, Outbound, enqueue};
use crate::state::Core;

/// Operations of the outbound queue (system `yookassa`).
pub const CREATE: &str = "payment.create";
pub const CAPTURE: &str = "payment.capture";
pub const CANCEL: &str = "payment.cancel";
pub const REFUND: &str = "refund.create";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the consultation does not wait for a payment (it is {0})")]
    NotPayable(&'static str),
    #[error("the consultation is paid already")]
    AlreadyPaid,
    #[error("an e-mail or a phone for the receipt is needed")]
    ContactRequired,
    #[error("{0}")]
    InvalidContact(&'static str),
    #[error("only a succeeded payment can be refunded")]
    NotRefundable,
    #[error("at most {left} kopecks of this payment can still be refunded")]
    RefundTooLarge { left: i64 },
    #[error("online payments are not configured")]
    Disabled,
    #[error(transparent)]
    Provider(#[from] yookassa::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A normalized receipt contact from what a patient typed.
pub fn contact(
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<(Option<String>, Option<String>), Error> {
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    let phone = phone.map(str::trim).filter(|p| !p.is_empty());
    let email = match email {
        Some(e) if e.contains('@') && e.len() <= 254 && !e.contains(char::is_whitespace) => {
            Some(e.to_lowercase())
        }
        Some(_) => return Err(Error::InvalidContact("the e-mail is not an e-mail address")),
        None => None,
    };
    let phone = match phone {
        Some(p) => {
            // E.164 digits only (YooKassa): +7 (900) 000-00-00 → 79000000000.
            let digits: String = p.chars().filter(char::is_ascii_digit).collect();
            let allowed = p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
            if !allowed || !(10..=15).contains(&digits.len()) {
                return Err(Error::InvalidContact(
                    "the phone must be a number with its country code, e.g. +7 900 000-00-00",
                ));
            }
            Some(digits)
        }
        None => None,
    };
    Ok((email, phone))
}

fn queue<'a>(
    operation: &'static str,
    consultation: &'a str,
    payload: serde_json::Value,
) -> NewCall<'a> {
    NewCall {
        system: SYSTEM,
        operation,
        consultation_id: consultation,
        payload: Some(payload),
    }
}

/// A new payment attempt of a consultation, in the caller's transaction: `creating` (and its
/// create call queued) when the receipt has a contact, else `awaiting_contact`.
pub async fn start_attempt(
    conn: &mut AnyConnection,
    p: &Payments,
    consultation: &str,
    amount: i64,
    email: Option<&str>,
    phone: Option<&str>,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let has_contact = email.is_some() || phone.is_some();
    let inserted = repo::insert_payment(
        &mut *conn,
        NewPayment {
            id: &id,
            consultation_id: consultation,
            provider: SYSTEM,
            status: if has_contact {
                "creating"
            } else {
                "awaiting_contact"
            },
            amount_kopecks: amount,
            idempotence_key: &key,
            return_url: &p.return_url(consultation),
            receipt_email: email,
            receipt_phone: phone,
        },
        now,
    )
    .await?;
    if !inserted {
        return Ok(None);
    }
    if has_contact {
        enqueue(&mut *conn, create_call(consultation, &id), now).await?;
    }
    audit(
        conn,
        None,
        "payment.start",
        "payment",
        Some(&id),
        json!({"consultationId": consultation, "amountKopecks": amount}),
    )
    .await?;
    Ok(Some(id))
}

/// The patient's registered contact as a receipt takes it: each part normalized, or left out
/// if it is not valid (the patient is then asked at checkout).
pub async fn registered_contact(
    conn: &mut AnyConnection,
    patient: &str,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    let (email, phone) = people::service::contact(conn, patient).await?;
    let email = contact(email.as_deref(), None).ok().and_then(|(e, _)| e);
    let phone = contact(None, phone.as_deref()).ok().and_then(|(_, p)| p);
    Ok((email, phone))
}

fn create_call<'a>(consultation: &'a str, payment: &str) -> NewCall<'a> {
    queue(CREATE, consultation, json!({"payment": payment}))
}

/// The receipt of a consultation's payment or refund (54-FZ: one line, the service).
pub fn receipt(p: &Payments, row: &PaymentRow, specialty: &str, amount: i64) -> ReceiptData {
    let description: String = format!("{} ({specialty})", p.settings.item_description)
        .chars()
        .take(128)
        .collect();
    ReceiptData {
        customer: Customer {
            email: row.receipt_email.clone(),
            phone: row.receipt_phone.clone(),
        },
        items: vec![Item {
            description,
            quantity: 1,
            amount: Amount(amount),
            vat_code: p.settings.vat_code,
            payment_subject: PaymentSubject::Service,
            payment_mode: PaymentMode::FullPrepayment,
            measure: Measure::Piece,
        }],
        internet: true,
        tax_system_code: p.settings.tax_system_code,
    }
}

/// What the request to create a payment says.
pub fn new_payment(p: &Payments, row: &PaymentRow, specialty: &str) -> yookassa::NewPayment {
    yookassa::NewPayment {
        amount: Amount(row.amount_kopecks),
        description: format!(
            "Телеконсультация, запись {}",
            &row.consultation_id[..8.min(row.consultation_id.len())]
        ),
        return_url: row
            .return_url
            .clone()
            .unwrap_or_else(|| p.return_url(&row.consultation_id)),
        capture: !p.settings.two_stage,
        metadata: BTreeMap::from([
            ("consultation_id".to_owned(), row.consultation_id.clone()),
            ("payment_id".to_owned(), row.id.clone()),
        ]),
        receipt: receipt(p, row, specialty, row.amount_kopecks),
    }
}

/// What applying the provider's word did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// An object Vizit never asked for (a forged notification): nothing changed.
    Unknown,
    /// Nothing new (a duplicate, or an older state than the one stored).
    Unchanged,
    /// The payment or refund moved to this status.
    Moved(String),
}

/// The statuses a payment may move to `to` from: only forward.
fn earlier(to: PaymentStatus) -> &'static [&'static str] {
    match to {
        PaymentStatus::Pending => &["creating"],
        PaymentStatus::WaitingForCapture => &["creating", "pending"],
        PaymentStatus::Succeeded | PaymentStatus::Canceled => {
            &["creating", "pending", "waiting_for_capture"]
        }
    }
}

/// Apply the provider's state of a payment (read from its API). Idempotent: the same state
/// twice changes nothing; a state older than the stored one is ignored.
pub async fn apply_payment(
    core: &Core,
    p: &Payments,
    y: &yookassa::Payment,
) -> Result<Applied, Error> {
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    let row = match repo::payment_by_provider_id(&mut tx, &y.id).await? {
        Some(row) => row,
        // The create call's answer may have been lost while the notification came: our id is
        // in the metadata.
        None => match y.metadata.get("payment_id").cloned().flatten() {
            Some(ours) => match repo::payment(&mut tx, &ours).await? {
                Some(row) if row.provider_payment_id.is_none() => {
                    repo::created(
                        &mut tx,
                        &row.id,
                        &y.id,
                        "pending",
                        y.confirmation_url(),
                        now,
                    )
                    .await?;
                    repo::payment(&mut tx, &ours).await?.unwrap_or(row)
                }
                _ => return Ok(Applied::Unknown),
            },
            None => return Ok(Applied::Unknown),
        },
    };
    let to = y.status;
    let cancel = y
        .cancellation_details
        .as_ref()
        .map(|c| (c.party.as_str(), c.reason.as_str()));
    if !repo::set_status(&mut tx, &row.id, earlier(to), to.as_str(), cancel, now).await? {
        tx.commit().await?;
        return Ok(Applied::Unchanged);
    }
    match to {
        PaymentStatus::WaitingForCapture => {
            // Charge only while the booking still waits for it; else release the hold.
            let waiting = consultations::summary(&mut tx, &row.consultation_id)
                .await?
                .is_some_and(|c| c.status == ConsultationStatus::Booked);
            let (op, suffix) = if waiting {
                (CAPTURE, "capture")
            } else {
                (CANCEL, "cancel")
            };
            enqueue(
                &mut tx,
                queue(
                    op,
                    &row.consultation_id,
                    json!({"payment": row.id, "key": format!("{}-{suffix}", row.idempotence_key)}),
                ),
                now,
            )
            .await?;
        }
        PaymentStatus::Succeeded => {
            receipts::expect(&mut tx, p, now, &row.id, None, row.amount_kopecks).await?;
            core.outbox
                .emit(
                    &mut tx,
                    EventKind::PaymentSucceeded.as_str(),
                    Some(&row.consultation_id),
                    json!({"consultationId": row.consultation_id, "paymentId": row.id,
                           "amountKopecks": row.amount_kopecks}),
                )
                .await?;
        }
        PaymentStatus::Canceled => {
            core.outbox
                .emit(
                    &mut tx,
                    EventKind::PaymentCanceled.as_str(),
                    Some(&row.consultation_id),
                    json!({"consultationId": row.consultation_id, "paymentId": row.id,
                           "reason": cancel.map(|c| c.1)}),
                )
                .await?;
        }
        PaymentStatus::Pending => {}
    }
    audit(
        &mut tx,
        None,
        &format!("payment.{}", to.as_str()),
        "payment",
        Some(&row.id),
        json!({"consultationId": row.consultation_id, "providerId": y.id,
               "cancellation": cancel.map(|c| json!({"party": c.0, "reason": c.1}))}),
    )
    .await?;
    tx.commit().await?;
    core.outbox.notify();
    p.wake();
    if to == PaymentStatus::Succeeded {
        settle_succeeded(core, p, &row).await?;
    }
    Ok(Applied::Moved(to.as_str().to_owned()))
}

/// A succeeded payment makes its consultation paid; if the booking no longer waits for it
/// (expired or cancelled meanwhile: possible with one-stage payments), the money goes back.
pub async fn settle_succeeded(core: &Core, p: &Payments, row: &PaymentRow) -> Result<(), Error> {
    let id: ConsultationId = match row.consultation_id.parse() {
        Ok(id) => id,
        Err(_) => return Ok(()),
    };
    match consultations::transition(
        core,
        None,
        &id,
        Transition::MarkPaid,
        consultations::TransitionData::default(),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(consultations::Error::Transition(_) | consultations::Error::ConcurrentChange) => {
            let mut tx = core.db.begin_write().await?;
            let state = consultations::summary(&mut tx, &row.consultation_id).await?;
            if state.is_some_and(|s| {
                s.status == ConsultationStatus::Paid
                    || s.status == ConsultationStatus::InProgress
                    || s.status == ConsultationStatus::Completed
            }) {
                // Paid already (a repeat): nothing to do.
                return Ok(());
            }
            let left = row.amount_kopecks - repo::promised_back(&mut tx, &row.id).await?;
            if left > 0 {
                add_refund(
                    &mut tx,
                    core.now(),
                    row,
                    left,
                    "оплата поступила после отмены или истечения записи",
                    None,
                )
                .await?;
            }
            tx.commit().await?;
            p.wake();
            tracing::warn!(payment = %row.id, "a payment arrived for a booking that no longer waits for it; refunded");
            Ok(())
        }
        Err(consultations::Error::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(payment = %row.id, error = %e, "a succeeded payment could not mark its consultation paid");
            Ok(())
        }
    }
}

/// Queue a refund of `amount` of a payment, in the caller's transaction.
async fn add_refund(
    conn: &mut AnyConnection,
    now: i64,
    payment: &PaymentRow,
    amount: i64,
    reason: &str,
    requested_by: Option<&Caller>,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let actor = requested_by.and_then(|c| c.user_id().map(str::to_owned));
    repo::insert_refund(
        &mut *conn,
        NewRefund {
            id: &id,
            payment_id: &payment.id,
            consultation_id: &payment.consultation_id,
            amount_kopecks: amount,
            reason,
            requested_by: actor.as_deref(),
            idempotence_key: &uuid::Uuid::new_v4().to_string(),
        },
        now,
    )
    .await?;
    enqueue(
        &mut *conn,
        NewCall {
            system: SYSTEM,
            operation: REFUND,
            consultation_id: &payment.consultation_id,
            payload: Some(json!({"refund": id})),
        },
        now,
    )
    .await?;
    audit(
        conn,
        requested_by,
        "refund.request",
        "refund",
        Some(&id),
        json!({"paymentId": payment.id, "amountKopecks": amount, "reason": reason}),
    )
    .await?;
    Ok(id)
}

/// Apply the provider's state of a refund (read from its API).
pub async fn apply_refund(
    core: &Core,
    p: &Payments,
    y: &yookassa::Refund,
) -> Result<Applied, Error> {
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    let Some(row) = repo::refund_by_provider_id(&mut tx, &y.id).await? else {
        return Ok(Applied::Unknown);
    };
    let to = match y.status {
        RefundStatus::Pending => return Ok(Applied::Unchanged),
        s => s.as_str(),
    };
    if !repo::set_refund_status(&mut tx, &row.id, to, now).await? {
        tx.commit().await?;
        return Ok(Applied::Unchanged);
    }
    if y.status == RefundStatus::Succeeded {
        repo::add_refunded(&mut tx, &row.payment_id, row.amount_kopecks, now).await?;
        receipts::expect(
            &mut tx,
            p,
            now,
            &row.payment_id,
            Some(&row.id),
            row.amount_kopecks,
        )
        .await?;
        core.outbox
            .emit(
                &mut tx,
                EventKind::RefundSucceeded.as_str(),
                Some(&row.consultation_id),
                json!({"consultationId": row.consultation_id, "paymentId": row.payment_id,
                       "refundId": row.id, "amountKopecks": row.amount_kopecks}),
            )
            .await?;
    }
    audit(
        &mut tx,
        None,
        &format!("refund.{to}"),
        "refund",
        Some(&row.id),
        json!({"paymentId": row.payment_id, "providerId": y.id, "amountKopecks": row.amount_kopecks}),
    )
    .await?;
    tx.commit().await?;
    core.outbox.notify();
    p.wake();
    Ok(Applied::Moved(to.to_owned()))
}

/// What happens to a consultation's payment when it is cancelled or expires, in the
/// subscriber's transaction: a held payment is released; a succeeded one is refunded in full
/// when the rules say so (the doctor or the clinic cancelled, or the patient did in time).
pub async fn on_closed(
    conn: &mut AnyConnection,
    p: &Payments,
    consultation: &str,
    cancelled_by: Option<&str>,
    cancelled_at: i64,
    starts_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Some(row) = repo::live_payment(&mut *conn, consultation).await? else {
        return Ok(());
    };
    match row.status.as_str() {
        "waiting_for_capture" => {
            enqueue(
                &mut *conn,
                queue(
                    CANCEL,
                    consultation,
                    json!({"payment": row.id, "key": format!("{}-cancel", row.idempotence_key)}),
                ),
                now,
            )
            .await?;
        }
        "awaiting_contact" => {
            repo::set_status(
                &mut *conn,
                &row.id,
                &["awaiting_contact"],
                "canceled",
                Some(("merchant", "consultation_closed")),
                now,
            )
            .await?;
        }
        "succeeded" => {
            let in_time =
                cancelled_at <= starts_at - p.settings.patient_refund_notice.as_millis() as i64;
            let refund = match cancelled_by {
                Some("patient") => in_time,
                Some(_) => true,
                None => false,
            };
            let left = row.amount_kopecks - repo::promised_back(&mut *conn, &row.id).await?;
            if refund && left > 0 {
                let reason = match cancelled_by {
                    Some("patient") => "пациент отменил консультацию заблаговременно",
                    Some("doctor") => "врач отменил консультацию",
                    _ => "клиника отменила консультацию",
                };
                add_refund(conn, now, &row, left, reason, None).await?;
            }
        }
        // `creating` and `pending`: the create call sees the booking closed and stops; a
        // payment the person still completes is released or refunded when it is applied.
        _ => {}
    }
    Ok(())
}

/// The patient (or the clinic for them) pays: the consultation's payment in flight, started if
/// there is none, with the receipt contact given now if none was known. Waits (bounded) for the
/// provider's page. Returns the payment.
pub async fn checkout(
    core: &Core,
    p: &Payments,
    outbound: &Outbound,
    caller: &Caller,
    consultation: &ConsultationId,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<PaymentRow, Error> {
    let (email, phone) = contact(email, phone)?;
    let row = match consultations::load(core, consultation).await {
        Ok(row) => row,
        Err(consultations::Error::Db(e)) => return Err(e.into()),
        Err(_) => None,
    }
    .filter(|r| consultations::visible_to(r, caller))
    .ok_or(Error::NotFound("consultation"))?;
    let status = row.status()?;
    match status {
        ConsultationStatus::Booked => {}
        ConsultationStatus::Paid
        | ConsultationStatus::InProgress
        | ConsultationStatus::Completed => {
            return Err(Error::AlreadyPaid);
        }
        other => return Err(Error::NotPayable(other.as_str())),
    }
    if row.price_kopecks <= 0 {
        return Err(Error::NotPayable("free"));
    }
    let now = core.now();
    let id = consultation.as_str();
    let mut tx = core.db.begin_write().await?;
    let payment = match repo::live_payment(&mut tx, id).await? {
        None => {
            let (known_email, known_phone) = registered_contact(&mut tx, &row.patient_id).await?;
            // A new attempt after a declined one: the contact given for that one still holds.
            let (last_email, last_phone) = repo::last_contact(&mut tx, id).await?;
            let (email, phone) = if email.is_some() || phone.is_some() {
                (email, phone)
            } else if known_email.is_some() || known_phone.is_some() {
                (known_email, known_phone)
            } else {
                (last_email, last_phone)
            };
            if email.is_none() && phone.is_none() {
                return Err(Error::ContactRequired);
            }
            match start_attempt(
                &mut tx,
                p,
                id,
                row.price_kopecks,
                email.as_deref(),
                phone.as_deref(),
                now,
            )
            .await?
            {
                Some(started) => started,
                // The booking's subscriber (or another checkout) made one meanwhile: that one.
                None => {
                    tx.rollback().await?;
                    let (email, phone) = (email.as_deref(), phone.as_deref());
                    return Box::pin(checkout(
                        core,
                        p,
                        outbound,
                        caller,
                        consultation,
                        email,
                        phone,
                    ))
                    .await;
                }
            }
        }
        Some(live) if live.status == "awaiting_contact" => {
            if email.is_none() && phone.is_none() {
                return Err(Error::ContactRequired);
            }
            repo::set_contact(&mut tx, &live.id, email.as_deref(), phone.as_deref(), now).await?;
            enqueue(&mut tx, create_call(id, &live.id), now).await?;
            live.id
        }
        Some(live) if live.status == "succeeded" => return Err(Error::AlreadyPaid),
        Some(live) => live.id,
    };
    audit(
        &mut tx,
        Some(caller),
        "payment.checkout",
        "payment",
        Some(&payment),
        json!({"consultationId": id}),
    )
    .await?;
    tx.commit().await?;
    p.wake();
    // The create call, now (bounded by the executor's inline timeout): the answer carries the
    // provider's page. Other systems' calls of the consultation are their workers'.
    let _ = outbound.deliver(SYSTEM, id).await;
    let mut conn = core.db.pool.acquire().await?;
    repo::payment(&mut conn, &payment)
        .await?
        .ok_or(Error::NotFound("payment"))
}

/// An admin refunds (part of) a succeeded payment, with a reason. Refused before any call if
/// it is more than what is left. Waits (bounded) for the provider.
pub async fn refund_by_admin(
    core: &Core,
    p: &Payments,
    outbound: &Outbound,
    caller: &Caller,
    payment: &str,
    amount: i64,
    reason: &str,
) -> Result<RefundRow, Error> {
    let now = core.now();
    let mut tx = core.db.begin_write().await?;
    let row = repo::payment(&mut tx, payment)
        .await?
        .ok_or(Error::NotFound("payment"))?;
    if row.status != "succeeded" {
        return Err(Error::NotRefundable);
    }
    let left = row.amount_kopecks - repo::promised_back(&mut tx, &row.id).await?;
    if amount > left {
        return Err(Error::RefundTooLarge { left });
    }
    let id = add_refund(&mut tx, now, &row, amount, reason, Some(caller)).await?;
    tx.commit().await?;
    p.wake();
    let _ = outbound.deliver(SYSTEM, &row.consultation_id).await;
    let mut conn = core.db.pool.acquire().await?;
    repo::refund(&mut conn, &id)
        .await?
        .ok_or(Error::NotFound("refund"))
}

/// Who may see a consultation's payments: its patient, and the clinic.
pub fn may_see(caller: &Caller) -> bool {
    caller.is_clinic() || caller.is(Role::Patient) || caller.is(Role::HeadDoctor)
}
