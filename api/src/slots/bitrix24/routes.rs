//! HTTP: the `ONBOOKING*` event handler Bitrix24 calls, and the admin view of the integration.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::events::{self, EventError, Received};
use super::repo;
use super::source::{Bitrix24, SYSTEM};
use super::sync::{SyncError, SyncReport};
use crate::domain::{Caller, Role};
use crate::http::{ApiError, Page, Params, Problem, page, to_rfc3339};
use crate::platform::audit::audit;
use crate::platform::outbound::RetryError;
use crate::state::ApiState;

fn integration(state: &ApiState) -> Result<&std::sync::Arc<Bitrix24>, ApiError> {
    state.bitrix24.as_ref().ok_or_else(|| {
        ApiError::conflict(
            "integration_disabled",
            "the Bitrix24 integration is not configured",
        )
    })
}

/// `ONBOOKINGADD/UPDATE/DELETE` from Bitrix24: form-encoded, verified by `auth[application_token]`
/// (constant-time), deduplicated, stored, answered at once; the booking is fetched and the slots
/// synchronised afterwards by the worker (events carry only an id and are never retried).
#[utoipa::path(post, path = "/api/v1/integrations/bitrix24/events", tag = "integrations",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "event=ONBOOKINGADD&data[ID]=66&ts=1751285594&auth[application_token]=…"),
    responses((status = 200, description = "accepted (or a duplicate, or an event Vizit does not use)"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem)))]
pub async fn event(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let b = integration(&state)?;
    match events::receive(&state, b, &body).await {
        Ok(Received::Accepted) => Ok((StatusCode::OK, "accepted").into_response()),
        Ok(Received::Duplicate) => Ok((StatusCode::OK, "duplicate").into_response()),
        Ok(Received::Ignored) => Ok((StatusCode::OK, "ignored").into_response()),
        Err(EventError::Unauthenticated) => Err(ApiError::InvalidCredentials),
        Err(EventError::NoBooking) => Err(ApiError::bad_request(
            "invalid_body",
            "data[ID] must be a booking id",
        )),
        Err(e @ EventError::BadTimestamp) => {
            Err(ApiError::bad_request("invalid_body", e.to_string()))
        }
        Err(EventError::Db(e)) => Err(e.into()),
    }
}

// ---- admin -------------------------------------------------------------------------------

/// The integration at a glance.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bitrix24Status {
    pub enabled: bool,
    pub last_sync_at: Option<String>,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_event_at: Option<String>,
    pub last_report: Option<SyncReport>,
    /// Updates waiting to reach Bitrix24 (it was down, or they are being retried).
    pub pending_outbound: i64,
    /// Updates that failed for good (an admin can retry them).
    pub failed_outbound: i64,
    pub oldest_pending_at: Option<String>,
    /// Live consultations whose Bitrix24 booking changed under them.
    pub slot_conflicts: i64,
    pub linked_doctors: i64,
    pub unprocessed_events: i64,
    pub calls: u64,
    pub call_errors: u64,
    pub retries: u64,
    pub rate_limit_waits: u64,
    pub portal_limit_hits: u64,
}

fn require_clinic(caller: &Caller) -> Result<(), ApiError> {
    Ok(caller.require(caller.is_clinic() || caller.is(Role::HeadDoctor))?)
}

#[utoipa::path(get, path = "/api/v1/admin/integrations/bitrix24", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, body = Bitrix24Status), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn status(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Bitrix24Status>, ApiError> {
    require_clinic(&caller)?;
    let pool = &state.db.pool;
    let (last_sync, last_success, last_error, last_error_at, last_event, last_report) =
        repo::health(pool).await?.unwrap_or_default();
    let queue = state.outbound.summary(SYSTEM).await?;
    let metrics = state.bitrix24.as_ref().map(|b| {
        let calls = b.metrics.calls();
        (
            calls.values().map(|c| c.0).sum::<u64>(),
            calls.values().map(|c| c.1).sum::<u64>(),
            b.metrics.retries(),
            b.metrics.rate_limit_waits(),
            b.metrics.portal_limit_hits(),
        )
    });
    let (calls, call_errors, retries, rate_limit_waits, portal_limit_hits) =
        metrics.unwrap_or_default();
    Ok(Json(Bitrix24Status {
        enabled: state.bitrix24.is_some(),
        last_sync_at: last_sync.map(to_rfc3339),
        last_success_at: last_success.map(to_rfc3339),
        last_error,
        last_error_at: last_error_at.map(to_rfc3339),
        last_event_at: last_event.map(to_rfc3339),
        last_report: last_report.and_then(|r| serde_json::from_str(&r).ok()),
        pending_outbound: queue.pending,
        failed_outbound: queue.failed,
        oldest_pending_at: queue.oldest_pending_at.map(to_rfc3339),
        slot_conflicts: repo::count(
            pool,
            "SELECT COUNT(*) FROM consultations WHERE slot_conflict_at IS NOT NULL AND status IN ('booked', 'paid', 'in_progress')",
        )
        .await?,
        linked_doctors: repo::count(
            pool,
            "SELECT COUNT(*) FROM doctors WHERE bitrix_resource_id IS NOT NULL",
        )
        .await?,
        unprocessed_events: state.inbound.unprocessed(SYSTEM).await?,
        calls,
        call_errors,
        retries,
        rate_limit_waits,
        portal_limit_hits,
    }))
}

/// Synchronise now and report what changed.
#[utoipa::path(post, path = "/api/v1/admin/integrations/bitrix24/sync", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, body = SyncReport), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 502, body = Problem)))]
pub async fn sync_now(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<SyncReport>, ApiError> {
    require_clinic(&caller)?;
    let b = integration(&state)?.clone();
    let mut conn = state.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(&caller),
        "bitrix24.sync",
        "integration",
        Some("bitrix24"),
        serde_json::Value::Null,
    )
    .await?;
    drop(conn);
    match super::sync::sync(&state, &b).await {
        Ok(report) => Ok(Json(report)),
        Err(SyncError::Bitrix24(e)) => Err(ApiError::Upstream {
            code: "bitrix24_unavailable",
            message: e.to_string(),
        }),
        Err(SyncError::Db(e)) => Err(e.into()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboundQuery {
    /// pending, done or failed (default: all).
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// One update on its way to Bitrix24.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboundView {
    pub id: i64,
    pub operation: String,
    pub consultation_id: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
    pub created_at: String,
    pub done_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/admin/integrations/bitrix24/outbound", tag = "integrations", security(("bearer" = [])),
    params(OutboundQuery), responses((status = 200, body = Page<OutboundView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn outbound_list(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<OutboundQuery>,
) -> Result<Json<Page<OutboundView>>, ApiError> {
    require_clinic(&caller)?;
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.status
        && !["pending", "done", "failed"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "status must be pending, done or failed",
        ));
    }
    let (total, rows) = state
        .outbound
        .list(SYSTEM, q.status.as_deref(), limit, offset)
        .await?;
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(|r| OutboundView {
                next_attempt_at: (r.status == "pending").then(|| to_rfc3339(r.next_attempt_at)),
                id: r.id,
                operation: r.operation,
                consultation_id: r.consultation_id,
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
                outcome: r.outcome,
                created_at: to_rfc3339(r.created_at),
                done_at: r.done_at.map(to_rfc3339),
            })
            .collect(),
        total,
        limit,
        offset,
    }))
}

/// Put a failed update back in the queue.
#[utoipa::path(post, path = "/api/v1/admin/integrations/bitrix24/outbound/{id}/retry", tag = "integrations", security(("bearer" = [])),
    params(("id" = i64, Path, description = "outbound call id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn outbound_retry(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_clinic(&caller)?;
    let b = integration(&state)?.clone();
    let id: i64 = raw
        .parse()
        .map_err(|_| ApiError::NotFound("outbound call"))?;
    match state.outbound.retry(SYSTEM, id).await {
        Ok(()) => {}
        Err(RetryError::NotFound) => return Err(ApiError::NotFound("outbound call")),
        Err(RetryError::NotFailed) => {
            return Err(ApiError::conflict(
                "not_failed",
                "only failed calls can be retried",
            ));
        }
        Err(RetryError::Db(e)) => return Err(e.into()),
    }
    let mut conn = state.db.pool.acquire().await?;
    audit(
        &mut conn,
        Some(&caller),
        "bitrix24.outbound_retry",
        "outbound_call",
        Some(&id.to_string()),
        json!({}),
    )
    .await?;
    b.wake();
    Ok(StatusCode::NO_CONTENT)
}
