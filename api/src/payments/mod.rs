//! Payments, refunds and fiscal receipts through YooKassa (issue 17).
//!
//! - A booked paid consultation gets a payment attempt with a 54-FZ receipt (`subscriber.rs`
//!   hears `consultation.booked`); its create call goes through the outbound queue with an
//!   idempotence key stored first (`calls.rs`), and the patient pays on YooKassa's page
//!   (`POST /consultations/{id}/checkout` returns it). A free consultation is paid at once.
//! - YooKassa's word — from its API, after a notification (`routes.rs`: address-checked,
//!   stored, deduplicated; `worker.rs` reads the object back) or from reconciliation
//!   (`reconcile.rs`) — moves a payment only forward (`service.rs`). With two-stage payments
//!   (the default) the money is held and captured only while the booking still waits for it,
//!   else released; a succeeded payment makes the consultation paid, or is refunded if the
//!   booking no longer waits.
//! - Cancellation refunds in full (the doctor or the clinic always; the patient within the
//!   clinic's notice); an admin refunds part of a payment with a reason.
//! - Receipts are looked for after each succeeded payment and refund and their fiscal data
//!   stored (`receipts.rs`); `receipt.registered` has the patient e-mailed (notifications);
//!   one not registered in time is flagged.
//! - `repo.rs`: the SQL of `payments`, `refunds`, `receipts`; `settings.rs`: the provider and
//!   the clinic's rules.

pub mod calls;
pub mod receipts;
pub mod reconcile;
pub mod repo;
pub mod routes;
pub mod service;
pub mod settings;
pub mod subscriber;
pub mod worker;

use axum::Router;
use axum::routing::{get, post};

pub use settings::{PaymentSettings, Payments, SYSTEM, YOOKASSA_SOURCES};

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    use routes as r;
    Router::new()
        .route("/consultations/{id}/checkout", post(r::checkout))
        .route(
            "/consultations/{id}/payments",
            get(r::consultation_payments),
        )
        .route("/admin/payments", get(r::list_payments))
        .route("/admin/refunds", get(r::list_refunds))
        .route("/admin/receipts", get(r::list_receipts))
        .route("/payments/{id}/refunds", post(r::refund))
        .route(
            "/integrations/yookassa/notifications",
            post(r::notification),
        )
}
