//! Slots: doctors and their free slots, slots published by hand, and Bitrix24 as a slot source
//! (`bitrix24/`). A booking takes and releases slots through the helpers exported here, in the
//! booking's own transaction; what a slot source may do to the consultations booked on its
//! slots is the [`BookedConsultations`] trait, which the consultations capability implements.

pub mod bitrix24;
mod bookings;
mod repo;
pub mod routes;
pub mod service;

use axum::Router;
use axum::routing::get;

pub use bookings::BookedConsultations;
pub use repo::{DoctorRow, Slot, find, leave, set_status, take};

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    use axum::routing::{post, put};
    use bitrix24::routes as b24;
    use routes as r;
    Router::new()
        .route("/doctors", get(r::list_doctors))
        .route("/doctors/{id}/price", put(r::set_doctor_price))
        .route(
            "/doctors/{id}/slots",
            get(r::free_slots).post(r::create_slot),
        )
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
}
