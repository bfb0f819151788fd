//! The audit log's writer: who read or changed what, appended in the same transaction as the
//! change (or alone, for reads). The table refuses UPDATE and DELETE (database triggers); the
//! API that reads it is the `audit` capability.

use sqlx::AnyConnection;

use super::clock::now_ms;
use crate::domain::Caller;

/// Append one entry. Audit times are the wall clock: when it really happened.
pub async fn audit(
    conn: &mut AnyConnection,
    caller: Option<&Caller>,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let (kind, id, role) = caller
        .map(Caller::actor)
        .unwrap_or(("system", None, "system"));
    sqlx::query(
        "INSERT INTO audit_log (at, actor_kind, actor_id, actor_role, action, object_type, object_id, ip, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(now_ms())
    .bind(kind)
    .bind(id.map(str::to_owned))
    .bind(role)
    .bind(action)
    .bind(object_type)
    .bind(object_id.map(str::to_owned))
    .bind(caller.and_then(|c| c.ip.clone()))
    .bind(if details.is_null() { None } else { Some(details.to_string()) })
    .execute(conn)
    .await?;
    Ok(())
}

/// How often one person's reading of one list is recorded. The pages poll their lists (every
/// 30 s while open); a row per poll would bury the log's real events under ~11 500 rows a day
/// per open tab. Reading, changing or downloading one record is recorded every time (`audit`).
pub const LIST_READ_EVERY_MS: i64 = 10 * 60_000;

/// Record that `caller` read the list `action` as `details` say (its filter): at most once per
/// [`LIST_READ_EVERY_MS`] per person, list and filter. A different filter (a search) is always
/// recorded.
pub async fn audit_list_read(
    conn: &mut AnyConnection,
    caller: &Caller,
    action: &str,
    object_type: &str,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let (_, actor, _) = caller.actor();
    if let Some(actor) = actor {
        let recent: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM audit_log WHERE actor_id = $1 AND action = $2 AND at >= $3 \
             AND object_id IS NULL AND COALESCE(details, '') = $4 LIMIT 1",
        )
        .bind(actor.to_owned())
        .bind(action)
        .bind(now_ms() - LIST_READ_EVERY_MS)
        .bind(if details.is_null() {
            String::new()
        } else {
            details.to_string()
        })
        .fetch_optional(&mut *conn)
        .await?;
        if recent.is_some() {
            return Ok(());
        }
    }
    audit(conn, Some(caller), action, object_type, None, details).await
}
