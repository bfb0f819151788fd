//! People: patients, staff (doctors, admins, head doctors), their sessions, and the clinic
//! portal's API keys. Every request's caller is authenticated here (`auth.rs`).
//!
//! - `routes.rs` — `/auth/*`, `/me`, `/patients`, `/staff`, `/api-keys`.
//! - `service.rs` — the rules (who may be created with what, logins, sessions, keys).
//! - `repo.rs` — the SQL of `users`, `doctors`, `sessions`, `api_keys`.
//! - `credentials.rs` — argon2 passwords and hashed random secrets.
//! - `guard.rs` — login rate limits, and password checks off the async workers.
//! - `auth.rs` — the [`crate::domain::Caller`] extractor.

mod auth;
pub mod credentials;
pub mod guard;
mod repo;
pub mod routes;
pub mod service;

use axum::Router;
use axum::routing::{delete, get, post};

pub use service::{
    Error, MAX_CANDIDATES, NewPatient, NewStaff, PatientRecord, account_enabled, complete_patient,
    create_session, create_staff_user, email_in_use, import_doctor, insert_patient,
    normalized_email, patients_matching, register_patient, user_by_email,
};

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    use routes as r;
    Router::new()
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
}
