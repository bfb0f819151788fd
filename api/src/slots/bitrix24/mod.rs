//! Slots from Bitrix24 (Online Booking, `booking.v1.*`, through an incoming webhook) and
//! bookings pushed back. See `docs/bitrix24.md` for the behaviour and `sync.rs` for who wins a
//! conflict.
//!
//! - `source.rs` — [`Bitrix24`]: client, settings, counters, the worker's wake-up.
//! - `client.rs` — the REST client (envelope, errors, paging, batch, rate limit, retries).
//! - `schedule.rs` — free slots from templates and bookings, time-zone and DST safe.
//! - `sync.rs` — the periodic and event-driven synchronisation; slot conflicts.
//! - `subscriber.rs` — consultation events become queued calls (book, cancel, move).
//! - `outbound.rs` — the executor of those calls from the outbound queue.
//! - `events.rs` — `ONBOOKING*` events: verified, stored, processed by the worker.
//! - `worker.rs` — the background loop: calls, events, periodic sync.
//! - `routes.rs` — the event handler and the admin endpoints.
//! - `repo.rs` — its SQL.

pub mod client;
pub mod events;
pub mod metrics;
pub mod outbound;
mod repo;
pub mod routes;
pub mod schedule;
pub mod source;
pub mod subscriber;
pub mod sync;
pub mod worker;

pub use client::{B24Error, Client, ClientSettings};
pub use metrics::Metrics;
pub use source::{Bitrix24, Bitrix24Settings, SYSTEM};
pub use sync::SyncReport;
pub use worker::run;
