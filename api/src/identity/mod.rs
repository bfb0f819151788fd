//! Identity: patients register and sign in through ESIA (Gosuslugi), their personal data as
//! ESIA gave it, the consents 152-FZ requires, and how each party of a consultation was
//! identified (`shared/reference/integrations.md` §3; docs/esia.md).
//!
//! - `pages.rs` — the browser's side: `/login/esia` → ESIA → `/login/esia/callback` →
//!   (`/login/esia/consents` for a new patient) → a session cookie → `/consultations`.
//! - `routes.rs` — JSON: `/auth/options`, `/me/personal-data`, `/patients/{id}/personal-data`.
//! - `service.rs` — the rules: browser-bound state and PKCE, tokens checked, verified matches
//!   only, consents, identifications.
//! - `tokens.rs` — ESIA's JWTs verified; `person.rs` — the person read; `repo.rs` — the SQL;
//!   `settings.rs` — [`EsiaLogin`].
//!
//! Layered above people (it creates patients and sessions through people's exports) and below
//! consultations (which record and show identifications through this module's exports).

pub mod pages;
pub mod person;
mod repo;
pub mod routes;
pub mod service;
pub mod settings;
pub mod tokens;

use axum::Router;
use axum::routing::get;

pub use routes::{IdentificationView, PersonalDataView, for_doctor, identifications_of};
pub use service::{purge, record_identification};
pub use settings::EsiaLogin;

use crate::state::ApiState;

/// The JSON routes (under `/api/v1`).
pub fn routes() -> Router<ApiState> {
    use routes as r;
    Router::new()
        .route("/auth/options", get(r::auth_options))
        .route("/me/personal-data", get(r::my_personal_data))
        .route(
            "/patients/{id}/personal-data",
            get(r::patient_personal_data),
        )
}

/// The browser's pages (at the root).
pub fn pages() -> Router<ApiState> {
    use pages as p;
    Router::new()
        .route("/login/esia", get(p::start))
        .route("/login/esia/callback", get(p::callback))
        .route(
            "/login/esia/consents",
            get(p::consents_page).post(p::consents_submit),
        )
        .route("/login/esia/logout", get(p::logout))
        .route("/legal/{kind}", get(p::legal))
}
