//! The portal's state: resources, templates, bookings, the leaky bucket, OAuth tokens, faults,
//! and the events it sends. The HTTP surfaces (`rest.rs`, `oauth.rs`, `admin.rs`) act on it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

    pub(super) fn overlaps(&self, from: i64, to: i64) -> bool {
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
pub(super) struct Store {
    pub(super) resources: BTreeMap<i64, Resource>,
    pub(super) templates: BTreeMap<i64, Vec<SlotRange>>,
    pub(super) bookings: BTreeMap<i64, Booking>,
    pub(super) next_id: i64,
    pub(super) buckets: HashMap<IpAddr, (f64, Instant)>,
    pub(super) fault: Fault,
    pub(super) event_handler: Option<String>,
    pub(super) base_url: String,
    pub(super) calls: BTreeMap<String, u64>,
    pub(super) rejected: u64,
    pub(super) oauth: Tokens,
}

impl Store {
    pub(super) fn next(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The leaky bucket of `ip`: `Err` when this request is over the limit.
    pub(super) fn admit(&mut self, ip: IpAddr, burst: f64, drain: f64) -> bool {
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
    pub(super) store: Arc<Mutex<Store>>,
    pub(super) options: Arc<Bitrix24Options>,
    pub(super) events: tokio::sync::mpsc::UnboundedSender<Event>,
}

/// An error from the admin surface or the Rust API, with the Bitrix24 code a REST call would get.
#[derive(Debug, Clone, PartialEq)]
pub struct B24Error {
    pub status: u16,
    pub code: Value,
    pub description: String,
}

impl B24Error {
    pub(super) fn method(code: Value, description: impl Into<String>) -> B24Error {
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
        tokio::spawn(deliver(b.clone(), rx));
        b
    }

    pub(super) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn options(&self) -> &Bitrix24Options {
        &self.options
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

    pub(super) fn fire(&self, event: &'static str, id: i64) {
        let _ = self.events.send(Event {
            name: event,
            id,
            ts: jiff::Timestamp::now().as_second(),
        });
    }
}

pub(super) fn validate_range(range: &SlotRange) -> Result<(), B24Error> {
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
pub(super) struct TimeZoneName;

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

pub(super) fn validate_period(p: &DatePeriod) -> Result<(), B24Error> {
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
pub(super) fn resources_free(
    s: &Store,
    ids: &[i64],
    from: i64,
    to: i64,
    except: Option<i64>,
) -> bool {
    !ids.is_empty()
        && ids.iter().all(|r| s.resources.contains_key(r))
        && !s.bookings.values().any(|b| {
            Some(b.id) != except
                && b.overlaps(from, to)
                && b.resource_ids.iter().any(|r| ids.contains(r))
        })
}

pub(super) fn add_booking(s: &mut Store, b: NewBooking) -> Result<i64, B24Error> {
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

pub(super) fn update_booking(
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
pub(super) fn seed(s: &mut Store) {
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

#[derive(Debug, Default)]
pub(super) struct Tokens {
    pub(super) codes: HashMap<String, Instant>,
    pub(super) access: HashMap<String, Instant>,
    pub(super) refresh: HashMap<String, Instant>,
}

impl Tokens {
    pub(super) fn check_access(&self, token: &str) -> Result<(), B24Error> {
        let err = |code: &str, text: &str| B24Error {
            status: 401,
            code: Value::String(code.into()),
            description: text.into(),
        };
        match self.access.get(token) {
            Some(expires) if *expires > Instant::now() => Ok(()),
            Some(_) => Err(err(
                "expired_token",
                "The access token provided has expired",
            )),
            None => Err(err("invalid_token", "The access token provided is invalid")),
        }
    }

    /// For tests: make every access token expire now.
    pub(super) fn expire_all(&mut self) {
        let now = Instant::now();
        for expires in self.access.values_mut() {
            *expires = now;
        }
    }

    pub(super) fn issue(&mut self) -> Value {
        let access = random_code(32);
        let refresh = random_code(32);
        let now = Instant::now();
        self.access.insert(access.clone(), now + ACCESS_TTL);
        self.refresh.insert(refresh.clone(), now + REFRESH_TTL);
        json!({
            "access_token": access,
            "expires_in": ACCESS_TTL.as_secs(),
            "refresh_token": refresh,
            "scope": "booking",
            "status": "L",
            "user_id": 1,
            "expires": jiff::Timestamp::now().as_second() + ACCESS_TTL.as_secs() as i64,
        })
    }
}

pub(super) const ACCESS_TTL: Duration = Duration::from_secs(3600);
pub(super) const REFRESH_TTL: Duration = Duration::from_secs(180 * 86_400);

// ---- events -----------------------------------------------------------------------------
//
// Outbound `ONBOOKING*` events: form-encoded POSTs with PHP-style keys, in order, never retried
// (Bitrix24's documented behaviour), optionally delayed like its queue servers.

#[derive(Debug)]
pub(super) struct Event {
    pub name: &'static str,
    pub id: i64,
    pub ts: i64,
}

/// The handler ids Bitrix24 would assign to the three subscriptions.
pub(super) fn handler_id(event: &str) -> u32 {
    match event {
        "ONBOOKINGADD" => 7,
        "ONBOOKINGUPDATE" => 8,
        _ => 9,
    }
}

pub(super) async fn deliver(b: Bitrix24, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while let Some(event) = rx.recv().await {
        if !b.options.event_delay.is_zero() {
            tokio::time::sleep(b.options.event_delay).await;
        }
        let (handler, base) = {
            let s = b.store();
            (s.event_handler.clone(), s.base_url.clone())
        };
        let Some(handler) = handler else { continue };
        let domain = base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("event", event.name)
            .append_pair("event_handler_id", &handler_id(event.name).to_string())
            .append_pair("data[ID]", &event.id.to_string())
            .append_pair("ts", &event.ts.to_string())
            .append_pair("auth[domain]", &domain)
            .append_pair("auth[client_endpoint]", &format!("{base}/rest/"))
            .append_pair("auth[server_endpoint]", "https://oauth.bitrix24.tech/rest/")
            .append_pair("auth[member_id]", "0b3a4c5d6e7f8091a2b3c4d5e6f70819")
            .append_pair("auth[application_token]", &b.options.application_token)
            .finish();
        let sent = http
            .post(&handler)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::debug!(status = %r.status(), event = event.name, "event handler refused; not retried")
            }
            Err(e) => {
                tracing::debug!(error = %e, event = event.name, "event handler unreachable; not retried")
            }
        }
    }
}
