//! The call page and its assets, embedded at build time from `web-client/dist` (see `build.rs`).

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub const CALL_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/web/call.html"));
pub const APP_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/web/app.js"));
pub const APP_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/web/app.css"));
pub const CONSULTATIONS_HTML: &str =
    include_str!(concat!(env!("OUT_DIR"), "/web/consultations.html"));
pub const CONSULTATIONS_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/web/consultations.js"));

/// Pages carry join tokens in their URL: no caching, no referrer, nothing from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

pub fn html(body: impl Into<String>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body.into(),
    )
        .into_response()
}

pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
