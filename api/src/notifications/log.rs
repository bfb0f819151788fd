//! The SQL of the notification log: `notifications` (one per event and recipient, by
//! `dedup_key`), `notification_deliveries` (one per channel tried) and `notification_statuses`
//! (each status given, with its source). A status only moves forward (see [`Status::follows`]).

use sqlx::{AnyConnection, AnyPool};

/// Where a message on one channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "sent" => Status::Sent,
            "delivered" => Status::Delivered,
            "read" => Status::Read,
            "failed" => Status::Failed,
            _ => return None,
        })
    }

    fn rank(self) -> u8 {
        match self {
            Status::Queued | Status::Failed => 0,
            Status::Sent => 1,
            Status::Delivered => 2,
            Status::Read => 3,
        }
    }

    /// Whether a delivery at `self` moves to `next`: forward only; `failed` only from `queued`
    /// or `sent` (a message read or delivered did not fail); a later success beats a failure (a
    /// retry went through, a callback came late). The same status again changes nothing.
    pub fn follows(self, next: Status) -> bool {
        match next {
            Status::Failed => matches!(self, Status::Queued | Status::Sent),
            _ => next.rank() > self.rank(),
        }
    }
}

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotice<'a> {
    pub event: &'a str,
    pub recipient_id: &'a str,
    pub recipient_role: &'a str,
    pub consultation_id: Option<&'a str>,
    pub dedup_key: &'a str,
    /// What a fallback needs to write it again (`{"expired": true}`).
    pub context: Option<&'a str>,
}

/// Create it, in the caller's transaction. `None`: one with this key exists (nothing new).
pub async fn create(
    conn: &mut AnyConnection,
    n: &NewNotice<'_>,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let row: Option<(String,)> = sqlx::query_as(
        "INSERT INTO notifications (id, event, recipient_id, recipient_role, consultation_id, \
         dedup_key, created_at, context) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(n.event)
    .bind(n.recipient_id)
    .bind(n.recipient_role)
    .bind(n.consultation_id)
    .bind(n.dedup_key)
    .bind(now)
    .bind(n.context)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// A delivery on `channel`, queued (or failed at once with `failed`: no address).
pub async fn add_delivery(
    conn: &mut AnyConnection,
    notification: &str,
    channel: &str,
    open_token: Option<&str>,
    failed: Option<&str>,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let status = if failed.is_some() {
        Status::Failed
    } else {
        Status::Queued
    };
    sqlx::query(
        "INSERT INTO notification_deliveries (id, notification_id, channel, status, open_token, \
         detail, created_at, updated_at, failed_at, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, \
         (SELECT COUNT(*) + 1 FROM notification_deliveries WHERE notification_id = $2))",
    )
    .bind(&id)
    .bind(notification)
    .bind(channel)
    .bind(status.as_str())
    .bind(open_token)
    .bind(failed)
    .bind(now)
    .bind(failed.map(|_| now))
    .execute(&mut *conn)
    .await?;
    history(conn, &id, status, "vizit", now).await?;
    Ok(id)
}

async fn history(
    conn: &mut AnyConnection,
    delivery: &str,
    status: Status,
    source: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_statuses (id, delivery_id, seq, status, source, at) VALUES ($1, $2, \
         (SELECT COUNT(*) + 1 FROM notification_statuses WHERE delivery_id = $2), $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(delivery)
    .bind(status.as_str())
    .bind(source)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Give delivery `id` status `next` (from `source`) if it follows the one it has. False:
/// nothing changed (unknown delivery, a repeat, or a step back).
pub async fn apply(
    conn: &mut AnyConnection,
    id: &str,
    next: Status,
    source: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let current: Option<(String,)> =
        sqlx::query_as("SELECT status FROM notification_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(current) = current.and_then(|(s,)| Status::parse(&s)) else {
        return Ok(false);
    };
    if !current.follows(next) {
        return Ok(false);
    }
    let column = match next {
        Status::Queued => "updated_at",
        Status::Sent => "sent_at",
        Status::Delivered => "delivered_at",
        Status::Read => "read_at",
        Status::Failed => "failed_at",
    };
    // Compare-and-set on the status read: a concurrent change makes this one a no-op.
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE notification_deliveries SET status = $2, {column} = COALESCE({column}, $3), \
         updated_at = $3, detail = COALESCE($4, detail) WHERE id = $1 AND status = $5"
    )))
    .bind(id)
    .bind(next.as_str())
    .bind(now)
    .bind(detail)
    .bind(current.as_str())
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    history(conn, id, next, source, now).await?;
    Ok(true)
}

/// What a messenger delivery carries: where to, and the text (never medical).
pub async fn set_payload(
    conn: &mut AnyConnection,
    id: &str,
    address: &str,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE notification_deliveries SET address = $2, body = $3 WHERE id = $1")
        .bind(id)
        .bind(address)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// The provider's id of the message (MAX `mid`).
pub async fn set_provider_id(
    conn: &mut AnyConnection,
    id: &str,
    provider_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE notification_deliveries SET provider_id = $2 WHERE id = $1")
        .bind(id)
        .bind(provider_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A delivery as a channel's sender needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Outgoing {
    pub id: String,
    pub notification_id: String,
    pub channel: String,
    pub status: String,
    pub address: Option<String>,
    pub body: Option<String>,
}

pub async fn outgoing(conn: &mut AnyConnection, id: &str) -> Result<Option<Outgoing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, notification_id, channel, status, address, body FROM notification_deliveries \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A notification and its deliveries so far, for a fallback or a resend.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Notice {
    pub id: String,
    pub event: String,
    pub recipient_id: String,
    pub consultation_id: Option<String>,
    pub context: Option<String>,
}

pub async fn notice(conn: &mut AnyConnection, id: &str) -> Result<Option<Notice>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event, recipient_id, consultation_id, context FROM notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// (channel, status) of each delivery of notification `id`.
pub async fn deliveries_of(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT channel, status FROM notification_deliveries WHERE notification_id = $1 \
         ORDER BY created_at, seq, id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// The delivery whose link has this secret.
pub async fn by_token(
    conn: &mut AnyConnection,
    token: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM notification_deliveries WHERE open_token = $1")
            .bind(token)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(id,)| id))
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    #[test]
    fn a_status_only_moves_forward() {
        let all = [Queued, Sent, Delivered, Read, Failed];
        let allowed: Vec<(Status, Status)> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.follows(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Queued, Sent),
                (Queued, Delivered),
                (Queued, Read),
                (Queued, Failed),
                (Sent, Delivered),
                (Sent, Read),
                (Sent, Failed),
                (Delivered, Read),
                (Failed, Sent),
                (Failed, Delivered),
                (Failed, Read),
            ]
        );
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoticeRow {
    pub id: String,
    pub event: String,
    pub recipient_id: String,
    pub recipient_role: String,
    pub consultation_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub notification_id: String,
    pub channel: String,
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub failed_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusRow {
    pub delivery_id: String,
    pub status: String,
    pub source: String,
    pub at: i64,
}

/// A page of notifications, newest first, with their deliveries and histories.
pub async fn list(
    pool: &AnyPool,
    consultation: Option<&str>,
    recipient: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<NoticeRow>, Vec<DeliveryRow>, Vec<StatusRow>), sqlx::Error> {
    let filter =
        " WHERE ($1 IS NULL OR consultation_id = $1) AND ($2 IS NULL OR recipient_id = $2)";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM notifications{filter}"
    )))
    .bind(consultation.map(str::to_owned))
    .bind(recipient.map(str::to_owned))
    .fetch_one(pool)
    .await?;
    let notices: Vec<NoticeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, event, recipient_id, recipient_role, consultation_id, created_at \
         FROM notifications{filter} ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
    )))
    .bind(consultation.map(str::to_owned))
    .bind(recipient.map(str::to_owned))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    if notices.is_empty() {
        return Ok((total, notices, Vec::new(), Vec::new()));
    }
    // The page's deliveries and their histories in one query each.
    let ids = crate::platform::db::placeholders(1, notices.len());
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, notification_id, channel, status, detail, created_at, sent_at, delivered_at, \
         read_at, failed_at FROM notification_deliveries WHERE notification_id IN ({ids}) \
         ORDER BY created_at, seq, id"
    )));
    for n in &notices {
        q = q.bind(&n.id);
    }
    let deliveries: Vec<DeliveryRow> = q.fetch_all(pool).await?;
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT s.delivery_id, s.status, s.source, s.at FROM notification_statuses s \
         JOIN notification_deliveries d ON d.id = s.delivery_id \
         WHERE d.notification_id IN ({ids}) ORDER BY s.delivery_id, s.seq"
    )));
    for n in &notices {
        q = q.bind(&n.id);
    }
    let statuses: Vec<StatusRow> = q.fetch_all(pool).await?;
    Ok((total, notices, deliveries, statuses))
}

/// A person a notification goes to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Person {
    pub id: String,
    pub role: String,
    /// Their e-mail; for a patient without one, the last e-mail they gave for a receipt.
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Their MAX user id, if they linked MAX.
    pub max_id: Option<String>,
    /// Their choice of channels (`max,email`), if any.
    pub channels: Option<String>,
}

/// The consultation as notifications need it (no names, nothing medical).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Visit {
    pub id: String,
    pub status: String,
    pub doctor_id: String,
    pub patient_id: String,
    pub price_kopecks: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub time_zone: String,
    pub pay_by: i64,
    pub completed_at: Option<i64>,
}

pub async fn visit(conn: &mut AnyConnection, id: &str) -> Result<Option<Visit>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, status, doctor_id, patient_id, price_kopecks, starts_at, ends_at, time_zone, \
         pay_by, completed_at FROM consultations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

const PERSON: &str = "SELECT u.id, u.role, COALESCE(u.email, (SELECT p.receipt_email FROM payments p \
     JOIN consultations c ON c.id = p.consultation_id WHERE c.patient_id = u.id \
     AND p.receipt_email IS NOT NULL ORDER BY p.created_at DESC LIMIT 1)) AS email, u.phone, \
     (SELECT l.address FROM messenger_links l WHERE l.user_id = u.id AND l.channel = 'max') AS max_id, \
     (SELECT n.channels FROM notification_preferences n WHERE n.user_id = u.id) AS channels \
     FROM users u";

pub async fn person(conn: &mut AnyConnection, id: &str) -> Result<Option<Person>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PERSON} WHERE u.id = $1 AND u.disabled_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Every active person with this role (the clinic's admins, its head doctors).
pub async fn people_with_role(
    conn: &mut AnyConnection,
    role: &str,
) -> Result<Vec<Person>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PERSON} WHERE u.role = $1 AND u.disabled_at IS NULL ORDER BY u.id"
    )))
    .bind(role)
    .fetch_all(conn)
    .await
}
