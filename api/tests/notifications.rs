//! Notifications about consultations end to end, on SQLite and PostgreSQL: Vizit's real workers
//! (outbox dispatcher, scheduler, e-mail sender) on a clock the test moves, e-mail through a
//! real SMTP server (aiosmtpd). Each of the consultation cases reaches its recipient once, with a
//! working link and no medical content; statuses show in the API; cancelling removes reminders.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::TestApi;
use common::smtp::{Mail, Smtp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vizit_api::domain::Role;
use vizit_api::notifications::{EmailSettings, NoticeRules, Notifications};
use vizit_api::{ApiSettings, Backend, Clock};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// Words that must never be in a notification (medical secrecy): the doctor's specialty, the
/// conclusion and the cancellation reason the test writes, and the names of both parties.
const SECRET_WORDS: [&str; 7] = [
    "Кардиолог",
    "гипертония",
    "диагноз",
    "Болит сердце",
    "Пациент Петров",
    "Доктор Айболит",
    "заключение врача:",
];

/// The notifications of every node: e-mail through the test's SMTP server. The public address
/// is only known once the API listens: the link's host is fixed up in `open` below, the path is
/// what is tested.
fn notifications(smtp: String) -> std::sync::Arc<Notifications> {
    Notifications::with_rules(
        common::smtp::mailer(smtp),
        EmailSettings {
            clinic_name: "Клиника «Здоровье»".into(),
            clinic_inn: None,
            time_zone: "Europe/Moscow".into(),
        },
        NoticeRules {
            public_url: "http://clinic.test".into(),
            reminders: vec![Duration::from_secs(24 * 3600), Duration::from_secs(15 * 60)],
            review_after: Duration::from_secs(2 * 3600),
            close_after: Duration::ZERO,
        },
    )
}

fn settings() -> ApiSettings {
    ApiSettings {
        demo: true,
        pay_within: Duration::from_secs(30 * 60),
        overdue_after: Duration::from_secs(3600),
        session_ttl: Duration::from_secs(30 * 86_400),
        jobs_interval: Duration::from_secs(1),
        ..ApiSettings::default()
    }
}

struct Env {
    api: TestApi,
    smtp: Smtp,
    clock: Clock,
    stop: tokio::sync::watch::Sender<bool>,
    admin: String,
    service: String,
    doctor_id: String,
    doctor: String,
    admin_id: String,
    head_id: String,
    patient_id: String,
    patient: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Env {
    async fn new(backend: Backend) -> Env {
        let clock = Clock::manual(vizit_api::now_ms());
        let smtp = Smtp::start().await;
        let notifications = notifications(smtp.url());
        let n = notifications.clone();
        let api = TestApi::spawn_clocked(backend, settings(), clock.clone(), move |state| {
            state.with_notifications(n)
        })
        .await;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(vizit_api::run_workers(api.state.clone(), stop_rx.clone()));
        tokio::spawn(vizit_api::notifications::sender::run(
            api.state.clone(),
            notifications,
            stop_rx,
        ));
        let admin_id = api.staff(Role::Admin, "admin@clinic.test").await;
        let head_id = api.staff(Role::HeadDoctor, "head@clinic.test").await;
        // The name and specialty are there to be absent from every text.
        let doctor_id = vizit_api::create_staff_user(
            &api.state.db,
            vizit_api::NewStaff {
                role: Role::Doctor,
                email: "doctor@clinic.test",
                name: "Доктор Айболит",
                password: "password-123456",
                specialty: Some("Кардиолог"),
                time_zone: Some("Europe/Moscow"),
                bitrix_resource_id: None,
            },
        )
        .await
        .unwrap()
        .to_string();
        let admin = api.login("admin@clinic.test").await;
        let doctor = api.login("doctor@clinic.test").await;
        let (_, key) = api
            .post("/api-keys", &admin, json!({"name": "portal"}))
            .await;
        let service = key["key"].as_str().unwrap().to_owned();
        let mut env = Env {
            api,
            smtp,
            clock,
            stop,
            admin,
            service,
            doctor_id,
            doctor,
            admin_id,
            head_id,
            patient_id: String::new(),
            patient: String::new(),
        };
        let (id, session) = env.patient(Some("patient@example.ru")).await;
        env.patient_id = id;
        env.patient = session;
        env
    }

    async fn patient(&self, email: Option<&str>) -> (String, String) {
        let mut body = json!({"name": "Пациент Петров"});
        if let Some(e) = email {
            body["email"] = json!(e);
        }
        self.api.register_patient(&self.service, body).await
    }

    /// Book a slot starting `minutes` after the test's clock, as `patient`.
    async fn book(&self, patient: &str, minutes: i64, price: i64) -> (String, i64) {
        let start = self.clock.now_ms() + minutes * MIN;
        let slot = self
            .api
            .slot_at(&self.service, &self.doctor_id, start, price)
            .await;
        let (status, c) = self
            .api
            .post("/consultations", patient, json!({"slotId": slot}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        (c["id"].as_str().unwrap().to_owned(), start)
    }

    async fn mark_paid(&self, id: &str) {
        self.api.mark_paid(&self.service, id).await;
    }

    /// Wait (bounded) until `n` e-mails to `to` start with `subject`; returns them.
    async fn wait_mails(&self, to: &str, subject: &str, n: usize) -> Vec<Mail> {
        self.smtp.wait_for(to, subject, n).await
    }

    fn count(&self, to: &str, subject: &str) -> usize {
        self.smtp
            .mails()
            .iter()
            .filter(|m| m.to == to && m.subject.starts_with(subject))
            .count()
    }

    async fn notices(&self, query: &str) -> Vec<Value> {
        let (status, page) = self
            .api
            .get(&format!("/admin/notifications?{query}"), &self.admin)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().unwrap().clone()
    }

    /// Move the clock and give the workers (polling every second) time to see it.
    async fn advance_to(&self, at: i64) {
        self.clock.set(at);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }

    /// Open the message's link as its recipient would: 303 to the consultations page.
    async fn open(&self, mail: &Mail) {
        let link = mail
            .text
            .split_whitespace()
            .find(|w| w.starts_with("http://clinic.test/api/v1/notifications/open/"))
            .expect("a sign-in link");
        let local = link.replace("http://clinic.test/api/v1", &self.api.base);
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(&local)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            "http://clinic.test/consultations"
        );
    }
}

fn assert_clean(m: &Mail) {
    for word in SECRET_WORDS {
        assert!(
            !m.text.contains(word) && !m.html.contains(word) && !m.subject.contains(word),
            "{word:?} in {:?}:\n{}",
            m.subject,
            m.text
        );
    }
    assert!(m.text.contains("Клиника «Здоровье»"), "{}", m.text);
}

async fn every_consultation_case_reaches_its_recipient_once(backend: Backend) {
    let env = Env::new(backend).await;
    let patient = "patient@example.ru";

    // Booked: the patient is told, with the price and the time to pay by.
    let (a, starts) = env.book(&env.patient, 3 * 24 * 60, 150_000).await;
    let booked = env.wait_mails(patient, "Вы записаны", 1).await;
    assert!(
        booked[0].text.contains("1\u{a0}500,00\u{a0}₽"),
        "{}",
        booked[0].text
    );
    assert!(booked[0].text.contains("Оплатите"));
    assert_clean(&booked[0]);

    // Paid: told, and reminders planned for 24 h and 15 min before.
    env.mark_paid(&a).await;
    let paid = env
        .wait_mails(patient, "Оплата консультации получена", 1)
        .await;
    assert_clean(&paid[0]);
    env.open(&paid[0]).await;

    // 24 h before: both are reminded, once.
    env.advance_to(starts - 24 * HOUR + MIN).await;
    let r = env.wait_mails(patient, "Напоминание об онлайн", 1).await;
    assert_clean(&r[0]);
    let d = env
        .wait_mails("doctor@clinic.test", "Напоминание о консультации", 1)
        .await;
    assert_clean(&d[0]);
    // 15 min before: again.
    env.advance_to(starts - 15 * MIN + MIN).await;
    env.wait_mails(patient, "Напоминание об онлайн", 2).await;
    env.wait_mails("doctor@clinic.test", "Напоминание о консультации", 2)
        .await;

    // The slot ends and the consultation is not closed: the doctor is asked to close it.
    env.advance_to(starts + 30 * MIN + MIN).await;
    let close = env
        .wait_mails("doctor@clinic.test", "Завершите консультацию", 1)
        .await;
    assert_clean(&close[0]);
    // An hour later (overdue_after): the admin and the head doctor are told.
    env.advance_to(starts + 30 * MIN + HOUR + 2 * MIN).await;
    let late = env
        .wait_mails("admin@clinic.test", "Консультация не закрыта", 1)
        .await;
    assert_clean(&late[0]);
    env.wait_mails("head@clinic.test", "Консультация не закрыта", 1)
        .await;

    // Closed: two hours later the patient is asked for a review.
    let (status, body) = env
        .api
        .post(
            &format!("/consultations/{a}/complete"),
            &env.doctor,
            json!({"conclusion": "Диагноз: гипертония"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.advance_to(env.clock.now_ms() + 2 * HOUR + MIN).await;
    let review = env.wait_mails(patient, "Как прошла консультация", 1).await;
    assert_clean(&review[0]);

    // Cancelled after paying: the patient and the doctor are told; its reminders are gone.
    let (b, b_starts) = env.book(&env.patient, 2 * 24 * 60, 150_000).await;
    env.mark_paid(&b).await;
    env.wait_mails(patient, "Оплата консультации получена", 2)
        .await;
    let planned = env
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM scheduled_jobs WHERE job_key LIKE 'notify.%:{b}%' AND kind <> 'notify.moved'"
        ))
        .await;
    assert_eq!(planned, 3, "two reminders and the close request");
    // Moved by the clinic to a day later: both told the new time, once; the reminders follow.
    let later = b_starts + 24 * HOUR;
    let slot = env
        .api
        .slot_at(&env.service, &env.doctor_id, later, 150_000)
        .await;
    let (status, body) = env
        .api
        .post(
            &format!("/consultations/{b}/reschedule"),
            &env.admin,
            json!({"slotId": slot}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Told once the move has settled (30 s: a slot source may still refuse it).
    env.advance_to(env.clock.now_ms() + MIN).await;
    let moved = env.wait_mails(patient, "Консультация перенесена", 1).await;
    assert_clean(&moved[0]);
    let doc = env
        .wait_mails("doctor@clinic.test", "Консультация перенесена", 1)
        .await;
    assert_clean(&doc[0]);
    let (_, view) = env
        .api
        .get(&format!("/consultations/{b}"), &env.admin)
        .await;
    let new_time = jiff::Timestamp::from_str(view["startsAt"].as_str().unwrap()).unwrap();
    assert_eq!(new_time.as_millisecond(), later);
    let replanned = env
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM scheduled_jobs WHERE job_key LIKE 'notify.%:{b}%' AND kind <> 'notify.moved'"
        ))
        .await;
    assert_eq!(replanned, 3, "the reminders follow the new time");
    // Moved and moved back within the half minute: no news, nobody is told.
    let elsewhere = env
        .api
        .slot_at(&env.service, &env.doctor_id, later + 24 * HOUR, 150_000)
        .await;
    for to in [&elsewhere, &slot] {
        let (status, body) = env
            .api
            .post(
                &format!("/consultations/{b}/reschedule"),
                &env.admin,
                json!({"slotId": to}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    env.advance_to(env.clock.now_ms() + MIN).await;
    // The job has run (it is done, not pending) and sent nothing.
    let done = format!(
        "SELECT COUNT(*) FROM scheduled_jobs WHERE job_key = 'notify.moved:{b}' AND status = 'done'"
    );
    common::until("the move's job has run", || async {
        env.api.count(&done).await == 1
    })
    .await;
    assert_eq!(env.count(patient, "Консультация перенесена"), 1);
    let (status, body) = env
        .api
        .post(
            &format!("/consultations/{b}/cancel"),
            &env.patient,
            json!({"reason": "Болит сердце, не смогу"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cancelled = env.wait_mails(patient, "Консультация отменена", 1).await;
    assert_clean(&cancelled[0]);
    let doc = env
        .wait_mails("doctor@clinic.test", "Консультация отменена", 1)
        .await;
    assert_clean(&doc[0]);
    let left = env
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM scheduled_jobs WHERE job_key LIKE 'notify.%:{b}%' AND kind <> 'notify.moved'"
        ))
        .await;
    assert_eq!(left, 0, "cancelling removes its reminders");
    env.advance_to(b_starts - 15 * MIN + MIN).await;
    assert_eq!(
        env.count(patient, "Напоминание об онлайн"),
        2,
        "no reminder of b"
    );

    // Not paid in time: the booking expires and the patient is told why.
    let (_c, _) = env.book(&env.patient, 3 * 24 * 60, 150_000).await;
    env.wait_mails(patient, "Вы записаны", 3).await;
    env.advance_to(env.clock.now_ms() + 31 * MIN).await;
    let expired = env
        .wait_mails(patient, "Запись на консультацию отменена", 1)
        .await;
    assert!(expired[0].text.contains("оплата не поступила"));
    assert_clean(&expired[0]);

    // Every case once: the log has each (recipient, event) as many times as mails went out.
    let log = env.notices(&format!("consultationId={a}")).await;
    let mut events: Vec<(String, String)> = log
        .iter()
        .map(|n| {
            (
                n["event"].as_str().unwrap().to_owned(),
                n["recipientId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    events.sort();
    let mut want = vec![
        ("admin.not_closed".to_owned(), env.admin_id.clone()),
        ("doctor.must_close".to_owned(), env.doctor_id.clone()),
        ("doctor.reminder".to_owned(), env.doctor_id.clone()),
        ("doctor.reminder".to_owned(), env.doctor_id.clone()),
        ("head_doctor.not_closed".to_owned(), env.head_id.clone()),
        ("patient.booked".to_owned(), env.patient_id.clone()),
        ("patient.paid".to_owned(), env.patient_id.clone()),
        // Assigned on booking (documents' default): see the documents' test.
        (
            "patient.questionnaire_symptoms".to_owned(),
            env.patient_id.clone(),
        ),
        ("patient.reminder".to_owned(), env.patient_id.clone()),
        ("patient.reminder".to_owned(), env.patient_id.clone()),
        ("patient.review".to_owned(), env.patient_id.clone()),
    ];
    want.sort();
    assert_eq!(events, want);
    // Each went out by e-mail: sent (the server took it); the opened one read, by its link;
    // "delivered" is not something e-mail reports.
    for n in &log {
        let d = &n["deliveries"][0];
        assert_eq!(d["channel"], "email");
        assert_eq!(d["reports"], json!(["sent", "read", "failed"]));
        assert!(d["deliveredAt"].is_null());
        let history: Vec<&str> = d["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        if n["event"] == "patient.paid" {
            assert_eq!(d["status"], "read", "{n}");
            assert_eq!(history, ["queued", "sent", "read"]);
            assert_eq!(d["history"][2]["source"], "link");
        } else {
            assert_eq!(d["status"], "sent", "{n}");
            assert_eq!(history, ["queued", "sent"]);
        }
    }
    // Per recipient too; and only for the clinic.
    let mine = env.notices(&format!("recipientId={}", env.admin_id)).await;
    assert_eq!(mine.len(), 1);
    let (status, _) = env.api.get("/admin/notifications", &env.patient).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = env.api.get("/admin/notifications", &env.doctor).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing was sent twice.
    assert_eq!(env.count(patient, "Вы записаны"), 3);
    assert_eq!(env.count(patient, "Консультация перенесена"), 1);
    assert_eq!(
        env.count("doctor@clinic.test", "Консультация перенесена"),
        1
    );
    assert_eq!(env.count("admin@clinic.test", "Консультация не закрыта"), 1);
}

on_both_databases!(
    every_consultation_case_reaches_its_recipient_once,
    super::every_consultation_case_reaches_its_recipient_once
);

async fn a_patient_without_an_address_is_a_visible_failure(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, session) = env.patient(None).await;
    let (id, _) = env.book(&session, 3 * 24 * 60, 0).await;
    env.mark_paid(&id).await;
    // Booked (with its questionnaire) and paid: none can reach the patient, and the log says
    // so.
    let query = format!("consultationId={id}");
    common::until("the three notifications are logged", || async {
        env.notices(&query).await.len() == 3
    })
    .await;
    let log = env.notices(&query).await;
    for n in &log {
        let d = &n["deliveries"][0];
        assert_eq!(d["status"], "failed", "{n}");
        assert_eq!(d["detail"], vizit_api::notifications::notices::NO_CHANNEL);
    }
    // A link that names no message still leads to the page, and marks nothing.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{}/notifications/open/{}",
            env.api.base,
            "0".repeat(64)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

on_both_databases!(
    a_patient_without_an_address_is_a_visible_failure,
    super::a_patient_without_an_address_is_a_visible_failure
);

/// Words that name a document: never in a notification either (the text says "анкета").
const DOCUMENT_WORDS: [&str; 4] = ["анамнез", "Анамнез", "жалоб", "симптом"];

fn assert_no_document_names(m: &Mail) {
    assert_clean(m);
    for word in DOCUMENT_WORDS {
        assert!(
            !m.text.contains(word) && !m.html.contains(word) && !m.subject.contains(word),
            "{word:?} in {:?}",
            m.subject
        );
    }
}

/// The documents' cases: questionnaires (assigned on booking and by the doctor) to the patient,
/// a deletion request and its passed deadline to the admins, its answer and extension to the
/// patient — each once, each without medical content; and the documents flows behind them.
async fn document_cases_reach_their_recipients_once(backend: Backend) {
    let env = Env::new(backend).await;
    let patient = "patient@example.ru";

    // Booked: the symptoms questionnaire comes with it (the default), and the patient is asked.
    let (a, _) = env.book(&env.patient, 3 * 24 * 60, 0).await;
    let ask = env.wait_mails(patient, "Заполните анкету", 1).await;
    assert_no_document_names(&ask[0]);
    assert!(ask[0].text.contains("заполните, пожалуйста, анкету"));
    // The doctor asks for the anamnesis too: a second message.
    let (status, anamnesis) = env
        .api
        .post(
            &format!("/consultations/{a}/questionnaires"),
            &env.doctor,
            json!({"kind": "anamnesis"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{anamnesis}");
    let asks = env.wait_mails(patient, "Заполните анкету", 2).await;
    assert_no_document_names(&asks[1]);

    // The patient fills the symptoms in: a draft, then a submission; the doctor reads it.
    let (status, list) = env.api.get("/me/questionnaires", &env.patient).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let symptoms = items.iter().find(|q| q["kind"] == "symptoms").unwrap();
    let sid = symptoms["id"].as_str().unwrap();
    assert_eq!(symptoms["status"], "assigned");
    assert!(symptoms["assignedBy"].is_null(), "assigned on booking");
    let (status, draft) = env
        .api
        .put(
            &format!("/questionnaires/{sid}"),
            &env.patient,
            json!({"answers": {"complaints": "Болит сердце"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    assert_eq!(draft["status"], "draft");
    let (status, refused) = env
        .api
        .put(
            &format!("/questionnaires/{sid}"),
            &env.patient,
            json!({"answers": {"complaints": "Болит сердце"}, "submit": true}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("answers.since")
    );
    let (status, done) = env
        .api
        .put(
            &format!("/questionnaires/{sid}"),
            &env.patient,
            json!({"answers": {"complaints": "Болит сердце", "since": "Сегодня",
                               "temperature": 37.4}, "submit": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "submitted");
    assert!(done["readAt"].is_null());
    // The admin sees that it exists, not what it says; the doctor reads it, and that shows.
    let (_, seen) = env
        .api
        .get(&format!("/consultations/{a}/questionnaires"), &env.admin)
        .await;
    assert!(
        seen["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["answers"].is_null())
    );
    let (_, read) = env
        .api
        .get(&format!("/consultations/{a}/questionnaires"), &env.doctor)
        .await;
    let read = read["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == sid)
        .unwrap()
        .clone();
    assert_eq!(read["answers"]["complaints"], "Болит сердце");
    assert_eq!(read["answers"]["temperature"], 37.4);
    let (_, mine) = env
        .api
        .get(&format!("/questionnaires/{sid}"), &env.patient)
        .await;
    assert!(mine["readAt"].is_string(), "{mine}");

    // The patient asks to delete their documents: the admins are told, with the deadline.
    let (status, request) = env
        .api
        .post(
            "/me/deletion-requests",
            &env.patient,
            json!({"comment": "Болит сердце — удалите всё"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let rid = request["id"].as_str().unwrap().to_owned();
    let told = env
        .wait_mails("admin@clinic.test", "Запрос пациента на удаление", 1)
        .await;
    assert_no_document_names(&told[0]);
    assert!(told[0].text.contains(&rid[..8]), "{}", told[0].text);
    assert_eq!(env.count("head@clinic.test", "Запрос пациента"), 0);

    // Nobody answers by the deadline (10 working days): flagged, and the admins told once.
    let due = vizit_api::http::parse_time("dueAt", request["dueAt"].as_str().unwrap()).unwrap();
    assert!(
        due - env.clock.now_ms() >= 14 * 24 * HOUR - 24 * HOUR,
        "{request}"
    );
    env.advance_to(due + MIN).await;
    let late = env
        .wait_mails("admin@clinic.test", "Срок ответа на запрос истёк", 1)
        .await;
    assert_no_document_names(&late[0]);
    let (_, overdue) = env
        .api
        .get("/admin/deletion-requests?overdue=true", &env.admin)
        .await;
    assert_eq!(overdue["total"], 1, "{overdue}");
    assert_eq!(overdue["items"][0]["overdue"], true);

    // Answered: done, the anamnesis kept under a legal hold; the patient is told.
    let aid = anamnesis["id"].as_str().unwrap();
    let (status, answered) = env
        .api
        .post(
            &format!("/admin/deletion-requests/{rid}/answer"),
            &env.admin,
            json!({"outcome": "done", "keep": [{"questionnaireId": aid,
                   "reason": "Медицинская документация: 323-ФЗ, ст. 22"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    assert_eq!(answered["status"], "done");
    assert_eq!(answered["overdue"], false);
    assert_eq!(answered["act"]["deleted"][0]["document"]["id"], sid);
    assert_eq!(answered["act"]["kept"][0]["document"]["id"], aid);
    let answer = env.wait_mails(patient, "Ответ на ваш запрос", 1).await;
    assert_no_document_names(&answer[0]);
    let (_, gone) = env
        .api
        .get(&format!("/questionnaires/{sid}"), &env.doctor)
        .await;
    assert_eq!(gone["status"], "deleted");
    assert!(gone["answers"].is_null());
    let stored = env
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM questionnaires WHERE id = '{sid}' AND answers IS NULL"
        ))
        .await;
    assert_eq!(stored, 1, "the answers are really gone");
    let (_, kept) = env
        .api
        .get(&format!("/questionnaires/{aid}"), &env.patient)
        .await;
    assert_eq!(
        kept["legalHold"],
        "Медицинская документация: 323-ФЗ, ст. 22"
    );
    let audited = env
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE object_id IN ('{sid}', '{rid}') AND action IN \
             ('questionnaire.submitted', 'questionnaire.read', 'deletion_request.created', \
              'deletion_request.overdue', 'questionnaire.deleted', 'deletion_request.answered')"
        ))
        .await;
    // Submitted, read twice (by the doctor, then by the patient), requested, overdue,
    // deleted, answered.
    assert_eq!(audited, 7, "every step is in the audit log");

    // A second request: extended with a reason (the patient told), then refused in time.
    let (status, second) = env
        .api
        .post("/me/deletion-requests", &env.patient, json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let rid2 = second["id"].as_str().unwrap();
    let (status, extended) = env
        .api
        .post(
            &format!("/admin/deletion-requests/{rid2}/extend"),
            &env.admin,
            json!({"reason": "Нужно поднять архив"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    assert!(extended["dueAt"].as_str() > second["dueAt"].as_str());
    let longer = env
        .wait_mails(patient, "Срок ответа на ваш запрос продлён", 1)
        .await;
    assert_no_document_names(&longer[0]);
    let (status, refused) = env
        .api
        .post(
            &format!("/admin/deletion-requests/{rid2}/answer"),
            &env.admin,
            json!({"outcome": "refused",
                   "reason": "Документы хранятся 25 лет (приказ Минздрава)"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refused}");
    env.wait_mails(patient, "Ответ на ваш запрос", 2).await;
    // Answered in time, it will never be flagged: its deadline job is gone.
    let planned = env
        .api
        .count(&format!(
            "SELECT COUNT(*) FROM scheduled_jobs WHERE job_key = 'documents.deletion_overdue:{rid2}'"
        ))
        .await;
    assert_eq!(planned, 0, "an answered request is never overdue");

    // Each case once, by recipient; the request cases have no consultation.
    let admin_log = env.notices(&format!("recipientId={}", env.admin_id)).await;
    let mut events: Vec<&str> = admin_log
        .iter()
        .map(|n| n["event"].as_str().unwrap())
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            "admin.deletion_overdue",
            "admin.deletion_request",
            "admin.deletion_request"
        ]
    );
    assert!(admin_log.iter().all(|n| n["consultationId"].is_null()));
    let patient_log = env
        .notices(&format!("recipientId={}", env.patient_id))
        .await;
    let mut events: Vec<&str> = patient_log
        .iter()
        .map(|n| n["event"].as_str().unwrap())
        .filter(|e| e.contains("questionnaire") || e.contains("deletion"))
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            "patient.deletion_answered",
            "patient.deletion_answered",
            "patient.deletion_extended",
            "patient.questionnaire_anamnesis",
            "patient.questionnaire_symptoms",
        ]
    );
    // The booking was never paid (no payments here) and expired meanwhile: once a consultation
    // is closed, its questionnaires no longer change.
    let (status, closed) = env
        .api
        .put(
            &format!("/questionnaires/{aid}"),
            &env.patient,
            json!({"answers": {"allergy": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{closed}");
    assert_eq!(closed["code"], "consultation_closed");
}

on_both_databases!(
    document_cases_reach_their_recipients_once,
    super::document_cases_reach_their_recipients_once
);

/// Two Vizit nodes on one PostgreSQL database — each with its own pool, outbox dispatcher,
/// scheduler and e-mail sender — and the reminders of many consultations due at the same
/// moment: each reminder goes out once, and each message exists once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_send_a_reminder_twice() {
    let env = Env::new(Backend::Postgres).await;
    let db = vizit_api::Db::connect(&env.api.db_url, 8)
        .await
        .expect("the second node connects");
    let n2 = notifications(env.smtp.url());
    let node2 =
        vizit_api::ApiState::with_clock(db, env.api.keys.clone(), settings(), env.clock.clone())
            .with_documents()
            .with_notifications(n2.clone());
    tokio::spawn(vizit_api::run_workers(node2.clone(), env.stop.subscribe()));
    tokio::spawn(vizit_api::notifications::sender::run(
        node2,
        n2,
        env.stop.subscribe(),
    ));

    // Ten paid consultations, back to back, three days ahead.
    const N: i64 = 10;
    let mut last = 0;
    for i in 0..N {
        let (id, start) = env.book(&env.patient, 3 * 24 * 60 + i * 30, 0).await;
        env.mark_paid(&id).await;
        last = start;
    }
    env.wait_mails(
        "patient@example.ru",
        "Запись на консультацию подтверждена",
        N as usize,
    )
    .await;
    // Every 24-hour reminder is due at once, before both nodes.
    env.advance_to(last - 24 * HOUR + MIN).await;
    env.wait_mails("patient@example.ru", "Напоминание об онлайн", N as usize)
        .await;
    env.wait_mails(
        "doctor@clinic.test",
        "Напоминание о консультации",
        N as usize,
    )
    .await;
    // Give both nodes time to do anything twice, then count.
    env.advance_to(env.clock.now_ms() + MIN).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.count("patient@example.ru", "Напоминание об онлайн"),
        N as usize
    );
    assert_eq!(
        env.count("doctor@clinic.test", "Напоминание о консультации"),
        N as usize
    );
    let messages = env
        .api
        .count("SELECT COUNT(*) FROM notifications WHERE event IN ('patient.reminder', 'doctor.reminder')")
        .await;
    assert_eq!(messages, 2 * N);
    let emails = env
        .api
        .count(
            "SELECT COUNT(*) FROM emails e JOIN notification_deliveries d ON d.id = e.ref_id \
             JOIN notifications n ON n.id = d.notification_id \
             WHERE n.event IN ('patient.reminder', 'doctor.reminder')",
        )
        .await;
    assert_eq!(emails, 2 * N, "one e-mail per message");
    // Each due reminder job ran once, on one node (a second run would have counted).
    let runs = env
        .api
        .count(&format!(
            "SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM scheduled_jobs WHERE kind = 'notify.reminder' \
             AND status = 'done' AND job_key LIKE 'notify.reminder:%:{}'",
            24 * 3600
        ))
        .await;
    assert_eq!(runs, N, "one run per reminder job");
}
