//! Recordings of consultations: the catalogue (per-participant files and the composite), the
//! admin API over it (list, download links, legal hold), the retention job, and the glue from
//! the live call (consents stored as evidence, files catalogued as they begin, composites made
//! after the call). Files reach the object store through `vizit-recordings`' spool.
//!
//! - `routes.rs` — `/recordings/*`.
//! - `catalogue.rs` — the rules: catalogue, spool hand-off, confirmation, links, hold, retention.
//! - `live.rs` — what the call reports ([`CallEvent`]) and the recorder's reports
//!   ([`CatalogueSink`]), in this crate's words: `api` does not depend on the media plane.
//! - `storage.rs` — [`Recordings`]: the spool, link lifetime, retention, link signing.
//! - `repo.rs` — the SQL of `recordings` and `recording_consents`.

pub mod catalogue;
pub mod live;
mod repo;
pub mod routes;
pub mod storage;

use axum::Router;
use axum::routing::{get, post};

pub use catalogue::{
    Begin, CatalogueConfirm, Error, NewRecording, RecordingKind, RecordingStatus, apply_retention,
    begin, register,
};
pub use live::{CallEvent, CatalogueSink, Party, TrackDone, recover_interrupted, run_call_events};
pub use storage::Recordings;

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    use routes as r;
    Router::new()
        .route("/recordings", get(r::list))
        .route("/recordings/{id}/download", post(r::download))
        .route("/recordings/{id}/file", get(r::file))
        .route("/recordings/{id}/legal-hold", post(r::legal_hold))
}
