//! Bitrix24 stand-in: the Online Booking module (`booking.v1.*`) over an incoming webhook
//! (`/rest/{user_id}/{code}/{method}`) or OAuth (`/rest/{method}` with `auth`, tokens from
//! `/oauth/token/`), with the documented envelope, errors, paging by 50, `batch`, the leaky-bucket
//! rate limit, the 1018 conflict, and `ONBOOKING*` events POSTed form-encoded to a handler.
//!
//! Behaviour follows `shared/reference/integrations.md` §1 and the official docs it cites. Where
//! the docs disagree with themselves, the sandbox picks the example over the table (`booking.add`
//! returns `{"id": N}`; booking-method errors carry numeric codes) and the newest system-error table
//! (HTTP 401 for credential errors).

mod admin;
mod events;
mod oauth;
mod rest;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How the stand-in is set up.
#[derive(Debug, Clone)]
pub struct Bitrix24Options {
    /// The user id in the incoming-webhook URL.
    pub user_id: u64,
    /// The secret code in the incoming-webhook URL.
    pub webhook_code: String,
    /// The outgoing webhook's "application token", sent as `auth[application_token]` in events.
    pub application_token: String,
    /// OAuth application credentials (`/oauth/token/`).
    pub client_id: String,
    pub client_secret: String,
    /// Leaky bucket: requests allowed in a burst, and how many drain per second (documented
    /// defaults for non-Enterprise plans: 50 and 2).
    pub burst: f64,
    pub drain_per_second: f64,
    /// Where events go (an outgoing webhook's handler URL); settable later.
    pub event_handler: Option<String>,
    /// Events wait this long before they are sent (Bitrix24's queue servers deliver late).
    pub event_delay: Duration,
    /// Seed a few doctors, their weekly templates and some bookings.
    pub seed: bool,
}

impl Default for Bitrix24Options {
    fn default() -> Self {
        Bitrix24Options {
            user_id: 1,
            webhook_code: random_code(16),
            application_token: random_code(32),
            client_id: "local.vizit0000000001.00000001".into(),
            client_secret: random_code(40),
            burst: 50.0,
            drain_per_second: 2.0,
            event_handler: None,
            event_delay: Duration::ZERO,
            seed: true,
        }
    }
}

/// A random lowercase alphanumeric string, like Bitrix24's codes and tokens.
pub fn random_code(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A bookable resource (here: a doctor).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub type_id: i64,
    pub is_main: String,
}

/// One range of a resource's weekly working-hours template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlotRange {
    #[serde(default)]
    pub id: i64,
    /// Minutes from 00:00 in `timezone`.
    pub from: i64,
    pub to: i64,
    pub slot_size: i64,
    pub timezone: String,
    pub week_days: Vec<String>,
}

/// `{"timestamp": unix seconds, "timezone": IANA name}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Moment {
    pub timestamp: i64,
    pub timezone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatePeriod {
    pub from: Moment,
    pub to: Moment,
}

/// A client linked to a booking (`booking.v1.booking.client.set`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BookingClient {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: ClientType,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientType {
    pub module: String,
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub resource_ids: Vec<i64>,
    pub date_period: DatePeriod,
    /// Not part of the documented booking object; read through the admin surface.
    #[serde(skip)]
    pub clients: Vec<BookingClient>,
}

impl Booking {
    /// The documented object, as list/get return it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "resourceIds": self.resource_ids,
            "datePeriod": self.date_period,
        })
    }

    fn overlaps(&self, from: i64, to: i64) -> bool {
        self.date_period.from.timestamp < to && from < self.date_period.to.timestamp
    }
}

/// Failure modes a test or a demo can switch on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    #[default]
    None,
    /// Every REST call answers 502 with an HTML page, like a portal behind a failing proxy.
    Unavailable,
    /// Every REST call answers 200 with a truncated, unparseable JSON body.
    Malformed,
    /// Every REST call answers 200 with valid JSON of the wrong shape.
    WrongShape,
    /// Calls run, but the answer is lost (504 from a proxy): the caller cannot know it worked.
    LoseAnswers,
}

#[derive(Debug, Default)]
struct Store {
    resources: BTreeMap<i64, Resource>,
    templates: BTreeMap<i64, Vec<SlotRange>>,
    bookings: BTreeMap<i64, Booking>,
    next_id: i64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
    fault: Fault,
    event_handler: Option<String>,
    base_url: String,
    calls: BTreeMap<String, u64>,
    rejected: u64,
    oauth: oauth::Tokens,
}

impl Store {
    fn next(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The leaky bucket of `ip`: `Err` when this request is over the limit.
    fn admit(&mut self, ip: IpAddr, burst: f64, drain: f64) -> bool {
        let now = Instant::now();
        let (level, at) = self.buckets.entry(ip).or_insert((0.0, now));
        *level = (*level - now.duration_since(*at).as_secs_f64() * drain).max(0.0);
        *at = now;
        if *level + 1.0 > burst {
            self.rejected += 1;
            return false;
        }
        *level += 1.0;
        true
    }
}

/// The stand-in's state and event queue. Cheap to clone.
#[derive(Clone)]
pub struct Bitrix24 {
    store: Arc<Mutex<Store>>,
    options: Arc<Bitrix24Options>,
    events: tokio::sync::mpsc::UnboundedSender<events::Event>,
}

/// An error from the admin surface or the Rust API, with the Bitrix24 code a REST call would get.
#[derive(Debug, Clone, PartialEq)]
pub struct B24Error {
    pub status: u16,
    pub code: Value,
    pub description: String,
}

impl B24Error {
    fn method(code: Value, description: impl Into<String>) -> B24Error {
        B24Error {
            status: 400,
            code,
            description: description.into(),
        }
    }
}

impl std::fmt::Display for B24Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for B24Error {}

/// A new booking.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewBooking {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub resource_ids: Vec<i64>,
    pub date_period: DatePeriod,
}

impl Bitrix24 {
    /// A stand-in; its event sender runs on the current Tokio runtime.
    pub fn new(options: Bitrix24Options) -> Bitrix24 {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut store = Store {
            event_handler: options.event_handler.clone(),
            ..Store::default()
        };
        if options.seed {
            seed(&mut store);
        }
        let b = Bitrix24 {
            store: Arc::new(Mutex::new(store)),
            options: Arc::new(options),
            events: tx,
        };
        tokio::spawn(events::deliver(b.clone(), rx));
        b
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn options(&self) -> &Bitrix24Options {
        &self.options
    }

    /// The HTTP routes: REST, OAuth and the admin surface.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(rest::router(self.clone()))
            .merge(oauth::router(self.clone()))
            .merge(admin::router(self.clone()))
    }

    pub(crate) fn set_base_url(&self, url: String) {
        self.store().base_url = url;
    }

    /// The incoming-webhook URL Vizit is configured with (ends with `/`), once listening.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/rest/{}/{}/",
            self.store().base_url,
            self.options.user_id,
            self.options.webhook_code
        )
    }

    /// Where events go from now on (`None`: nowhere).
    pub fn set_event_handler(&self, url: Option<String>) {
        self.store().event_handler = url;
    }

    pub fn set_fault(&self, fault: Fault) {
        self.store().fault = fault;
    }

    /// REST calls answered so far, per method (batch sub-calls count under their own method).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.store().calls.clone()
    }

    /// Requests refused by the rate limit so far.
    pub fn rejected(&self) -> u64 {
        self.store().rejected
    }

    pub fn resources(&self) -> Vec<Resource> {
        self.store().resources.values().cloned().collect()
    }

    pub fn bookings(&self) -> Vec<Booking> {
        self.store().bookings.values().cloned().collect()
    }

    pub fn booking(&self, id: i64) -> Option<Booking> {
        self.store().bookings.get(&id).cloned()
    }

    pub fn template(&self, resource: i64) -> Option<Vec<SlotRange>> {
        self.store().templates.get(&resource).cloned()
    }

    /// Add a resource (type 1, "main") with an empty template.
    pub fn add_resource(&self, name: &str, description: Option<&str>) -> i64 {
        let mut s = self.store();
        let id = s.next();
        s.resources.insert(
            id,
            Resource {
                id,
                name: name.into(),
                description: description.map(str::to_owned),
                type_id: 1,
                is_main: "Y".into(),
            },
        );
        s.templates.insert(id, Vec::new());
        id
    }

    /// Replace a resource's weekly template (like `booking.v1.resource.slots.set`).
    pub fn set_template(&self, resource: i64, slots: Vec<SlotRange>) -> Result<(), B24Error> {
        let mut s = self.store();
        if !s.resources.contains_key(&resource) {
            return Err(B24Error::method(json!(1009), "Resource not found"));
        }
        let mut stored = Vec::with_capacity(slots.len());
        for mut range in slots {
            validate_range(&range)?;
            range.id = s.next();
            stored.push(range);
        }
        s.templates.insert(resource, stored);
        Ok(())
    }

    /// Add a booking as a receptionist would (fires `ONBOOKINGADD`).
    pub fn add_booking(&self, booking: NewBooking) -> Result<i64, B24Error> {
        let id = {
            let mut s = self.store();
            add_booking(&mut s, booking)?
        };
        self.fire("ONBOOKINGADD", id);
        Ok(id)
    }

    /// Move a booking (fires `ONBOOKINGUPDATE`).
    pub fn move_booking(&self, id: i64, period: DatePeriod) -> Result<(), B24Error> {
        {
            let mut s = self.store();
            update_booking(&mut s, id, None, None, None, Some(period))?;
        }
        self.fire("ONBOOKINGUPDATE", id);
        Ok(())
    }

    /// Delete a booking (fires `ONBOOKINGDELETE`). Unknown ids are ignored, as the REST method does.
    pub fn delete_booking(&self, id: i64) {
        let removed = self.store().bookings.remove(&id).is_some();
        if removed {
            self.fire("ONBOOKINGDELETE", id);
        }
    }

    /// The clients linked to a booking.
    pub fn booking_clients(&self, id: i64) -> Vec<BookingClient> {
        self.store()
            .bookings
            .get(&id)
            .map(|b| b.clients.clone())
            .unwrap_or_default()
    }

    fn fire(&self, event: &'static str, id: i64) {
        let _ = self.events.send(events::Event {
            name: event,
            id,
            ts: jiff::Timestamp::now().as_second(),
        });
    }
}

fn validate_range(range: &SlotRange) -> Result<(), B24Error> {
    let invalid =
        |what: &str| B24Error::method(json!(422), format!("Invalid value of the field: {what}"));
    if !(0..=1440).contains(&range.from) || !(0..=1440).contains(&range.to) || range.to < range.from
    {
        return Err(invalid("from/to"));
    }
    if range.slot_size <= 0 || range.slot_size > 1440 {
        return Err(invalid("slotSize"));
    }
    if range.timezone.parse::<TimeZoneName>().is_err() {
        return Err(invalid("timezone"));
    }
    if range.week_days.is_empty() || range.week_days.iter().any(|d| weekday(d).is_none()) {
        return Err(invalid("weekDays"));
    }
    Ok(())
}

/// An IANA zone name the tz database knows.
struct TimeZoneName;

impl std::str::FromStr for TimeZoneName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        TimeZone::get(s).map(|_| TimeZoneName).map_err(|_| ())
    }
}

/// `Mon`..`Sun`.
pub fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "Mon" => Weekday::Monday,
        "Tue" => Weekday::Tuesday,
        "Wed" => Weekday::Wednesday,
        "Thu" => Weekday::Thursday,
        "Fri" => Weekday::Friday,
        "Sat" => Weekday::Saturday,
        "Sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn validate_period(p: &DatePeriod) -> Result<(), B24Error> {
    let bad = || B24Error::method(json!(422), "Invalid date period");
    if p.to.timestamp <= p.from.timestamp
        || TimeZone::get(&p.from.timezone).is_err()
        || TimeZone::get(&p.to.timezone).is_err()
    {
        return Err(bad());
    }
    Ok(())
}

/// The resources are free over `[from, to)` apart from booking `except`.
fn resources_free(s: &Store, ids: &[i64], from: i64, to: i64, except: Option<i64>) -> bool {
    !ids.is_empty()
        && ids.iter().all(|r| s.resources.contains_key(r))
        && !s.bookings.values().any(|b| {
            Some(b.id) != except
                && b.overlaps(from, to)
                && b.resource_ids.iter().any(|r| ids.contains(r))
        })
}

fn add_booking(s: &mut Store, b: NewBooking) -> Result<i64, B24Error> {
    validate_period(&b.date_period)?;
    let (from, to) = (b.date_period.from.timestamp, b.date_period.to.timestamp);
    if !resources_free(s, &b.resource_ids, from, to, None) {
        return Err(B24Error::method(json!(1018), "Empty resource collection"));
    }
    let id = s.next();
    s.bookings.insert(
        id,
        Booking {
            id,
            name: b.name,
            description: b.description,
            resource_ids: b.resource_ids,
            date_period: b.date_period,
            clients: Vec::new(),
        },
    );
    Ok(id)
}

fn update_booking(
    s: &mut Store,
    id: i64,
    name: Option<String>,
    description: Option<Option<String>>,
    resource_ids: Option<Vec<i64>>,
    period: Option<DatePeriod>,
) -> Result<(), B24Error> {
    let current = s
        .bookings
        .get(&id)
        .cloned()
        .ok_or_else(|| B24Error::method(json!(1019), "Booking not found"))?;
    if let Some(p) = &period {
        validate_period(p)?;
    }
    let ids = resource_ids.unwrap_or(current.resource_ids.clone());
    let p = period.unwrap_or(current.date_period.clone());
    if !resources_free(s, &ids, p.from.timestamp, p.to.timestamp, Some(id)) {
        return Err(B24Error::method(json!(1018), "Empty resource collection"));
    }
    let b = s.bookings.get_mut(&id).expect("present");
    if let Some(name) = name {
        b.name = name;
    }
    if let Some(description) = description {
        b.description = description;
    }
    b.resource_ids = ids;
    b.date_period = p;
    Ok(())
}

/// Three doctors with templates in three time zones, and a few bookings made by receptionists.
fn seed(s: &mut Store) {
    // (name, specialty, zone, weekdays, from, to, slot size)
    type Seed<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], i64, i64, i64);
    let doctors: [Seed; 3] = [
        (
            "Иванова Анна Петровна",
            "Терапевт",
            "Europe/Moscow",
            &["Mon", "Tue", "Wed", "Thu", "Fri"],
            9 * 60,
            18 * 60,
            30,
        ),
        (
            "Петров Сергей Иванович",
            "Педиатр",
            "Asia/Yekaterinburg",
            &["Mon", "Wed", "Fri", "Sat"],
            10 * 60,
            14 * 60,
            20,
        ),
        (
            "Смирнова Ольга Викторовна",
            "Невролог",
            "Europe/Kaliningrad",
            &["Tue", "Thu", "Sat", "Sun"],
            12 * 60,
            20 * 60,
            40,
        ),
    ];
    let today = jiff::ZonedDateTime::now().date();
    for (name, specialty, tz, days, from, to, size) in doctors {
        let id = s.next();
        s.resources.insert(
            id,
            Resource {
                id,
                name: name.into(),
                description: Some(specialty.into()),
                type_id: 1,
                is_main: "Y".into(),
            },
        );
        let range_id = s.next();
        s.templates.insert(
            id,
            vec![SlotRange {
                id: range_id,
                from,
                to,
                slot_size: size,
                timezone: tz.into(),
                week_days: days.iter().map(|d| (*d).to_owned()).collect(),
            }],
        );
        // Two bookings made in Bitrix24 by the clinic: the first working slot tomorrow and an hour
        // in the afternoon two days ahead (whatever weekday they fall on).
        let zone = TimeZone::get(tz).unwrap_or(TimeZone::UTC);
        for (days_ahead, minute, length) in [(1, from, size), (2, from + 2 * size, 60)] {
            let Ok(day) = today.checked_add(jiff::Span::new().days(days_ahead)) else {
                continue;
            };
            let Ok(start) = day
                .to_datetime(jiff::civil::Time::midnight())
                .checked_add(jiff::Span::new().minutes(minute))
                .and_then(|dt| dt.to_zoned_datetime(zone.clone()))
            else {
                continue;
            };
            let from_ts = start.timestamp().as_second();
            let moment = |t: i64| Moment {
                timestamp: t,
                timezone: tz.into(),
            };
            let _ = add_booking(
                s,
                NewBooking {
                    name: "Запись через регистратуру".into(),
                    description: None,
                    resource_ids: vec![id],
                    date_period: DatePeriod {
                        from: moment(from_ts),
                        to: moment(from_ts + length * 60),
                    },
                },
            );
        }
    }
}
