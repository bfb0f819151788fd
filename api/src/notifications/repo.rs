//! The SQL of `emails`: a message is queued with its outbound call in the caller's
//! transaction (once per `dedup_key`), marked sent after the server's `250`, or failed.

use serde_json::json;
use sqlx::{AnyConnection, AnyPool};

use super::settings::SYSTEM;
use crate::platform::outbound::{self, NewCall};

/// An image the HTML shows as `cid:<content_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    pub content_id: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub recipient: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub inline: &'a [InlineImage],
    /// What it is about: `receipt`, …
    pub kind: &'a str,
    /// The id of that (a receipt's id).
    pub ref_id: Option<&'a str>,
    /// One message per key, however often it is asked for.
    pub dedup_key: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailRow {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    pub kind: String,
    pub ref_id: Option<String>,
    pub inline_images: Option<String>,
    pub status: String,
    pub message_id: Option<String>,
    pub last_error: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

impl EmailRow {
    /// The inline images stored with it.
    pub fn images(&self) -> Vec<InlineImage> {
        let Some(raw) = &self.inline_images else {
            return Vec::new();
        };
        let parsed: Vec<serde_json::Value> = serde_json::from_str(raw).unwrap_or_default();
        parsed
            .iter()
            .filter_map(|v| {
                Some(InlineImage {
                    content_id: v["contentId"].as_str()?.to_owned(),
                    content_type: v["contentType"].as_str()?.to_owned(),
                    bytes: hex::decode(v["hex"].as_str()?).ok()?,
                })
            })
            .collect()
    }
}

const EMAIL: &str = "SELECT id, recipient, subject, text_body, html_body, kind, ref_id, inline_images, \
    status, message_id, last_error, attempts, created_at, sent_at FROM emails";

/// Queue a message and its send call, in the caller's transaction. `None`: one with this
/// `dedup_key` was queued before (nothing new is queued).
pub async fn queue(
    conn: &mut AnyConnection,
    email: NewEmail<'_>,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let images = (!email.inline.is_empty()).then(|| {
        json!(
            email
                .inline
                .iter()
                .map(
                    |i| json!({"contentId": i.content_id, "contentType": i.content_type,
                                "hex": hex::encode(&i.bytes)})
                )
                .collect::<Vec<_>>()
        )
        .to_string()
    });
    let inserted: Option<(String,)> = sqlx::query_as(
        "INSERT INTO emails (id, recipient, subject, text_body, html_body, kind, ref_id, inline_images, \
         dedup_key, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(email.recipient)
    .bind(email.subject)
    .bind(email.text)
    .bind(email.html)
    .bind(email.kind)
    .bind(email.ref_id)
    .bind(images)
    .bind(email.dedup_key)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    send_call(conn, &id, now).await?;
    Ok(Some(id))
}

/// Queue the call that sends message `id`. Each message is its own line in the queue: one
/// recipient's server down holds back no other message.
async fn send_call(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), sqlx::Error> {
    outbound::enqueue(
        conn,
        NewCall {
            system: SYSTEM,
            operation: "send",
            consultation_id: &format!("email:{id}"),
            payload: Some(json!({"email": id})),
        },
        now,
    )
    .await?;
    Ok(())
}

/// Put a failed message back in the queue, with a new send call. False if it is not failed.
pub async fn requeue(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE emails SET status = 'queued', last_error = NULL WHERE id = $1 AND status = 'failed'",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    send_call(conn, id, now).await?;
    Ok(true)
}

pub async fn email(conn: &mut AnyConnection, id: &str) -> Result<Option<EmailRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{EMAIL} WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The server took it. False if it was not queued (sent or failed before).
pub async fn sent(
    conn: &mut AnyConnection,
    id: &str,
    message_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE emails SET status = 'sent', message_id = $2, sent_at = $3, last_error = NULL, \
         attempts = attempts + 1 WHERE id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(message_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A try that did not work (it will be tried again).
pub async fn tried(pool: &AnyPool, id: &str, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE emails SET last_error = $2, attempts = attempts + 1 WHERE id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Given up on, in the caller's transaction. False if it was not queued.
pub async fn give_up(conn: &mut AnyConnection, id: &str, error: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE emails SET last_error = $2, attempts = attempts + 1, status = 'failed' \
         WHERE id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One page of messages, newest first.
pub async fn list(
    pool: &AnyPool,
    from: i64,
    to: i64,
    status: Option<&str>,
    kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<EmailRow>), sqlx::Error> {
    let filter = " WHERE created_at >= $1 AND created_at < $2 AND ($3 IS NULL OR status = $3) \
                  AND ($4 IS NULL OR kind = $4)";
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM emails{filter}"
    )))
    .bind(from)
    .bind(to)
    .bind(status.map(str::to_owned))
    .bind(kind.map(str::to_owned))
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{EMAIL}{filter} ORDER BY created_at DESC, id LIMIT $5 OFFSET $6"
    )))
    .bind(from)
    .bind(to)
    .bind(status.map(str::to_owned))
    .bind(kind.map(str::to_owned))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((total, rows))
}
