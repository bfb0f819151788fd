//! Payments through YooKassa end to end, against the YooKassa stand-in over real HTTP, on SQLite
//! and PostgreSQL, with Vizit's real workers running (outbox dispatcher, scheduler, the payments
//! worker) and notifications arriving over HTTP from the stand-in's own address: booking makes
//! a payment, paying makes the consultation paid, receipts are registered and e-mailed to the
//! patient through a real SMTP server (aiosmtpd), cancellations refund, and the faults of
//! issue 17 change nothing they should not.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::TestApi;
use common::smtp::{Mail, Smtp};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use vizit_api::notifications::{EmailSettings, Notifications};
use vizit_api::payments::{PaymentSettings, Payments};
use vizit_api::{ApiSettings, Backend};
use vizit_integrations::yookassa;
use vizit_sandbox::mail::RunningSmtp;
use vizit_sandbox::yookassa::{Fault, NotifyMode};
use vizit_sandbox::{Bitrix24Options, MailCapture, RunningSandbox, Sandbox, YooKassaOptions};

/// Where the stand-in sends notifications from (Vizit accepts only this address here).
const YOOKASSA_ADDRESS: &str = "127.0.0.2";

struct Env {
    api: TestApi,
    smtp: Smtp,
    capture: Option<(MailCapture, RunningSmtp)>,
    sandbox: Sandbox,
    _running: RunningSandbox,
    payments: Arc<Payments>,
    stop: tokio::sync::watch::Sender<bool>,
    admin: String,
    service: String,
    doctor_id: String,
    doctor: String,
}

struct Options {
    notifications: bool,
    two_stage: bool,
    pay_within: Duration,
    reconcile_after: Duration,
    receipt_deadline: Duration,
    /// The mail server is up from the start.
    smtp_up: bool,
    /// Mail goes to the sandbox's capture (which can refuse with any code) instead of aiosmtpd.
    capture: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            notifications: true,
            two_stage: true,
            pay_within: Duration::from_secs(30 * 60),
            reconcile_after: Duration::from_secs(3600),
            receipt_deadline: Duration::from_secs(3600),
            smtp_up: true,
            capture: false,
        }
    }
}

impl Env {
    async fn new(backend: Backend) -> Env {
        Self::with(backend, Options::default()).await
    }

    async fn with(backend: Backend, o: Options) -> Env {
        let sandbox = Sandbox::with(
            Bitrix24Options {
                seed: false,
                ..Default::default()
            },
            YooKassaOptions {
                receipt_delay: Duration::from_millis(200),
                notification_source: Some(YOOKASSA_ADDRESS.parse().unwrap()),
                ..Default::default()
            },
        );
        let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let y = sandbox.yookassa.options();
        let mut client =
            yookassa::Settings::new(y.shop_id.clone(), SecretString::from(y.secret_key.clone()));
        client.api_url = sandbox.yookassa.api_url();
        client.backoff = Duration::from_millis(20);
        client.request_timeout = Duration::from_secs(5);
        let mut settings = PaymentSettings::new("http://127.0.0.1:8080");
        settings.two_stage = o.two_stage;
        settings.notification_sources = vec![format!("{YOOKASSA_ADDRESS}/32").parse().unwrap()];
        settings.reconcile_after = o.reconcile_after;
        settings.receipt_first_look = Duration::from_millis(250);
        settings.receipt_deadline = o.receipt_deadline;
        let payments = Payments::new(yookassa::Client::new(client), settings);
        let p = payments.clone();
        let smtp = if o.smtp_up {
            Smtp::start().await
        } else {
            Smtp::down()
        };
        let capture = if o.capture {
            let c = MailCapture::new();
            let running = c.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
            Some((c, running))
        } else {
            None
        };
        let url = match &capture {
            Some((_, running)) => running.url(),
            None => smtp.url(),
        };
        let mailer = common::smtp::mailer(url);
        let notifications = Notifications::new(
            mailer,
            EmailSettings {
                clinic_name: "ООО «Клиника Здоровье»".into(),
                clinic_inn: Some("7700000000".into()),
                time_zone: "Europe/Moscow".into(),
            },
        );
        let n = notifications.clone();
        let api = TestApi::spawn_configured(
            backend,
            ApiSettings {
                demo: true,
                pay_within: o.pay_within,
                jobs_interval: Duration::from_secs(1),
                ..ApiSettings::default()
            },
            move |state| state.with_payments(p).with_notifications(n),
        )
        .await;
        if o.notifications {
            sandbox.yookassa.set_notification_url(Some(format!(
                "{}/integrations/yookassa/notifications",
                api.base
            )));
        }
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(vizit_api::run_workers(api.state.clone(), stop_rx.clone()));
        tokio::spawn(vizit_api::payments::worker::run(
            api.state.clone(),
            payments.clone(),
            stop_rx.clone(),
        ));
        tokio::spawn(vizit_api::notifications::sender::run(
            api.state.clone(),
            notifications,
            stop_rx,
        ));
        api.staff(vizit_api::domain::Role::Admin, "admin@clinic.test")
            .await;
        let doctor_id = api
            .staff(vizit_api::domain::Role::Doctor, "doctor@clinic.test")
            .await;
        let admin = api.login("admin@clinic.test").await;
        let doctor = api.login("doctor@clinic.test").await;
        let (_, key) = api
            .post("/api-keys", &admin, json!({"name": "portal"}))
            .await;
        let service = key["key"].as_str().unwrap().to_owned();
        Env {
            api,
            smtp,
            capture,
            _running: running,
            sandbox,
            payments,
            stop,
            admin,
            service,
            doctor_id,
            doctor,
        }
    }

    /// A patient registered by the portal (with this e-mail, if any) and their session.
    async fn patient(&self, email: Option<&str>) -> (String, String) {
        let mut body = json!({"name": "Пациент Петров"});
        if let Some(e) = email {
            body["email"] = json!(e);
        }
        self.api.register_patient(&self.service, body).await
    }

    /// A slot of the doctor at this price, starting in `minutes`.
    async fn slot(&self, price: i64, minutes: i64) -> String {
        let start = vizit_api::now_ms() + minutes * 60_000;
        self.api
            .slot_at(&self.service, &self.doctor_id, start, price)
            .await
    }

    async fn book(&self, patient: &str, price: i64, minutes: i64) -> String {
        let slot = self.slot(price, minutes).await;
        let (status, c) = self
            .api
            .post("/consultations", patient, json!({"slotId": slot}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        c["id"].as_str().unwrap().to_owned()
    }

    async fn payments_of(&self, consultation: &str) -> Vec<Value> {
        let (status, list) = self
            .api
            .get(
                &format!("/consultations/{consultation}/payments"),
                &self.admin,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array().unwrap().clone()
    }

    async fn status_of(&self, consultation: &str) -> String {
        let (_, c) = self
            .api
            .get(&format!("/consultations/{consultation}"), &self.admin)
            .await;
        c["status"].as_str().unwrap().to_owned()
    }

    /// Wait (bounded) until `check` holds; panics with `what` if it never does.
    async fn until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        common::until(what, check).await
    }

    async fn paid(&self, consultation: &str) {
        self.until("the consultation is paid", || async {
            self.status_of(consultation).await == "paid"
        })
        .await;
    }

    /// The sandbox payment of the consultation's latest attempt.
    async fn provider_id(&self, consultation: &str) -> String {
        let payments = self.payments_of(consultation).await;
        let last = payments.last().expect("a payment");
        let url = last["confirmationUrl"]
            .as_str()
            .expect("pending with a page");
        url.rsplit('/').next().unwrap().to_owned()
    }

    /// The person pays on YooKassa's page.
    async fn pay(&self, consultation: &str) -> String {
        let id = self.provider_id(consultation).await;
        let page = format!(
            "{}/yookassa/checkout/{id}/pay",
            self.sandbox
                .yookassa
                .api_url()
                .trim_end_matches("/yookassa/v3")
        );
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(page)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        id
    }

    async fn count(&self, sql: &str) -> i64 {
        self.api.count(sql).await
    }

    /// The e-mails to `to` whose subject starts with `subject`, once there are `n` of them.
    async fn mails(&self, to: &str, subject: &str, n: usize) -> Vec<Mail> {
        self.smtp.wait_for(to, subject, n).await
    }

    /// The receipt of `kind` of the consultation's first payment, once registered.
    async fn registered_receipt(&self, consultation: &str, kind: &str) -> Value {
        let find = || async {
            self.payments_of(consultation).await[0]["receipts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["kind"] == kind && r["status"] == "registered")
                .cloned()
        };
        self.until("the receipt is registered", || async {
            find().await.is_some()
        })
        .await;
        find().await.unwrap()
    }
}

/// What a receipt e-mail must hold.
trait ReceiptMail {
    fn qr_text(&self) -> String;
    fn assert_receipt(&self, receipt: &Value, total: &str, operation: u8);
}

impl ReceiptMail for Mail {
    /// What the QR code says.
    fn qr_text(&self) -> String {
        let bytes = self.inline("receipt-qr").expect("a QR image").to_vec();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code");
        grids[0].decode().unwrap().1
    }

    /// The receipt's fiscal fields are all in the text, and the QR code says the same.
    fn assert_receipt(&self, receipt: &Value, total: &str, operation: u8) {
        let (fd, fn_, fp) = (
            receipt["fiscalDocumentNumber"].as_str().unwrap(),
            receipt["fiscalStorageNumber"].as_str().unwrap(),
            receipt["fiscalAttribute"].as_str().unwrap(),
        );
        for want in [
            format!("ФН: {fn_}"),
            format!("ФД: {fd}"),
            format!("ФП: {fp}"),
            format!("Итого: {total}"),
            "ООО «Клиника Здоровье», ИНН 7700000000".to_owned(),
            "Телемедицинская консультация".to_owned(),
            "без НДС".to_owned(),
        ] {
            assert!(self.text.contains(&want), "{want:?} not in\n{}", self.text);
        }
        let qr = self.qr_text();
        assert!(
            qr.contains(&format!("&fn={fn_}&i={fd}&fp={fp}&n={operation}")),
            "{qr}"
        );
        assert!(self.text.contains(&qr), "the QR fields are written out too");
        assert!(self.html.contains("cid:receipt-qr"));
        // Medical secrecy: the patient's name is not in it.
        assert!(!self.text.contains("Петров") && !self.html.contains("Петров"));
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => { $( on_both_databases!($name, super::$name); )* };
}

both!(
    pay_then_paid_then_receipt_registered,
    a_declined_payment_can_be_paid_again,
    an_unpaid_booking_expires_and_a_late_payment_is_released,
    cancellation_refunds_by_the_clinics_rules,
    an_admin_refunds_part_and_never_more_than_paid,
    duplicated_and_out_of_order_notifications_change_state_once,
    forged_notifications_change_nothing,
    the_provider_failing_on_create_makes_one_payment,
    lost_notifications_are_reconciled_and_a_stop_before_paid_is_applied,
    a_patient_without_a_contact_gives_one_at_checkout,
    free_consultations_are_paid_at_once,
    a_receipt_never_registered_is_flagged,
    an_smtp_outage_delays_the_receipt_email_and_loses_nothing,
    prices_per_doctor_or_per_slot,
    a_refused_email_fails_after_retries_and_an_admin_sends_it_again,
    a_checkout_before_the_booking_is_seen_makes_one_payment,
    a_registered_phone_is_sent_as_digits,
);

async fn pay_then_paid_then_receipt_registered(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("patient@example.com")).await;
    let c = env.book(&patient, 150_000, 120).await;
    // Booking made the payment at YooKassa already: the page is there.
    let payments = env.payments_of(&c).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "pending");
    assert_eq!(payments[0]["amountKopecks"], 150_000);
    assert!(
        payments[0]["confirmationUrl"]
            .as_str()
            .unwrap()
            .contains("/yookassa/checkout/")
    );
    // The patient's checkout returns the same payment.
    let (status, checkout) = env
        .api
        .post(&format!("/consultations/{c}/checkout"), &patient, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{checkout}");
    assert_eq!(checkout["id"], payments[0]["id"]);
    assert_eq!(env.status_of(&c).await, "booked");
    let provider = env.pay(&c).await;
    env.paid(&c).await;
    // Two stages: held, then captured by Vizit because the booking waited for it.
    assert_eq!(
        env.sandbox.yookassa.payment(&provider).unwrap().status,
        "succeeded"
    );
    let p = &env.payments_of(&c).await[0];
    assert_eq!(p["status"], "succeeded");
    assert!(p["succeededAt"].is_string());
    // The receipt: looked for, then registered with its fiscal data.
    env.until("the receipt is registered", || async {
        env.payments_of(&c).await[0]["receipts"][0]["status"] == "registered"
    })
    .await;
    let (status, receipts) = env.api.get("/admin/receipts", &env.admin).await;
    assert_eq!(status, StatusCode::OK);
    let r = &receipts["items"][0];
    assert_eq!(r["kind"], "payment");
    assert_eq!(r["amountKopecks"], 150_000);
    for field in [
        "fiscalDocumentNumber",
        "fiscalStorageNumber",
        "fiscalAttribute",
        "registeredAt",
    ] {
        assert!(
            r[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {r}"
        );
    }
    // The patient is e-mailed the receipt, through the SMTP server.
    let receipt = env.registered_receipt(&c, "payment").await;
    let mail = env
        .mails("patient@example.com", "Чек об оплате консультации", 1)
        .await;
    assert_eq!(mail.len(), 1);
    mail[0].assert_receipt(&receipt, "1\u{a0}500,00\u{a0}₽", 1);
    assert!(mail[0].text.contains("Приход"));
    assert!(mail[0].qr_text().contains("&s=1500.00&"));
    env.until("the receipt is marked e-mailed", || async {
        env.registered_receipt(&c, "payment").await["emailed"] == true
    })
    .await;
    let (status, emails) = env.api.get("/admin/emails?kind=receipt", &env.admin).await;
    assert_eq!(status, StatusCode::OK, "{emails}");
    assert_eq!(emails["total"], 1);
    assert_eq!(emails["items"][0]["status"], "sent");
    assert_eq!(emails["items"][0]["refId"], receipt["id"]);
    assert_eq!(emails["items"][0]["recipient"], "patient@example.com");
    let (status, _) = env.api.get("/admin/emails", &env.doctor).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "doctors do not read the mail log"
    );
    // Audited, and told as events.
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.succeeded'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM outbox WHERE event = 'payment.succeeded'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM outbox WHERE event = 'receipt.registered'")
            .await,
        1
    );
    // The patient sees their payment; another patient does not.
    let (status, mine) = env
        .api
        .get(&format!("/consultations/{c}/payments"), &patient)
        .await;
    assert_eq!(
        (status, mine[0]["status"].as_str()),
        (StatusCode::OK, Some("succeeded"))
    );
    let (_, other) = env.patient(None).await;
    let (status, _) = env
        .api
        .get(&format!("/consultations/{c}/payments"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Paid: checkout refuses.
    let (status, e) = env
        .api
        .post(&format!("/consultations/{c}/checkout"), &patient, json!({}))
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_paid"))
    );
}

async fn a_declined_payment_can_be_paid_again(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let c = env.book(&patient, 90_000, 120).await;
    let first = env.provider_id(&c).await;
    env.sandbox
        .yookassa
        .decline(&first, "payment_network", "insufficient_funds")
        .unwrap();
    env.until("the attempt is canceled", || async {
        env.payments_of(&c).await[0]["status"] == "canceled"
    })
    .await;
    let p = &env.payments_of(&c).await[0];
    assert_eq!(p["cancelReason"], "insufficient_funds");
    assert_eq!(
        env.status_of(&c).await,
        "booked",
        "still waiting for payment"
    );
    // Try again: a new attempt, a new payment at YooKassa.
    let (status, again) = env
        .api
        .post(&format!("/consultations/{c}/checkout"), &patient, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "pending");
    assert_ne!(again["id"], p["id"]);
    let second = env.pay(&c).await;
    assert_ne!(second, first);
    env.paid(&c).await;
    assert_eq!(env.sandbox.yookassa.payments().len(), 2);
}

async fn an_unpaid_booking_expires_and_a_late_payment_is_released(backend: Backend) {
    let env = Env::with(
        backend,
        Options {
            pay_within: Duration::ZERO,
            ..Options::default()
        },
    )
    .await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let c = env.book(&patient, 50_000, 120).await;
    let provider = env.provider_id(&c).await;
    env.until("the booking expires", || async {
        env.status_of(&c).await == "expired"
    })
    .await;
    // The slot is free again.
    let (_, slots) = env
        .api
        .get(&format!("/doctors/{}/slots", env.doctor_id), &patient)
        .await;
    assert_eq!(slots.as_array().unwrap().len(), 1);
    // The patient pays anyway (the page was still open): the hold is released, not charged.
    env.sandbox.yookassa.pay(&provider).unwrap();
    env.until("the hold is released", || async {
        env.sandbox.yookassa.payment(&provider).unwrap().status == "canceled"
    })
    .await;
    assert_eq!(
        env.sandbox
            .yookassa
            .payment(&provider)
            .unwrap()
            .cancellation,
        Some(("merchant".into(), "canceled_by_merchant".into()))
    );
    env.until("the attempt is canceled", || async {
        env.payments_of(&c).await[0]["status"] == "canceled"
    })
    .await;
    assert_eq!(env.status_of(&c).await, "expired");
}

async fn cancellation_refunds_by_the_clinics_rules(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    // The doctor cancels: refunded in full, with a refund receipt.
    let c = env.book(&patient, 150_000, 120).await;
    env.pay(&c).await;
    env.paid(&c).await;
    let (status, _) = env
        .api
        .post(
            &format!("/consultations/{c}/cancel"),
            &env.doctor,
            json!({"reason": "болезнь врача"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    env.until("the refund succeeds", || async {
        env.payments_of(&c).await[0]["refundedKopecks"] == 150_000
    })
    .await;
    let p = &env.payments_of(&c).await[0];
    assert_eq!(p["refunds"][0]["status"], "succeeded");
    assert_eq!(p["refunds"][0]["reason"], "врач отменил консультацию");
    env.until("the refund receipt is registered", || async {
        env.payments_of(&c).await[0]["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "refund" && r["status"] == "registered")
    })
    .await;
    assert_eq!(env.sandbox.yookassa.refunds().len(), 1);
    // The refund receipt is e-mailed too («возврат прихода»).
    let receipt = env.registered_receipt(&c, "refund").await;
    let mail = env.mails("p@example.com", "Чек возврата оплаты", 1).await;
    mail[0].assert_receipt(&receipt, "1\u{a0}500,00\u{a0}₽", 2);
    assert!(mail[0].text.contains("Возврат прихода"));

    // The patient cancels 2 h before (the clinic's notice is 24 h): no refund; a consultation
    // starting in 3 days cancelled by the patient: refunded.
    let late = env.book(&patient, 70_000, 120).await;
    env.pay(&late).await;
    env.paid(&late).await;
    // Both are told ahead: the deadline on the consultation, the notice in /auth/options.
    let (_, view) = env
        .api
        .get(&format!("/consultations/{late}"), &patient)
        .await;
    let starts = jiff::Timestamp::from_str(view["startsAt"].as_str().unwrap()).unwrap();
    let until = jiff::Timestamp::from_str(view["refundableUntil"].as_str().unwrap()).unwrap();
    assert_eq!(starts.as_second() - until.as_second(), 24 * 3600, "{view}");
    let (_, options) = env
        .api
        .call(reqwest::Method::GET, "/auth/options", None, None)
        .await;
    assert_eq!(options["refundNoticeMinutes"], 24 * 60);
    let (status, _) = env
        .api
        .post(
            &format!("/consultations/{late}/cancel"),
            &patient,
            json!({"reason": "не могу"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let early = env.book(&patient, 60_000, 3 * 24 * 60).await;
    env.pay(&early).await;
    env.paid(&early).await;
    env.api
        .post(
            &format!("/consultations/{early}/cancel"),
            &patient,
            json!({"reason": "передумал"}),
        )
        .await;
    env.until("the early cancellation is refunded", || async {
        env.payments_of(&early).await[0]["refundedKopecks"] == 60_000
    })
    .await;
    let late_payment = &env.payments_of(&late).await[0];
    assert_eq!(
        late_payment["refunds"].as_array().unwrap().len(),
        0,
        "too late for a refund"
    );
    assert_eq!(late_payment["refundedKopecks"], 0);
}

async fn an_admin_refunds_part_and_never_more_than_paid(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let c = env.book(&patient, 150_000, 120).await;
    env.pay(&c).await;
    env.paid(&c).await;
    let payment = env.payments_of(&c).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let requests = env.sandbox.yookassa.requests();
    let (status, e) = env
        .api
        .post(
            &format!("/payments/{payment}/refunds"),
            &env.admin,
            json!({"amountKopecks": 150_001, "reason": "жалоба"}),
        )
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("refund_too_large"))
    );
    assert_eq!(
        env.sandbox.yookassa.requests(),
        requests,
        "refused before any call"
    );
    // Only admins refund.
    let (status, _) = env
        .api
        .post(
            &format!("/payments/{payment}/refunds"),
            &env.doctor,
            json!({"amountKopecks": 100, "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = env
        .api
        .post(
            &format!("/payments/{payment}/refunds"),
            &env.admin,
            json!({"amountKopecks": 50_000, "reason": "связь прервалась"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    env.until("the partial refund succeeds", || async {
        env.payments_of(&c).await[0]["refundedKopecks"] == 50_000
    })
    .await;
    // 1000.01 ₽ is more than what is left (1000.00 ₽).
    let (status, _) = env
        .api
        .post(
            &format!("/payments/{payment}/refunds"),
            &env.admin,
            json!({"amountKopecks": 100_001, "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, list) = env.api.get("/admin/refunds", &env.admin).await;
    assert_eq!(list["total"], 1);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'refund.request'")
            .await,
        1
    );
    assert_eq!(
        env.status_of(&c).await,
        "paid",
        "a partial refund leaves it paid"
    );
}

async fn duplicated_and_out_of_order_notifications_change_state_once(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    // Ten copies of every notification.
    env.sandbox.yookassa.set_notify_mode(NotifyMode {
        duplicates: 9,
        ..Default::default()
    });
    let c = env.book(&patient, 40_000, 120).await;
    env.pay(&c).await;
    env.paid(&c).await;
    env.until("every copy arrived and was handled", || async {
        env.count("SELECT COUNT(*) FROM integration_events WHERE system = 'yookassa' AND processed_at IS NULL").await == 0
            && env.sandbox.yookassa.sent().len() >= 20
    })
    .await;
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.succeeded'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'consultation.paid'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM integration_events WHERE system = 'yookassa'")
            .await,
        2,
        "waiting_for_capture and succeeded, each stored once"
    );

    // Out of order: succeeded arrives before waiting_for_capture; it ends succeeded.
    env.sandbox.yookassa.set_notify_mode(NotifyMode {
        hold: true,
        ..Default::default()
    });
    let d = env.book(&patient, 40_000, 150).await;
    let provider = env.pay(&d).await;
    // Held: nothing arrives; Vizit's own capture (after reconciliation) is not running either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.status_of(&d).await, "booked");
    // YooKassa captured meanwhile (e.g. by an admin in its dashboard), then both arrive
    // newest first.
    env.payments
        .client
        .capture(&provider, "manual-capture")
        .await
        .unwrap();
    assert_eq!(env.sandbox.yookassa.release_notifications(), 2);
    env.paid(&d).await;
    assert_eq!(env.payments_of(&d).await[0]["status"], "succeeded");
}

async fn forged_notifications_change_nothing(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let c = env.book(&patient, 40_000, 120).await;
    let provider = env.provider_id(&c).await;
    let forged = json!({"type": "notification", "event": "payment.succeeded",
                        "object": {"id": provider, "status": "succeeded", "paid": true}});
    let url = format!("{}/integrations/yookassa/notifications", env.api.base);
    // From an address YooKassa does not send from (127.0.0.1), even with a forwarded header.
    let r = reqwest::Client::new()
        .post(&url)
        .header("x-forwarded-for", YOOKASSA_ADDRESS)
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // From the right address but about a payment that YooKassa says is not paid: read back,
    // nothing changes.
    let from_yookassa = reqwest::Client::builder()
        .local_address(YOOKASSA_ADDRESS.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = from_yookassa.post(&url).json(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // An object YooKassa does not know.
    let unknown = json!({"type": "notification", "event": "payment.succeeded",
                         "object": {"id": "00000000-000f-5000-8000-000000000000"}});
    let r = from_yookassa
        .post(&url)
        .json(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Garbage.
    let r = from_yookassa
        .post(&url)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    env.until("both stored notifications are handled", || async {
        env.count("SELECT COUNT(*) FROM integration_events WHERE system = 'yookassa' AND processed_at IS NOT NULL").await == 2
    })
    .await;
    assert_eq!(env.status_of(&c).await, "booked");
    assert_eq!(env.payments_of(&c).await[0]["status"], "pending");
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment.succeeded'")
            .await,
        0
    );
    let outcomes: Vec<(String,)> = sqlx::query_as(
        "SELECT outcome FROM integration_events WHERE system = 'yookassa' ORDER BY id",
    )
    .fetch_all(&env.api.state.db.pool)
    .await
    .unwrap();
    assert!(outcomes[0].0.contains("nothing new"), "{outcomes:?}");
    assert!(
        outcomes[1].0.contains("not found at YooKassa"),
        "{outcomes:?}"
    );
}

async fn the_provider_failing_on_create_makes_one_payment(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    // Down: the booking answers all the same, the payment is on its way.
    env.sandbox
        .yookassa
        .add_fault("POST /payments", Fault::ServerError, 1000);
    let c = env.book(&patient, 40_000, 120).await;
    let p = &env.payments_of(&c).await[0];
    assert_eq!(p["status"], "creating");
    assert!(p["confirmationUrl"].is_null());
    assert!(
        env.sandbox.yookassa.requests() >= 4,
        "tried, with the same key"
    );
    // Back up.
    env.sandbox.yookassa.clear_faults("POST /payments");
    // The worker repeats with the same key until YooKassa answers: one payment.
    env.until("the payment reaches YooKassa", || async {
        env.payments_of(&c).await[0]["status"] == "pending"
    })
    .await;
    assert_eq!(env.sandbox.yookassa.payments().len(), 1);
    // Created, answer lost: the repeat finds the same payment.
    env.sandbox
        .yookassa
        .add_fault("POST /payments", Fault::LostAnswer, 1);
    let d = env.book(&patient, 40_000, 150).await;
    env.until("the second payment is known", || async {
        env.payments_of(&d).await[0]["status"] == "pending"
    })
    .await;
    assert_eq!(env.sandbox.yookassa.payments().len(), 2, "created once");
}

async fn lost_notifications_are_reconciled_and_a_stop_before_paid_is_applied(backend: Backend) {
    let env = Env::with(
        backend,
        Options {
            notifications: false,
            two_stage: false,
            reconcile_after: Duration::ZERO,
            ..Options::default()
        },
    )
    .await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let c = env.book(&patient, 40_000, 120).await;
    let paid_at = std::time::Instant::now();
    env.pay(&c).await;
    // No notification ever comes; reconciliation reads the payment back.
    env.paid(&c).await;
    eprintln!(
        "paid through reconciliation {} ms after paying (reconcile_after 0, jobs every 1 s)",
        paid_at.elapsed().as_millis()
    );
    assert!(env.sandbox.yookassa.sent().is_empty());
    // A stop between "payment succeeded" and "consultation paid": the next reconciliation
    // applies it.
    let d = env.book(&patient, 40_000, 150).await;
    let provider = env.provider_id(&d).await;
    let _ = env.stop.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.sandbox.yookassa.pay(&provider).unwrap();
    sqlx::query(
        "UPDATE payments SET status = 'succeeded', succeeded_at = 1 WHERE provider_payment_id = $1",
    )
    .bind(&provider)
    .execute(&env.api.state.db.pool)
    .await
    .unwrap();
    assert_eq!(env.status_of(&d).await, "booked");
    // "Restart": the workers again.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(vizit_api::run_workers(env.api.state.clone(), stop_rx));
    env.paid(&d).await;
    let _ = stop.send(true);
}

async fn a_patient_without_a_contact_gives_one_at_checkout(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(None).await;
    let c = env.book(&patient, 40_000, 120).await;
    assert_eq!(env.payments_of(&c).await[0]["status"], "awaiting_contact");
    let (status, e) = env
        .api
        .post(&format!("/consultations/{c}/checkout"), &patient, json!({}))
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("contact_required"))
    );
    let (status, e) = env
        .api
        .post(
            &format!("/consultations/{c}/checkout"),
            &patient,
            json!({"phone": "+7 (900) 12"}),
        )
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );
    let (status, p) = env
        .api
        .post(
            &format!("/consultations/{c}/checkout"),
            &patient,
            json!({"phone": "+7 (900) 123-45-67"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "pending");
    let provider = p["confirmationUrl"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let receipt = env
        .sandbox
        .yookassa
        .payment(provider)
        .unwrap()
        .receipt
        .unwrap();
    assert_eq!(receipt["customer"], json!({"phone": "79001234567"}));

    // Declined; paying again needs no second asking: the contact given stands.
    env.sandbox
        .yookassa
        .decline(provider, "payment_network", "insufficient_funds")
        .unwrap();
    env.until("the attempt is canceled", || async {
        env.payments_of(&c).await[0]["status"] == "canceled"
    })
    .await;
    let (status, again) = env
        .api
        .post(&format!("/consultations/{c}/checkout"), &patient, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let second = again["confirmationUrl"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    assert_ne!(second, provider);
    let receipt = env
        .sandbox
        .yookassa
        .payment(second)
        .unwrap()
        .receipt
        .unwrap();
    assert_eq!(receipt["customer"], json!({"phone": "79001234567"}));
}

async fn free_consultations_are_paid_at_once(backend: Backend) {
    let env = Env::new(backend).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let c = env.book(&patient, 0, 120).await;
    env.paid(&c).await;
    assert!(env.payments_of(&c).await.is_empty());
    assert!(env.sandbox.yookassa.payments().is_empty());
}

async fn a_receipt_never_registered_is_flagged(backend: Backend) {
    let env = Env::with(
        backend,
        Options {
            receipt_deadline: Duration::from_millis(500),
            ..Options::default()
        },
    )
    .await;
    env.sandbox.yookassa.stall_receipts(true);
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let c = env.book(&patient, 40_000, 120).await;
    env.pay(&c).await;
    env.paid(&c).await;
    env.until("the receipt is flagged", || async {
        let (_, r) = env
            .api
            .get("/admin/receipts?overdue=true", &env.admin)
            .await;
        r["total"] == 1
    })
    .await;
    assert_eq!(
        env.count("SELECT COUNT(*) FROM outbox WHERE event = 'receipt.overdue'")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'receipt.overdue'")
            .await,
        1
    );
}

async fn an_smtp_outage_delays_the_receipt_email_and_loses_nothing(backend: Backend) {
    let mut env = Env::with(
        backend,
        Options {
            smtp_up: false,
            ..Options::default()
        },
    )
    .await;
    let (_, patient) = env.patient(Some("patient@example.com")).await;
    let c = env.book(&patient, 150_000, 120).await;
    env.pay(&c).await;
    env.paid(&c).await;
    let receipt = env.registered_receipt(&c, "payment").await;
    // The mail server is down: the e-mail waits, tried and not lost.
    env.until("a send was tried", || async {
        let (_, emails) = env.api.get("/admin/emails", &env.admin).await;
        emails["items"][0]["attempts"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let (_, emails) = env.api.get("/admin/emails", &env.admin).await;
    let e = &emails["items"][0];
    assert_eq!(e["status"], "queued", "{e}");
    assert!(
        e["lastError"].as_str().is_some_and(|m| !m.is_empty()),
        "{e}"
    );
    assert!(
        !e["lastError"].as_str().unwrap().contains("patient@"),
        "no address in errors"
    );
    assert_eq!(
        env.registered_receipt(&c, "payment").await["emailed"],
        false
    );

    // Back up: delivered once, on the next try.
    env.smtp.up().await;
    let mail = env
        .mails("patient@example.com", "Чек об оплате консультации", 1)
        .await;
    mail[0].assert_receipt(&receipt, "1\u{a0}500,00\u{a0}₽", 1);
    env.until("the receipt is marked e-mailed", || async {
        env.registered_receipt(&c, "payment").await["emailed"] == true
    })
    .await;
    let (_, emails) = env.api.get("/admin/emails?kind=receipt", &env.admin).await;
    assert_eq!(emails["total"], 1);
    assert_eq!(emails["items"][0]["status"], "sent");
    // Exactly one receipt reached the server (the notifications of the booking and the
    // payment are their own messages).
    let receipts = env
        .smtp
        .mails()
        .iter()
        .filter(|m| m.subject.starts_with("Чек"))
        .count();
    assert_eq!(receipts, 1, "exactly one receipt message");
}

async fn prices_per_doctor_or_per_slot(backend: Backend) {
    let env = Env::new(backend).await;
    let doctor = env.doctor_id.clone();
    let fmt = &time::format_description::well_known::Rfc3339;
    let at = |minutes: i64| {
        let start = time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
        let end = start + time::Duration::minutes(30);
        (start.format(fmt).unwrap(), end.format(fmt).unwrap())
    };
    // Per slot (the default): a slot without a price is refused while the doctor has none.
    let (s, e) = at(300);
    let (status, body) = env
        .api
        .post(
            &format!("/doctors/{doctor}/slots"),
            &env.service,
            json!({"startsAt": s, "endsAt": e}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("price_required")),
        "{body}"
    );
    let free = env.slot(150_000, 400).await;
    let (_, patient) = env.patient(Some("p@example.com")).await;
    let booked = env.book(&patient, 90_000, 500).await;

    // Per doctor: the free slot to come takes the price; the booked one keeps its own.
    for (auth, body, want) in [
        (&patient, json!({"priceKopecks": 1}), StatusCode::FORBIDDEN),
        (
            &env.doctor,
            json!({"priceKopecks": 1}),
            StatusCode::FORBIDDEN,
        ),
        (&env.service, json!({}), StatusCode::BAD_REQUEST),
        (
            &env.service,
            json!({"priceKopecks": -1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &env.service,
            json!({"priceKopecks": "250000"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, b) = env
            .api
            .put(&format!("/doctors/{doctor}/price"), auth, body)
            .await;
        assert_eq!(status, want, "{b}");
    }
    let (status, _) = env
        .api
        .put(
            &format!("/doctors/{}/price", uuid::Uuid::new_v4()),
            &env.admin,
            json!({"priceKopecks": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, d) = env
        .api
        .put(
            &format!("/doctors/{doctor}/price"),
            &env.admin,
            json!({"priceKopecks": 250_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["priceKopecks"], 250_000);
    let (_, doctors) = env.api.get("/doctors", &patient).await;
    assert!(
        doctors
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == doctor.as_str() && d["priceKopecks"] == 250_000)
    );
    let (_, slots) = env
        .api
        .get(&format!("/doctors/{doctor}/slots"), &patient)
        .await;
    let slot = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == free.as_str())
        .unwrap();
    assert_eq!(slot["priceKopecks"], 250_000);
    let (_, c) = env
        .api
        .get(&format!("/consultations/{booked}"), &patient)
        .await;
    assert_eq!(c["priceKopecks"], 90_000, "a booking keeps its price");
    assert_eq!(env.payments_of(&booked).await[0]["amountKopecks"], 90_000);
    // Cancelled, its slot is free again, at the doctor's price now.
    let (status, _) = env
        .api
        .post(
            &format!("/consultations/{booked}/cancel"),
            &patient,
            json!({"reason": "передумал"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, slots) = env
        .api
        .get(&format!("/doctors/{doctor}/slots"), &patient)
        .await;
    let freed = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == c["slotId"])
        .expect("the slot is offered again");
    assert_eq!(freed["priceKopecks"], 250_000);
    // A new slot without a price takes the doctor's; booking it charges that.
    let (s, e) = at(600);
    let (status, body) = env
        .api
        .post(
            &format!("/doctors/{doctor}/slots"),
            &env.service,
            json!({"startsAt": s, "endsAt": e}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["priceKopecks"], 250_000);
    let (status, c) = env
        .api
        .post("/consultations", &patient, json!({"slotId": body["id"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap();
    assert_eq!(env.payments_of(id).await[0]["amountKopecks"], 250_000);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'doctor.price'")
            .await,
        1
    );
    // Back to per slot.
    let (status, d) = env
        .api
        .put(
            &format!("/doctors/{doctor}/price"),
            &env.service,
            json!({"priceKopecks": null}),
        )
        .await;
    assert_eq!((status, &d["priceKopecks"]), (StatusCode::OK, &Value::Null));
    let (s, e) = at(700);
    let (status, _) = env
        .api
        .post(
            &format!("/doctors/{doctor}/slots"),
            &env.service,
            json!({"startsAt": s, "endsAt": e}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn a_refused_email_fails_after_retries_and_an_admin_sends_it_again(backend: Backend) {
    let env = Env::with(
        backend,
        Options {
            capture: true,
            ..Options::default()
        },
    )
    .await;
    let (capture, _) = env.capture.as_ref().unwrap();
    // The mail server refuses for good (as with a wrong password or a sender not allowed).
    capture.refuse_with(Some(550));
    let (_, patient) = env.patient(Some("patient@example.com")).await;
    let c = env.book(&patient, 150_000, 120).await;
    env.pay(&c).await;
    env.paid(&c).await;
    env.registered_receipt(&c, "payment").await;
    // Tried again (a 5xx may be the server's setup, fixed by an admin), then failed.
    env.until("the e-mail is failed", || async {
        let (_, emails) = env.api.get("/admin/emails", &env.admin).await;
        emails["items"][0]["status"] == "failed"
    })
    .await;
    let (_, emails) = env.api.get("/admin/emails?status=failed", &env.admin).await;
    let e = &emails["items"][0];
    assert_eq!(
        e["attempts"],
        vizit_api::notifications::sender::REFUSALS,
        "{e}"
    );
    assert!(e["lastError"].as_str().unwrap().contains("550"), "{e}");
    assert!(capture.messages().is_empty());
    let id = e["id"].as_str().unwrap().to_owned();

    // Only the clinic puts it back; then it goes out once the server takes mail again.
    let (status, _) = env
        .api
        .post(&format!("/admin/emails/{id}/retry"), &patient, json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    capture.refuse_with(None);
    let (status, back) = env
        .api
        .post(&format!("/admin/emails/{id}/retry"), &env.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["status"], "queued");
    env.until("the e-mail is sent", || async {
        capture.messages().len() == 1
    })
    .await;
    env.until("marked sent", || async {
        let (_, emails) = env.api.get("/admin/emails", &env.admin).await;
        emails["items"][0]["status"] == "sent"
    })
    .await;
    let (status, e) = env
        .api
        .post(&format!("/admin/emails/{id}/retry"), &env.admin, json!({}))
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_failed"))
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'email.retry'")
            .await,
        1
    );
}

async fn a_checkout_before_the_booking_is_seen_makes_one_payment(backend: Backend) {
    let env = Env::new(backend).await;
    let _ = env.stop.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, patient) = env.patient(None).await;
    let c = env.book(&patient, 40_000, 120).await;
    // As if the booking's event had not reached the payments subscriber yet (its inline
    // delivery failed and waits for the dispatcher): no attempt, the delivery pending.
    let db = &env.api.state.db.pool;
    sqlx::query("DELETE FROM payments WHERE consultation_id = $1")
        .bind(&c)
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE outbox_deliveries SET status = 'pending', done_at = NULL \
         WHERE subscriber = 'payments' AND consultation_id = $1",
    )
    .bind(&c)
    .execute(db)
    .await
    .unwrap();
    // The patient pays first.
    let (status, p) = env
        .api
        .post(
            &format!("/consultations/{c}/checkout"),
            &patient,
            json!({"email": "p@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    // Then the booking is seen: the subscriber finds the attempt and is done with it (it does
    // not fail on the one-live-attempt rule and hold back the consultation's later events).
    env.api.state.outbox.dispatch_due().await.unwrap();
    let stuck = env
        .api
        .count("SELECT COUNT(*) FROM outbox_deliveries WHERE subscriber = 'payments' AND status = 'pending'")
        .await;
    assert_eq!(stuck, 0, "the booking's delivery went through");
    let payments = env.payments_of(&c).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["id"], p["id"]);
}

async fn a_registered_phone_is_sent_as_digits(backend: Backend) {
    let env = Env::new(backend).await;
    // Registered by the portal with a phone as people write it, and no e-mail.
    let (_, session) = env
        .api
        .register_patient(
            &env.service,
            json!({"name": "Пациент Петров", "phone": "+7 (900) 000-00-00"}),
        )
        .await;
    let c = env.book(&session, 40_000, 120).await;
    env.until("the payment is created at YooKassa", || async {
        env.payments_of(&c).await[0]["status"] == "pending"
    })
    .await;
    let provider = env.provider_id(&c).await;
    let at_yookassa = env.sandbox.yookassa.payment(&provider).unwrap();
    assert_eq!(
        at_yookassa.receipt.unwrap()["customer"]["phone"],
        "79000000000"
    );
}
