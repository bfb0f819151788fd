//! HTTP of people: sessions (login, logout, demo login, who am I), patients registered by the
//! portal, staff and API keys managed by admins. Parse, authorize, call the service, map errors.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::credentials::SESSION_PREFIX;
use super::service::{self, Error, NewPatient, NewStaff};
use crate::domain::personal::snils_digits;
use crate::domain::{ApiKeyId, Caller, Principal, Role, UserId};
use crate::http::{
    ApiError, Body, Problem, client_ip, client_ip_behind, cookie, id, normalized_email,
    session_cookie, set_cookie, text, to_rfc3339,
};
use crate::state::ApiState;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidField(message) => ApiError::bad_request("invalid_field", message),
            Error::WeakPassword => ApiError::bad_request("weak_password", e.to_string()),
            Error::EmailTaken => ApiError::conflict("email_taken", e.to_string()),
            Error::WrongCredentials => ApiError::bad_request("wrong_credentials", e.to_string()),
            Error::TooManyAttempts(secs) => ApiError::TooManyRequests {
                retry_after_secs: secs,
                message: e.to_string(),
            },
            Error::NotFound(what) => ApiError::NotFound(what),
            Error::CannotDisableSelf => ApiError::bad_request("cannot_disable_self", e.to_string()),
            Error::InvalidCredentials => ApiError::InvalidCredentials,
            Error::Db(e) => e.into(),
            Error::Internal(e) => ApiError::Internal(e),
        }
    }
}

// ---- sessions -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    token: String,
    expires_at: String,
    user: UserView,
}

#[derive(Serialize, ToSchema, Clone)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    id: String,
    role: Role,
    name: String,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "sessions", request_body = LoginRequest, responses((status = 200, body = SessionView), (status = 400, body = Problem), (status = 413, body = Problem), (status = 429, body = Problem, headers(("Retry-After" = u64, description = "Seconds until logins are accepted again")))))]
pub async fn login(
    State(state): State<ApiState>,
    parts: Parts,
    Body(req): Body<LoginRequest>,
) -> Result<Json<SessionView>, ApiError> {
    // Behind a reverse proxy the limits per address count the client's, not the proxy's.
    let ip = client_ip_behind(&parts, &state.settings.trusted_proxies);
    let (caller, token, expires) =
        service::login(&state.core(), &req.email, &req.password, ip).await?;
    let Principal::User { id, role, name } = caller.principal else {
        return Err(ApiError::Internal(anyhow::anyhow!("a login is a person")));
    };
    Ok(Json(SessionView {
        token,
        expires_at: to_rfc3339(expires),
        user: UserView {
            id: id.into(),
            role,
            name,
        },
    }))
}

/// End the session: the bearer token's and the session cookie's (which is then deleted).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "sessions", security(("bearer" = [])), responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn logout(
    State(state): State<ApiState>,
    caller: Caller,
    parts: Parts,
) -> Result<Response, ApiError> {
    let bearer = crate::http::bearer(&parts).map(str::to_owned);
    let secure = state.settings.secure_cookies;
    let name = session_cookie(secure);
    let from_cookie = cookie(&parts.headers, name);
    let Some(secret) = bearer.clone().or_else(|| from_cookie.clone()) else {
        return Err(ApiError::Unauthenticated);
    };
    if !secret.starts_with(SESSION_PREFIX) {
        return Err(ApiError::bad_request(
            "not_a_session",
            "API keys are revoked by an admin, not logged out",
        ));
    }
    service::logout(&state.core(), &caller, &secret).await?;
    let Some(cookie_secret) = from_cookie else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    // A browser with both (a staff login over a patient's cookie) leaves with neither.
    if bearer.is_some() && cookie_secret.starts_with(SESSION_PREFIX) && cookie_secret != secret {
        service::logout(&state.core(), &caller, &cookie_secret).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, set_cookie(name, "", "/", 0, secure))],
    )
        .into_response())
}

/// Who the caller is: a person (`kind = user`) or the portal (`kind = service`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeView {
    /// `user` or `service`.
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_id: Option<String>,
    /// How the session was opened: `password`, `portal`, `esia`, `demo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
pub async fn me(caller: Caller) -> Json<MeView> {
    Json(match &caller.principal {
        Principal::User { id, role, name } => MeView {
            kind: "user".into(),
            id: Some(id.to_string()),
            role: Some(*role),
            name: Some(name.clone()),
            api_key_id: None,
            via: caller.via.clone(),
        },
        Principal::Service { key_id } => MeView {
            kind: "service".into(),
            id: None,
            role: None,
            name: None,
            api_key_id: Some(key_id.to_string()),
            via: None,
        },
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevLoginRequest {
    #[serde(default)]
    name: Option<String>,
}

/// Demo mode only: a patient and a session in one step, until ESIA login exists.
#[utoipa::path(post, path = "/api/v1/auth/dev-login", tag = "sessions", request_body = DevLoginRequest, responses((status = 200, body = SessionView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn dev_login(
    State(state): State<ApiState>,
    parts: Parts,
    Body(req): Body<DevLoginRequest>,
) -> Result<Json<SessionView>, ApiError> {
    if !state.settings.demo {
        return Err(ApiError::NotFound("page"));
    }
    let name = text("name", req.name.as_deref().unwrap_or("Пациент (демо)"), 200)?;
    let (id, token, expires) = service::dev_login(&state.core(), &name, client_ip(&parts)).await?;
    Ok(Json(SessionView {
        token,
        expires_at: to_rfc3339(expires),
        user: UserView {
            id: id.into(),
            role: Role::Patient,
            name,
        },
    }))
}

// ---- people -------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreatePatient {
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    /// The patient's contact id in the clinic's Bitrix24 CRM: their bookings are linked to it.
    #[serde(default)]
    crm_contact_id: Option<i64>,
    /// SNILS as the clinic verified it (`112-233-445 95` or 11 digits): a patient who later
    /// signs in through ESIA with the same SNILS is linked to this record.
    #[serde(default)]
    snils: Option<String>,
    /// `yyyy-mm-dd`, as the clinic verified it: with the name and a confirmed phone or e-mail,
    /// another way to link an ESIA sign-in to this record.
    #[serde(default)]
    birth_date: Option<String>,
}

/// The portal registers a patient (until ESIA login lands).
#[utoipa::path(post, path = "/api/v1/patients", tag = "people", security(("bearer" = [])), request_body = CreatePatient, responses((status = 201, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn create_patient(
    State(state): State<ApiState>,
    caller: Caller,
    Body(req): Body<CreatePatient>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require(caller.is_clinic())?;
    let name = text("name", &req.name, 200)?;
    let email = req.email.as_deref().map(normalized_email).transpose()?;
    if req.crm_contact_id.is_some_and(|c| c <= 0) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "crmContactId must be a positive Bitrix24 contact id",
        ));
    }
    let snils = req
        .snils
        .as_deref()
        .map(|s| {
            snils_digits(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_field",
                    "snils is not a valid SNILS (11 digits with a correct check number)",
                )
            })
        })
        .transpose()?;
    let birth_date = req
        .birth_date
        .as_deref()
        .map(|d| {
            jiff::civil::Date::strptime("%Y-%m-%d", d.trim())
                .map(|d| d.to_string())
                .map_err(|_| ApiError::bad_request("invalid_field", "birthDate must be yyyy-mm-dd"))
        })
        .transpose()?;
    let id = service::create_patient(
        &state.core(),
        &caller,
        NewPatient {
            name: &name,
            email,
            phone: req.phone.as_deref(),
            crm_contact_id: req.crm_contact_id,
            snils,
            birth_date,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id: id.into(),
            role: Role::Patient,
            name,
        }),
    ))
}

/// The portal signs a patient in (it authenticated them itself).
#[utoipa::path(post, path = "/api/v1/patients/{id}/sessions", tag = "people", security(("bearer" = [])), params(("id" = String, Path, description = "patient id")), responses((status = 201, body = SessionView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn patient_session(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    caller.require(caller.is_service())?;
    let patient: UserId = id(&raw, "patient")?;
    let (name, token, expires) = service::patient_session(&state.core(), &caller, &patient).await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionView {
            token,
            expires_at: to_rfc3339(expires),
            user: UserView {
                id: patient.into(),
                role: Role::Patient,
                name,
            },
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateStaff {
    role: Role,
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    specialty: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    bitrix_resource_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/staff", tag = "admin", security(("bearer" = [])), request_body = CreateStaff, responses((status = 201, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn create_staff(
    State(state): State<ApiState>,
    caller: Caller,
    Body(req): Body<CreateStaff>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require_account_admin()?;
    let id = service::create_staff(
        &state.core(),
        &caller,
        NewStaff {
            role: req.role,
            email: &req.email,
            name: &req.name,
            password: &req.password,
            specialty: req.specialty.as_deref(),
            time_zone: req.time_zone.as_deref(),
            bitrix_resource_id: req.bitrix_resource_id.as_deref(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id: id.into(),
            role: req.role,
            name: req.name.trim().to_owned(),
        }),
    ))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaffView {
    id: String,
    role: Role,
    email: Option<String>,
    name: String,
    disabled: bool,
}

#[utoipa::path(get, path = "/api/v1/staff", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [StaffView]), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_staff(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<StaffView>>, ApiError> {
    caller.require(caller.is(Role::Admin))?;
    let out = service::list_staff(&state.core(), &caller)
        .await?
        .into_iter()
        .map(|r| StaffView {
            id: r.id,
            role: r.role,
            email: r.email,
            name: r.name,
            disabled: r.disabled,
        })
        .collect();
    Ok(Json(out))
}

/// Disable a staff account: it can no longer log in, and its sessions end now.
#[utoipa::path(post, path = "/api/v1/staff/{id}/disable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "staff user id")),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn disable_staff(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_account_admin()?;
    let user: UserId = id(&raw, "staff member")?;
    service::disable_staff(&state.core(), &caller, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- API keys -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    name: String,
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "admin", security(("bearer" = [])), request_body = CreateApiKey, responses((status = 201, body = ApiKeyCreated), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn create_api_key(
    State(state): State<ApiState>,
    caller: Caller,
    Body(req): Body<CreateApiKey>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    caller.require_account_admin()?;
    let name = text("name", &req.name, 100)?;
    let (id, key) = service::create_api_key(&state.core(), &caller, &name).await?;
    // The key itself is shown once and never stored.
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            id: id.into(),
            name,
            key,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreated {
    id: String,
    name: String,
    /// The key itself: shown once, never stored.
    key: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    id: String,
    name: String,
    created_at: String,
    revoked_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [ApiKeyView]), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_api_keys(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    caller.require_account_admin()?;
    let rows = service::list_api_keys(&state.core()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, name, created, revoked)| ApiKeyView {
                id,
                name,
                created_at: to_rfc3339(created),
                revoked_at: revoked.map(to_rfc3339),
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path, description = "API key id")), responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_api_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_account_admin()?;
    let key: ApiKeyId = id(&raw, "API key")?;
    service::revoke_api_key(&state.core(), &caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
