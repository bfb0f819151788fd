//! HTTP of the audit log: admins read who read or changed what.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::repo::{self, Filter};
use crate::domain::{Caller, Role};
use crate::http::{ApiError, Page, Params, Problem, page, time_range, to_rfc3339};
use crate::platform::audit::audit;
use crate::state::ApiState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    actor_id: Option<String>,
    #[serde(default)]
    object_id: Option<String>,
    /// One action (`recording.download`), or a family of them (`recording.*`).
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// One audit log entry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    id: i64,
    at: String,
    /// `user`, `api_key` or `system`.
    actor_kind: String,
    actor_id: Option<String>,
    actor_role: Option<String>,
    action: String,
    object_type: String,
    object_id: Option<String>,
    ip: Option<String>,
    details: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery), responses((status = 200, body = Page<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_log(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    caller.require(caller.is(Role::Admin))?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let (from, to) = time_range(q.from.as_deref(), q.to.as_deref())?;
    let (action, action_prefix) = match q.action {
        // Action names are lower case; so is the family, on either database.
        Some(a) if a.ends_with(".*") => (None, Some(a[..a.len() - 1].to_lowercase())),
        other => (other, None),
    };
    let filter = Filter {
        from,
        to,
        actor_id: q.actor_id,
        object_id: q.object_id,
        action,
        action_prefix,
    };
    let (total, rows) = repo::page(&state.db.pool, filter, limit, offset).await?;
    let items = rows
        .into_iter()
        .map(|e| AuditEntry {
            id: e.id,
            at: to_rfc3339(e.at),
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            actor_role: e.actor_role,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            ip: e.ip,
            details: e
                .details
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()),
        })
        .collect();
    // Reading the audit log is itself audited.
    let mut conn = state.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(&caller),
        "audit.read",
        "audit_log",
        None,
        serde_json::Value::Null,
    )
    .await?;
    Ok(Json(Page {
        items,
        total,
        limit,
        offset,
    }))
}
