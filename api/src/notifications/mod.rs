//! Notifications: messages to patients and the clinic's staff about what happened, through
//! the outbox (a change and its message are one transaction) and the outbound queue (a channel
//! down delays a message and loses none).
//!
//! Today the channel is e-mail (`sender.rs`, SMTP through `vizit-integrations`). The messages
//! are the patient's receipt (`receipt.rs`, on `receipt.registered`) and the notifications
//! about consultations (`notices.rs`: events and scheduler jobs → `texts.rs` → the log in
//! `log.rs`, with each channel's status history). E-mails are stored in `emails` (`repo.rs`)
//! once per deduplication key; `email.sent` and `email.failed` say how each one went. Texts never hold a diagnosis, a conclusion or what the patient said
//! (medical secrecy).

pub mod log;
pub mod notices;
pub mod qr;
pub mod receipt;
pub mod repo;
pub mod routes;
pub mod sender;
pub mod settings;
pub mod texts;

use axum::Router;
use axum::routing::{get, post};

pub use settings::{EmailSettings, NoticeRules, Notifications, SYSTEM};

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/admin/emails", get(routes::list_emails))
        .route("/admin/emails/{id}/retry", post(routes::retry_email))
        .route("/admin/notifications", get(routes::list_notifications))
        .route("/notifications/open/{token}", get(routes::open_link))
}
