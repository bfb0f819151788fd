//! Notifications: messages to patients and the clinic's staff about what happened, through
//! the outbox (a change and its message are one transaction) and the outbound queue (a channel
//! down delays a message and loses none).
//!
//! Today the channel is e-mail (`sender.rs`, SMTP through `vizit-integrations`) and the one
//! message is the patient's receipt (`receipt.rs`, on `receipt.registered`). Messages are
//! stored in `emails` (`repo.rs`) once per deduplication key; `email.sent` says when the
//! server took one. Texts never hold a diagnosis, a conclusion or what the patient said
//! (medical secrecy).

pub mod qr;
pub mod receipt;
pub mod repo;
pub mod routes;
pub mod sender;
pub mod settings;

use axum::Router;
use axum::routing::{get, post};

pub use settings::{EmailSettings, Notifications, SYSTEM};

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/admin/emails", get(routes::list_emails))
        .route("/admin/emails/{id}/retry", post(routes::retry_email))
}
