//! Authentication: every request's `Authorization: Bearer …` (a session token of a person, or
//! the portal's API key) becomes the [`Caller`] the rules read; sessions expire and are
//! revocable, keys are revocable.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::service::{self, Error};
use crate::domain::Caller;
use crate::http::{ApiError, client_ip};
use crate::state::ApiState;

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?
            .to_str()
            .map_err(|_| ApiError::InvalidCredentials)?;
        let secret = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or(ApiError::InvalidCredentials)?;
        match service::authenticate(&state.core(), secret).await {
            Ok(principal) => Ok(Caller { principal, ip }),
            Err(Error::InvalidCredentials) => Err(ApiError::InvalidCredentials),
            Err(e) => Err(ApiError::Internal(e.into())),
        }
    }
}
