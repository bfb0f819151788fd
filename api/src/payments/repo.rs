//! The SQL of payments, refunds and receipts.

use sqlx::{AnyConnection, AnyPool};

/// A payment attempt as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: String,
    pub consultation_id: String,
    pub provider: String,
    pub status: String,
    pub amount_kopecks: i64,
    pub refunded_kopecks: i64,
    pub provider_payment_id: Option<String>,
    pub idempotence_key: String,
    pub confirmation_url: Option<String>,
    pub return_url: Option<String>,
    pub receipt_email: Option<String>,
    pub receipt_phone: Option<String>,
    pub cancel_party: Option<String>,
    pub cancel_reason: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub succeeded_at: Option<i64>,
    pub canceled_at: Option<i64>,
}

const PAYMENT: &str = "SELECT id, consultation_id, provider, status, amount_kopecks, refunded_kopecks, \
    provider_payment_id, idempotence_key, confirmation_url, return_url, receipt_email, receipt_phone, \
    cancel_party, cancel_reason, last_error, created_at, updated_at, succeeded_at, canceled_at FROM payments";

/// A new payment attempt.
pub struct NewPayment<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub provider: &'a str,
    pub status: &'a str,
    pub amount_kopecks: i64,
    pub idempotence_key: &'a str,
    pub return_url: &'a str,
    pub receipt_email: Option<&'a str>,
    pub receipt_phone: Option<&'a str>,
}

/// Insert an attempt. False: the consultation has a live one already (made meanwhile by the
/// booking's subscriber or another checkout), and nothing was inserted.
pub async fn insert_payment(
    conn: &mut AnyConnection,
    p: NewPayment<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO payments (id, consultation_id, provider, status, amount_kopecks, idempotence_key, return_url, \
         receipt_email, receipt_phone, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(p.id)
    .bind(p.consultation_id)
    .bind(p.provider)
    .bind(p.status)
    .bind(p.amount_kopecks)
    .bind(p.idempotence_key)
    .bind(p.return_url)
    .bind(p.receipt_email.map(str::to_owned))
    .bind(p.receipt_phone.map(str::to_owned))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn payment(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{PAYMENT} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn payment_by_provider_id(
    conn: &mut AnyConnection,
    provider_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PAYMENT} WHERE provider_payment_id = $1"
    )))
    .bind(provider_id)
    .fetch_optional(conn)
    .await
}

/// The consultation's payment attempt in flight or succeeded, if any.
pub async fn live_payment(
    conn: &mut AnyConnection,
    consultation: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PAYMENT} WHERE consultation_id = $1 AND status IN \
         ('awaiting_contact', 'creating', 'pending', 'waiting_for_capture', 'succeeded')"
    )))
    .bind(consultation)
    .fetch_optional(conn)
    .await
}

/// The receipt contact of the consultation's latest attempt that had one.
pub async fn last_contact(
    conn: &mut AnyConnection,
    consultation: &str,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT receipt_email, receipt_phone FROM payments WHERE consultation_id = $1 \
         AND (receipt_email IS NOT NULL OR receipt_phone IS NOT NULL) ORDER BY created_at DESC, id LIMIT 1",
    )
    .bind(consultation)
    .fetch_optional(conn)
    .await?;
    Ok(row.unwrap_or((None, None)))
}

/// Every attempt of a consultation, oldest first.
pub async fn payments_of(
    pool: &AnyPool,
    consultation: &str,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PAYMENT} WHERE consultation_id = $1 ORDER BY created_at, id"
    )))
    .bind(consultation)
    .fetch_all(pool)
    .await
}

/// The provider created the payment: its id, status and page.
pub async fn created(
    conn: &mut AnyConnection,
    id: &str,
    provider_id: &str,
    status: &str,
    confirmation_url: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET provider_payment_id = $1, status = $2, confirmation_url = $3, last_error = NULL, \
         updated_at = $4 WHERE id = $5 AND status = 'creating'",
    )
    .bind(provider_id)
    .bind(status)
    .bind(confirmation_url.map(str::to_owned))
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Move a payment to `status` if it is in `from` (a status never moves backwards: the caller
/// passes the states it may come from). True if it moved.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    from: &[&str],
    status: &str,
    cancel: Option<(&str, &str)>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let placeholders = crate::platform::db::placeholders(6, from.len());
    let sql = format!(
        "UPDATE payments SET status = $1, cancel_party = COALESCE($2, cancel_party), \
         cancel_reason = COALESCE($3, cancel_reason), updated_at = $4, \
         succeeded_at = CASE WHEN $1 = 'succeeded' THEN $4 ELSE succeeded_at END, \
         canceled_at = CASE WHEN $1 IN ('canceled', 'failed') THEN $4 ELSE canceled_at END \
         WHERE id = $5 AND status IN ({})",
        placeholders
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(status)
        .bind(cancel.map(|c| c.0.to_owned()))
        .bind(cancel.map(|c| c.1.to_owned()))
        .bind(now)
        .bind(id);
    for f in from {
        q = q.bind(*f);
    }
    Ok(q.execute(conn).await?.rows_affected() == 1)
}

pub async fn set_error(pool: &AnyPool, id: &str, error: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payments SET last_error = $1, updated_at = $2 WHERE id = $3")
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Read back and found unchanged: the next look waits another reconciliation period.
pub async fn touch(pool: &AnyPool, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payments SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The contact the receipt goes to (a patient who gave it at checkout).
pub async fn set_contact(
    conn: &mut AnyConnection,
    id: &str,
    email: Option<&str>,
    phone: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET receipt_email = $1, receipt_phone = $2, status = 'creating', updated_at = $3 \
         WHERE id = $4 AND status = 'awaiting_contact'",
    )
    .bind(email.map(str::to_owned))
    .bind(phone.map(str::to_owned))
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_refunded(
    conn: &mut AnyConnection,
    id: &str,
    kopecks: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payments SET refunded_kopecks = refunded_kopecks + $1, updated_at = $2 WHERE id = $3")
        .bind(kopecks)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Payments at the provider whose state has not changed since `before` (a notification may be
/// lost): to read back.
pub async fn stale_payments(pool: &AnyPool, before: i64) -> Result<Vec<PaymentRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PAYMENT} WHERE status IN ('pending', 'waiting_for_capture') AND provider_payment_id IS NOT NULL \
         AND updated_at < $1 ORDER BY updated_at LIMIT 200"
    )))
    .bind(before)
    .fetch_all(pool)
    .await
}

/// Succeeded payments whose consultation still awaits payment (a stop between the two).
pub async fn succeeded_unapplied(pool: &AnyPool) -> Result<Vec<PaymentRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PAYMENT} WHERE status = 'succeeded' AND consultation_id IN \
         (SELECT id FROM consultations WHERE status = 'booked') LIMIT 200"
    )))
    .fetch_all(pool)
    .await
}

/// Admins' list: payments created in [from, to), optionally of one status, newest first.
pub async fn list_payments(
    pool: &AnyPool,
    from: i64,
    to: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<PaymentRow>), sqlx::Error> {
    window(
        pool,
        PAYMENT,
        "payments",
        None,
        (from, to),
        status,
        (limit, offset),
    )
    .await
}

// ---- refunds ------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRow {
    pub id: String,
    pub payment_id: String,
    pub consultation_id: String,
    pub status: String,
    pub amount_kopecks: i64,
    pub reason: String,
    pub requested_by: Option<String>,
    pub provider_refund_id: Option<String>,
    pub idempotence_key: String,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub succeeded_at: Option<i64>,
}

const REFUND: &str = "SELECT id, payment_id, consultation_id, status, amount_kopecks, reason, requested_by, \
    provider_refund_id, idempotence_key, last_error, created_at, updated_at, succeeded_at FROM refunds";

pub struct NewRefund<'a> {
    pub id: &'a str,
    pub payment_id: &'a str,
    pub consultation_id: &'a str,
    pub amount_kopecks: i64,
    pub reason: &'a str,
    pub requested_by: Option<&'a str>,
    pub idempotence_key: &'a str,
}

pub async fn insert_refund(
    conn: &mut AnyConnection,
    r: NewRefund<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, consultation_id, status, amount_kopecks, reason, requested_by, \
         idempotence_key, created_at, updated_at) VALUES ($1, $2, $3, 'creating', $4, $5, $6, $7, $8, $8)",
    )
    .bind(r.id)
    .bind(r.payment_id)
    .bind(r.consultation_id)
    .bind(r.amount_kopecks)
    .bind(r.reason)
    .bind(r.requested_by.map(str::to_owned))
    .bind(r.idempotence_key)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn refund(conn: &mut AnyConnection, id: &str) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{REFUND} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn refund_by_provider_id(
    conn: &mut AnyConnection,
    provider_id: &str,
) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{REFUND} WHERE provider_refund_id = $1"
    )))
    .bind(provider_id)
    .fetch_optional(conn)
    .await
}

/// The refunds of these payments, oldest first.
pub async fn refunds_of_payments(
    pool: &AnyPool,
    payments: &[&str],
) -> Result<Vec<RefundRow>, sqlx::Error> {
    of_payments(pool, REFUND, payments).await
}

/// Refunds asked for and not failed: what is promised back already.
pub async fn promised_back(conn: &mut AnyConnection, payment: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_kopecks), 0) AS BIGINT) FROM refunds WHERE payment_id = $1 \
         AND status IN ('creating', 'pending', 'succeeded')",
    )
    .bind(payment)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

pub async fn refund_created(
    conn: &mut AnyConnection,
    id: &str,
    provider_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refunds SET provider_refund_id = $1, status = CASE WHEN status = 'creating' THEN 'pending' ELSE status END, \
         last_error = NULL, updated_at = $2 WHERE id = $3",
    )
    .bind(provider_id)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Move a refund on (never back from succeeded or canceled). True if it moved.
pub async fn set_refund_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE refunds SET status = $1, updated_at = $2, \
         succeeded_at = CASE WHEN $1 = 'succeeded' THEN $2 ELSE succeeded_at END \
         WHERE id = $3 AND status IN ('creating', 'pending') AND status <> $1",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn refund_error(
    pool: &AnyPool,
    id: &str,
    error: &str,
    failed: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refunds SET last_error = $1, updated_at = $2, \
         status = CASE WHEN $3 = 1 AND status = 'creating' THEN 'failed' ELSE status END WHERE id = $4",
    )
    .bind(error)
    .bind(now)
    .bind(i64::from(failed))
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn stale_refunds(pool: &AnyPool, before: i64) -> Result<Vec<RefundRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{REFUND} WHERE status = 'pending' AND provider_refund_id IS NOT NULL AND updated_at < $1 \
         ORDER BY updated_at LIMIT 200"
    )))
    .bind(before)
    .fetch_all(pool)
    .await
}

/// Read back and unchanged: not stale again until another `reconcile_after`.
pub async fn touch_refund(pool: &AnyPool, id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refunds SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Admins' list: refunds created in [from, to), optionally of one status, newest first.
pub async fn list_refunds(
    pool: &AnyPool,
    from: i64,
    to: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<RefundRow>), sqlx::Error> {
    window(
        pool,
        REFUND,
        "refunds",
        None,
        (from, to),
        status,
        (limit, offset),
    )
    .await
}

// ---- receipts -----------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReceiptRow {
    pub id: String,
    pub payment_id: String,
    pub refund_id: Option<String>,
    pub kind: String,
    pub status: String,
    pub amount_kopecks: i64,
    pub provider_receipt_id: Option<String>,
    pub fiscal_document_number: Option<String>,
    pub fiscal_storage_number: Option<String>,
    pub fiscal_attribute: Option<String>,
    pub registered_at: Option<String>,
    pub fiscal_provider_id: Option<String>,
    pub items: Option<String>,
    pub attempts: i64,
    pub flagged_at: Option<i64>,
    pub emailed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const RECEIPT: &str = "SELECT id, payment_id, refund_id, kind, status, amount_kopecks, provider_receipt_id, \
    fiscal_document_number, fiscal_storage_number, fiscal_attribute, registered_at, fiscal_provider_id, items, \
    attempts, flagged_at, emailed_at, created_at, updated_at FROM receipts";

pub async fn insert_receipt(
    conn: &mut AnyConnection,
    id: &str,
    payment: &str,
    refund: Option<&str>,
    amount: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO receipts (id, payment_id, refund_id, kind, status, amount_kopecks, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(payment)
    .bind(refund.map(str::to_owned))
    .bind(if refund.is_some() { "refund" } else { "payment" })
    .bind(amount)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn receipt(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ReceiptRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{RECEIPT} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The fiscal data arrived.
pub struct Fiscal<'a> {
    pub provider_receipt_id: &'a str,
    pub document_number: &'a str,
    pub storage_number: &'a str,
    pub attribute: &'a str,
    pub registered_at: &'a str,
    pub provider_id: Option<&'a str>,
    pub items: &'a str,
}

/// Store the fiscal data of a pending receipt; false if it was registered already.
pub async fn registered(
    conn: &mut AnyConnection,
    id: &str,
    f: Fiscal<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE receipts SET status = 'registered', provider_receipt_id = $1, fiscal_document_number = $2, \
         fiscal_storage_number = $3, fiscal_attribute = $4, registered_at = $5, fiscal_provider_id = $6, \
         items = $7, updated_at = $8 WHERE id = $9 AND status = 'pending'",
    )
    .bind(f.provider_receipt_id)
    .bind(f.document_number)
    .bind(f.storage_number)
    .bind(f.attribute)
    .bind(f.registered_at)
    .bind(f.provider_id.map(str::to_owned))
    .bind(f.items)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// One more look found it pending; `flag`: it is overdue now (flagged once).
pub async fn looked(
    conn: &mut AnyConnection,
    id: &str,
    flag: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE receipts SET attempts = attempts + 1, updated_at = $1, \
         flagged_at = CASE WHEN $2 = 1 AND flagged_at IS NULL THEN $1 ELSE flagged_at END WHERE id = $3",
    )
    .bind(now)
    .bind(i64::from(flag))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The receipts of these payments (and of their refunds), oldest first.
pub async fn receipts_of_payments(
    pool: &AnyPool,
    payments: &[&str],
) -> Result<Vec<ReceiptRow>, sqlx::Error> {
    of_payments(pool, RECEIPT, payments).await
}

/// `select`'s rows whose `payment_id` is one of `payments`, oldest first.
async fn of_payments<T>(
    pool: &AnyPool,
    select: &str,
    payments: &[&str],
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    if payments.is_empty() {
        return Ok(Vec::new());
    }
    let ids = crate::platform::db::placeholders(1, payments.len());
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{select} WHERE payment_id IN ({ids}) ORDER BY created_at, id"
    )));
    for p in payments {
        q = q.bind(*p);
    }
    q.fetch_all(pool).await
}

/// Admins' list: receipts created in [from, to), optionally of one status or only flagged.
pub async fn list_receipts(
    pool: &AnyPool,
    from: i64,
    to: i64,
    status: Option<&str>,
    flagged: bool,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<ReceiptRow>), sqlx::Error> {
    window(
        pool,
        RECEIPT,
        "receipts",
        Some(flagged),
        (from, to),
        status,
        (limit, offset),
    )
    .await
}

/// One page of `table` (read with `select`) created in [from, to), optionally of one status
/// (and, for receipts, `flagged`: only those flagged and still pending), newest first, with
/// the total.
async fn window<T>(
    pool: &AnyPool,
    select: &str,
    table: &str,
    flagged: Option<bool>,
    (from, to): (i64, i64),
    status: Option<&str>,
    (limit, offset): (i64, i64),
) -> Result<(i64, Vec<T>), sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let mut filter =
        " WHERE created_at >= $1 AND created_at < $2 AND ($3 IS NULL OR status = $3)".to_owned();
    let mut next = 4;
    if flagged.is_some() {
        filter.push_str(" AND ($4 = 0 OR (flagged_at IS NOT NULL AND status = 'pending'))");
        next = 5;
    }
    let mut count = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table}{filter}"
    )))
    .bind(from)
    .bind(to)
    .bind(status.map(str::to_owned));
    let mut rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{select}{filter} ORDER BY created_at DESC, id LIMIT ${next} OFFSET ${}",
        next + 1
    )))
    .bind(from)
    .bind(to)
    .bind(status.map(str::to_owned));
    if let Some(f) = flagged {
        count = count.bind(i64::from(f));
        rows = rows.bind(i64::from(f));
    }
    let (total,): (i64,) = count.fetch_one(pool).await?;
    let rows = rows.bind(limit).bind(offset).fetch_all(pool).await?;
    Ok((total, rows))
}
