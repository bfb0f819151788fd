//! Notifications: messages to patients and the clinic's staff about what happened, through
//! the outbox (a change and its message are one transaction) and the outbound queue (a channel
//! down delays a message and loses none).
//!
//! The channels are e-mail (`sender.rs`, SMTP through `vizit-integrations`), MAX and edna Pulse
//! (`messengers.rs`), in the order and with the fallback of `channels.rs`. The messages
//! are the patient's receipt (`receipt.rs`, on `receipt.registered`) and the notifications
//! about consultations (`notices.rs`: events and scheduler jobs → `texts.rs` → the log in
//! `log.rs`, with each channel's status history). E-mails are stored in `emails` (`repo.rs`)
//! once per deduplication key; `email.sent` and `email.failed` say how each one went. Texts never hold a diagnosis, a conclusion or what the patient said
//! (medical secrecy).

pub mod channels;
pub mod log;
pub mod messengers;
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

pub use settings::{
    Channels, EdnaChannel, EmailSettings, MaxChannel, NoticeRules, Notifications, SYSTEM,
};

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/admin/emails", get(routes::list_emails))
        .route("/admin/emails/{id}/retry", post(routes::retry_email))
        .route("/admin/notifications", get(routes::list_notifications))
        .route("/admin/notifications/{id}/resend", post(routes::resend))
        .route("/notifications/open/{token}", get(routes::open_link))
        .route(
            "/me/notifications",
            get(routes::my_channels).put(routes::choose_channels),
        )
        .route(
            "/me/notifications/max",
            post(routes::link_max).delete(routes::unlink_max),
        )
        .route("/integrations/max/webhook", post(messengers::max_webhook))
        .route(
            "/integrations/edna/status",
            post(messengers::edna_status).head(messengers::edna_check),
        )
}
