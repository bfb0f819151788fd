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
