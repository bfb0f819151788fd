//! HTTP handlers under `/api/v1`: parse, authorize, call the service, map the result. No
//! business rules here beyond who may call what.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use vizit_signaling::CallRole;

use crate::auth::{
    API_KEY_PREFIX, Caller, SESSION_PREFIX, new_secret, secret_hash, verify_password,
};
use crate::domain::{ConsultationStatus, Role, SlotStatus, Transition};
use crate::error::{ApiError, Problem};
use crate::integrations::bitrix24::{self, outbound::Delivery};
use crate::service::{self, ConsultationRow, TransitionData, audit};
use crate::{ApiState, now_ms};

// ---- extractors that answer with problem documents ----------------------------------------

/// JSON body; a malformed, mistyped or unknown-field body is a 400 problem, not axum's text.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(crate::MAX_BODY_BYTES))
            }
            Err(rejection) => Err(ApiError::bad_request("invalid_body", rejection.body_text())),
        }
    }
}

/// Query string; bad parameters are a 400 problem.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

/// A path id must be a UUID; anything else cannot exist.
pub(crate) fn id(raw: &str, what: &'static str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound(what))
}

// ---- time and paging ----------------------------------------------------------------------

pub fn to_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn parse_time(field: &'static str, value: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_time",
                format!("{field} must be an RFC 3339 time, e.g. 2026-12-01T09:00:00+03:00"),
            )
        })
}

pub(crate) fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    let offset = offset.unwrap_or(0);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 200",
        ));
    }
    if offset < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "offset must not be negative",
        ));
    }
    Ok((limit, offset))
}

fn text(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
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

pub(crate) async fn create_session(
    state: &ApiState,
    user_id: &str,
) -> Result<(String, i64), ApiError> {
    let token = new_secret(SESSION_PREFIX);
    let now = now_ms();
    let expires = now + state.settings.session_ttl.as_millis() as i64;
    sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(secret_hash(&token))
        .bind(user_id)
        .bind(now)
        .bind(expires)
        .execute(&state.db.pool)
        .await?;
    Ok((token, expires))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "sessions", request_body = LoginRequest, responses((status = 200, body = SessionView), (status = 400, body = Problem), (status = 413, body = Problem)))]
pub async fn login(
    State(state): State<ApiState>,
    parts: Parts,
    Body(req): Body<LoginRequest>,
) -> Result<Json<SessionView>, ApiError> {
    let row = sqlx::query(
        "SELECT id, role, name, password_hash FROM users WHERE email = $1 AND disabled_at IS NULL AND role <> 'patient'",
    )
    .bind(req.email.trim().to_lowercase())
    .fetch_optional(&state.db.pool)
    .await?;
    let user = row.and_then(|row| {
        let hash: Option<String> = row.try_get("password_hash").ok()?;
        verify_password(&req.password, &hash?).then_some(row)
    });
    let Some(row) = user else {
        // Same answer for an unknown e-mail and a wrong password.
        state
            .audit(
                None,
                "session.login_failed",
                "user",
                None,
                json!({"ip": crate::auth::client_ip(&parts)}),
            )
            .await?;
        return Err(ApiError::bad_request(
            "wrong_credentials",
            "wrong e-mail or password",
        ));
    };
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    let role =
        Role::parse(&role).ok_or_else(|| ApiError::Internal(anyhow::anyhow!("bad role {role}")))?;
    let name: String = row.try_get("name")?;
    let (token, expires) = create_session(&state, &id).await?;
    let caller = Caller {
        principal: crate::auth::Principal::User {
            id: id.clone(),
            role,
            name: name.clone(),
        },
        ip: crate::auth::client_ip(&parts),
    };
    state
        .audit(
            Some(&caller),
            "session.login",
            "user",
            Some(&id),
            serde_json::Value::Null,
        )
        .await?;
    Ok(Json(SessionView {
        token,
        expires_at: to_rfc3339(expires),
        user: UserView { id, role, name },
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "sessions", security(("bearer" = [])), responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn logout(
    State(state): State<ApiState>,
    caller: Caller,
    parts: Parts,
) -> Result<StatusCode, ApiError> {
    let Some(secret) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return Err(ApiError::Unauthenticated);
    };
    if !secret.starts_with(SESSION_PREFIX) {
        return Err(ApiError::bad_request(
            "not_a_session",
            "API keys are revoked by an admin, not logged out",
        ));
    }
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2")
        .bind(now_ms())
        .bind(secret_hash(secret))
        .execute(&state.db.pool)
        .await?;
    state
        .audit(
            Some(&caller),
            "session.logout",
            "user",
            caller.user_id(),
            serde_json::Value::Null,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
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
}

#[utoipa::path(get, path = "/api/v1/me", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
pub async fn me(caller: Caller) -> Json<MeView> {
    Json(match &caller.principal {
        crate::auth::Principal::User { id, role, name } => MeView {
            kind: "user".into(),
            id: Some(id.clone()),
            role: Some(*role),
            name: Some(name.clone()),
            api_key_id: None,
        },
        crate::auth::Principal::Service { key_id } => MeView {
            kind: "service".into(),
            id: None,
            role: None,
            name: None,
            api_key_id: Some(key_id.clone()),
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
    let id = insert_patient(&state, &name, None, None, None).await?;
    let (token, expires) = create_session(&state, &id).await?;
    let caller = Caller {
        principal: crate::auth::Principal::User {
            id: id.clone(),
            role: Role::Patient,
            name: name.clone(),
        },
        ip: crate::auth::client_ip(&parts),
    };
    state
        .audit(
            Some(&caller),
            "session.dev_login",
            "user",
            Some(&id),
            serde_json::Value::Null,
        )
        .await?;
    Ok(Json(SessionView {
        token,
        expires_at: to_rfc3339(expires),
        user: UserView {
            id,
            role: Role::Patient,
            name,
        },
    }))
}

// ---- people -------------------------------------------------------------------------------

/// A patient has no password: they sign in through the portal (later ESIA) or the demo login.
/// Staff are created by [`crate::create_staff_user`].
pub(crate) async fn insert_patient(
    state: &ApiState,
    name: &str,
    email: Option<String>,
    phone: Option<&str>,
    crm_contact_id: Option<i64>,
) -> Result<String, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO users (id, role, email, name, phone, created_at, crm_contact_id) VALUES ($1, 'patient', $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(email)
    .bind(name)
    .bind(phone.map(str::to_owned))
    .bind(now_ms())
    .bind(crm_contact_id.map(|c| c.to_string()))
    .execute(&state.db.pool)
    .await
    .map_err(ApiError::on_unique("email_taken", "a user with this e-mail exists"))?;
    Ok(id)
}

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
    let email = req
        .email
        .as_deref()
        .map(crate::normalized_email)
        .transpose()?;
    if req.crm_contact_id.is_some_and(|c| c <= 0) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "crmContactId must be a positive Bitrix24 contact id",
        ));
    }
    let id = insert_patient(
        &state,
        &name,
        email,
        req.phone.as_deref(),
        req.crm_contact_id,
    )
    .await?;
    state
        .audit(
            Some(&caller),
            "patient.create",
            "user",
            Some(&id),
            serde_json::Value::Null,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id,
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
    let patient = id(&raw, "patient")?;
    let name: Option<(String,)> = sqlx::query_as(
        "SELECT name FROM users WHERE id = $1 AND role = 'patient' AND disabled_at IS NULL",
    )
    .bind(&patient)
    .fetch_optional(&state.db.pool)
    .await?;
    let (name,) = name.ok_or(ApiError::NotFound("patient"))?;
    let (token, expires) = create_session(&state, &patient).await?;
    state
        .audit(
            Some(&caller),
            "session.create",
            "user",
            Some(&patient),
            serde_json::Value::Null,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionView {
            token,
            expires_at: to_rfc3339(expires),
            user: UserView {
                id: patient,
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
    caller.require(caller.is(Role::Admin))?;
    let id = crate::create_staff_user(
        &state.db,
        crate::NewStaff {
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
    state
        .audit(
            Some(&caller),
            "staff.create",
            "user",
            Some(&id),
            json!({"role": req.role}),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id,
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
    let rows = sqlx::query(
        "SELECT id, role, email, name, disabled_at FROM users WHERE role <> 'patient' ORDER BY created_at, id",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let role: String = row.try_get("role")?;
        out.push(StaffView {
            id: row.try_get("id")?,
            role: Role::parse(&role)
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("bad role {role}")))?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        });
    }
    state
        .audit(
            Some(&caller),
            "staff.list",
            "user",
            None,
            serde_json::Value::Null,
        )
        .await?;
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
    caller.require(caller.is(Role::Admin))?;
    let user = id(&raw, "staff member")?;
    if caller.user_id() == Some(user.as_str()) {
        return Err(ApiError::bad_request(
            "cannot_disable_self",
            "an admin cannot disable their own account",
        ));
    }
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    let disabled = sqlx::query(
        "UPDATE users SET disabled_at = $1 WHERE id = $2 AND role <> 'patient' AND disabled_at IS NULL",
    )
    .bind(now)
    .bind(&user)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if disabled == 0 {
        return Err(ApiError::NotFound("staff member"));
    }
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&user)
        .execute(&mut *tx)
        .await?;
    audit(
        &mut tx,
        Some(&caller),
        "staff.disable",
        "user",
        Some(&user),
        serde_json::Value::Null,
    )
    .await?;
    tx.commit().await?;
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
    caller.require(caller.is(Role::Admin))?;
    let name = text("name", &req.name, 100)?;
    let id = uuid::Uuid::new_v4().to_string();
    let key = new_secret(API_KEY_PREFIX);
    sqlx::query("INSERT INTO api_keys (id, name, key_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(&name)
        .bind(secret_hash(&key))
        .bind(now_ms())
        .bind(caller.user_id().unwrap_or_default())
        .execute(&state.db.pool)
        .await?;
    state
        .audit(
            Some(&caller),
            "api_key.create",
            "api_key",
            Some(&id),
            json!({"name": name}),
        )
        .await?;
    // The key itself is shown once and never stored.
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { id, name, key })))
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
    caller.require(caller.is(Role::Admin))?;
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
    )
    .fetch_all(&state.db.pool)
    .await?;
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
    caller.require(caller.is(Role::Admin))?;
    let key = id(&raw, "API key")?;
    let revoked =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(&key)
            .execute(&state.db.pool)
            .await?
            .rows_affected();
    if revoked == 0 {
        return Err(ApiError::NotFound("API key"));
    }
    state
        .audit(
            Some(&caller),
            "api_key.revoke",
            "api_key",
            Some(&key),
            serde_json::Value::Null,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- doctors and slots --------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorView {
    id: String,
    name: String,
    specialty: String,
    time_zone: String,
}

#[utoipa::path(get, path = "/api/v1/doctors", tag = "slots", security(("bearer" = [])),
    responses((status = 200, body = [DoctorView]), (status = 401, body = Problem)))]
pub async fn list_doctors(
    State(state): State<ApiState>,
    _caller: Caller,
) -> Result<Json<Vec<DoctorView>>, ApiError> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT u.id, u.name, d.specialty, d.time_zone FROM doctors d JOIN users u ON u.id = d.user_id \
         WHERE u.disabled_at IS NULL ORDER BY u.name, u.id",
    )
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, name, specialty, time_zone)| DoctorView {
                id,
                name,
                specialty,
                time_zone,
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    id: String,
    doctor_id: String,
    starts_at: String,
    ends_at: String,
    time_zone: String,
    status: SlotStatus,
    price_kopecks: i64,
}

#[utoipa::path(get, path = "/api/v1/doctors/{id}/slots", tag = "slots", security(("bearer" = [])), params(("id" = String, Path, description = "doctor id"), SlotQuery), responses((status = 200, body = [SlotView]), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn free_slots(
    State(state): State<ApiState>,
    _caller: Caller,
    Path(raw): Path<String>,
    Params(q): Params<SlotQuery>,
) -> Result<Json<Vec<SlotView>>, ApiError> {
    let doctor = id(&raw, "doctor")?;
    let from = q
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?
        .unwrap_or_else(now_ms);
    let to =
        q.to.as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?
            .unwrap_or(from + 14 * 86_400_000);
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM doctors WHERE user_id = $1")
            .bind(&doctor)
            .fetch_optional(&state.db.pool)
            .await?;
    exists.ok_or(ApiError::NotFound("doctor"))?;
    let rows: Vec<(String, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT id, starts_at, ends_at, time_zone, price_kopecks FROM slots \
         WHERE doctor_id = $1 AND status = 'free' AND starts_at >= $2 AND starts_at < $3 AND starts_at > $4 \
         ORDER BY starts_at LIMIT 500",
    )
    .bind(&doctor)
    .bind(from)
    .bind(to)
    .bind(now_ms())
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, s, e, tz, price)| SlotView {
                id,
                doctor_id: doctor.clone(),
                starts_at: to_rfc3339(s),
                ends_at: to_rfc3339(e),
                time_zone: tz,
                status: SlotStatus::Free,
                price_kopecks: price,
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSlot {
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    time_zone: Option<String>,
    price_kopecks: i64,
    #[serde(default)]
    external_id: Option<String>,
}

/// Admins and the portal publish slots (until the Bitrix24 sync does).
#[utoipa::path(post, path = "/api/v1/doctors/{id}/slots", tag = "slots", security(("bearer" = [])), params(("id" = String, Path, description = "doctor id")), request_body = CreateSlot, responses((status = 201, body = SlotView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn create_slot(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<CreateSlot>,
) -> Result<(StatusCode, Json<SlotView>), ApiError> {
    caller.require(caller.is_clinic())?;
    let doctor = id(&raw, "doctor")?;
    let starts = parse_time("startsAt", &req.starts_at)?;
    let ends = parse_time("endsAt", &req.ends_at)?;
    if ends <= starts || ends - starts > 8 * 3_600_000 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "endsAt must be after startsAt, at most 8 hours later",
        ));
    }
    if !(0..=100_000_000).contains(&req.price_kopecks) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "priceKopecks must be between 0 and 100000000",
        ));
    }
    let tz: Option<(String,)> = sqlx::query_as("SELECT time_zone FROM doctors WHERE user_id = $1")
        .bind(&doctor)
        .fetch_optional(&state.db.pool)
        .await?;
    let (doctor_tz,) = tz.ok_or(ApiError::NotFound("doctor"))?;
    let time_zone = match req.time_zone {
        Some(tz) => text("timeZone", &tz, 64)?,
        None => doctor_tz,
    };
    let slot_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO slots (id, doctor_id, starts_at, ends_at, time_zone, status, price_kopecks, external_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'free', $6, $7, $8)",
    )
    .bind(&slot_id)
    .bind(&doctor)
    .bind(starts)
    .bind(ends)
    .bind(&time_zone)
    .bind(req.price_kopecks)
    .bind(req.external_id.clone())
    .bind(now_ms())
    .execute(&state.db.pool)
    .await
    .map_err(ApiError::on_unique("slot_exists", "the doctor already has a slot at this time"))?;
    state
        .audit(
            Some(&caller),
            "slot.create",
            "slot",
            Some(&slot_id),
            serde_json::Value::Null,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SlotView {
            id: slot_id,
            doctor_id: doctor,
            starts_at: to_rfc3339(starts),
            ends_at: to_rfc3339(ends),
            time_zone,
            status: SlotStatus::Free,
            price_kopecks: req.price_kopecks,
        }),
    ))
}

// ---- consultations ------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorRef {
    id: String,
    name: String,
    specialty: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientRef {
    id: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsultationView {
    id: String,
    slot_id: String,
    status: ConsultationStatus,
    doctor: DoctorRef,
    patient: PatientRef,
    price_kopecks: i64,
    starts_at: String,
    ends_at: String,
    time_zone: String,
    booked_at: String,
    pay_by: String,
    paid_at: Option<String>,
    started_at: Option<String>,
    completed_at: Option<String>,
    cancelled_at: Option<String>,
    cancelled_by: Option<String>,
    cancel_reason: Option<String>,
    conclusion: Option<String>,
    overdue: bool,
    /// Where the booking stands in Bitrix24: `pending` (on its way), `synced`, `conflict`
    /// (Bitrix24 had the time booked first), `released`; absent without the integration.
    booking_sync: Option<String>,
    /// Set when the booked time changed in Bitrix24 under this consultation: for the clinic.
    slot_conflict: Option<String>,
}

impl TryFrom<ConsultationRow> for ConsultationView {
    type Error = ApiError;

    fn try_from(r: ConsultationRow) -> Result<Self, ApiError> {
        Ok(ConsultationView {
            status: r.status()?,
            doctor: DoctorRef {
                id: r.doctor_id,
                name: r.doctor_name,
                specialty: r.doctor_specialty,
            },
            patient: PatientRef {
                id: r.patient_id,
                name: r.patient_name,
            },
            id: r.id,
            slot_id: r.slot_id,
            price_kopecks: r.price_kopecks,
            starts_at: to_rfc3339(r.starts_at),
            ends_at: to_rfc3339(r.ends_at),
            time_zone: r.time_zone,
            booked_at: to_rfc3339(r.booked_at),
            pay_by: to_rfc3339(r.pay_by),
            paid_at: r.paid_at.map(to_rfc3339),
            started_at: r.started_at.map(to_rfc3339),
            completed_at: r.completed_at.map(to_rfc3339),
            cancelled_at: r.cancelled_at.map(to_rfc3339),
            cancelled_by: r.cancelled_by,
            cancel_reason: r.cancel_reason,
            conclusion: r.conclusion,
            overdue: r.overdue_at.is_some(),
            booking_sync: r.external_sync,
            slot_conflict: r.slot_conflict,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BookRequest {
    slot_id: String,
    /// Only for the portal, booking on a patient's behalf.
    #[serde(default)]
    patient_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/consultations", tag = "consultations", security(("bearer" = [])), request_body = BookRequest, responses((status = 201, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn book(
    State(state): State<ApiState>,
    caller: Caller,
    Body(req): Body<BookRequest>,
) -> Result<(StatusCode, Json<ConsultationView>), ApiError> {
    let patient = match (caller.role(), &req.patient_id) {
        (Some(Role::Patient), None) => caller.user_id().unwrap_or_default().to_owned(),
        (Some(Role::Patient), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "patients book for themselves; omit patientId",
            ));
        }
        (None, Some(p)) => id(p, "patient")?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "patientId is required for the portal",
            ));
        }
        (Some(_), _) => {
            return Err(ApiError::Forbidden(
                "only patients and the portal book consultations",
            ));
        }
    };
    let slot = id(&req.slot_id, "slot")?;
    let consultation = service::book(&state, &caller, &slot, &patient).await?;
    // With Bitrix24 on, the booking is confirmed there first (bounded wait; if Bitrix24 is slow
    // or down the consultation stays `bookingSync: pending` and the outbox delivers it later).
    if let Some(Delivery::Conflict) = bitrix24::routes::deliver_inline(&state, &consultation).await
    {
        return Err(ApiError::conflict(
            "slot_taken",
            "this time was just booked at the clinic; choose another slot",
        ));
    }
    let mut conn = state.db.pool.acquire().await?;
    let row = service::load(&mut conn, &consultation)
        .await?
        .ok_or(ApiError::NotFound("consultation"))?;
    Ok((StatusCode::CREATED, Json(row.try_into()?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsultationQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    status: Option<ConsultationStatus>,
    #[serde(default)]
    doctor_id: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/consultations", tag = "consultations", security(("bearer" = [])), params(ConsultationQuery), responses((status = 200, body = Page<ConsultationView>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list_consultations(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<ConsultationQuery>,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let from = q
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?
        .unwrap_or(i64::MIN);
    let to =
        q.to.as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?
            .unwrap_or(i64::MAX);
    let doctor = q
        .doctor_id
        .as_deref()
        .map(|d| id(d, "doctor"))
        .transpose()?;
    // Patients and doctors see their own; the clinic sees all.
    let (mine_column, mine) = match caller.role() {
        Some(Role::Patient) => ("c.patient_id", caller.user_id().map(str::to_owned)),
        Some(Role::Doctor) => ("c.doctor_id", caller.user_id().map(str::to_owned)),
        _ => ("c.patient_id", None),
    };
    let filter = format!(
        " WHERE c.starts_at >= $1 AND c.starts_at < $2 AND ($3 IS NULL OR c.status = $3) \
         AND ($4 IS NULL OR c.doctor_id = $4) AND ($5 IS NULL OR {mine_column} = $5)"
    );
    let status = q.status.map(|s| s.as_str().to_owned());
    let total = service::count_of(
        &sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM consultations c{filter}"
        )))
        .bind(from)
        .bind(to)
        .bind(status.clone())
        .bind(doctor.clone())
        .bind(mine.clone())
        .fetch_one(&state.db.pool)
        .await?,
    )?;
    let rows = sqlx::query_as::<_, ConsultationRow>(sqlx::AssertSqlSafe(format!(
        "{}{filter} ORDER BY c.starts_at, c.id LIMIT $6 OFFSET $7",
        service::CONSULTATION_SELECT
    )))
    .bind(from)
    .bind(to)
    .bind(status)
    .bind(doctor)
    .bind(mine)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db.pool)
    .await?;
    state
        .audit(
            Some(&caller),
            "consultation.list",
            "consultation",
            None,
            json!({"count": rows.len()}),
        )
        .await?;
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(ConsultationView::try_from)
            .collect::<Result<_, _>>()?,
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(get, path = "/api/v1/consultations/{id}", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = ConsultationView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_consultation(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    let cid = id(&raw, "consultation")?;
    let mut conn = state.db.pool.acquire().await?;
    let row = service::load(&mut conn, &cid)
        .await?
        .filter(|r| r.visible_to(&caller))
        .ok_or(ApiError::NotFound("consultation"))?;
    audit(
        &mut conn,
        Some(&caller),
        "consultation.read",
        "consultation",
        Some(&cid),
        serde_json::Value::Null,
    )
    .await?;
    Ok(Json(row.try_into()?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/consultations/{id}/cancel", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), request_body = CancelRequest, responses((status = 200, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<CancelRequest>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(!caller.is(Role::HeadDoctor))?;
    let cid = id(&raw, "consultation")?;
    let reason = text("reason", &req.reason, 1000)?;
    let by = service::cancelled_by(&caller);
    let row = service::transition(
        &state,
        Some(&caller),
        &cid,
        Transition::Cancel(by),
        TransitionData {
            reason: Some(&reason),
            conclusion: None,
            block_slot: false,
        },
    )
    .await?;
    Ok(Json(row.try_into()?))
}

/// Until the payments issue lands, the clinic marks a booking paid.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/payment", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = ConsultationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn mark_paid(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(caller.is_clinic())?;
    let cid = id(&raw, "consultation")?;
    let row = service::transition(
        &state,
        Some(&caller),
        &cid,
        Transition::MarkPaid,
        TransitionData::default(),
    )
    .await?;
    Ok(Json(row.try_into()?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    conclusion: String,
}

#[utoipa::path(post, path = "/api/v1/consultations/{id}/complete", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), request_body = CompleteRequest, responses((status = 200, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn complete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<CompleteRequest>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(caller.is(Role::Doctor))?;
    let cid = id(&raw, "consultation")?;
    let conclusion = text("conclusion", &req.conclusion, 20_000)?;
    let row = service::transition(
        &state,
        Some(&caller),
        &cid,
        Transition::Complete,
        TransitionData {
            reason: None,
            conclusion: Some(&conclusion),
            block_slot: false,
        },
    )
    .await?;
    Ok(Json(row.try_into()?))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinView {
    token: String,
    call_url: String,
    expires_at: String,
}

/// A join token for the consultation's Room: only its patient and doctor, only once paid, only
/// in the window around the slot. The first join starts the consultation.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/join", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), responses((status = 200, body = JoinView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn join(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<JoinView>, ApiError> {
    let cid = id(&raw, "consultation")?;
    let role = match caller.role() {
        Some(Role::Patient) => CallRole::Patient,
        Some(Role::Doctor) => CallRole::Doctor,
        _ => {
            return Err(ApiError::Forbidden(
                "only the consultation's patient and doctor join the call",
            ));
        }
    };
    let mut conn = state.db.pool.acquire().await?;
    let row = service::load(&mut conn, &cid)
        .await?
        .filter(|r| r.visible_to(&caller))
        .ok_or(ApiError::NotFound("consultation"))?;
    drop(conn);
    match row.status()? {
        ConsultationStatus::Paid | ConsultationStatus::InProgress => {}
        ConsultationStatus::Booked => {
            return Err(ApiError::conflict(
                "not_paid",
                "the consultation is not paid yet",
            ));
        }
        other => {
            return Err(ApiError::conflict(
                "consultation_closed",
                format!("the consultation is {}", other.as_str()),
            ));
        }
    }
    let now = now_ms();
    let opens = row.starts_at - state.settings.join_before.as_millis() as i64;
    let closes = row.ends_at + state.settings.join_grace.as_millis() as i64;
    if now < opens || now > closes {
        return Err(ApiError::conflict(
            "outside_join_window",
            format!(
                "the call opens at {} and closes at {}",
                to_rfc3339(opens),
                to_rfc3339(closes)
            ),
        ));
    }
    if row.status()? == ConsultationStatus::Paid {
        // The first join starts the consultation; the other party may have just done so.
        match service::transition(
            &state,
            Some(&caller),
            &cid,
            Transition::Start,
            TransitionData::default(),
        )
        .await
        {
            Ok(_) | Err(ApiError::Transition(_) | ApiError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let ttl = std::time::Duration::from_millis((closes - now).max(60_000) as u64);
    let name = match &caller.principal {
        crate::auth::Principal::User { name, .. } => name.clone(),
        crate::auth::Principal::Service { .. } => String::new(),
    };
    let user = caller.user_id().unwrap_or_default();
    let token = state
        .keys
        .issue_for_consultation(&cid, user, role, &name, ttl);
    state
        .audit(
            Some(&caller),
            "consultation.join",
            "consultation",
            Some(&cid),
            serde_json::Value::Null,
        )
        .await?;
    Ok(Json(JoinView {
        call_url: format!("/call?token={token}"),
        token,
        expires_at: to_rfc3339(now + ttl.as_millis() as i64),
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/overdue", tag = "admin", security(("bearer" = [])), params(ConsultationQuery), responses((status = 200, body = Page<ConsultationView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn overdue(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<ConsultationQuery>,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    caller.require(caller.is(Role::Admin) || caller.is(Role::HeadDoctor))?;
    flagged(
        &state,
        &caller,
        &q,
        " WHERE c.overdue_at IS NOT NULL AND c.status IN ('paid', 'in_progress')",
        "c.ends_at",
        "consultation.list_overdue",
    )
    .await
}

/// Live consultations whose booked time changed in Bitrix24 under them, for the clinic to resolve
/// (cancel, reschedule, or restore the booking in Bitrix24 — the flag then clears by itself).
#[utoipa::path(get, path = "/api/v1/admin/slot-conflicts", tag = "admin", security(("bearer" = [])), params(ConsultationQuery), responses((status = 200, body = Page<ConsultationView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn slot_conflicts(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<ConsultationQuery>,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    caller.require(caller.is_clinic() || caller.is(Role::HeadDoctor))?;
    flagged(
        &state,
        &caller,
        &q,
        " WHERE c.slot_conflict_at IS NOT NULL AND c.status IN ('booked', 'paid', 'in_progress')",
        "c.starts_at",
        "consultation.list_slot_conflicts",
    )
    .await
}

/// One page of consultations matching a fixed condition, audited as `action`.
async fn flagged(
    state: &ApiState,
    caller: &Caller,
    q: &ConsultationQuery,
    where_: &'static str,
    order: &'static str,
    action: &str,
) -> Result<Json<Page<ConsultationView>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let total = service::count_of(
        &sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM consultations c{where_}"
        )))
        .fetch_one(&state.db.pool)
        .await?,
    )?;
    let rows = sqlx::query_as::<_, ConsultationRow>(sqlx::AssertSqlSafe(format!(
        "{}{where_} ORDER BY {order}, c.id LIMIT $1 OFFSET $2",
        service::CONSULTATION_SELECT
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db.pool)
    .await?;
    state
        .audit(
            Some(caller),
            action,
            "consultation",
            None,
            serde_json::Value::Null,
        )
        .await?;
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(ConsultationView::try_from)
            .collect::<Result<_, _>>()?,
        total,
        limit,
        offset,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RescheduleRequest {
    slot_id: String,
}

/// Move a booked or paid consultation to another free slot of the same doctor: its patient, an
/// admin or the portal. With Bitrix24 on, the booking there moves too; if Bitrix24 refuses the
/// new time (booked there first) the move is undone and the answer is 409 `slot_taken`.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/reschedule", tag = "consultations", security(("bearer" = [])), params(("id" = String, Path, description = "consultation id")), request_body = RescheduleRequest, responses((status = 200, body = ConsultationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem)))]
pub async fn reschedule(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<RescheduleRequest>,
) -> Result<Json<ConsultationView>, ApiError> {
    caller.require(caller.is(Role::Patient) || caller.is_clinic())?;
    let consultation = id(&raw, "consultation")?;
    let slot = id(&req.slot_id, "slot")?;
    let (row, old_slot) =
        service::reschedule(&state, Some(&caller), &consultation, &slot, true, "free").await?;
    if let Some(Delivery::Conflict) = bitrix24::routes::deliver_inline(&state, &consultation).await
    {
        // Bitrix24 has the new time booked: go back to where it was (Bitrix24 never moved).
        // The refused slot is left blocked in the same transaction (Bitrix24 has it).
        match service::reschedule(&state, None, &consultation, &old_slot, false, "blocked").await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(consultation = %consultation, error = %e, "could not undo a reschedule Bitrix24 refused");
                bitrix24::sync::flag_conflict(
                    &state,
                    &consultation,
                    "the new time is taken in Bitrix24",
                )
                .await?;
            }
        }
        return Err(ApiError::conflict(
            "slot_taken",
            "this time was just booked at the clinic; choose another slot",
        ));
    }
    let mut conn = state.db.pool.acquire().await?;
    let row = service::load(&mut conn, &consultation)
        .await?
        .unwrap_or(row);
    Ok(Json(row.try_into()?))
}

// ---- audit log ----------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    actor_id: Option<String>,
    #[serde(default)]
    object_id: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// One audit log entry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    id: i64,
    at: String,
    /// `user`, `api_key` or `system`.
    actor_kind: String,
    actor_id: Option<String>,
    actor_role: Option<String>,
    action: String,
    object_type: String,
    object_id: Option<String>,
    ip: Option<String>,
    details: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery), responses((status = 200, body = Page<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_log(
    State(state): State<ApiState>,
    caller: Caller,
    Params(q): Params<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    caller.require(caller.is(Role::Admin))?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let from = q
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?
        .unwrap_or(i64::MIN);
    let to =
        q.to.as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?
            .unwrap_or(i64::MAX);
    let filter = " WHERE at >= $1 AND at < $2 AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR object_id = $4) \
                  AND ($5 IS NULL OR action = $5)";
    let total = service::count_of(
        &sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM audit_log{filter}"
        )))
        .bind(from)
        .bind(to)
        .bind(q.actor_id.clone())
        .bind(q.object_id.clone())
        .bind(q.action.clone())
        .fetch_one(&state.db.pool)
        .await?,
    )?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, at, actor_kind, actor_id, actor_role, action, object_type, object_id, ip, details \
         FROM audit_log{filter} ORDER BY id DESC LIMIT $6 OFFSET $7"
    )))
    .bind(from)
    .bind(to)
    .bind(q.actor_id)
    .bind(q.object_id)
    .bind(q.action)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db.pool)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(AuditEntry {
            id: row.try_get("id")?,
            at: to_rfc3339(row.try_get::<i64, _>("at")?),
            actor_kind: row.try_get("actor_kind")?,
            actor_id: row.try_get("actor_id")?,
            actor_role: row.try_get("actor_role")?,
            action: row.try_get("action")?,
            object_type: row.try_get("object_type")?,
            object_id: row.try_get("object_id")?,
            ip: row.try_get("ip")?,
            details: row
                .try_get::<Option<String>, _>("details")?
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()),
        });
    }
    state
        .audit(
            Some(&caller),
            "audit.read",
            "audit_log",
            None,
            serde_json::Value::Null,
        )
        .await?;
    Ok(Json(Page {
        items,
        total,
        limit,
        offset,
    }))
}

/// Unknown paths under the API answer with a problem document too.
pub async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("resource")
}
