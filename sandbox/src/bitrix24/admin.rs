//! `/sandbox/bitrix24/…`: what a receptionist does in Bitrix24's UI, and fault injection. JSON in
//! and out; not part of Bitrix24's API.
//!
//! | route | does |
//! |---|---|
//! | `GET /sandbox/bitrix24` | the whole state: webhook URL, resources, templates, bookings (with clients) |
//! | `POST /sandbox/bitrix24/resources {name, description}` | a new doctor (resource) |
//! | `PUT /sandbox/bitrix24/resources/{id}/slots [SlotRange…]` | replace the weekly template |
//! | `POST /sandbox/bitrix24/bookings {name, resourceIds, datePeriod}` | book (fires `ONBOOKINGADD`; 409 if busy) |
//! | `PUT /sandbox/bitrix24/bookings/{id}/period {from, to}` | move (fires `ONBOOKINGUPDATE`) |
//! | `DELETE /sandbox/bitrix24/bookings/{id}` | delete (fires `ONBOOKINGDELETE`) |
//! | `PUT /sandbox/bitrix24/fault {"mode": "none"\|"unavailable"\|"malformed"\|"wrong_shape"\|"lose_answers"}` | fault injection |
//! | `PUT /sandbox/bitrix24/event-handler {"url": …}` | where events go (`null`: nowhere) |
//! | `POST /sandbox/bitrix24/expire-tokens` | every OAuth access token expires now |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::portal::{B24Error, Bitrix24, DatePeriod, Fault, NewBooking, SlotRange};

pub fn router(b: Bitrix24) -> Router {
    Router::new()
        .route("/sandbox/bitrix24", get(state))
        .route("/sandbox/bitrix24/resources", post(add_resource))
        .route("/sandbox/bitrix24/resources/{id}/slots", put(set_slots))
        .route("/sandbox/bitrix24/bookings", post(add_booking))
        .route("/sandbox/bitrix24/bookings/{id}/period", put(move_booking))
        .route(
            "/sandbox/bitrix24/bookings/{id}",
            axum::routing::delete(delete_booking),
        )
        .route("/sandbox/bitrix24/fault", put(set_fault))
        .route("/sandbox/bitrix24/event-handler", put(set_handler))
        .route("/sandbox/bitrix24/expire-tokens", post(expire_tokens))
        .with_state(b)
}

fn refused(e: B24Error) -> Response {
    let status = if e.code == json!(1018) {
        StatusCode::CONFLICT
    } else if e.code == json!(1009) || e.code == json!(1019) || e.code == json!(1021) {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Json(json!({"error": e.code, "error_description": e.description})),
    )
        .into_response()
}

async fn state(State(b): State<Bitrix24>) -> Json<serde_json::Value> {
    let s = b.store();
    let bookings: Vec<_> = s
        .bookings
        .values()
        .map(|bk| {
            let mut v = bk.to_json();
            v["clients"] = json!(bk.clients);
            v
        })
        .collect();
    Json(json!({
        "webhookUrl": format!("{}/rest/{}/{}/", s.base_url, b.options.user_id, b.options.webhook_code),
        "eventHandler": s.event_handler,
        "fault": s.fault,
        "resources": s.resources.values().collect::<Vec<_>>(),
        "templates": s.templates,
        "bookings": bookings,
        "calls": s.calls,
    }))
}

#[derive(Deserialize)]
struct NewResource {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

async fn add_resource(State(b): State<Bitrix24>, Json(r): Json<NewResource>) -> Response {
    let id = b.add_resource(&r.name, r.description.as_deref());
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn set_slots(
    State(b): State<Bitrix24>,
    Path(id): Path<i64>,
    Json(slots): Json<Vec<SlotRange>>,
) -> Response {
    match b.set_template(id, slots) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e),
    }
}

async fn add_booking(State(b): State<Bitrix24>, Json(nb): Json<NewBooking>) -> Response {
    match b.add_booking(nb) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => refused(e),
    }
}

async fn move_booking(
    State(b): State<Bitrix24>,
    Path(id): Path<i64>,
    Json(p): Json<DatePeriod>,
) -> Response {
    match b.move_booking(id, p) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e),
    }
}

async fn delete_booking(State(b): State<Bitrix24>, Path(id): Path<i64>) -> StatusCode {
    b.delete_booking(id);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct FaultRequest {
    mode: Fault,
}

async fn set_fault(State(b): State<Bitrix24>, Json(f): Json<FaultRequest>) -> StatusCode {
    b.set_fault(f.mode);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct HandlerRequest {
    url: Option<String>,
}

async fn set_handler(State(b): State<Bitrix24>, Json(h): Json<HandlerRequest>) -> StatusCode {
    b.set_event_handler(h.url);
    StatusCode::NO_CONTENT
}

async fn expire_tokens(State(b): State<Bitrix24>) -> StatusCode {
    b.store().oauth.expire_all();
    StatusCode::NO_CONTENT
}
