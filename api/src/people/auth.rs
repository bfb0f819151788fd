//! Authentication: every request's `Authorization: Bearer …` (a session token of a person, or
//! the portal's API key) — or, without one, the session cookie of a browser that signed in
//! through ESIA — becomes the [`Caller`] the rules read; sessions expire and are revocable,
//! keys are revocable. A cookie-authenticated request that changes something must come from
//! Vizit's own pages.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::service::{self, Error};
use crate::domain::Caller;
use crate::http::{ApiError, client_ip, cookie, same_origin, session_cookie};
use crate::state::ApiState;

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts);
        let secret = match parts.headers.get(header::AUTHORIZATION) {
            Some(header) => header
                .to_str()
                .map_err(|_| ApiError::InvalidCredentials)?
                .strip_prefix("Bearer ")
                .map(|s| s.trim().to_owned())
                .ok_or(ApiError::InvalidCredentials)?,
            None => {
                let name = session_cookie(state.settings.secure_cookies);
                let secret = cookie(&parts.headers, name).ok_or(ApiError::Unauthenticated)?;
                if !same_origin(parts) {
                    return Err(ApiError::Forbidden(
                        "a request with the session cookie must come from Vizit's own pages",
                    ));
                }
                secret
            }
        };
        match service::authenticate(&state.core(), &secret).await {
            Ok((principal, via)) => Ok(Caller { principal, ip, via }),
            Err(Error::InvalidCredentials) => Err(ApiError::InvalidCredentials),
            Err(e) => Err(ApiError::Internal(e.into())),
        }
    }
}
