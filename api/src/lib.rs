//! Vizit's business layer: consultations, slots, people and roles, the audit log, the outbox,
//! and the REST API the clinic portal uses (`/api/v1`).
//!
//! # Layout
//! - `domain.rs` — roles, statuses and the consultation state machine ([`domain::next_status`]).
//! - `db.rs` — [`Db`]: SQLite (default) or PostgreSQL behind one `AnyPool`, migrations per engine.
//! - `auth.rs` — argon2 passwords, sessions, API keys, the [`auth::Caller`] extractor.
//! - `service.rs` — operations (book, transitions, jobs); each change writes its outbox event
//!   and audit entry in the same transaction.
//! - `routes.rs` — handlers: parse, authorize, call the service, map errors.
//! - `error.rs` — [`ApiError`] → `application/problem+json` with a stable `code`.
//!
//! # Invariants
//! - No double booking: one live consultation per slot is a unique index in the database.
//! - A patient or doctor never sees someone else's consultation: it is "not found".
//! - The audit log is append-only (database triggers refuse UPDATE and DELETE).

pub mod auth;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod integrations;
pub mod openapi;
pub mod recordings;
pub mod routes;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
pub use db::{Backend, Db, DbError};
use domain::Role;
pub use error::ApiError;
use vizit_signaling::TokenKeys;

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Business settings (the binary maps its config onto these).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// A booking not paid within this is expired and its slot released.
    pub pay_within: Duration,
    /// The call opens this long before the slot starts…
    pub join_before: Duration,
    /// …and closes this long after it ends.
    pub join_grace: Duration,
    /// A consultation not closed this long after its slot ended is flagged overdue.
    pub overdue_after: Duration,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Demo mode: dev login for patients.
    pub demo: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            pay_within: Duration::from_secs(30 * 60),
            join_before: Duration::from_secs(15 * 60),
            join_grace: Duration::from_secs(30 * 60),
            overdue_after: Duration::from_secs(24 * 3600),
            session_ttl: Duration::from_secs(12 * 3600),
            demo: false,
        }
    }
}

#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    pub keys: TokenKeys,
    pub settings: Arc<ApiSettings>,
    /// Slots from Bitrix24 and bookings pushed back; `None`: slots are managed through the API.
    pub bitrix24: Option<Arc<integrations::bitrix24::Bitrix24>>,
    /// Recording storage (local folder or S3) and its rules; `None`: no recordings.
    pub recordings: Option<Arc<recordings::Recordings>>,
}

impl ApiState {
    pub fn new(db: Db, keys: TokenKeys, settings: ApiSettings) -> Self {
        ApiState {
            db,
            keys,
            settings: Arc::new(settings),
            bitrix24: None,
            recordings: None,
        }
    }

    /// Turn recording storage on.
    pub fn with_recordings(mut self, r: Arc<recordings::Recordings>) -> Self {
        self.recordings = Some(r);
        self
    }

    /// Turn the Bitrix24 integration on.
    pub fn with_bitrix24(mut self, b: Arc<integrations::bitrix24::Bitrix24>) -> Self {
        self.bitrix24 = Some(b);
        self
    }
}

impl ApiState {
    /// Append one audit entry outside any transaction (reads, logins, key management).
    pub async fn audit(
        &self,
        caller: Option<&auth::Caller>,
        action: &str,
        object_type: &str,
        object_id: Option<&str>,
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        let mut conn = self.db.pool.acquire().await?;
        service::audit(&mut conn, caller, action, object_type, object_id, details).await?;
        Ok(())
    }
}

/// Milliseconds since the epoch, UTC.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The `/api/v1` routes.
pub fn router(state: ApiState) -> Router {
    use integrations::bitrix24::routes as b24;
    use routes as r;
    let api = Router::new()
        .route("/auth/login", post(r::login))
        .route("/auth/logout", post(r::logout))
        .route("/auth/dev-login", post(r::dev_login))
        .route("/me", get(r::me))
        .route("/patients", post(r::create_patient))
        .route("/patients/{id}/sessions", post(r::patient_session))
        .route("/staff", post(r::create_staff).get(r::list_staff))
        .route("/staff/{id}/disable", post(r::disable_staff))
        .route("/api-keys", post(r::create_api_key).get(r::list_api_keys))
        .route("/api-keys/{id}", delete(r::revoke_api_key))
        .route("/doctors", get(r::list_doctors))
        .route(
            "/doctors/{id}/slots",
            get(r::free_slots).post(r::create_slot),
        )
        .route("/consultations", post(r::book).get(r::list_consultations))
        .route("/consultations/{id}", get(r::get_consultation))
        .route("/consultations/{id}/cancel", post(r::cancel))
        .route("/consultations/{id}/payment", post(r::mark_paid))
        .route("/consultations/{id}/join", post(r::join))
        .route("/consultations/{id}/complete", post(r::complete))
        .route("/consultations/{id}/reschedule", post(r::reschedule))
        .route("/admin/overdue", get(r::overdue))
        .route("/admin/slot-conflicts", get(r::slot_conflicts))
        .route("/admin/integrations/bitrix24", get(b24::status))
        .route("/admin/integrations/bitrix24/sync", post(b24::sync_now))
        .route(
            "/admin/integrations/bitrix24/outbound",
            get(b24::outbound_list),
        )
        .route(
            "/admin/integrations/bitrix24/outbound/{id}/retry",
            post(b24::outbound_retry),
        )
        .route("/integrations/bitrix24/events", post(b24::event))
        .route("/recordings", get(recordings::list))
        .route("/recordings/{id}/download", post(recordings::download))
        .route("/recordings/{id}/file", get(recordings::file))
        .route("/recordings/{id}/legal-hold", post(recordings::legal_hold))
        .route("/audit", get(r::audit_log))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::page))
        .route("/docs.js", get(openapi::script))
        .fallback(r::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    Router::new().nest("/api/v1", api)
}

/// An e-mail address as stored: trimmed, lower case, plausibly an address.
pub fn normalized_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "email is not an e-mail address",
        ));
    }
    Ok(email)
}

/// A staff member to create (admin API and `vizit user create`).
pub struct NewStaff<'a> {
    pub role: Role,
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub specialty: Option<&'a str>,
    pub time_zone: Option<&'a str>,
    pub bitrix_resource_id: Option<&'a str>,
}

pub async fn create_staff_user(db: &Db, staff: NewStaff<'_>) -> Result<String, ApiError> {
    if staff.role == Role::Patient {
        return Err(ApiError::bad_request(
            "invalid_field",
            "patients are registered, not created as staff",
        ));
    }
    let email = normalized_email(staff.email)?;
    let name = staff.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "name must be 1 to 200 characters",
        ));
    }
    if staff.password.chars().count() < 10 {
        return Err(ApiError::bad_request(
            "weak_password",
            "the password must be at least 10 characters",
        ));
    }
    if staff.role == Role::Doctor && staff.specialty.is_none_or(|s| s.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "a doctor needs a specialty",
        ));
    }
    let hash = auth::hash_password(staff.password)?;
    let id = uuid::Uuid::new_v4().to_string();
    let mut tx = db.begin_write().await?;
    sqlx::query("INSERT INTO users (id, role, email, password_hash, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(staff.role.as_str())
        .bind(&email)
        .bind(&hash)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(ApiError::on_unique("email_taken", "a user with this e-mail exists"))?;
    if staff.role == Role::Doctor {
        sqlx::query("INSERT INTO doctors (user_id, specialty, bitrix_resource_id, time_zone) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(staff.specialty.unwrap_or_default().trim())
            .bind(staff.bitrix_resource_id.map(str::to_owned))
            .bind(staff.time_zone.unwrap_or("Europe/Moscow"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Run the background jobs every `interval` until `stop` turns true.
pub async fn run_jobs(
    state: ApiState,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match service::run_jobs(&state).await {
            Ok(report) if report != service::JobReport::default() => {
                tracing::info!(
                    expired = report.expired,
                    overdue = report.overdue,
                    recordings_deleted = report.recordings_deleted,
                    "consultation jobs ran"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "consultation jobs failed; retrying next round"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}
