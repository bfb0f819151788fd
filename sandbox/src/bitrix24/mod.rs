//! Bitrix24 stand-in: the Online Booking module (`booking.v1.*`) over an incoming webhook
//! (`/rest/{user_id}/{code}/{method}`) or OAuth (`/rest/{method}` with `auth`, tokens from
//! `/oauth/token/`), with the documented envelope, errors, paging by 50, `batch`, the leaky-bucket
//! rate limit, the 1018 conflict, and `ONBOOKING*` events POSTed form-encoded to a handler.
//!
//! Behaviour follows `shared/reference/integrations.md` §1 and the official docs it cites. Where
//! the docs disagree with themselves, the sandbox picks the example over the table (`booking.add`
//! returns `{"id": N}`; booking-method errors carry numeric codes) and the newest system-error table
//! (HTTP 401 for credential errors).

mod admin;
mod oauth;
mod portal;
mod rest;

use axum::Router;

pub use portal::{
    B24Error, Bitrix24, Bitrix24Options, Booking, BookingClient, ClientType, DatePeriod, Fault,
    Moment, NewBooking, Resource, SlotRange, random_code, weekday,
};

/// The HTTP routes: REST, OAuth and the admin surface.
pub fn router(b: &Bitrix24) -> Router {
    Router::new()
        .merge(rest::router(b.clone()))
        .merge(oauth::router(b.clone()))
        .merge(admin::router(b.clone()))
}
