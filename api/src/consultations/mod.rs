//! Consultations: booking a slot, the state machine's transitions (pay, start, complete,
//! cancel, expire), rescheduling, the join window and join tokens, and the clinic's lists of
//! overdue and conflicting consultations.
//!
//! - `routes.rs` — `/consultations/*`, `/admin/overdue`, `/admin/slot-conflicts`.
//! - `service.rs` — the rules; each change writes its domain event and audit entry in its
//!   transaction. It names no external system.
//! - `repo.rs` — the SQL of `consultations`.
//! - `jobs.rs` — the periodic sweeps: expiry of unpaid bookings, overdue flags.
//! - `bookings.rs` — what a slot source may do to the consultations on its slots.

mod bookings;
pub mod jobs;
pub mod repo;
pub mod routes;
pub mod service;

use axum::Router;
use axum::routing::{get, post};

pub use bookings::SlotBookings;
pub use repo::ConsultationRow;
pub use service::{
    CallRefusal, Error, Move, Summary, TransitionData, admits_call, book, load, summary,
    transition, visible_to,
};

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    use routes as r;
    Router::new()
        .route("/consultations", post(r::book).get(r::list_consultations))
        .route("/consultations/{id}", get(r::get_consultation))
        .route("/consultations/{id}/cancel", post(r::cancel))
        .route("/consultations/{id}/payment", post(r::mark_paid))
        .route("/consultations/{id}/join", post(r::join))
        .route(
            "/consultations/{id}/identifications",
            get(r::identifications),
        )
        .route("/consultations/{id}/patient-data", get(r::patient_data))
        .route("/consultations/{id}/complete", post(r::complete))
        .route("/consultations/{id}/reschedule", post(r::reschedule))
        .route("/admin/overdue", get(r::overdue))
        .route("/admin/slot-conflicts", get(r::slot_conflicts))
}
