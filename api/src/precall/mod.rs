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

/// A call link's consultation, as the call page shows it before the device check.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkConsultation {
    pub id: String,
    /// `paid` or `in_progress` (a link to any other is refused).
    pub status: String,
    pub starts_at: String,
    pub ends_at: String,
    /// The clinic's zone of the slot (IANA); the page shows times in the viewer's own.
    pub time_zone: String,
    /// The call may be joined from `opensAt` until `closesAt`.
    pub opens_at: String,
    pub closes_at: String,
    pub doctor_name: String,
    pub doctor_specialty: String,
    pub patient_name: String,
}

/// What a call link is for.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallLink {
    pub participant_id: String,
    /// `patient` or `doctor`.
    pub role: String,
    pub name: String,
    /// When the link stops admitting.
    pub expires_at: String,
    /// The consultation, for a consultation's call; absent for another room (`vizit token`).
    pub consultation: Option<LinkConsultation>,
}

#[utoipa::path(get, path = "/api/v1/call/link", tag = "consultations", security(("callToken" = [])),
    responses((status = 200, body = CallLink), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
/// Check a call link before the call page asks for the camera: who it is for, whom they meet
/// and when. Refusals say why: `link_invalid`, `link_expired` (401); `not_a_party`,
/// `account_disabled` (403); `not_paid`, `consultation_cancelled`, `consultation_completed`,
/// `consultation_expired` (409).
pub async fn call_link(
    State(state): State<ApiState>,
    parts: Parts,
) -> Result<Json<CallLink>, ApiError> {
    use crate::domain::{ConsultationId, JoinWindow};
    use vizit_signaling::TokenError;

    let invalid = || ApiError::Unauthorized {
        code: "link_invalid",
        message: "the call link is not valid: open the link from the invitation as it is".into(),
    };
    let token = crate::http::bearer(&parts).ok_or_else(invalid)?;
    let claims = state.keys.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::Unauthorized {
            code: "link_expired",
            message: "the call link has expired".into(),
        },
        TokenError::Invalid(_) => invalid(),
    })?;
    let role = match claims.role {
        CallRole::Doctor => "doctor",
        CallRole::Patient => "patient",
    };
    let mut link = CallLink {
        participant_id: claims.sub.clone(),
        role: role.into(),
        name: claims.name.clone(),
        expires_at: to_rfc3339(claims.exp as i64 * 1000),
        consultation: None,
    };
    let Ok(cid) = claims.room.parse::<ConsultationId>() else {
        // Not a consultation's room: nothing more to say about it.
        return Ok(Json(link));
    };
    use crate::consultations::CallRefusal as R;
    let refused = |code: &'static str, what: &str| {
        ApiError::conflict(code, format!("the consultation {what}"))
    };
    let c = match crate::consultations::admits_call(&state.core(), cid.as_str(), &claims.sub)
        .await
        .map_err(ApiError::Internal)?
    {
        Ok(c) => c,
        Err(R::NotFound) => return Err(ApiError::NotFound("consultation")),
        Err(why @ (R::NotAParty | R::AccountDisabled)) => {
            return Err(ApiError::Forbidden(why.words()));
        }
        Err(R::NotPaid) => return Err(refused("not_paid", "is not paid yet")),
        Err(R::Cancelled) => return Err(refused("consultation_cancelled", "was cancelled")),
        Err(R::Completed) => return Err(refused("consultation_completed", "is over")),
        Err(R::Expired) => return Err(refused("consultation_expired", "expired unpaid")),
    };
    let window = JoinWindow::around(
        c.starts_at,
        c.ends_at,
        state.settings.join_before,
        state.settings.join_grace,
    );
    link.consultation = Some(LinkConsultation {
        id: c.id.clone(),
        status: c.status.clone(),
        starts_at: to_rfc3339(c.starts_at),
        ends_at: to_rfc3339(c.ends_at),
        time_zone: c.time_zone.clone(),
        opens_at: to_rfc3339(window.opens),
        closes_at: to_rfc3339(window.closes),
        doctor_name: c.doctor_name.clone(),
        doctor_specialty: c.doctor_specialty.clone(),
        patient_name: c.patient_name.clone(),
    });
    Ok(Json(link))
}
