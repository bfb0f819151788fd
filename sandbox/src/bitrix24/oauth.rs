//! OAuth 2.0 of a local application: `/oauth/authorize/` (auto-approved in the sandbox) and
//! `/oauth/token/` (authorization code, refresh token). Codes live 30 s, access tokens 1 h,
//! refresh tokens 180 days; REST calls then go to `/rest/{method}` with `auth=<access_token>`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::portal::{Bitrix24, random_code};
use crate::php;

const CODE_TTL: Duration = Duration::from_secs(30);

pub fn router(b: Bitrix24) -> Router {
    Router::new()
        .route("/oauth/authorize/", get(authorize))
        .route("/oauth/token/", get(token).post(token))
        .with_state(b)
}

fn oauth_error(status: StatusCode, code: &str, text: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "error_description": text})),
    )
        .into_response()
}

/// The user "approves" at once; the portal redirects to `redirect_uri` with a 30-second code.
async fn authorize(State(b): State<Bitrix24>, RawQuery(q): RawQuery) -> Response {
    let q = php::parse(q.as_deref().unwrap_or(""));
    if q.get("client_id").and_then(Value::as_str) != Some(b.options.client_id.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Unknown client_id",
        );
    }
    let Some(redirect) = q.get("redirect_uri").and_then(Value::as_str) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri is required in the sandbox",
        );
    };
    let code = random_code(32);
    let base = {
        let mut s = b.store();
        s.oauth
            .codes
            .insert(code.clone(), Instant::now() + CODE_TTL);
        s.base_url.clone()
    };
    let state = q.get("state").and_then(Value::as_str).unwrap_or("");
    let domain = base.trim_start_matches("http://");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", state)
        .append_pair("domain", domain)
        .append_pair("member_id", "0b3a4c5d6e7f8091a2b3c4d5e6f70819")
        .append_pair("scope", "booking")
        .append_pair("server_domain", "oauth.bitrix24.tech")
        .finish();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{redirect}{sep}{query}")).into_response()
}

async fn token(State(b): State<Bitrix24>, RawQuery(q): RawQuery, body: String) -> Response {
    let mut params = php::parse(q.as_deref().unwrap_or(""));
    if let (Value::Object(p), Value::Object(extra)) = (&mut params, php::parse(&body)) {
        p.extend(extra);
    }
    let get = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or("");
    if get("client_id") != b.options.client_id || get("client_secret") != b.options.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client credentials",
        );
    }
    let mut s = b.store();
    let now = Instant::now();
    let base = s.base_url.clone();
    let valid = match get("grant_type") {
        "authorization_code" => s.oauth.codes.remove(get("code")).is_some_and(|e| e > now),
        "refresh_token" => s
            .oauth
            .refresh
            .remove(get("refresh_token"))
            .is_some_and(|e| e > now),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant_type",
            );
        }
    };
    if !valid {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid authorization code or refresh token",
        );
    }
    let mut reply = s.oauth.issue();
    reply["client_endpoint"] = json!(format!("{base}/rest/"));
    reply["server_endpoint"] = json!("https://oauth.bitrix24.tech/rest/");
    reply["domain"] = json!("oauth.bitrix24.tech");
    reply["member_id"] = json!("0b3a4c5d6e7f8091a2b3c4d5e6f70819");
    axum::Json(reply).into_response()
}
