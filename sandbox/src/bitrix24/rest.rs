//! `/rest/…`: the REST surface, its envelope, errors, paging, `batch` and the rate limit.

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::portal::{
    B24Error, Bitrix24, BookingClient, DatePeriod, Fault, NewBooking, SlotRange, Store,
    update_booking, validate_range,
};
use crate::php;

/// Items per page of a list method.
pub const PAGE_SIZE: usize = 50;
/// Sub-calls per `batch`.
pub const BATCH_LIMIT: usize = 50;

pub fn router(b: Bitrix24) -> Router {
    Router::new()
        .route("/rest/{*path}", any(rest))
        .with_state(b)
}

/// What a method answers: `result` plus, for lists, `total` and `next`.
struct Reply {
    result: Value,
    total: Option<usize>,
    next: Option<usize>,
}

impl Reply {
    fn of(result: Value) -> Reply {
        Reply {
            result,
            total: None,
            next: None,
        }
    }
}

fn system(status: u16, code: &str, description: &str) -> B24Error {
    B24Error {
        status,
        code: Value::String(code.into()),
        description: description.into(),
    }
}

fn missing(param: &str) -> B24Error {
    B24Error::method(
        json!(100),
        format!("Could not find value for parameter {{{param}}}"),
    )
}

async fn rest(
    State(b): State<Bitrix24>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = now_f64();
    let fault = b.store().fault;
    match fault {
        Fault::None | Fault::LoseAnswers => {}
        Fault::Unavailable => {
            return (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response();
        }
        Fault::Malformed => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"result":{"booking":[{"id":1,"name":"#,
            )
                .into_response();
        }
        Fault::WrongShape => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"result":{"booking":"maintenance","resource":7,"slots":{"x":1},"id":"n/a"},"next":"soon"}"#,
            )
                .into_response();
        }
    }
    let params = match parameters(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = match segments.as_slice() {
        [user, code, method] => {
            if *user != b.options.user_id.to_string() || *code != b.options.webhook_code {
                return error_response(&system(
                    401,
                    "INVALID_CREDENTIALS",
                    "Invalid request credentials",
                ));
            }
            *method
        }
        [method] => {
            match params.get("auth").and_then(Value::as_str) {
                None => {
                    return error_response(&system(
                        401,
                        "NO_AUTH_FOUND",
                        "Wrong authorization data",
                    ));
                }
                Some(token) => {
                    if let Err(e) = b.store().oauth.check_access(token) {
                        return error_response(&e);
                    }
                }
            }
            *method
        }
        _ => return error_response(&system(401, "NO_AUTH_FOUND", "Wrong authorization data")),
    };
    let method = method.strip_suffix(".json").unwrap_or(method).to_owned();
    {
        let mut s = b.store();
        if !s.admit(peer.ip(), b.options.burst, b.options.drain_per_second) {
            return error_response(&system(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"));
        }
    }
    let outcome = if method == "batch" {
        *b.store().calls.entry("batch".to_owned()).or_default() += 1;
        batch(&b, &params, started)
    } else {
        call(&b, &method, &params)
    };
    if fault == Fault::LoseAnswers {
        return (
            StatusCode::GATEWAY_TIMEOUT,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>504 Gateway Time-out</h1></body></html>",
        )
            .into_response();
    }
    match outcome {
        Ok(reply) => {
            let mut body = Map::new();
            body.insert("result".into(), reply.result);
            if let Some(total) = reply.total {
                body.insert("total".into(), json!(total));
            }
            if let Some(next) = reply.next {
                body.insert("next".into(), json!(next));
            }
            body.insert("time".into(), time(started, true));
            (StatusCode::OK, axum::Json(Value::Object(body))).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// Parameters from the query string and the body (JSON or PHP-style form), body winning.
fn parameters(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, B24Error> {
    let mut params = match php::parse(query.unwrap_or("")) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = if content_type.starts_with("application/x-www-form-urlencoded") {
        php::parse(&String::from_utf8_lossy(body))
    } else {
        serde_json::from_slice::<Value>(body)
            .map_err(|_| system(400, "INVALID_REQUEST", "Request body is not valid JSON"))?
    };
    match parsed {
        Value::Object(m) => params.extend(m),
        _ => {
            return Err(system(
                400,
                "INVALID_REQUEST",
                "Request body must be an object",
            ));
        }
    }
    Ok(params)
}

fn error_response(e: &B24Error) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"error": e.code, "error_description": e.description})),
    )
        .into_response()
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The `time` object of every answer.
fn time(started: f64, full: bool) -> Value {
    let finished = now_f64();
    let iso = |t: f64| {
        jiff::Timestamp::from_second(t as i64)
            .map(|ts| {
                ts.to_zoned_datetime(jiff::tz::TimeZone::fixed(jiff::tz::offset(3)))
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let mut t = json!({
        "start": started,
        "finish": finished,
        "duration": finished - started,
        "processing": finished - started,
        "date_start": iso(started),
        "date_finish": iso(finished),
    });
    if full {
        t["operating_reset_at"] = json!(started as i64 + 600);
        t["operating"] = json!(0);
    }
    t
}

/// `batch`: up to 50 sub-calls as `method?query` strings; always HTTP 200, errors per key.
fn batch(b: &Bitrix24, params: &Map<String, Value>, started: f64) -> Result<Reply, B24Error> {
    let halt = matches!(params.get("halt"), Some(Value::Bool(true)))
        || params.get("halt").and_then(lenient_i64) == Some(1);
    let cmd: Vec<(String, String)> = match params.get("cmd") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        _ => return Err(missing("cmd")),
    };
    let mut result = Map::new();
    let mut errors = Map::new();
    let mut totals = Map::new();
    let mut nexts = Map::new();
    let mut times = Map::new();
    for (i, (key, line)) in cmd.into_iter().enumerate() {
        let sub_started = now_f64();
        let (method, query) = line.split_once('?').unwrap_or((line.as_str(), ""));
        let outcome = if i >= BATCH_LIMIT {
            Err(system(
                400,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded",
            ))
        } else if method == "batch" {
            Err(system(
                405,
                "ERROR_BATCH_METHOD_NOT_ALLOWED",
                "Method is not allowed for batch usage",
            ))
        } else {
            let sub = match php::parse(query) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            call(b, method, &sub)
        };
        match outcome {
            Ok(reply) => {
                result.insert(key.clone(), reply.result);
                if let Some(total) = reply.total {
                    totals.insert(key.clone(), json!(total));
                }
                if let Some(next) = reply.next {
                    nexts.insert(key.clone(), json!(next));
                }
                times.insert(key, time(sub_started, false));
            }
            Err(e) => {
                errors.insert(
                    key,
                    json!({"error": e.code, "error_description": e.description}),
                );
                if halt {
                    break;
                }
            }
        }
    }
    // Bitrix24 (PHP) writes an empty map as `[]`.
    let map = |m: Map<String, Value>| {
        if m.is_empty() {
            json!([])
        } else {
            Value::Object(m)
        }
    };
    let _ = started;
    Ok(Reply::of(json!({
        "result": map(result),
        "result_error": map(errors),
        "result_total": map(totals),
        "result_next": map(nexts),
        "result_time": map(times),
    })))
}

/// A number given as a JSON number or a string (form and batch parameters are strings).
fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Re-type string leaves that look like numbers, so form-encoded parameters deserialize like
/// JSON ones.
fn numbers(v: &Value) -> Value {
    match v {
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.clone()),
        Value::Array(items) => Value::Array(items.iter().map(numbers).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), numbers(v))).collect()),
        other => other.clone(),
    }
}

fn param<T: DeserializeOwned>(params: &Map<String, Value>, name: &str) -> Result<T, B24Error> {
    let v = params.get(name).ok_or_else(|| missing(name))?;
    serde_json::from_value(v.clone())
        .or_else(|_| serde_json::from_value(numbers(v)))
        .map_err(|_| {
            B24Error::method(
                json!(100),
                format!("Invalid value to match with parameter {{{name}}}"),
            )
        })
}

fn id_param(params: &Map<String, Value>, name: &str) -> Result<i64, B24Error> {
    params.get(name).ok_or_else(|| missing(name)).and_then(|v| {
        lenient_i64(v).ok_or_else(|| {
            B24Error::method(
                json!(100),
                format!("Invalid value to match with parameter {{{name}}}"),
            )
        })
    })
}

/// One page of `items` from `start`.
fn page(items: Vec<Value>, key: &str, start: Option<&Value>) -> Reply {
    let total = items.len();
    let start = start.and_then(lenient_i64).unwrap_or(0).max(0) as usize;
    let end = (start + PAGE_SIZE).min(total);
    let slice = if start < total {
        items[start..end].to_vec()
    } else {
        Vec::new()
    };
    Reply {
        result: json!({ key: slice }),
        total: Some(total),
        next: (end < total).then_some(end),
    }
}

/// Dispatch one method.
fn call(b: &Bitrix24, method: &str, p: &Map<String, Value>) -> Result<Reply, B24Error> {
    let mut events: Vec<(&'static str, i64)> = Vec::new();
    let reply = {
        let mut s = b.store();
        *s.calls.entry(method.to_owned()).or_default() += 1;
        dispatch(&mut s, method, p, &mut events)
    };
    for (event, id) in events {
        b.fire(event, id);
    }
    reply
}

fn dispatch(
    s: &mut Store,
    method: &str,
    p: &Map<String, Value>,
    events: &mut Vec<(&'static str, i64)>,
) -> Result<Reply, B24Error> {
    match method {
        "booking.v1.resource.list" => {
            let filter = p.get("filter").cloned().unwrap_or(json!({}));
            if !filter.is_object() {
                return Err(B24Error::method(
                    json!(100),
                    "Invalid value to match with parameter {filter}. Should be value of type array.",
                ));
            }
            let type_id = filter.get("typeId").and_then(lenient_i64);
            let name = filter.get("name").and_then(Value::as_str);
            let query = filter
                .get("searchQuery")
                .and_then(Value::as_str)
                .map(str::to_lowercase);
            let is_main = filter.get("isMain").and_then(Value::as_str);
            let mut items: Vec<&super::portal::Resource> = s
                .resources
                .values()
                .filter(|r| type_id.is_none_or(|t| r.type_id == t))
                .filter(|r| name.is_none_or(|n| r.name == n))
                .filter(|r| {
                    query
                        .as_ref()
                        .is_none_or(|q| r.name.to_lowercase().contains(q))
                })
                .filter(|r| is_main.is_none_or(|m| r.is_main == m))
                .collect();
            if descending(p, "id") {
                items.reverse();
            }
            let items = items.into_iter().map(resource_json).collect();
            Ok(page(items, "resource", p.get("start")))
        }
        "booking.v1.resource.get" => {
            let id = id_param(p, "id")?;
            let r = s
                .resources
                .get(&id)
                .ok_or_else(|| B24Error::method(json!(1009), "Resource not found"))?;
            Ok(Reply::of(json!({"resource": resource_json(r)})))
        }
        "booking.v1.resource.slots.list" => {
            let id = id_param(p, "resourceId")?;
            if !s.resources.contains_key(&id) {
                return Err(B24Error::method(json!(1009), "Resource not found"));
            }
            let slots = s.templates.get(&id).cloned().unwrap_or_default();
            Ok(Reply::of(json!({"slots": slots})))
        }
        "booking.v1.resource.slots.set" => {
            let id = id_param(p, "resourceId")?;
            if !s.resources.contains_key(&id) {
                return Err(B24Error::method(json!(1009), "Resource not found"));
            }
            let slots: Vec<SlotRange> = param(p, "slots").map_err(|_| {
                B24Error::method(
                    json!(0),
                    "Required fields: from, to, timezone, weekDays, slotSize",
                )
            })?;
            let mut stored = Vec::new();
            for mut range in slots {
                validate_range(&range)?;
                range.id = s.next();
                stored.push(range);
            }
            s.templates.insert(id, stored);
            Ok(Reply::of(json!(true)))
        }
        "booking.v1.booking.list" => {
            let filter = p.get("filter").cloned().unwrap_or(json!({}));
            let mut window = None;
            if let Some(within) = filter.get("within") {
                let from = within.get("dateFrom").and_then(lenient_i64);
                let to = within.get("dateTo").and_then(lenient_i64);
                match (from, to) {
                    (Some(f), Some(t)) if f <= t => window = Some((f, t)),
                    _ => return Err(B24Error::method(json!(422), "Invalid date period")),
                }
            }
            let mut items: Vec<&super::portal::Booking> = s
                .bookings
                .values()
                .filter(|b| window.is_none_or(|(f, t)| b.overlaps(f, t)))
                .collect();
            match order_key(p) {
                Some(("dateFrom", desc)) => {
                    items.sort_by_key(|b| (b.date_period.from.timestamp, b.id));
                    if desc {
                        items.reverse();
                    }
                }
                Some(("dateTo", desc)) => {
                    items.sort_by_key(|b| (b.date_period.to.timestamp, b.id));
                    if desc {
                        items.reverse();
                    }
                }
                Some((_, true)) => items.reverse(),
                _ => {}
            }
            let items = items
                .into_iter()
                .map(super::portal::Booking::to_json)
                .collect();
            Ok(page(items, "booking", p.get("start")))
        }
        "booking.v1.booking.get" => {
            let id = id_param(p, "id")?;
            let b = s
                .bookings
                .get(&id)
                .ok_or_else(|| B24Error::method(json!(1021), "Booking not found"))?;
            Ok(Reply::of(json!({"booking": b.to_json()})))
        }
        "booking.v1.booking.add" => {
            let fields: NewBookingFields = param(p, "fields")?;
            let (Some(resource_ids), Some(date_period)) = (fields.resource_ids, fields.date_period)
            else {
                return Err(B24Error::method(
                    json!(0),
                    "Required fields: resourceIds, datePeriod",
                ));
            };
            let id = super::portal::add_booking(
                s,
                NewBooking {
                    name: fields.name.unwrap_or_default(),
                    description: fields.description,
                    resource_ids,
                    date_period,
                },
            )?;
            events.push(("ONBOOKINGADD", id));
            Ok(Reply::of(json!({"id": id})))
        }
        "booking.v1.booking.update" => {
            let id = id_param(p, "id")?;
            let fields: NewBookingFields = param(p, "fields")?;
            update_booking(
                s,
                id,
                fields.name,
                fields.description.map(Some),
                fields.resource_ids,
                fields.date_period,
            )?;
            events.push(("ONBOOKINGUPDATE", id));
            Ok(Reply::of(json!(true)))
        }
        "booking.v1.booking.delete" => {
            let id = id_param(p, "id")?;
            // The docs list no "not found" error for delete: deleting twice succeeds.
            if s.bookings.remove(&id).is_some() {
                events.push(("ONBOOKINGDELETE", id));
            }
            Ok(Reply::of(json!(true)))
        }
        "booking.v1.booking.client.set" => {
            let id = id_param(p, "bookingId")?;
            let clients: Vec<BookingClient> = param(p, "clients")
                .map_err(|_| B24Error::method(json!(0), "Required fields: id, type"))?;
            let b = s
                .bookings
                .get_mut(&id)
                .ok_or_else(|| B24Error::method(json!(1021), "Booking not found"))?;
            b.clients = clients;
            Ok(Reply::of(json!(true)))
        }
        _ => Err(system(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewBookingFields {
    name: Option<String>,
    description: Option<String>,
    resource_ids: Option<Vec<i64>>,
    date_period: Option<DatePeriod>,
}

fn resource_json(r: &super::portal::Resource) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "typeId": r.type_id,
        "isMain": r.is_main,
        "isInfoNotificationOn": "Y",
        "isConfirmationNotificationOn": "Y",
        "isReminderNotificationOn": "Y",
        "isFeedbackNotificationOn": "N",
        "isDelayedNotificationOn": "Y",
        "templateTypeInfo": "inanimate",
        "templateTypeConfirmation": "inanimate",
        "templateTypeReminder": "base",
        "templateTypeFeedback": "inanimate",
        "templateTypeDelayed": "inanimate",
        "infoNotificationDelay": null,
        "reminderNotificationDelay": -1,
        "delayedNotificationDelay": 300,
        "delayedCounterDelay": 300,
        "confirmationNotificationDelay": 86400,
        "confirmationNotificationRepetitions": null,
        "confirmationNotificationRepetitionsInterval": 10800,
        "confirmationCounterDelay": 10800,
    })
}

/// The first key of `order` and whether it is descending.
fn order_key(p: &Map<String, Value>) -> Option<(&str, bool)> {
    let order = p.get("order")?.as_object()?;
    let (key, dir) = order.iter().next()?;
    let desc = dir.as_str().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    Some((key.as_str(), desc))
}

fn descending(p: &Map<String, Value>, key: &str) -> bool {
    order_key(p).is_some_and(|(k, d)| k.eq_ignore_ascii_case(key) && d)
}
