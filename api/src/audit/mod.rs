//! The audit log's API: admins read who read or changed what (the entries are written by every
//! capability through `platform::audit`; the table is append-only).

mod repo;
pub mod routes;

use axum::Router;
use axum::routing::get;

use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/audit", get(routes::audit_log))
}
