//! Vizit's business layer: consultations, slots, people and roles, recordings, the audit log,
//! and the REST API the clinic portal uses (`/api/v1`).
//!
//! # Layout
//! One folder per capability, over a bottom floor they share:
//! - `domain/` — the business's own words: ids that parse, roles and the caller, the
//!   consultation state machine and its join window, money in kopecks, the kinds of domain
//!   events. No SQL, no HTTP.
//! - `http/` — [`ApiError`] as `application/problem+json`, extractors, paging, reading inputs.
//! - `platform/` — the database, the clock, the audit writer, and how capabilities talk without
//!   importing each other: the outbox (domain events to subscribers), the outbound queue (calls
//!   to external systems), the inbound webhook store, the scheduler.
//! - `people/`, `identity/` (ESIA sign-in, personal data, consents), `slots/` (with
//!   `slots/bitrix24/`, the Bitrix24 slot source), `consultations/`, `recordings/`,
//!   `payments/`, `notifications/`, `documents/`, `audit/` — each with `routes.rs` (parse, authorize, call
//!   the service, map its error), `service.rs` (the rules, with an error enum of its own) and
//!   `repo.rs` (its SQL), and a `routes()` in its `mod.rs`.
//! - `state.rs` — [`ApiState`], [`ApiSettings`], and [`state::Core`] (what services run on).
//! - Here: [`router`] (every capability's routes), the wiring of the Bitrix24 slot source to
//!   the outbox, the outbound queue and the consultations ([`ApiState::with_bitrix24`]), and
//!   the background workers ([`run_workers`]). `jobs.rs`: the periodic jobs; `demo.rs`: demo
//!   mode; `openapi.rs`: the document, which names every capability's handlers.
//!
//! Capabilities are layered people → identity → slots → consultations → recordings; a capability calls
//! a lower one through what its `mod.rs` exports, and hears of a higher one only through domain
//! events on the outbox or a small trait the lower one defines (slots'
//! [`slots::BookedConsultations`]). `api` does not depend on the media plane: the binary maps
//! media's room events onto [`recordings::CallEvent`].
//!
//! # Invariants
//! - No double booking: one live consultation per slot is a unique index in the database.
//! - A patient or doctor never sees someone else's consultation: it is "not found".
//! - The audit log is append-only (database triggers refuse UPDATE and DELETE).
//! - Every domain event is written in the transaction of its change and reaches each of its
//!   subscribers at least once, in order per consultation.

pub mod audit;
pub mod chat;
pub mod consultations;
pub mod demo;
pub mod documents;
pub mod domain;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod notifications;
pub mod openapi;
pub mod payments;
pub mod people;
pub mod platform;
pub mod precall;
pub mod recordings;
pub mod slots;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;

pub use http::{ApiError, MAX_BODY_BYTES};
pub use people::{NewStaff, create_staff_user};
pub use platform::{Backend, Clock, Db, DbError, now_ms};
pub use state::{ApiSettings, ApiState};

use crate::slots::bitrix24::Bitrix24;

/// The `/api/v1` routes.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .merge(people::routes())
        .merge(slots::routes())
        .merge(consultations::routes())
        .merge(recordings::routes())
        .merge(payments::routes())
        .merge(notifications::routes())
        .merge(documents::routes())
        .merge(chat::routes())
        .route(
            "/connection-check",
            axum::routing::post(precall::connection_check),
        )
        .route("/call/link", get(precall::call_link))
        .merge(identity::routes())
        .merge(audit::routes())
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::page))
        .route("/docs.js", get(openapi::script))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(not_stored))
        .with_state(state.clone());
    Router::new()
        .nest("/api/v1", api)
        .merge(identity::pages().with_state(state))
}

/// The API's answers are personal and medical data: no cache, shared or private, keeps them
/// (a handler that means otherwise sets its own `Cache-Control`).
async fn not_stored(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    response
}

/// Unknown paths under the API answer with a problem document too.
async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("resource")
}

impl ApiState {
    /// Turn documents' background parts on: questionnaires assigned on booking (an outbox
    /// subscriber) and deletion requests flagged at their deadline (a scheduler job). Every
    /// node calls it before serving, so no booking misses its questionnaires.
    pub fn with_documents(self) -> Self {
        let core = self.core();
        if let Err(e) = self
            .outbox
            .subscribe(Arc::new(documents::AssignOnBooking(core.clone())))
        {
            tracing::warn!(error = %e, "the documents subscriber is registered already");
        }
        self.scheduler
            .register(Arc::new(documents::OverdueJob(core)));
        self
    }

    /// Turn patients' sign-in through ESIA on.
    pub fn with_esia(mut self, e: Arc<identity::EsiaLogin>) -> Self {
        self.esia = Some(e);
        self
    }

    /// Turn recording storage on.
    pub fn with_recordings(mut self, r: Arc<recordings::Recordings>) -> Self {
        self.recordings = Some(r);
        self
    }

    /// Turn the Bitrix24 slot source on: it hears of bookings through the outbox, its calls
    /// run from the outbound queue, and it may refuse or flag the consultations booked on its
    /// slots.
    pub fn with_bitrix24(mut self, b: Arc<Bitrix24>) -> Self {
        b.connect(Arc::new(consultations::SlotBookings(self.core())));
        // Registered once per state; a second call with another integration keeps the first
        // subscriber (the names are unique).
        if let Err(e) = self.outbox.subscribe(Arc::new(
            slots::bitrix24::subscriber::BookingSubscriber::new(self.clock.clone(), b.waker()),
        )) {
            tracing::warn!(error = %e, "the Bitrix24 subscriber is registered already");
        }
        self.outbound
            .register(Arc::new(slots::bitrix24::outbound::BookingCalls::new(
                self.db.clone(),
                self.clock.clone(),
                b.clone(),
            )));
        self.bitrix24 = Some(b);
        self
    }
}

impl ApiState {
    /// Turn online payments on: the payments subscriber hears of bookings and cancellations,
    /// YooKassa's calls run from the outbound queue, reconciliation, free bookings and receipts
    /// are jobs of the scheduler. Run [`payments::worker::run`] beside the other workers.
    pub fn with_payments(mut self, p: Arc<payments::Payments>) -> Self {
        if let Err(e) =
            self.outbox
                .subscribe(Arc::new(payments::subscriber::ConsultationPayments {
                    clock: self.clock.clone(),
                    payments: p.clone(),
                }))
        {
            tracing::warn!(error = %e, "the payments subscriber is registered already");
        }
        self.outbound
            .register(Arc::new(payments::calls::PaymentCalls {
                core: self.core(),
                payments: p.clone(),
            }));
        self.scheduler
            .register(Arc::new(payments::reconcile::Reconcile {
                core: self.core(),
                payments: p.clone(),
            }));
        self.scheduler
            .register(Arc::new(payments::reconcile::Free { core: self.core() }));
        self.scheduler.register(Arc::new(payments::receipts::Look {
            core: self.core(),
            payments: p.clone(),
        }));
        self.payments = Some(p);
        self
    }
}

impl ApiState {
    /// Turn e-mail on: receipts are e-mailed to patients (`receipt.registered`), messages go out
    /// from the outbound queue. Run [`notifications::sender::run`] beside the other workers.
    pub fn with_notifications(mut self, n: Arc<notifications::Notifications>) -> Self {
        if let Err(e) = self
            .outbox
            .subscribe(Arc::new(notifications::receipt::ReceiptEmails {
                clock: self.clock.clone(),
                notifications: n.clone(),
            }))
        {
            tracing::warn!(error = %e, "the receipt e-mail subscriber is registered already");
        }
        self.outbound
            .register(Arc::new(notifications::sender::EmailCalls {
                core: self.core(),
                notifications: n.clone(),
            }));
        let notices = notifications::notices::Notices::of(&self, &n);
        if let Err(e) =
            self.outbox
                .subscribe(Arc::new(notifications::notices::ConsultationNotices(
                    notices.clone(),
                )))
        {
            tracing::warn!(error = %e, "the notification subscriber is registered already");
        }
        notifications::messengers::register(&self, &notices);
        for kind in [
            notifications::notices::REMINDER,
            notifications::notices::MUST_CLOSE,
            notifications::notices::REVIEW,
            notifications::notices::MOVED,
            notifications::notices::FALLBACK,
        ] {
            self.scheduler
                .register(Arc::new(notifications::notices::NoticeJob {
                    kind,
                    notices: notices.clone(),
                }));
        }
        self.notifications = Some(n);
        self
    }
}

/// Run the platform's background workers until `stop` turns true: the outbox dispatcher and
/// the scheduler (with the periodic jobs). Integrations' own workers (Bitrix24's) are started
/// by the caller.
pub async fn run_workers(state: ApiState, stop: tokio::sync::watch::Receiver<bool>) {
    if let Err(e) = jobs::schedule(&state).await {
        tracing::error!(error = %e, "the periodic jobs could not be scheduled; retrying at each start");
    }
    let poll = Duration::from_secs(1).min(state.settings.jobs_interval);
    tokio::join!(
        state.outbox.clone().run(stop.clone()),
        state.scheduler.clone().run(poll, stop),
    );
}
