//! Documents: the questionnaires of a consultation (symptoms, anamnesis) as versioned forms,
//! and patients' requests to delete their medical documents.
//!
//! - `forms.rs` — what a form is, the built-in ones, the checks of forms and answers.
//! - `days.rs` — working days, for a request's deadline.
//! - `service.rs` — the rules; `repo.rs` — the SQL; `routes.rs` — the HTTP;
//!   `settings.rs` — the clinic's rules.
//! - Here: the outbox subscriber that assigns questionnaires on booking, and the
//!   scheduler job that flags a request not answered by its deadline.
//!
//! Notifications hear of `questionnaire.assigned` and the `deletion.*` events; nothing here
//! names a channel.

pub mod days;
pub mod forms;
pub mod repo;
pub mod routes;
pub mod service;
pub mod settings;

use axum::Router;
use axum::routing::{get, post};
use sqlx::AnyConnection;

pub use days::Calendar;
pub use forms::Kind;
pub use settings::DocumentSettings;

use crate::domain::EventKind;
use crate::platform::BoxFuture;
use crate::platform::outbox::{Event, Subscriber};
use crate::platform::scheduler::{Due, Job};
use crate::state::Core;

pub fn routes() -> axum::Router<crate::state::ApiState> {
    use routes as r;
    Router::new()
        .route(
            "/consultations/{id}/questionnaires",
            get(r::of_consultation).post(r::assign),
        )
        .route("/questionnaires/{id}", get(r::get).put(r::save))
        .route("/me/questionnaires", get(r::mine))
        .route(
            "/me/deletion-requests",
            get(r::my_requests).post(r::request_deletion),
        )
        .route("/admin/questionnaire-forms", get(r::forms))
        .route("/admin/questionnaire-forms/{kind}", post(r::publish))
        .route("/admin/deletion-requests", get(r::requests))
        .route("/admin/deletion-requests/{id}/answer", post(r::answer))
        .route("/admin/deletion-requests/{id}/extend", post(r::extend))
}

/// Assigns the configured questionnaires to each booked consultation.
pub struct AssignOnBooking(pub Core);

impl AssignOnBooking {
    async fn on_event(&self, conn: &mut AnyConnection, event: &Event) -> anyhow::Result<()> {
        let kinds = &self.0.settings.documents.assign_on_booking;
        let Some(id) = event.consultation_id.as_deref() else {
            return Ok(());
        };
        if kinds.is_empty() {
            return Ok(());
        }
        let Some(c) = crate::consultations::repo::load(conn, id).await? else {
            return Ok(());
        };
        if c.status != "booked" && c.status != "paid" {
            return Ok(());
        }
        let visit = service::Visit {
            id: &c.id,
            patient_id: &c.patient_id,
        };
        service::assign_in(conn, &self.0.outbox, None, &visit, kinds, self.0.now()).await?;
        Ok(())
    }
}

impl Subscriber for AssignOnBooking {
    fn name(&self) -> &'static str {
        "documents.assign_on_booking"
    }

    fn wants(&self, kind: &str) -> bool {
        EventKind::parse(kind) == Some(EventKind::ConsultationBooked)
    }

    fn handle<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.on_event(conn, event))
    }

    fn delivered(&self, _event: &Event) {
        self.0.outbox.notify();
    }
}

/// A deletion request's deadline passed.
pub struct OverdueJob(pub Core);

impl Job for OverdueJob {
    fn kind(&self) -> &'static str {
        service::OVERDUE
    }

    fn run<'a>(&'a self, job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let p = job.payload.clone().unwrap_or_default();
            let (Some(id), Some(due)) = (p["requestId"].as_str(), p["dueAt"].as_i64()) else {
                anyhow::bail!("a deletion deadline job without its request");
            };
            if service::overdue(&self.0, id, due).await? {
                tracing::warn!(request = %id, "a deletion request was not answered by its deadline");
            }
            Ok(())
        })
    }
}
