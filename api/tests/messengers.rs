//! Notifications by messenger end to end, on SQLite and PostgreSQL: Vizit's real MAX and edna
//! clients and webhooks against the sandbox's stand-ins over HTTP, e-mail through a real SMTP
//! server, the workers on a clock the test moves. A patient links MAX through the bot's deep
//! link; messages arrive with «Прочитано»; edna reports delivered and read; refusals and
//! undeliverable phones fall back to the next channel; forged webhooks change nothing.

mod common;

use std::time::Duration;

use common::TestApi;
use common::smtp::Smtp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use vizit_api::domain::Role;
use vizit_api::notifications::channels::Channel;
use vizit_api::notifications::{
    Channels, EdnaChannel, EmailSettings, MaxChannel, NoticeRules, Notifications,
};
use vizit_api::{ApiSettings, Backend, Clock};
use vizit_integrations::{edna, max};
use vizit_sandbox::{Bitrix24Options, RunningSandbox, Sandbox};

const MIN: i64 = 60_000;
const SECRET: &str = "max_webhook_secret_1";

struct Env {
    api: TestApi,
    sandbox: Sandbox,
    _running: RunningSandbox,
    smtp: Smtp,
    clock: Clock,
    stop: tokio::sync::watch::Sender<bool>,
    admin: String,
    service: String,
    doctor_id: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Env {
    async fn new(backend: Backend) -> Env {
        Self::with_email(backend, true).await
    }

    /// As [`Env::new`]; `email`: whether Vizit has an SMTP server.
    async fn with_email(backend: Backend, email: bool) -> Env {
        let clock = Clock::manual(vizit_api::now_ms());
        let smtp = Smtp::start().await;
        let sandbox = Sandbox::new(Bitrix24Options::default());
        let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut max_settings = max::Settings::new(sandbox.max.options().token.clone().into());
        max_settings.api_url = sandbox.max.api_url();
        let max_client = max::Client::new(max_settings);
        let bot_name = max_client.username().await.expect("GET /me");
        let e = sandbox.edna.options();
        let channels = Channels {
            order: vec![Channel::Max, Channel::Edna, Channel::Email],
            fallback: true,
            max: Some(MaxChannel {
                client: max_client,
                webhook_secret: SECRET.to_owned().into(),
                bot_name,
                link_base: sandbox.max.link_base(),
            }),
            edna: Some(EdnaChannel {
                client: edna::Client::new(edna::Settings {
                    api_url: sandbox.edna.api_url(),
                    api_key: e.api_key.clone().into(),
                    cascade_id: e.cascade_id,
                    stages: vec![edna::Stage::Whatsapp, edna::Stage::Sms],
                    request_timeout: Duration::from_secs(10),
                }),
                callback_header: e.callback_header.clone(),
                callback_value: e.callback_value.clone().into(),
                fallback_after: Duration::from_secs(600),
            }),
        };
        let notifications = Notifications::with_optional_email(
            email.then(|| common::smtp::mailer(smtp.url())),
            EmailSettings {
                clinic_name: "Клиника «Здоровье»".into(),
                clinic_inn: None,
                time_zone: "Europe/Moscow".into(),
            },
            NoticeRules {
                public_url: "http://clinic.test".into(),
                reminders: vec![],
                review_after: Duration::from_secs(3600),
                close_after: Duration::ZERO,
            },
            channels,
        );
        let n = notifications.clone();
        let api = TestApi::spawn_clocked(
            backend,
            ApiSettings {
                demo: true,
                session_ttl: Duration::from_secs(30 * 86_400),
                jobs_interval: Duration::from_secs(1),
                // The channels are under test here, one message per booking: no questionnaire
                // on booking (the documents' cases are in notifications.rs).
                documents: vizit_api::documents::DocumentSettings {
                    assign_on_booking: Vec::new(),
                    ..Default::default()
                },
                ..ApiSettings::default()
            },
            clock.clone(),
            move |state| state.with_notifications(n),
        )
        .await;
        // Subscribed through the real client call, as `vizit serve` does.
        notifications
            .channels
            .max
            .as_ref()
            .unwrap()
            .client
            .subscribe(
                &format!("{}/integrations/max/webhook", api.base),
                &["bot_started", "bot_stopped", "message_callback"],
                SECRET,
            )
            .await
            .unwrap();
        sandbox
            .edna
            .set_callback_url(Some(format!("{}/integrations/edna/status", api.base)));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(vizit_api::run_workers(api.state.clone(), stop_rx.clone()));
        tokio::spawn(vizit_api::notifications::sender::run(
            api.state.clone(),
            notifications,
            stop_rx,
        ));
        api.staff(Role::Admin, "admin@clinic.test").await;
        let doctor_id = api.staff(Role::Doctor, "doctor@clinic.test").await;
        let admin = api.login("admin@clinic.test").await;
        let (_, key) = api
            .post("/api-keys", &admin, json!({"name": "portal"}))
            .await;
        let service = key["key"].as_str().unwrap().to_owned();
        Env {
            api,
            sandbox,
            _running: running,
            smtp,
            clock,
            stop,
            admin,
            service,
            doctor_id,
        }
    }

    async fn patient(&self, body: Value) -> (String, String) {
        self.api.register_patient(&self.service, body).await
    }

    /// Book a free slot `minutes` ahead as `patient`: `patient.booked` and `patient.paid`.
    async fn book(&self, patient: &str, minutes: i64) -> String {
        let start = self.clock.now_ms() + minutes * MIN;
        let slot = self
            .api
            .slot_at(&self.service, &self.doctor_id, start, 150_000)
            .await;
        let (status, c) = self
            .api
            .post("/consultations", patient, json!({"slotId": slot}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        c["id"].as_str().unwrap().to_owned()
    }

    async fn notices(&self, consultation: &str) -> Vec<Value> {
        let (status, page) = self
            .api
            .get(
                &format!("/admin/notifications?consultationId={consultation}"),
                &self.admin,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().unwrap().clone()
    }

    /// The deliveries of `event` about `consultation`, once there are `n` and the last is `status`.
    async fn deliveries(
        &self,
        consultation: &str,
        event: &str,
        n: usize,
        status: &str,
    ) -> Vec<Value> {
        let mut last = Vec::new();
        for _ in 0..300 {
            let found = self
                .notices(consultation)
                .await
                .into_iter()
                .find(|x| x["event"] == event);
            if let Some(x) = found {
                last = x["deliveries"].as_array().unwrap().clone();
                if last.len() == n && last[n - 1]["status"] == status {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{event}: never {n} deliveries with the last {status}: {last:?}");
    }

    /// Move the clock a minute at a time (retries are due after a backoff) until the first
    /// delivery of `event` is `status`.
    async fn retry_until(&self, consultation: &str, event: &str, status: &str) {
        for _ in 0..60 {
            let found = self
                .notices(consultation)
                .await
                .into_iter()
                .find(|x| x["event"] == event);
            if found.is_some_and(|x| x["deliveries"][0]["status"] == status) {
                return;
            }
            self.clock.set(self.clock.now_ms() + MIN);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("{event} never {status}");
    }

    /// Link the patient's MAX account through the deep link, as a person pressing «Начать».
    async fn link_max(&self, patient: &str, name: &str) -> i64 {
        let (status, link) = self
            .api
            .post("/me/notifications/max", patient, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{link}");
        let url = link["url"].as_str().unwrap();
        assert!(url.starts_with(&self.sandbox.max.link_base()), "{url}");
        let code = url.split("start=").nth(1).unwrap();
        let user = self.sandbox.max.add_user(name);
        assert!(self.sandbox.max.start(user, Some(code)));
        common::until("the MAX account is linked", || async {
            let (_, me) = self.api.get("/me/notifications", patient).await;
            me["maxLinkedAt"].is_string()
        })
        .await;
        user
    }

    fn max_messages(&self, user: i64) -> Vec<vizit_sandbox::max::Message> {
        self.sandbox
            .max
            .messages()
            .into_iter()
            .filter(|m| m.user_id == user)
            .collect()
    }
}

fn statuses(d: &Value) -> Vec<(String, String)> {
    d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["status"].as_str().unwrap().to_owned(),
                h["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn max_and_edna_carry_notifications_with_their_statuses(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env
        .patient(
            json!({"name": "Пациент Петров", "email": "p@example.ru", "phone": "+7 900 000-00-01"}),
        )
        .await;

    // Linking: the bot greets the person; a code works once.
    let user = env.link_max(&patient, "Пётр").await;
    common::until("the bot greets", || async {
        env.max_messages(user).len() == 1
    })
    .await;
    assert!(env.max_messages(user)[0].text.contains("MAX подключён"));
    let (_, me) = env.api.get("/me/notifications", &patient).await;
    assert_eq!(me["order"], json!(["max", "edna", "email"]), "{me}");
    let max_view = me["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "max")
        .unwrap()
        .clone();
    assert_eq!(
        max_view["reports"],
        json!(["sent", "read", "failed"]),
        "{me}"
    );
    assert_eq!(max_view["reachable"], true);

    // Booked: MAX, first in the order. Sent on acceptance; read only when «Прочитано» is pressed.
    let c = env.book(&patient, 3 * 24 * 60).await;
    let d = env.deliveries(&c, "patient.booked", 1, "sent").await;
    assert_eq!(d[0]["channel"], "max");
    assert_eq!(d[0]["reports"], json!(["sent", "read", "failed"]));
    let msgs = env.max_messages(user);
    let m = msgs.last().unwrap();
    assert!(
        m.text.contains("Клиника «Здоровье»") && m.text.contains("Вы записаны"),
        "{}",
        m.text
    );
    assert!(!m.text.contains("Пациент Петров"), "{}", m.text);
    let read = m.buttons[0][0]["payload"].as_str().unwrap().to_owned();
    assert_eq!(m.buttons[0][0]["text"], "Прочитано");
    assert!(
        m.buttons[1][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://clinic.test/api/v1/notifications/open/")
    );
    // A press sent three times (MAX retries) is one read.
    env.sandbox
        .max
        .hooks
        .set_mode(vizit_sandbox::hooks::HookMode {
            duplicates: 2,
            ..Default::default()
        });
    assert!(env.sandbox.max.press(&m.mid, &read));
    let d = env.deliveries(&c, "patient.booked", 1, "read").await;
    assert_eq!(
        statuses(&d[0]),
        [
            ("queued".into(), "vizit".into()),
            ("sent".into(), "max".into()),
            ("read".into(), "max.button".into())
        ]
    );
    common::until("the press is answered", || async {
        !env.sandbox.max.answers().is_empty()
    })
    .await;
    assert_eq!(
        env.sandbox.max.answers()[0].1,
        "Спасибо, отмечено как прочитанное."
    );
    env.sandbox.max.hooks.set_mode(Default::default());

    // A forged update changes nothing: 401.
    let r = reqwest::Client::new()
        .post(format!("{}/integrations/max/webhook", env.api.base))
        .header("X-Max-Bot-Api-Secret", "wrong-secret")
        .json(&json!({"update_type": "bot_stopped", "timestamp": 1, "user": {"user_id": user}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (_, me) = env.api.get("/me/notifications", &patient).await;
    assert!(
        me["maxLinkedAt"].is_string(),
        "a forged bot_stopped unlinked: {me}"
    );

    // The person stops the bot but MAX's update never reaches Vizit (held): MAX refuses the next
    // message, and it goes by edna at once — the failure visible.
    env.sandbox
        .max
        .hooks
        .set_mode(vizit_sandbox::hooks::HookMode {
            hold: true,
            ..Default::default()
        });
    assert!(env.sandbox.max.stop(user));
    let (status, _) = env
        .api
        .post(
            &format!("/consultations/{c}/payment"),
            &env.service,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let d = env.deliveries(&c, "patient.paid", 2, "delivered").await;
    assert_eq!(d[0]["channel"], "max");
    assert_eq!(d[0]["status"], "failed");
    assert!(
        d[0]["detail"].as_str().unwrap().contains("chat.denied"),
        "{}",
        d[0]
    );
    assert_eq!(d[1]["channel"], "edna");
    assert_eq!(
        d[1]["reports"],
        json!(["sent", "delivered", "read", "failed"])
    );
    // The held bot_stopped arrives: the link is gone.
    env.sandbox.max.hooks.set_mode(Default::default());
    env.sandbox.max.hooks.release();
    common::until("bot_stopped unlinks MAX", || async {
        let (_, me) = env.api.get("/me/notifications", &patient).await;
        me["maxLinkedAt"].is_null()
    })
    .await;

    // edna: read on the phone → READ; the same status ten times is one transition.
    let sent = env.sandbox.edna.messages();
    let msg = sent.last().unwrap();
    assert_eq!(msg.phone, "79000000001");
    assert!(
        msg.text
            .contains("http://clinic.test/api/v1/notifications/open/"),
        "SMS carries the link: {}",
        msg.text
    );
    assert!(!msg.text.contains("Пациент Петров"));
    assert_eq!(
        msg.request_id,
        d[1]["id"].as_str().unwrap(),
        "the requestId is the delivery's id"
    );
    env.sandbox
        .edna
        .hooks
        .set_mode(vizit_sandbox::hooks::HookMode {
            duplicates: 9,
            ..Default::default()
        });
    assert!(env.sandbox.edna.read(&msg.request_id));
    let d = env.deliveries(&c, "patient.paid", 2, "read").await;
    let h = statuses(&d[1]);
    assert_eq!(h.iter().filter(|(s, _)| s == "read").count(), 1, "{h:?}");
    assert!(
        h.iter().all(|(_, src)| src == "vizit" || src == "edna"),
        "{h:?}"
    );
    env.sandbox.edna.hooks.set_mode(Default::default());

    // A forged edna callback → 401; an unknown message → 200 and ignored.
    let url = format!("{}/integrations/edna/status", env.api.base);
    let forged = reqwest::Client::new()
        .post(&url)
        .header("Authorization", "Token wrong")
        .json(&json!({"requestId": msg.request_id, "status": "FAILED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let o = env.sandbox.edna.options();
    let unknown = reqwest::Client::new()
        .post(&url)
        .header(o.callback_header.as_str(), o.callback_value.as_str())
        .json(&json!({"requestId": "never-sent", "status": "DELIVERED", "statusAt": "2026-12-07T10:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::OK);
    let head = reqwest::Client::new().head(&url).send().await.unwrap();
    assert_eq!(
        head.status(),
        StatusCode::OK,
        "edna checks a callback URL with HEAD"
    );
    let d = env.deliveries(&c, "patient.paid", 2, "read").await;
    assert_eq!(d[1]["status"], "read", "the forged FAILED changed nothing");
    common::until("the unknown status is processed", || async {
        env.api
            .count("SELECT COUNT(*) FROM integration_events WHERE system = 'edna' AND processed_at IS NULL")
            .await
            == 0
    })
    .await;
    assert_eq!(
        env.api
            .count("SELECT COUNT(*) FROM integration_events WHERE object_id = 'never-sent' AND outcome LIKE '%unknown message; ignored'")
            .await,
        1
    );
}

on_both_databases!(
    max_and_edna_carry_notifications_with_their_statuses,
    super::max_and_edna_carry_notifications_with_their_statuses
);

async fn undeliverable_and_unavailable_channels_fall_back(backend: Backend) {
    let env = Env::new(backend).await;
    // A phone no messenger or SMS reaches; the person chose edna, then e-mail.
    let (_, patient) = env
        .patient(json!({"name": "Пациент Сидоров", "email": "s@example.ru", "phone": "+7 900 000-00-02"}))
        .await;
    env.sandbox.edna.set_subscriber(
        "79000000002",
        vizit_sandbox::edna::Subscriber {
            messenger: false,
            reachable: false,
        },
    );
    let (status, me) = env
        .api
        .put(
            "/me/notifications",
            &patient,
            json!({"channels": ["edna", "email"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["order"], json!(["edna", "email"]));
    assert_eq!(me["chosen"], true);
    let (status, bad) = env
        .api
        .put("/me/notifications", &patient, json!({"channels": []}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // edna is down twice, then takes it: one message (its requestId is the key).
    env.sandbox.edna.fail_next(500, 2);
    let c = env.book(&patient, 3 * 24 * 60).await;
    env.retry_until(&c, "patient.booked", "failed").await;
    let d = env.deliveries(&c, "patient.booked", 1, "failed").await;
    assert!(
        d[0]["detail"].as_str().unwrap().contains("UNDELIVERED"),
        "{}",
        d[0]
    );
    assert_eq!(env.sandbox.edna.messages().len(), 1);
    // Not yet on e-mail: the cascade may still deliver by a later stage…
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(env.smtp.mails().is_empty());
    // …until edna.fallback_after has passed.
    env.clock.set(env.clock.now_ms() + 11 * MIN);
    let d = env.deliveries(&c, "patient.booked", 2, "sent").await;
    assert_eq!(d[1]["channel"], "email");
    env.smtp.wait_for("s@example.ru", "Вы записаны", 1).await;

    // MAX down: retried with backoff, then sent once.
    let (_, p2) = env
        .patient(json!({"name": "Пациент Иванов", "email": "i@example.ru"}))
        .await;
    let user = env.link_max(&p2, "Иван").await;
    env.sandbox.max.fail_next(503, 2);
    let c2 = env.book(&p2, 4 * 24 * 60).await;
    env.retry_until(&c2, "patient.booked", "sent").await;
    let d = env.deliveries(&c2, "patient.booked", 1, "sent").await;
    assert_eq!(d[0]["channel"], "max");
    let booked: Vec<_> = env
        .max_messages(user)
        .into_iter()
        .filter(|m| m.text.contains("Вы записаны"))
        .collect();
    assert_eq!(booked.len(), 1);

    // The portal resends by e-mail: a new delivery, audited.
    let id = env
        .notices(&c2)
        .await
        .into_iter()
        .find(|n| n["event"] == "patient.booked")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, r) = env
        .api
        .post(
            &format!("/admin/notifications/{id}/resend"),
            &env.service,
            json!({"channel": "email"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["channel"], "email");
    env.smtp.wait_for("i@example.ru", "Вы записаны", 1).await;
    let (status, _) = env
        .api
        .post(&format!("/admin/notifications/{id}/resend"), &p2, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a patient cannot resend");
    assert_eq!(
        env.api
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'notification.resend'")
            .await,
        1
    );
}

on_both_databases!(
    undeliverable_and_unavailable_channels_fall_back,
    super::undeliverable_and_unavailable_channels_fall_back
);

/// Without an SMTP server the messengers still carry notifications: e-mail is not a channel
/// (not offered, not choosable), a patient only e-mail reaches gets a visible failure.
async fn messengers_carry_notifications_without_an_smtp_server(backend: Backend) {
    let env = Env::with_email(backend, false).await;
    let (_, by_phone) = env
        .patient(
            json!({"name": "Пациент Петров", "email": "p@example.ru", "phone": "+7 900 000-00-03"}),
        )
        .await;
    let (status, me) = env.api.get("/me/notifications", &by_phone).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["order"], json!(["max", "edna"]));
    let email = me["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .unwrap()
        .clone();
    assert_eq!(email["enabled"], false);
    let (status, refused) = env
        .api
        .put(
            "/me/notifications",
            &by_phone,
            json!({"channels": ["email"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    // The phone's owner is told by edna (MAX is not linked).
    let c = env.book(&by_phone, 3 * 24 * 60).await;
    let d = env.deliveries(&c, "patient.booked", 1, "delivered").await;
    assert_eq!(d[0]["channel"], "edna");

    // E-mail only: nothing reaches them, and the log says so; no e-mail was tried.
    let (_, by_mail) = env
        .patient(json!({"name": "Пациент Иванов", "email": "i@example.ru"}))
        .await;
    let c = env.book(&by_mail, 4 * 24 * 60).await;
    let d = env.deliveries(&c, "patient.booked", 1, "failed").await;
    assert_eq!(
        d[0]["detail"],
        vizit_api::notifications::notices::NO_CHANNEL
    );
    assert!(env.smtp.mails().is_empty());
}

on_both_databases!(
    messengers_carry_notifications_without_an_smtp_server,
    super::messengers_carry_notifications_without_an_smtp_server
);

on_both_databases!(
    mangled_webhook_bodies_never_fail_the_server,
    super::mangled_webhook_bodies
);
/// MAX's updates and edna's status callbacks, authenticated but mangled (bounded fuzzing, see
/// `vizit-fuzzkit`): each is answered with a 2xx or a 4xx problem, never a 5xx, and the
/// server goes on answering.
async fn mangled_webhook_bodies(backend: Backend) {
    use std::sync::{Arc, Mutex};
    let env = Env::new(backend).await;
    let http = reqwest::Client::new();
    let o = env.sandbox.edna.options();
    let targets = [
        (
            "max-webhook",
            format!("{}/integrations/max/webhook", env.api.base),
            ("X-Max-Bot-Api-Secret".to_owned(), SECRET.to_owned()),
            json!({"update_type": "message_callback", "timestamp": 1_765_000_000_000_i64,
                   "callback": {"callback_id": "c1", "payload": "read:x", "user": {"user_id": 42}}})
            .to_string(),
        ),
        (
            "edna-status",
            format!("{}/integrations/edna/status", env.api.base),
            (o.callback_header.clone(), o.callback_value.clone()),
            json!({"requestId": "r1", "status": "DELIVERED", "statusAt": "2026-12-07T10:00:00Z"})
                .to_string(),
        ),
    ];
    for (name, url, (header, value), seed) in targets {
        // The fuzzer's target is synchronous: the requests are collected, then sent.
        let inputs = Arc::new(Mutex::new(Vec::new()));
        let collect = inputs.clone();
        vizit_fuzzkit::Fuzz::new(name, &[seed.as_bytes()])
            .iterations(20)
            .run(move |body| collect.lock().unwrap().push(body.to_vec()));
        let inputs = std::mem::take(&mut *inputs.lock().unwrap());
        for body in inputs {
            let r = http
                .post(&url)
                .header(header.as_str(), value.as_str())
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(
                !r.status().is_server_error(),
                "{name}: {} for {:?}",
                r.status(),
                String::from_utf8_lossy(&body)
            );
        }
    }
    let (status, _) = env
        .api
        .call(reqwest::Method::GET, "/auth/options", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}
