//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations, and a small
//! self-contained page that renders it (no CDN: it is served by Vizit itself).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::audit::routes as audit;
use crate::chat::routes as chat;
use crate::consultations::routes as consultations;
use crate::documents::routes as documents;
use crate::identity::routes as identity;
use crate::notifications::routes as notifications;
use crate::payments::routes as payments;
use crate::people::routes as people;
use crate::recordings::routes as recordings;
use crate::slots::bitrix24::routes as b24;
use crate::slots::routes as slots;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vizit API",
        version = "1",
        description = "Consultations, slots, people and the audit log of a Vizit clinic. Errors are \
                       application/problem+json documents with a stable `code`."
    ),
    paths(
        people::login, people::logout, people::dev_login, people::me,
        people::create_patient, people::patient_session,
        people::create_staff, people::list_staff, people::disable_staff,
        people::create_api_key, people::list_api_keys, people::revoke_api_key,
        slots::list_doctors, slots::set_doctor_price, slots::free_slots, slots::create_slot,
        consultations::book, consultations::list_consultations, consultations::get_consultation, consultations::cancel,
        consultations::mark_paid, consultations::join, consultations::complete,
        consultations::reschedule, consultations::identifications, consultations::patient_data,
        identity::auth_options, identity::my_personal_data, identity::patient_personal_data,
        consultations::overdue, consultations::slot_conflicts, audit::audit_log,
        b24::event, b24::status, b24::sync_now, b24::outbound_list, b24::outbound_retry,
        recordings::list, recordings::download, recordings::file, recordings::legal_hold,
        payments::checkout, payments::consultation_payments, payments::list_payments,
        payments::list_refunds, payments::list_receipts, payments::refund, payments::notification,
        notifications::list_emails, notifications::retry_email,
        notifications::list_notifications, notifications::open_link,
        notifications::resend, notifications::my_channels, notifications::choose_channels,
        notifications::link_max, notifications::unlink_max,
        crate::notifications::messengers::max_webhook, crate::notifications::messengers::edna_status,
        documents::of_consultation, documents::assign, documents::get, documents::save,
        documents::mine, documents::forms, documents::publish, documents::request_deletion,
        documents::my_requests, documents::requests, documents::answer, documents::extend,
        chat::call_messages, chat::post_message, chat::post_file, chat::call_file,
        chat::consultation_messages, chat::consultation_file,
        crate::precall::connection_check, crate::precall::call_link,
    ),
    modifiers(&BearerAuth, &ProblemContent),
    tags(
        (name = "sessions", description = "Log in and out"),
        (name = "people", description = "Patients registered by the portal"),
        (name = "slots", description = "Doctors and their free slots"),
        (name = "consultations", description = "Booking, payment, the call, closing"),
        (name = "admin", description = "Staff, API keys, overdue consultations, slot conflicts, audit log"),
        (name = "recordings", description = "Recordings of consultations: list, download links, legal hold (admins and head doctors)"),
        (name = "integrations", description = "Bitrix24: the event handler it calls, and the state of the sync; YooKassa's notifications"),
        (name = "payments", description = "Payments through YooKassa, refunds and fiscal receipts (54-FZ)"),
        (name = "documents", description = "Questionnaires of a consultation (versioned forms, filled in by the patient, read by the doctor) and patients' requests to delete their medical documents"),
        (name = "chat", description = "The chat of a consultation: messages and files (photos, PDFs) between its patient and doctor, during the call (with the join token) and afterwards"),
        (name = "notifications", description = "Messages to patients and staff: the receipt of each payment and refund, and notifications about consultations, with their status on each channel"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token (vzs_…) or the portal's API key (vzk_…). A browser that \
                         signed in through ESIA (/login/esia) sends its session as the \
                         `vizit_session` cookie instead (writes only from Vizit's own pages)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "callToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The join token of a consultation's call (from POST \
                         /consultations/{id}/join): the call page's chat speaks with it",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every error response is an `application/problem+json` document: the handlers' annotations
/// name the `Problem` schema, this names its media type.
struct ProblemContent;

impl Modify for ProblemContent {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                    if let (true, utoipa::openapi::RefOr::T(response)) = (is_error, response)
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response
                            .content
                            .insert("application/problem+json".to_owned(), content);
                    }
                }
            }
        }
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Response {
    let json = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// `GET /api/v1/docs`: the document rendered for people.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DOCS_HTML,
    )
        .into_response()
}

/// `GET /api/v1/docs.js`.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        DOCS_JS,
    )
        .into_response()
}

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vizit API</title><link rel="icon" href="data:,">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1d232a}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.op{border:1px solid #e3e6ea;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;text-transform:uppercase}
.get{color:#0b7a3e}.post{color:#1f5fbf}.delete{color:#b3261e}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f6f8fa;padding:.5rem;overflow:auto}
summary{cursor:pointer}
</style></head>
<body><h1>Vizit API <small>/api/v1</small></h1>
<p>The machine-readable document: <a href="/api/v1/openapi.json">openapi.json</a> (OpenAPI 3.1).</p>
<div id="ops">Loading…</div>
<script src="/api/v1/docs.js"></script></body></html>"#;

const DOCS_JS: &str = r#"'use strict';
(async () => {
  const root = document.getElementById('ops');
  const doc = await (await fetch('/api/v1/openapi.json')).json();
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
  const ref = (s) => s && s.$ref ? s.$ref.split('/').pop() : s && s.type === 'array' && s.items ? ref(s.items) + '[]' : s ? (s.type || 'object') : '';
  root.textContent = '';
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || 'other';
      (byTag[tag] = byTag[tag] || []).push([method, path, op]);
    }
  }
  for (const tag of (doc.tags || []).map((t) => t.name).concat(Object.keys(byTag))) {
    if (!byTag[tag]) continue;
    const info = (doc.tags || []).find((t) => t.name === tag);
    root.append(el('h2', '', tag + (info && info.description ? ' — ' + info.description : '')));
    for (const [method, path, op] of byTag[tag]) {
      const box = el('details', 'op');
      const sum = el('summary');
      sum.append(el('span', 'm ' + method, method), el('code', '', path));
      if (op.summary) sum.append(' ', el('span', '', op.summary));
      box.append(sum);
      if (op.description) box.append(el('p', '', op.description));
      for (const p of op.parameters || []) box.append(el('div', '', `${p.in} ${p.name}${p.required ? ' (required)' : ''}: ${ref(p.schema)}${p.description ? ' — ' + p.description : ''}`));
      const body = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
      if (body) box.append(el('div', '', 'body: ' + ref(body.schema)));
      for (const [status, r] of Object.entries(op.responses || {})) {
        const c = r.content && (r.content['application/json'] || r.content['application/problem+json']);
        box.append(el('div', '', `${status}: ${c ? ref(c.schema) : (r.description || '')}`));
      }
      root.append(box);
    }
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  root.append(el('h2', '', 'Schemas'));
  for (const [name, schema] of Object.entries(schemas)) {
    const box = el('details', 'op');
    box.append(el('summary', '', name), el('pre', '', JSON.stringify(schema, null, 2)));
    root.append(box);
  }
})().catch((e) => { document.getElementById('ops').textContent = 'Cannot load the document: ' + e; });
"#;
