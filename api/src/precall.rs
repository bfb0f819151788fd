//! The connection check before a consultation: a short test call through this server's SFU. The
//! page asks for a pair of join tokens of a fresh room of its own (`check-…`, never a
//! consultation's: never recorded, no waiting room), joins it twice — one peer sends the camera
//! and microphone, the other receives — and measures bitrate, loss and round trip on the way.
//!
//! Anyone may ask (a patient may check before they have a session), so it is bounded: a few
//! checks per address in ten minutes, and a cap on the checks running at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
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

/// How long the check's tokens admit their holders: the check runs ~10 s.
pub const TOKEN_TTL: Duration = Duration::from_secs(120);
/// Checks one address may run in [`WINDOW`].
pub const PER_ADDRESS: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(600);
/// Checks that may be under way at once (issued within [`TOKEN_TTL`]).
pub const AT_ONCE: usize = 50;

/// Who checked when (in memory: a restart forgets, which errs on the side of the user).
#[derive(Default)]
pub struct Checks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_address: HashMap<String, VecDeque<i64>>,
    recent: VecDeque<i64>,
}

impl Checks {
    /// Count a check from `address` at `now_ms`; `Err(secs)` until the next one is allowed.
    fn admit(&self, address: &str, now_ms: i64) -> Result<(), u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let window = WINDOW.as_millis() as i64;
        let ttl = TOKEN_TTL.as_millis() as i64;
        while inner.recent.front().is_some_and(|t| now_ms - t >= ttl) {
            inner.recent.pop_front();
        }
        if inner.recent.len() >= AT_ONCE {
            let oldest = inner.recent.front().copied().unwrap_or(now_ms);
            return Err(((oldest + ttl - now_ms).max(1000) / 1000) as u64);
        }
        if inner.by_address.len() > 10_000 {
            inner
                .by_address
                .retain(|_, times| times.back().is_some_and(|t| now_ms - t < window));
        }
        let times = inner.by_address.entry(address.to_owned()).or_default();
        while times.front().is_some_and(|t| now_ms - t >= window) {
            times.pop_front();
        }
        if times.len() >= PER_ADDRESS {
            let oldest = times.front().copied().unwrap_or(now_ms);
            return Err(((oldest + window - now_ms).max(1000) / 1000) as u64);
        }
        times.push_back(now_ms);
        inner.recent.push_back(now_ms);
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_ten_checks_in_ten_minutes() {
        let checks = Checks::default();
        for i in 0..PER_ADDRESS as i64 {
            assert_eq!(checks.admit("a", i * 1000), Ok(()));
        }
        assert_eq!(checks.admit("a", 10_000), Err(590));
        assert_eq!(checks.admit("b", 10_000), Ok(()), "another address");
        assert_eq!(
            checks.admit("a", 600_000),
            Ok(()),
            "the first one left the window"
        );
    }

    #[test]
    fn at_most_fifty_run_at_once() {
        let checks = Checks::default();
        for i in 0..AT_ONCE {
            assert_eq!(checks.admit(&format!("10.0.0.{i}"), 0), Ok(()));
        }
        assert_eq!(checks.admit("10.0.1.1", 1000), Err(119));
        assert_eq!(checks.admit("10.0.1.1", 120_000), Ok(()));
    }
}
