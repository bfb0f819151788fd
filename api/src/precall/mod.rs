//! The connection check before a consultation: a short test call through this server's SFU. The
//! page asks for a pair of join tokens of a fresh room of its own (`check-…`, never a
//! consultation's: never recorded, no waiting room), joins it twice — one peer sends the camera
//! and microphone, the other receives — and measures bitrate, loss and round trip on the way.
//!
//! Anyone may ask (a patient may check before they have a session), so it is bounded: a few
//! checks per address in ten minutes, and a cap on the checks running at once.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vizit_signaling::CallRole;

use crate::http::{ApiError, Problem, client_ip_behind, to_rfc3339};
use crate::state::ApiState;

pub mod limits;

/// How long the check's tokens admit their holders: the check runs ~10 s.
pub const TOKEN_TTL: Duration = limits::TOKEN_TTL;

/// A test room and its two tokens.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCheck {
    /// The room: `check-` and a random id.
    pub room: String,
    /// Two join tokens of the room (docs/signaling.md): the sending peer's and the receiving
    /// peer's.
    pub tokens: Vec<String>,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/connection-check", tag = "consultations",
    responses((status = 201, body = ConnectionCheck), (status = 429, body = Problem, headers(("Retry-After" = u64, description = "Seconds until a check is allowed again")))))]
/// Two join tokens of a fresh test room, for the pre-call check's short call through this
/// server: no session needed; at most 10 per address in 10 minutes, 50 at once.
pub async fn connection_check(
    State(state): State<ApiState>,
    parts: Parts,
) -> Result<(StatusCode, Json<ConnectionCheck>), ApiError> {
    let address = client_ip_behind(&parts, &state.settings.trusted_proxies)
        .unwrap_or_else(|| "unknown".into());
    let now = state.now();
    state
        .checks
        .admit(&address, now)
        .map_err(|secs| ApiError::TooManyRequests {
            retry_after_secs: secs,
            message: format!("too many connection checks: try again in {secs} s"),
        })?;
    let room = format!("check-{}", uuid::Uuid::new_v4().simple());
    let tokens = ["send", "receive"]
        .iter()
        .map(|who| {
            state.keys.issue(
                &room,
                &format!("{room}-{who}"),
                CallRole::Doctor,
                "Проверка связи",
                TOKEN_TTL,
            )
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(ConnectionCheck {
            room,
            tokens,
            expires_at: to_rfc3339(now + TOKEN_TTL.as_millis() as i64),
        }),
    ))
}
