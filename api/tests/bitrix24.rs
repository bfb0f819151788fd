//! Slots from Bitrix24 and bookings pushed back, against the Bitrix24 sandbox over real HTTP, on
//! SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::TestApi;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use vizit_api::slots::bitrix24::events as b24events;
use vizit_api::slots::bitrix24::outbound::{self, booking_name};
use vizit_api::slots::bitrix24::sync::{SyncError, sync};
use vizit_api::slots::bitrix24::{Bitrix24, Bitrix24Settings};
use vizit_api::{ApiSettings, Backend};
use vizit_sandbox::bitrix24::{DatePeriod, Fault, Moment, NewBooking, SlotRange};
use vizit_sandbox::{Bitrix24Options, RunningSandbox, Sandbox};

const TOKEN: &str = "application-token-for-tests-000001";
const MOSCOW: &str = "Europe/Moscow";
const ALL_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Vizit's API with the Bitrix24 integration, and the sandbox it talks to.
struct Env {
    api: TestApi,
    sandbox: Sandbox,
    running: Option<RunningSandbox>,
    addr: SocketAddr,
    b24: Arc<Bitrix24>,
    admin: String,
    service: String,
}

impl Env {
    async fn new(backend: Backend) -> Env {
        Self::with(backend, |_| {}, |_| {}).await
    }

    async fn with(
        backend: Backend,
        sandbox_options: impl FnOnce(&mut Bitrix24Options),
        settings: impl FnOnce(&mut Bitrix24Settings),
    ) -> Env {
        let mut options = Bitrix24Options {
            seed: false,
            application_token: TOKEN.into(),
            ..Default::default()
        };
        sandbox_options(&mut options);
        let sandbox = Sandbox::new(options);
        let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = running.addr();
        let mut s = Bitrix24Settings::new(SecretString::from(sandbox.bitrix24.webhook_url()));
        s.application_token = Some(SecretString::from(TOKEN.to_owned()));
        s.client.backoff = Duration::from_millis(50);
        s.client.max_attempts = 3;
        s.client.request_timeout = Duration::from_secs(5);
        settings(&mut s);
        let b24 = Bitrix24::new(s);
        let api = TestApi::spawn_full(
            backend,
            ApiSettings {
                demo: true,
                ..ApiSettings::default()
            },
            Some(b24.clone()),
        )
        .await;
        api.staff(vizit_api::domain::Role::Admin, "admin@clinic.test")
            .await;
        let admin = api.login("admin@clinic.test").await;
        let (status, key) = api
            .post("/api-keys", &admin, json!({"name": "portal"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let service = key["key"].as_str().unwrap().to_owned();
        Env {
            api,
            sandbox,
            running: Some(running),
            addr,
            b24,
            admin,
            service,
        }
    }

    fn bx(&self) -> &vizit_sandbox::Bitrix24 {
        &self.sandbox.bitrix24
    }

    async fn sync(&self) -> vizit_api::slots::bitrix24::SyncReport {
        sync(&self.api.state, &self.b24)
            .await
            .expect("sync succeeds")
    }

    /// A resource with a daily template 09:00–12:00 Moscow, 30-minute slots.
    fn doctor(&self, name: &str) -> i64 {
        let id = self.bx().add_resource(name, Some("Терапевт"));
        self.bx()
            .set_template(id, vec![range(540, 720, 30, MOSCOW, &ALL_DAYS)])
            .unwrap();
        id
    }

    /// The Vizit doctor linked to `resource`.
    async fn doctor_id(&self, resource: i64) -> String {
        let row: (String,) =
            sqlx::query_as("SELECT user_id FROM doctors WHERE bitrix_resource_id = $1")
                .bind(resource.to_string())
                .fetch_one(&self.api.state.db.pool)
                .await
                .unwrap();
        row.0
    }

    async fn free_starts(&self, doctor: &str) -> Vec<i64> {
        let (status, slots) = self
            .api
            .get(&format!("/doctors/{doctor}/slots"), &self.service)
            .await;
        assert_eq!(status, StatusCode::OK, "{slots}");
        slots
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s["startsAt"]
                    .as_str()
                    .unwrap()
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_second()
            })
            .collect()
    }

    async fn free_slots(&self, doctor: &str) -> Vec<Value> {
        let (_, slots) = self
            .api
            .get(&format!("/doctors/{doctor}/slots"), &self.service)
            .await;
        slots.as_array().unwrap().clone()
    }

    async fn patient(&self) -> (String, String) {
        self.api.patient(&self.service, "Пациент Петров").await
    }

    async fn book(&self, patient: &str, slot: &str) -> (StatusCode, Value) {
        self.api
            .post("/consultations", patient, json!({"slotId": slot}))
            .await
    }

    async fn stop_sandbox(&mut self) {
        self.running.take().expect("running").stop().await;
    }

    async fn start_sandbox(&mut self) {
        self.running = Some(
            self.sandbox
                .start(self.addr)
                .await
                .expect("same port again"),
        );
    }

    /// One round of what the workers do: consultation events reach the Bitrix24 subscriber
    /// (which queues its calls), and the due calls run.
    async fn deliver_round(&self) {
        self.api.state.outbox.dispatch_due().await.unwrap();
        self.api
            .state
            .outbound
            .deliver_due(vizit_api::slots::bitrix24::SYSTEM)
            .await
            .unwrap();
    }

    /// Run the outbox until nothing is pending (or give up after `secs`).
    async fn drain_outbox(&self, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            self.deliver_round().await;
            if self
                .api
                .count("SELECT COUNT(*) FROM outbound_calls WHERE status = 'pending'")
                .await
                == 0
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "outbox not drained in {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// POST a form-encoded event to Vizit's handler.
    async fn event(&self, body: &str) -> (StatusCode, String) {
        let res = self
            .api
            .http
            .post(format!("{}/integrations/bitrix24/events", self.api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }
}

fn range(from: i64, to: i64, size: i64, tz: &str, days: &[&str]) -> SlotRange {
    SlotRange {
        id: 0,
        from,
        to,
        slot_size: size,
        timezone: tz.into(),
        week_days: days.iter().map(|d| (*d).to_owned()).collect(),
    }
}

/// Unix seconds of `minute` past local midnight, `days` from today, in Moscow (UTC+3 all year).
fn moscow(days: i64, minute: i64) -> i64 {
    let today: Date = jiff::Timestamp::now()
        .to_zoned_datetime(TimeZone::get(MOSCOW).unwrap())
        .date();
    let day = today.checked_add(jiff::Span::new().days(days)).unwrap();
    day.to_datetime(jiff::civil::Time::midnight())
        .to_zoned_datetime(TimeZone::get(MOSCOW).unwrap())
        .unwrap()
        .timestamp()
        .as_second()
        + minute * 60
}

fn period(from: i64, to: i64) -> DatePeriod {
    DatePeriod {
        from: Moment {
            timestamp: from,
            timezone: MOSCOW.into(),
        },
        to: Moment {
            timestamp: to,
            timezone: MOSCOW.into(),
        },
    }
}

fn receptionist_booking(resource: i64, from: i64, minutes: i64) -> NewBooking {
    NewBooking {
        name: "Запись через регистратуру".into(),
        description: None,
        resource_ids: vec![resource],
        date_period: period(from, from + minutes * 60),
    }
}

/// The expected free starts of a 09:00–12:00 / 30 min daily Moscow template, minus `busy`.
fn expected_free(busy: &[i64]) -> Vec<i64> {
    let now = jiff::Timestamp::now().as_second();
    let end = now + 14 * 86_400;
    let mut out = Vec::new();
    for day in -1..=15 {
        for k in 0..6 {
            let start = moscow(day, 540 + 30 * k);
            if start > now && start < end && !busy.contains(&start) {
                out.push(start);
            }
        }
    }
    out.sort();
    out
}

macro_rules! both {
    ($($name:ident),* $(,)?) => { $( on_both_databases!($name, super::$name); )* };
}

both!(
    slots_follow_templates_bookings_and_paging,
    booking_reaches_bitrix24_and_cancel_releases_it,
    slot_taken_in_bitrix24_first_is_a_clear_conflict,
    bitrix24_down_during_booking_delivers_later,
    lost_answer_is_not_a_duplicate_booking,
    events_are_verified_deduplicated_and_converge,
    changes_in_bitrix24_under_a_booking_are_flagged,
    reschedule_moves_the_bitrix24_booking,
    malformed_answers_change_nothing,
    a_disabled_doctor_does_not_stop_the_sync,
);

async fn a_disabled_doctor_does_not_stop_the_sync(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    let b = env.doctor("Петров Сергей Иванович");
    env.sync().await;
    let (doctor_a, doctor_b) = (env.doctor_id(a).await, env.doctor_id(b).await);
    assert!(!env.free_starts(&doctor_a).await.is_empty());
    sqlx::query("UPDATE users SET disabled_at = 1 WHERE id = $1")
        .bind(&doctor_a)
        .execute(&env.api.state.db.pool)
        .await
        .unwrap();
    // No second doctor is imported for A's resource, the sync succeeds, A offers nothing, B is
    // still synchronised.
    let report = env.sync().await;
    assert_eq!(report.doctors_created, 0, "{report:?}");
    assert!(report.slots_removed > 0);
    assert_eq!(env.api.count("SELECT COUNT(*) FROM doctors").await, 2);
    let free_a: i64 = env
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM slots WHERE doctor_id = '{doctor_a}' AND status = 'free'"
        ))
        .await;
    assert_eq!(free_a, 0);
    let first_b = env.free_starts(&doctor_b).await[0];
    env.bx()
        .add_booking(receptionist_booking(b, first_b, 30))
        .unwrap();
    env.sync().await;
    assert!(!env.free_starts(&doctor_b).await.contains(&first_b));
}

async fn slots_follow_templates_bookings_and_paging(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    let b = env
        .bx()
        .add_resource("Петров Сергей Иванович", Some("Педиатр"));
    env.bx()
        .set_template(
            b,
            vec![range(600, 720, 60, "Asia/Yekaterinburg", &["Mon", "Wed"])],
        )
        .unwrap();
    // 60 bookings for doctor A: more than one page of booking.list.
    let mut busy = Vec::new();
    for day in 1..=10 {
        for k in 0..6 {
            let start = moscow(day, 540 + 30 * k);
            env.bx()
                .add_booking(receptionist_booking(a, start, 30))
                .unwrap();
            busy.push(start);
        }
    }
    // And one for B, which must not hide A's slots.
    env.bx()
        .add_booking(receptionist_booking(b, moscow(12, 540), 30))
        .unwrap();

    let report = env.sync().await;
    assert_eq!(report.resources, 2);
    assert_eq!(report.doctors_created, 2, "{report:?}");
    assert_eq!(report.bookings, 61);
    let calls = env.bx().calls();
    assert!(calls["booking.v1.booking.list"] >= 2, "paged: {calls:?}");
    assert_eq!(
        calls["batch"], 1,
        "templates of both doctors in one batch: {calls:?}"
    );
    assert_eq!(calls["booking.v1.resource.slots.list"], 2);

    let doctor_a = env.doctor_id(a).await;
    assert_eq!(env.free_starts(&doctor_a).await, expected_free(&busy));
    let slots = env.free_slots(&doctor_a).await;
    assert!(
        slots
            .iter()
            .all(|s| s["timeZone"] == MOSCOW && s["priceKopecks"] == 150000)
    );
    // Doctor B: Mondays and Wednesdays 10:00 and 11:00 Yekaterinburg (05:00Z, 06:00Z).
    let doctor_b = env.doctor_id(b).await;
    let tz = TimeZone::get("Asia/Yekaterinburg").unwrap();
    for start in env.free_starts(&doctor_b).await {
        let local = jiff::Timestamp::from_second(start)
            .unwrap()
            .to_zoned_datetime(tz.clone());
        assert!(matches!(
            local.weekday(),
            jiff::civil::Weekday::Monday | jiff::civil::Weekday::Wednesday
        ));
        assert!(
            [10, 11].contains(&local.hour()) && local.minute() == 0,
            "{local}"
        );
    }

    // A second sync with nothing changed changes nothing.
    let again = env.sync().await;
    assert_eq!(
        (
            again.slots_added,
            again.slots_removed,
            again.doctors_created
        ),
        (0, 0, 0)
    );

    // The receptionist frees one slot and books another; the template loses 11:30.
    let freed = busy[0];
    let freed_id = env
        .bx()
        .bookings()
        .into_iter()
        .find(|bk| bk.date_period.from.timestamp == freed)
        .unwrap()
        .id;
    env.bx().delete_booking(freed_id);
    let taken = moscow(11, 600);
    env.bx()
        .add_booking(receptionist_booking(a, taken, 30))
        .unwrap();
    env.bx()
        .set_template(a, vec![range(540, 690, 30, MOSCOW, &ALL_DAYS)])
        .unwrap();
    let report = env.sync().await;
    assert!(
        report.slots_removed > 0 && report.slots_added >= 1,
        "{report:?}"
    );
    let mut busy2: Vec<i64> = busy[1..].to_vec();
    busy2.push(taken);
    let expected: Vec<i64> = expected_free(&busy2)
        .into_iter()
        .filter(|s| (s - moscow(0, 0)).rem_euclid(86_400) != 690 * 60)
        .collect();
    assert_eq!(env.free_starts(&doctor_a).await, expected);

    // The clinic prices doctor B: B's free slots take the price at once, and so do the slots
    // a later sync adds; doctor A keeps the configured bitrix24.price_kopecks.
    let (status, d) = env
        .api
        .put(
            &format!("/doctors/{doctor_b}/price"),
            &env.service,
            json!({"priceKopecks": 200_000}),
        )
        .await;
    assert_eq!(
        (status, &d["priceKopecks"]),
        (StatusCode::OK, &json!(200_000))
    );
    let priced = |slots: Vec<Value>| {
        slots
            .iter()
            .map(|s| s["priceKopecks"].as_i64().unwrap())
            .collect::<HashSet<i64>>()
    };
    assert_eq!(
        priced(env.free_slots(&doctor_b).await),
        HashSet::from([200_000])
    );
    let before = env.free_slots(&doctor_b).await.len();
    env.bx()
        .set_template(
            b,
            vec![range(600, 780, 60, "Asia/Yekaterinburg", &["Mon", "Wed"])],
        )
        .unwrap();
    let report = env.sync().await;
    assert!(report.slots_added > 0, "{report:?}");
    let after = env.free_slots(&doctor_b).await;
    assert!(after.len() > before);
    assert_eq!(priced(after), HashSet::from([200_000]));
    assert_eq!(
        priced(env.free_slots(&doctor_a).await),
        HashSet::from([150_000])
    );
}

async fn booking_reaches_bitrix24_and_cancel_releases_it(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let (status, patient) = env
        .api
        .post(
            "/patients",
            &env.service,
            json!({"name": "Пациент Петров", "crmContactId": 42}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let patient_id = patient["id"].as_str().unwrap();
    let (_, session) = env
        .api
        .post(
            &format!("/patients/{patient_id}/sessions"),
            &env.service,
            json!({}),
        )
        .await;
    let token = session["token"].as_str().unwrap();
    let slot = env.free_slots(&doctor).await[0].clone();
    let (status, c) = env.book(token, slot["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(
        c["bookingSync"], "synced",
        "confirmed in Bitrix24 before the answer"
    );
    let id = c["id"].as_str().unwrap();

    let bookings = env.bx().bookings();
    assert_eq!(bookings.len(), 1);
    let bk = &bookings[0];
    assert_eq!(bk.name, booking_name(id));
    assert!(
        !bk.name.contains("Петров"),
        "no personal data in Bitrix24 booking names"
    );
    assert_eq!(bk.resource_ids, vec![a]);
    let starts = slot["startsAt"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    assert_eq!(bk.date_period.from.timestamp, starts);
    assert_eq!(bk.date_period.to.timestamp, starts + 1800);
    assert_eq!(bk.date_period.from.timezone, MOSCOW);
    // The patient is linked as a CRM contact (a queued follow-up call).
    env.drain_outbox(10).await;
    let clients = env.bx().booking_clients(bk.id);
    assert_eq!(clients.len(), 1);
    assert_eq!(
        (
            clients[0].id,
            clients[0].kind.code.as_str(),
            clients[0].kind.module.as_str()
        ),
        (42, "CONTACT", "crm")
    );

    // A sync now keeps the booked slot booked (our own booking is not a conflict).
    let report = env.sync().await;
    assert_eq!(report.conflicts_flagged, 0);

    let (status, cancelled) = env
        .api
        .post(
            &format!("/consultations/{id}/cancel"),
            token,
            json!({"reason": "планы изменились"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    env.drain_outbox(10).await;
    assert!(
        env.bx().bookings().is_empty(),
        "cancel deleted the booking in Bitrix24"
    );
    let (_, c) = env
        .api
        .get(&format!("/consultations/{id}"), &env.admin)
        .await;
    assert_eq!(c["bookingSync"], "released");
    env.sync().await;
    assert!(
        env.free_starts(&doctor).await.contains(&starts),
        "the slot is free again"
    );
}

async fn slot_taken_in_bitrix24_first_is_a_clear_conflict(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let slot = env.free_slots(&doctor).await[2].clone();
    let starts = slot["startsAt"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    // The receptionist books the same time in Bitrix24; Vizit has not synced since.
    env.bx()
        .add_booking(receptionist_booking(a, starts, 30))
        .unwrap();
    let (_, patient) = env.patient().await;
    let (status, problem) = env.book(&patient, slot["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "slot_taken");
    assert_eq!(
        env.bx().bookings().len(),
        1,
        "Bitrix24 keeps only the receptionist's booking"
    );
    // The consultation exists, cancelled by the clinic with a reason, and the slot is not offered.
    let (_, list) = env.api.get("/consultations", &patient).await;
    let c = &list["items"][0];
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["cancelledBy"], "clinic");
    assert_eq!(c["bookingSync"], "conflict");
    assert_eq!(c["cancelReason"], outbound::SLOT_TAKEN_REASON);
    assert!(!env.free_starts(&doctor).await.contains(&starts));
    env.drain_outbox(10).await;
    assert_eq!(
        env.bx().bookings().len(),
        1,
        "the receptionist's booking is not deleted by the cancel"
    );
}

async fn bitrix24_down_during_booking_delivers_later(backend: Backend) {
    let mut env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let slot = env.free_slots(&doctor).await[0].clone();
    env.stop_sandbox().await;
    let (_, patient) = env.patient().await;
    let (status, c) = env.book(&patient, slot["id"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "Bitrix24 being down does not stop a booking: {c}"
    );
    assert_eq!(c["bookingSync"], "pending");
    let id = c["id"].as_str().unwrap().to_owned();
    // Admins see it waiting, with the error.
    let (_, st) = env
        .api
        .get("/admin/integrations/bitrix24", &env.admin)
        .await;
    assert_eq!(st["pendingOutbound"], 1, "{st}");
    let (_, out) = env
        .api
        .get(
            "/admin/integrations/bitrix24/outbound?status=pending",
            &env.admin,
        )
        .await;
    assert!(
        out["items"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{out}"
    );
    // Still down: another round changes nothing.
    env.deliver_round().await;
    env.start_sandbox().await;
    env.drain_outbox(30).await;
    let bookings = env.bx().bookings();
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0].name, booking_name(&id));
    let (_, c) = env
        .api
        .get(&format!("/consultations/{id}"), &env.admin)
        .await;
    assert_eq!(c["bookingSync"], "synced");
    let (_, st) = env
        .api
        .get("/admin/integrations/bitrix24", &env.admin)
        .await;
    assert_eq!(st["pendingOutbound"], 0);
}

async fn lost_answer_is_not_a_duplicate_booking(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let slot = env.free_slots(&doctor).await[0].clone();
    env.bx().set_fault(Fault::LoseAnswers);
    let (_, patient) = env.patient().await;
    let (status, c) = env.book(&patient, slot["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        c["bookingSync"], "pending",
        "the answer was lost: not known to be confirmed"
    );
    assert_eq!(env.bx().bookings().len(), 1, "the add did run in Bitrix24");
    env.bx().set_fault(Fault::None);
    env.drain_outbox(30).await;
    let bookings = env.bx().bookings();
    assert_eq!(
        bookings.len(),
        1,
        "the retry adopted the booking instead of adding another"
    );
    let (_, c) = env
        .api
        .get(
            &format!("/consultations/{}", c["id"].as_str().unwrap()),
            &env.admin,
        )
        .await;
    assert_eq!(c["bookingSync"], "synced");
    assert_eq!(env.bx().calls()["booking.v1.booking.add"], 1);
}

async fn events_are_verified_deduplicated_and_converge(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let first = env.free_starts(&doctor).await[0];

    // Wrong or missing token: 401, nothing stored.
    let (status, _) = env
        .event("event=ONBOOKINGADD&data[ID]=1&ts=1&auth[application_token]=nope")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = env.event("event=ONBOOKINGADD&data[ID]=1&ts=1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        env.api
            .count("SELECT COUNT(*) FROM integration_events")
            .await,
        0
    );
    // Garbage id with a good token: 400.
    let (status, _) = env
        .event(&format!(
            "event=ONBOOKINGADD&data[ID]=x&auth[application_token]={TOKEN}"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A good token with an implausible time (part of the deduplication key): 400, not stored.
    let now = env.api.state.now() / 1000;
    let week_ago = now - 8 * 86_400;
    for ts in [
        "1".to_owned(),
        "9".repeat(10_000),
        week_ago.to_string(),
        "-5".into(),
        String::new(),
    ] {
        let (status, _) = env
            .event(&format!(
                "event=ONBOOKINGADD&data[ID]=1&ts={ts}&auth[application_token]={TOKEN}"
            ))
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "ts={}",
            &ts[..ts.len().min(20)]
        );
    }
    let (status, _) = env
        .event(&format!(
            "event=ONBOOKINGADD&data[ID]=1&auth[application_token]={TOKEN}"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no ts");
    assert_eq!(
        env.api
            .count("SELECT COUNT(*) FROM integration_events")
            .await,
        0
    );

    // A receptionist books the first slot; the event arrives (twice).
    let booking = env
        .bx()
        .add_booking(receptionist_booking(a, first, 30))
        .unwrap();
    let body = format!(
        "event=ONBOOKINGADD&event_handler_id=7&data%5BID%5D={booking}&ts={now}&auth%5Bdomain%5D=x&auth%5Bapplication_token%5D={TOKEN}"
    );
    let (status, text) = env.event(&body).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "accepted"));
    let (status, text) = env.event(&body).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "duplicate"));
    assert_eq!(
        env.api
            .count("SELECT COUNT(*) FROM integration_events")
            .await,
        1
    );
    // Out of order: an update for a booking deleted since, and an event for one never seen.
    let ghost = env
        .bx()
        .add_booking(receptionist_booking(a, moscow(3, 600), 30))
        .unwrap();
    env.bx().delete_booking(ghost);
    for (event, id) in [
        ("ONBOOKINGUPDATE", ghost),
        ("ONBOOKINGDELETE", 999_999),
        ("ONBOOKINGADD", ghost),
    ] {
        let (status, _) = env
            .event(&format!(
                "event={event}&data[ID]={id}&ts={}&auth[application_token]={TOKEN}",
                now + 6
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let report = b24events::handle_events_and_sync(&env.api.state, &env.b24)
        .await
        .unwrap();
    assert_eq!(report.slots_removed, 1, "{report:?}");
    assert!(!env.free_starts(&doctor).await.contains(&first));
    assert!(
        env.free_starts(&doctor).await.contains(&moscow(3, 600)),
        "the deleted booking's slot stays free"
    );
    assert_eq!(
        env.api
            .count("SELECT COUNT(*) FROM integration_events WHERE processed_at IS NULL")
            .await,
        0
    );
    let outcome: (String,) =
        sqlx::query_as("SELECT outcome FROM integration_events WHERE object_id = '999999'")
            .fetch_one(&env.api.state.db.pool)
            .await
            .unwrap();
    assert!(outcome.0.contains("not in Bitrix24"), "{}", outcome.0);
    // Unknown events with a good token are acknowledged and ignored.
    let (status, text) = env
        .event(&format!(
            "event=ONCRMDEALADD&data[FIELDS][ID]=1&auth[application_token]={TOKEN}"
        ))
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ignored"));
}

async fn changes_in_bitrix24_under_a_booking_are_flagged(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let (_, patient) = env.patient().await;
    let slot = env.free_slots(&doctor).await[0].clone();
    let (status, c) = env.book(&patient, slot["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = c["id"].as_str().unwrap().to_owned();
    let bk = env.bx().bookings()[0].clone();

    // Moved in Bitrix24 by a receptionist: flagged, not moved or cancelled in Vizit.
    let later = bk.date_period.from.timestamp + 86_400;
    env.bx()
        .move_booking(bk.id, period(later, later + 1800))
        .unwrap();
    let report = env.sync().await;
    assert_eq!(report.conflicts_flagged, 1);
    let (_, c) = env
        .api
        .get(&format!("/consultations/{id}"), &env.admin)
        .await;
    assert_eq!(c["status"], "booked");
    assert!(c["slotConflict"].as_str().unwrap().contains("moved"), "{c}");
    let (_, list) = env.api.get("/admin/slot-conflicts", &env.admin).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(
        env.api
            .count("SELECT COUNT(*) FROM outbox WHERE event = 'consultation.slot_conflict'")
            .await,
        1
    );
    let (status, _) = env.api.get("/admin/slot-conflicts", &patient).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Moved back: the flag clears by itself.
    env.bx()
        .move_booking(bk.id, bk.date_period.clone())
        .unwrap();
    let report = env.sync().await;
    assert_eq!(report.conflicts_cleared, 1);
    let (_, list) = env.api.get("/admin/slot-conflicts", &env.admin).await;
    assert_eq!(list["total"], 0);
    // Deleted in Bitrix24: flagged again, never silently dropped.
    env.bx().delete_booking(bk.id);
    env.sync().await;
    let (_, c) = env
        .api
        .get(&format!("/consultations/{id}"), &env.admin)
        .await;
    assert_eq!(c["status"], "booked");
    assert!(
        c["slotConflict"].as_str().unwrap().contains("deleted"),
        "{c}"
    );
}

async fn reschedule_moves_the_bitrix24_booking(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let (_, patient) = env.patient().await;
    let slots = env.free_slots(&doctor).await;
    let (status, c) = env.book(&patient, slots[0]["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = c["id"].as_str().unwrap().to_owned();
    let booking = env.bx().bookings()[0].id;

    let (status, moved) = env
        .api
        .post(
            &format!("/consultations/{id}/reschedule"),
            &patient,
            json!({"slotId": slots[3]["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["slotId"], slots[3]["id"]);
    let new_start = slots[3]["startsAt"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    assert_eq!(
        env.bx()
            .booking(booking)
            .unwrap()
            .date_period
            .from
            .timestamp,
        new_start
    );
    assert!(
        env.free_slots(&doctor)
            .await
            .iter()
            .any(|s| s["id"] == slots[0]["id"]),
        "old slot free again"
    );

    // The receptionist books slot 5 in Bitrix24 first: the move is refused and undone.
    let taken = slots[5]["startsAt"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    env.bx()
        .add_booking(receptionist_booking(a, taken, 30))
        .unwrap();
    let (status, problem) = env
        .api
        .post(
            &format!("/consultations/{id}/reschedule"),
            &patient,
            json!({"slotId": slots[5]["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "slot_taken");
    let (_, c) = env.api.get(&format!("/consultations/{id}"), &patient).await;
    assert_eq!(c["slotId"], slots[3]["id"], "still at the previous time");
    assert_eq!(c["slotConflict"], Value::Null);
    assert_eq!(
        env.bx()
            .booking(booking)
            .unwrap()
            .date_period
            .from
            .timestamp,
        new_start
    );
    // The receptionist deleted our booking in Bitrix24: a reschedule is not undone as "taken";
    // it stands in Vizit and the clinic sees the conflict.
    env.bx().delete_booking(booking);
    let (status, moved) = env
        .api
        .post(
            &format!("/consultations/{id}/reschedule"),
            &patient,
            json!({"slotId": slots[4]["id"]}),
        )
        .await;
    let calls: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT operation, status, outcome FROM outbound_calls ORDER BY id")
            .fetch_all(&env.api.state.db.pool)
            .await
            .unwrap();
    assert_eq!(status, StatusCode::OK, "{moved} {calls:?}");
    let (_, c) = env
        .api
        .get(&format!("/consultations/{id}"), &env.admin)
        .await;
    assert_eq!(c["slotId"], slots[4]["id"]);
    assert!(
        c["slotConflict"].as_str().unwrap().contains("deleted"),
        "{c}"
    );
    // Someone else's consultation cannot be moved by this patient.
    let (_, other) = env.patient().await;
    let (status, _) = env
        .api
        .post(
            &format!("/consultations/{id}/reschedule"),
            &other,
            json!({"slotId": slots[4]["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn malformed_answers_change_nothing(backend: Backend) {
    let env = Env::new(backend).await;
    let a = env.doctor("Иванова Анна Петровна");
    env.sync().await;
    let doctor = env.doctor_id(a).await;
    let before = env.free_starts(&doctor).await;
    // A receptionist change that the broken answers must not half-apply.
    env.bx()
        .add_booking(receptionist_booking(a, before[0], 30))
        .unwrap();
    for fault in [Fault::Malformed, Fault::WrongShape, Fault::Unavailable] {
        env.bx().set_fault(fault);
        let err = sync(&env.api.state, &env.b24)
            .await
            .expect_err("a broken answer is an error");
        let text = err.to_string();
        assert!(matches!(err, SyncError::Bitrix24(_)), "{text}");
        assert!(
            !text.contains(&env.bx().options().webhook_code),
            "the webhook secret never appears in errors"
        );
        assert_eq!(
            env.free_starts(&doctor).await,
            before,
            "{fault:?}: nothing changed"
        );
    }
    let (_, st) = env
        .api
        .get("/admin/integrations/bitrix24", &env.admin)
        .await;
    assert!(
        st["lastError"].as_str().unwrap().contains("HTTP 502"),
        "{st}"
    );
    // Through the admin API: a clear 502 problem.
    let (status, problem) = env
        .api
        .post("/admin/integrations/bitrix24/sync", &env.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(problem["code"], "bitrix24_unavailable");
    env.bx().set_fault(Fault::None);
    let (status, report) = env
        .api
        .post("/admin/integrations/bitrix24/sync", &env.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["slotsRemoved"], 1);
    let (_, st) = env
        .api
        .get("/admin/integrations/bitrix24", &env.admin)
        .await;
    assert!(
        st["lastSuccessAt"].is_string() && st["lastSyncAt"] == st["lastSuccessAt"],
        "{st}"
    );
}

// ---- rate limits (one database is enough: no storage involved) ------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_rate_limit_is_backed_off_and_succeeds() {
    // A portal bucket of 4 and a client that would burst 40: the portal answers 503
    // QUERY_LIMIT_EXCEEDED, the client backs off and every call completes.
    let env = Env::with(
        Backend::Sqlite,
        |o| {
            o.burst = 4.0;
            o.drain_per_second = 4.0;
        },
        |s| {
            s.client.max_attempts = 8;
            s.client.backoff = Duration::from_millis(200);
        },
    )
    .await;
    let a = env.doctor("Иванова Анна Петровна");
    let mut busy = Vec::new();
    for day in 1..=13 {
        for k in 0..6 {
            let start = moscow(day, 540 + 30 * k);
            env.bx()
                .add_booking(receptionist_booking(a, start, 30))
                .unwrap();
            busy.push(start);
        }
    }
    // 78 bookings = 2 pages; with resource.list and batch, more requests than the bucket holds
    // back to back — run the sync twice in a row to be sure.
    env.sync().await;
    env.sync().await;
    assert!(env.bx().rejected() > 0, "the portal's limit was hit");
    assert!(env.b24.metrics.portal_limit_hits() > 0);
    assert!(env.b24.metrics.retries() > 0);
    let doctor = env.doctor_id(a).await;
    assert_eq!(env.free_starts(&doctor).await, expected_free(&busy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_paces_itself_under_the_portal_budget() {
    let env = Env::with(
        Backend::Sqlite,
        |_| {},
        |s| {
            s.client.burst = 2.0;
            s.client.per_second = 20.0;
        },
    )
    .await;
    env.doctor("Иванова Анна Петровна");
    env.sync().await;
    env.sync().await;
    assert!(
        env.b24.metrics.rate_limit_waits() > 0,
        "the client waited for its own bucket"
    );
    assert_eq!(env.bx().rejected(), 0, "and the portal never refused");
    let text = env.b24.metrics.to_prometheus();
    assert!(text.contains("vizit_bitrix24_rate_limit_waits_total"));
    assert!(
        text.contains("vizit_bitrix24_calls_total{method=\"batch\"} 2"),
        "{text}"
    );
}
