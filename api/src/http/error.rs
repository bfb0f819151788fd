//! `ApiError`: every failure of the REST API as an `application/problem+json` document with a
//! stable `code`. 4xx say precisely what is wrong; 5xx say little and log the detail.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{Forbidden, InvalidId, TransitionError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("the session or API key has expired or was revoked")]
    InvalidCredentials,
    /// A credential of another kind (a call link) that does not admit: a `401` with its code.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// An uploaded file over the limit (a `413` that names the limit in megabytes).
    #[error("the file is larger than the limit of {} MB", .0 / (1024 * 1024))]
    FileTooLarge(u64),
    /// An uploaded file of a type the API does not take (a `415`).
    #[error("{0}")]
    UnsupportedType(String),
    /// The request body did not arrive whole within this.
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Too many attempts: a `429` with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        retry_after_secs: u64,
        message: String,
    },
    /// An external system failed (a 502: the request was fine, the dependency was not).
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Map a unique-constraint violation to this conflict, any other database error to a 500.
    pub fn on_unique(
        code: &'static str,
        message: &'static str,
    ) -> impl FnOnce(sqlx::Error) -> ApiError {
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ApiError::conflict(code, message)
            }
            _ => e.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict { .. } | ApiError::Transition(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) | ApiError::FileTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Upstream { code, .. } => code,
            ApiError::TooLarge(_) => "body_too_large",
            ApiError::FileTooLarge(_) => "file_too_large",
            ApiError::UnsupportedType(_) => "unsupported_type",
            ApiError::RequestTimeout(_) => "body_timeout",
            ApiError::TooManyRequests { .. } => "too_many_attempts",
            ApiError::Transition(e) => e.code(),
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        ApiError::Forbidden(e.0)
    }
}

/// A path or body id that is not an id of its kind names nothing: "not found", so ids cannot
/// be probed by shape.
impl From<InvalidId> for ApiError {
    fn from(e: InvalidId) -> Self {
        ApiError::NotFound(e.what)
    }
}

/// RFC 9457 problem details, plus our stable `code`.
#[derive(Debug, Serialize, Clone, PartialEq, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let problem = Problem {
            kind: format!("https://vizit.dev/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: self.code().to_owned(),
            detail: self.to_string(),
        };
        let body = serde_json::to_string(&problem).expect("problems serialize");
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
        }
        response
    }
}
