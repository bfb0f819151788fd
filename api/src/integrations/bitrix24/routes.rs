//! HTTP: the `ONBOOKING*` event handler Bitrix24 calls, and the admin view of the integration.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use super::sync::{SyncError, SyncReport};
use super::{Bitrix24, outbound};
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::routes::{Page, Params, page, to_rfc3339};
use crate::{ApiState, now_ms};

const EVENTS: [&str; 3] = ["ONBOOKINGADD", "ONBOOKINGUPDATE", "ONBOOKINGDELETE"];

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
    let mut event = None;
    let mut id = None;
    let mut ts = None;
    let mut token = None;
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "event" => event = Some(v.into_owned()),
            "data[ID]" => id = Some(v.into_owned()),
            "ts" => ts = Some(v.into_owned()),
            "auth[application_token]" => token = Some(v.into_owned()),
            _ => {}
        }
    }
    let expected = b
        .settings
        .application_token
        .as_ref()
        .map(|t| t.expose_secret().as_bytes());
    let valid = match (expected, token.as_deref()) {
        (Some(expected), Some(given)) => bool::from(expected.ct_eq(given.as_bytes())),
        _ => false,
    };
    if !valid {
        b.metrics.event(false);
        tracing::warn!(
            configured = expected.is_some(),
            "Bitrix24 event refused: wrong or missing application token"
        );
        return Err(ApiError::InvalidCredentials);
    }
    let event = event.unwrap_or_default().to_uppercase();
    if !EVENTS.contains(&event.as_str()) {
        return Ok((StatusCode::OK, "ignored").into_response());
    }
    let Some(booking) = id.as_deref().and_then(|i| i.trim().parse::<i64>().ok()) else {
        b.metrics.event(false);
        return Err(ApiError::bad_request(
            "invalid_body",
            "data[ID] must be a booking id",
        ));
    };
    let ts = ts.unwrap_or_default();
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO integration_events (system, dedup_key, event, object_id, received_at) \
         VALUES ('bitrix24', $1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(format!("{event}:{booking}:{ts}"))
    .bind(&event)
    .bind(booking.to_string())
    .bind(now)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO integration_state (system, last_event_at) VALUES ('bitrix24', $1) \
         ON CONFLICT (system) DO UPDATE SET last_event_at = excluded.last_event_at",
    )
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    b.metrics.event(true);
    if inserted == 1 {
        b.request_sync();
        Ok((StatusCode::OK, "accepted").into_response())
    } else {
        Ok((StatusCode::OK, "duplicate").into_response())
    }
}

/// Events received and not yet handled.
pub async fn pending_events(state: &ApiState) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM integration_events WHERE system = 'bitrix24' AND processed_at IS NULL",
    )
    .fetch_one(&state.db.pool)
    .await?;
    Ok(n)
}

/// More events than this in one round are reconciled by the sync alone (no fetch each).
const FETCH_EACH_UP_TO: usize = 10;

/// Fetch the bookings events named, then synchronise; the events are marked handled with what
/// was found.
pub async fn handle_events_and_sync(
    state: &ApiState,
    b: &Bitrix24,
) -> Result<SyncReport, SyncError> {
    let events: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT id, event, object_id FROM integration_events WHERE system = 'bitrix24' AND processed_at IS NULL ORDER BY id LIMIT 500",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let mut outcomes = Vec::with_capacity(events.len());
    for (id, event, object) in &events {
        let booking = object.as_deref().and_then(|o| o.parse::<i64>().ok());
        let outcome = match booking {
            Some(booking) if events.len() <= FETCH_EACH_UP_TO => {
                match b.client.booking(booking).await? {
                    Some(bk) => format!(
                        "{event}: booking {} on resources {:?}",
                        bk.id, bk.resource_ids
                    ),
                    None => format!(
                        "{event}: booking {booking} is not in Bitrix24 (deleted or unknown)"
                    ),
                }
            }
            _ => format!("{event}: reconciled by the synchronisation"),
        };
        outcomes.push((*id, outcome));
    }
    let report = super::sync::sync(state, b).await?;
    let now = now_ms();
    for (id, outcome) in outcomes {
        sqlx::query("UPDATE integration_events SET processed_at = $1, outcome = $2 WHERE id = $3")
            .bind(now)
            .bind(outcome)
            .bind(id)
            .execute(&state.db.pool)
            .await?;
    }
    Ok(report)
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
    caller.require(caller.is_clinic() || caller.is(crate::domain::Role::HeadDoctor))
}

#[utoipa::path(get, path = "/api/v1/admin/integrations/bitrix24", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, body = Bitrix24Status), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn status(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Bitrix24Status>, ApiError> {
    require_clinic(&caller)?;
    let pool = &state.db.pool;
    type StateRow = (
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );
    let row: Option<StateRow> = sqlx::query_as(
        "SELECT last_sync_at, last_success_at, last_error, last_error_at, last_event_at, last_report FROM integration_state WHERE system = 'bitrix24'",
    )
    .fetch_optional(pool)
    .await?;
    let (last_sync, last_success, last_error, last_error_at, last_event, last_report) =
        row.unwrap_or_default();
    let count = |sql: &'static str| async move {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await?;
        Ok::<i64, sqlx::Error>(n)
    };
    let oldest: (Option<i64>,) =
        sqlx::query_as("SELECT MIN(created_at) FROM outbound_calls WHERE system = 'bitrix24' AND status = 'pending'")
            .fetch_one(pool)
            .await?;
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
        pending_outbound: count("SELECT COUNT(*) FROM outbound_calls WHERE system = 'bitrix24' AND status = 'pending'").await?,
        failed_outbound: count("SELECT COUNT(*) FROM outbound_calls WHERE system = 'bitrix24' AND status = 'failed'").await?,
        oldest_pending_at: oldest.0.map(to_rfc3339),
        slot_conflicts: count(
            "SELECT COUNT(*) FROM consultations WHERE slot_conflict_at IS NOT NULL AND status IN ('booked', 'paid', 'in_progress')",
        )
        .await?,
        linked_doctors: count("SELECT COUNT(*) FROM doctors WHERE bitrix_resource_id IS NOT NULL").await?,
        unprocessed_events: count("SELECT COUNT(*) FROM integration_events WHERE system = 'bitrix24' AND processed_at IS NULL").await?,
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
    state
        .audit(
            Some(&caller),
            "bitrix24.sync",
            "integration",
            Some("bitrix24"),
            serde_json::Value::Null,
        )
        .await?;
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

#[derive(sqlx::FromRow)]
struct OutboundRow {
    id: i64,
    operation: String,
    consultation_id: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    outcome: Option<String>,
    created_at: i64,
    done_at: Option<i64>,
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
    let (total,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM outbound_calls WHERE system = 'bitrix24' AND ($1 IS NULL OR status = $1)",
    )
    .bind(q.status.clone())
    .fetch_one(&state.db.pool)
    .await?;
    let rows: Vec<OutboundRow> = sqlx::query_as(
        "SELECT id, operation, consultation_id, status, attempts, next_attempt_at, last_error, outcome, created_at, done_at \
         FROM outbound_calls WHERE system = 'bitrix24' AND ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(q.status)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db.pool)
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
    let changed = sqlx::query(
        "UPDATE outbound_calls SET status = 'pending', next_attempt_at = $1, done_at = NULL WHERE id = $2 AND status = 'failed'",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if changed == 0 {
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM outbound_calls WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db.pool)
            .await?;
        return Err(match exists {
            None => ApiError::NotFound("outbound call"),
            Some(_) => ApiError::conflict("not_failed", "only failed calls can be retried"),
        });
    }
    state
        .audit(
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

/// Wait (bounded) for a consultation's queued Bitrix24 calls, for the request that made them.
pub async fn deliver_inline(state: &ApiState, consultation: &str) -> Option<outbound::Delivery> {
    let b = state.bitrix24.as_ref()?;
    let delivered = tokio::time::timeout(
        b.settings.inline_timeout,
        outbound::deliver_consultation(state, b, consultation),
    )
    .await;
    match delivered {
        Ok(Ok(d)) => Some(d),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Bitrix24 delivery: database error; the worker will retry");
            Some(outbound::Delivery::Pending("database error".into()))
        }
        Err(_) => Some(outbound::Delivery::Pending(
            "Bitrix24 did not answer in time".into(),
        )),
    }
}
