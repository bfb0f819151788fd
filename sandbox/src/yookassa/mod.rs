//! YooKassa stand-in: API v3 (`/yookassa/v3/…`) for payments, refunds and 54-FZ receipts, as
//! `shared/reference/integrations.md` §2 and the official OpenAPI document
//! (`sandbox/spec/yookassa-openapi.json`) describe it:
//!
//! - HTTP Basic auth (shop id : secret key); `Idempotence-Key` on every POST, kept
//!   `idempotence_ttl` (24 h): the same key and body get the first answer again, the same key
//!   with another body the documented `400 invalid_request` "Idempotence key duplicated";
//! - `POST /payments` checks `amount`, `description`, `confirmation` (redirect), `capture`,
//!   `metadata` and the `receipt` as a shop with 54-FZ receipts does (`validate.rs`);
//! - a payment is `pending` until a person pays or declines on its `confirmation_url` page
//!   (`checkout.rs`, Russian; the same by the admin API), then `waiting_for_capture` (two-stage)
//!   or `succeeded`, or `canceled` with `cancellation_details`; capture and cancel;
//! - refunds, full or partial, never above what is left of the payment;
//! - a receipt per succeeded payment and refund that has one, registered `receipt_delay` later
//!   with fiscal fields (ФН, ФД, ФП, time), read with `GET /receipts?payment_id=|refund_id=`;
//! - notifications (`payment.waiting_for_capture`, `payment.succeeded`, `payment.canceled`,
//!   `refund.succeeded`) POSTed to the configured URL from a configurable source address,
//!   retried until answered 200; duplicated, delayed, held and released out of order on demand
//!   (`notify.rs`);
//! - fault injection: `202` with `retry_after`, `429`, `500`, an answer lost after the work was
//!   done, a slow answer (`admin.rs`).
//!
//! What YooKassa does not publish (its fee, card details) is made up plausibly and marked as a
//! test (`"test": true`).

mod admin;
mod api;
mod checkout;
mod shop;
mod validate;

use axum::Router;

pub use shop::{
    Fault, Fiscal, NotifyMode, Payment, Receipt, Refund, Refused, Sent, YooKassa, YooKassaOptions,
};
pub use validate::{Invalid, kopecks_from_value, value_from_kopecks};

/// The HTTP routes: the API, the confirmation page and the admin surface.
pub fn router(y: &YooKassa) -> Router {
    Router::new()
        .merge(api::router(y.clone()))
        .merge(checkout::router(y.clone()))
        .merge(admin::router(y.clone()))
}
