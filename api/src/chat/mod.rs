//! The chat of a consultation: text messages and files (photos, PDFs of analyses, the doctor's
//! conclusion) between its patient and doctor, during the call and kept with the consultation
//! afterwards. Files go to the recordings' object store.
//!
//! - `sniff.rs` — what a file is, by its bytes; the name it is kept under.
//! - `hub.rs` — the waiting readers and the flood limit (in memory).
//! - `service.rs` — the rules, the flood limit and the wait for new messages;
//!   `repo.rs` — the SQL; `routes.rs` — the HTTP.

pub mod hub;
pub mod repo;
pub mod routes;
pub mod service;
pub mod sniff;

use axum::Router;
use axum::routing::{get, post};

pub use hub::{Chat, ChatSettings};

/// Where the call page sends files: the server lets bodies up to `chat.max_file_mb` through
/// on this path only.
pub const UPLOAD_PATH: &str = "/api/v1/call/files";

pub fn routes() -> Router<crate::state::ApiState> {
    use routes as r;
    Router::new()
        .route(
            "/call/messages",
            get(r::call_messages).post(r::post_message),
        )
        .route("/call/files", post(r::post_file))
        .route("/call/files/{id}", get(r::call_file))
        .route(
            "/consultations/{id}/messages",
            get(r::consultation_messages),
        )
        .route(
            "/consultations/{id}/files/{file}",
            get(r::consultation_file),
        )
}
