//! The SQL of the chat.

use sqlx::AnyConnection;

/// A message, with its sender's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub seq: i64,
    pub id: String,
    pub consultation_id: String,
    pub sender_id: String,
    pub sender_role: String,
    pub sender_name: String,
    pub client_id: String,
    pub body: Option<String>,
    pub file_key: Option<String>,
    pub file_name: Option<String>,
    pub file_type: Option<String>,
    pub file_size: Option<i64>,
    pub file_sha256: Option<String>,
    pub conclusion: i64,
    pub created_at: i64,
}

const MESSAGE: &str = "SELECT m.seq, m.id, m.consultation_id, m.sender_id, m.sender_role, \
     u.name AS sender_name, m.client_id, m.body, m.file_key, m.file_name, m.file_type, \
     m.file_size, m.file_sha256, m.conclusion, m.created_at \
     FROM chat_messages m JOIN users u ON u.id = m.sender_id";

/// What a new message is.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub sender_id: &'a str,
    pub sender_role: &'a str,
    pub client_id: &'a str,
    pub body: Option<&'a str>,
    pub file: Option<NewFile<'a>>,
    pub conclusion: bool,
    pub created_at: i64,
}

pub struct NewFile<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub sha256: &'a str,
}

/// Add a message; false if this sender sent one with this `client_id` already.
pub async fn insert(conn: &mut AnyConnection, m: &NewMessage<'_>) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO chat_messages (id, consultation_id, sender_id, sender_role, client_id, body, \
         file_key, file_name, file_type, file_size, file_sha256, conclusion, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (consultation_id, sender_id, client_id) DO NOTHING",
    )
    .bind(m.id)
    .bind(m.consultation_id)
    .bind(m.sender_id)
    .bind(m.sender_role)
    .bind(m.client_id)
    .bind(m.body.map(str::to_owned))
    .bind(m.file.as_ref().map(|f| f.key.to_owned()))
    .bind(m.file.as_ref().map(|f| f.name.to_owned()))
    .bind(m.file.as_ref().map(|f| f.content_type.to_owned()))
    .bind(m.file.as_ref().map(|f| f.size))
    .bind(m.file.as_ref().map(|f| f.sha256.to_owned()))
    .bind(i64::from(m.conclusion))
    .bind(m.created_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The message a sender sent with `client_id`.
pub async fn by_client_id(
    conn: &mut AnyConnection,
    consultation: &str,
    sender: &str,
    client_id: &str,
) -> Result<Option<MessageRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MESSAGE} WHERE m.consultation_id = $1 AND m.sender_id = $2 AND m.client_id = $3"
    )))
    .bind(consultation)
    .bind(sender)
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// One message of a consultation.
pub async fn get(
    conn: &mut AnyConnection,
    consultation: &str,
    id: &str,
) -> Result<Option<MessageRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MESSAGE} WHERE m.consultation_id = $1 AND m.id = $2"
    )))
    .bind(consultation)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The consultation's messages after `after` (a `seq`), oldest first, at most `limit`.
pub async fn after(
    conn: &mut AnyConnection,
    consultation: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MESSAGE} WHERE m.consultation_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3"
    )))
    .bind(consultation)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
