//! The platform layer the capabilities share, and how they talk without importing each other:
//!
//! - `db.rs` — [`Db`]: SQLite (default) or PostgreSQL behind one `AnyPool`, migrations per engine.
//! - `clock.rs` — [`Clock`]: the time business decisions use; tests move it.
//! - `audit.rs` — the audit log's writer.
//! - `outbox.rs` — [`Outbox`]: domain events written in the transaction of the change,
//!   delivered at least once, in order per consultation, to subscribers registered by kind.
//! - `outbound.rs` — [`Outbound`]: one queue of calls to external systems; each system's
//!   executor claims only its own rows, in order per (system, consultation), with a lease.
//! - `inbound.rs` — the inbound webhook store: verified events stored, deduplicated, answered at
//!   once and processed by a worker.
//! - `net.rs` — address ranges and the caller's address behind trusted proxies (webhooks known
//!   by their sender's address).
//! - `scheduler.rs` — [`Scheduler`]: at-time and recurring jobs on the database, leased, safe
//!   with several nodes.
//! - `throttle.rs` — [`Throttle`]: one log line per interval for what outsiders can trigger at
//!   will (refused webhooks).
//!
//! Nothing here names a capability: capabilities depend on the platform, never the reverse.

pub mod audit;
pub mod backoff;
pub mod clock;
pub mod db;
pub mod future;
pub mod inbound;
pub mod net;
pub mod outbound;
pub mod outbox;
pub mod scheduler;
pub mod throttle;

pub use backoff::backoff_ms;
pub use clock::{Clock, now_ms};
pub use db::{Backend, Db, DbError};
pub use future::BoxFuture;
pub use outbound::Outbound;
pub use outbox::Outbox;
pub use scheduler::Scheduler;
pub use throttle::Throttle;
