//! The YooKassa stand-in speaks API v3 as the official OpenAPI document describes it — every
//! answer here is checked against the document — with Basic auth, idempotence keys, a shop's
//! 54-FZ validation, the confirmation page, capture and cancel, refunds, receipts registered
//! after a delay, notifications from a given source address, and injected faults. Over real
//! HTTP.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use vizit_sandbox::spec::Spec;
use vizit_sandbox::yookassa::{Fault, NotifyMode};
use vizit_sandbox::{Bitrix24Options, RunningSandbox, Sandbox, YooKassaOptions};

const SOURCE: &str = "127.0.0.2";

struct Env {
    sandbox: Sandbox,
    _running: RunningSandbox,
    api: String,
    http: reqwest::Client,
    spec: Spec,
}

async fn start() -> Env {
    start_with(YooKassaOptions::default()).await
}

async fn start_with(options: YooKassaOptions) -> Env {
    let sandbox = Sandbox::with(
        Bitrix24Options {
            seed: false,
            ..Default::default()
        },
        YooKassaOptions {
            receipt_delay: Duration::from_millis(300),
            notification_source: Some(SOURCE.parse().unwrap()),
            ..options
        },
    );
    let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Env {
        api: sandbox.yookassa.api_url(),
        sandbox,
        _running: running,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        spec: Spec::yookassa(),
    }
}

impl Env {
    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let o = self.sandbox.yookassa.options();
        req.basic_auth(&o.shop_id, Some(&o.secret_key))
    }

    /// A POST with a key; returns status and body, the body checked against the document.
    async fn post(&self, template: &str, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let mut req = self
            .auth(self.http.post(format!("{}{path}", self.api)))
            .header("Idempotence-Key", key);
        if self.spec.has_body("POST", template) {
            self.spec
                .request("POST", template, body)
                .unwrap_or_else(|e| panic!("the test's own request is off: {e}"));
            req = req.json(body);
        } else {
            assert_eq!(body, &json!({}), "{template} takes no body");
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        // Not 500: the document points its 500 at the 429 schema (code `too_many_requests`).
        if [200, 400, 401].contains(&status) {
            self.spec
                .response("POST", template, status, &body)
                .unwrap_or_else(|e| panic!("{e}\n{body}"));
        }
        (status, body)
    }

    async fn get(&self, template: &str, path: &str) -> (u16, Value) {
        let r = self
            .auth(self.http.get(format!("{}{path}", self.api)))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if [200, 400, 401, 404].contains(&status) {
            self.spec
                .response("GET", template, status, &body)
                .unwrap_or_else(|e| panic!("{e}\n{body}"));
        }
        (status, body)
    }

    async fn create(&self, key: &str, body: &Value) -> (u16, Value) {
        self.post("/payments", "/payments", key, body).await
    }

    async fn payment(&self, id: &str) -> Value {
        let (status, p) = self
            .get("/payments/{payment_id}", &format!("/payments/{id}"))
            .await;
        assert_eq!(status, 200, "{p}");
        p
    }

    async fn receipts(&self, query: &str) -> Vec<Value> {
        let (status, list) = self.get("/receipts", &format!("/receipts?{query}")).await;
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().unwrap().clone()
    }
}

fn item(value: &str) -> Value {
    json!({"description": "Телемедицинская консультация врача-терапевта", "quantity": 1,
           "amount": {"value": value, "currency": "RUB"}, "vat_code": 1,
           "payment_subject": "service", "payment_mode": "full_prepayment", "measure": "piece"})
}

fn payment(value: &str, capture: bool) -> Value {
    json!({
        "amount": {"value": value, "currency": "RUB"},
        "capture": capture,
        "confirmation": {"type": "redirect", "return_url": "http://clinic.test/pay/return?c=1"},
        "description": "Телеконсультация №1",
        "metadata": {"consultation_id": "c-1"},
        "receipt": {"customer": {"email": "patient@example.com"}, "items": [item(value)]},
    })
}

fn refund(payment_id: &str, value: &str) -> Value {
    json!({"payment_id": payment_id, "amount": {"value": value, "currency": "RUB"},
           "description": "Отмена консультации",
           "receipt": {"customer": {"email": "patient@example.com"}, "items": [item(value)]}})
}

#[tokio::test]
async fn auth_and_idempotence_keys() {
    let env = start().await;
    // Wrong secret: 401 invalid_credentials.
    let r = env
        .http
        .post(format!("{}/payments", env.api))
        .basic_auth(&env.sandbox.yookassa.options().shop_id, Some("test_wrong"))
        .header("Idempotence-Key", "k1")
        .json(&payment("1500.00", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_credentials");
    env.spec.response("POST", "/payments", 401, &body).unwrap();

    // No key: refused, nothing created.
    let r = env
        .auth(env.http.post(format!("{}/payments", env.api)))
        .json(&payment("1500.00", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["parameter"], "Idempotence-Key");
    assert!(env.sandbox.yookassa.payments().is_empty());

    // Same key, same body: the same payment; same key, another body: the documented error.
    let (status, first) = env.create("order-1", &payment("1500.00", true)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "pending");
    let (_, again) = env.create("order-1", &payment("1500.00", true)).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(env.sandbox.yookassa.payments().len(), 1);
    let (status, dup) = env.create("order-1", &payment("1600.00", true)).await;
    assert_eq!(status, 400);
    assert_eq!(dup["code"], "invalid_request");
    assert_eq!(dup["description"], "Idempotence key duplicated");
    assert_eq!(dup["parameter"], "Idempotence-Key");
    // Another key: another payment.
    let (_, second) = env.create("order-2", &payment("1500.00", true)).await;
    assert_ne!(second["id"], first["id"]);
}

#[tokio::test]
async fn a_shop_with_receipts_refuses_what_a_real_one_does() {
    let env = start().await;
    let refused = |mut body: Value, change: fn(&mut Value)| {
        change(&mut body);
        body
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "receipt",
            refused(payment("1500.00", true), |b| {
                b.as_object_mut().unwrap().remove("receipt");
            }),
        ),
        (
            "receipt.customer",
            refused(payment("1500.00", true), |b| {
                b["receipt"]["customer"] = json!({})
            }),
        ),
        (
            "receipt.items[0].measure",
            refused(payment("1500.00", true), |b| {
                b["receipt"]["items"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("measure");
            }),
        ),
        (
            "receipt.items[0].payment_mode",
            refused(payment("1500.00", true), |b| {
                b["receipt"]["items"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("payment_mode");
            }),
        ),
        (
            "receipt.items",
            refused(payment("1500.00", true), |b| {
                b["receipt"]["items"][0]["amount"]["value"] = json!("1000.00")
            }),
        ),
        (
            "amount.value",
            refused(payment("1500.00", true), |b| {
                b["amount"]["value"] = json!("1500,00")
            }),
        ),
        (
            "receipt.customer.phone",
            refused(payment("1500.00", true), |b| {
                b["receipt"]["customer"] = json!({"phone": "12"})
            }),
        ),
        (
            "confirmation.return_url",
            refused(payment("1500.00", true), |b| {
                b["confirmation"]["return_url"] = json!("/relative")
            }),
        ),
    ];
    for (i, (parameter, body)) in cases.into_iter().enumerate() {
        // Some of these break the document's schema on purpose: send them raw.
        let r = env
            .auth(env.http.post(format!("{}/payments", env.api)))
            .header("Idempotence-Key", format!("bad-{i}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{parameter}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["code"], "invalid_request", "{e}");
        assert_eq!(e["parameter"], parameter, "{e}");
        env.spec.response("POST", "/payments", 400, &e).unwrap();
    }
    assert!(
        env.sandbox.yookassa.payments().is_empty(),
        "nothing created"
    );
    // A phone instead of an e-mail is enough.
    let mut by_phone = payment("1500.00", true);
    by_phone["receipt"]["customer"] = json!({"phone": "79000000000"});
    assert_eq!(env.create("phone", &by_phone).await.0, 200);
}

#[tokio::test]
async fn a_person_pays_on_the_page_and_the_receipt_is_registered_later() {
    let env = start().await;
    let (_, p) = env.create("pay-1", &payment("1500.00", true)).await;
    let id = p["id"].as_str().unwrap();
    let page_url = p["confirmation"]["confirmation_url"].as_str().unwrap();
    let page = env.http.get(page_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Оплатить 1\u{a0}500,00\u{a0}₽"), "{html}");
    assert!(html.contains("Тестовый стенд"), "marked as a test stand");
    let paid = env
        .http
        .post(format!("{}/pay", page_url))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303, "back to the shop");
    assert_eq!(
        paid.headers()["location"],
        "http://clinic.test/pay/return?c=1"
    );
    let p = env.payment(id).await;
    assert_eq!(p["status"], "succeeded");
    assert_eq!(p["paid"], true);
    assert_eq!(p["refundable"], true);
    assert!(p["captured_at"].is_string());
    assert_eq!(p["metadata"]["consultation_id"], "c-1");
    assert_eq!(p["receipt_registration"], "pending");
    let receipts = env.receipts(&format!("payment_id={id}")).await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["status"], "pending");
    assert!(receipts[0].get("fiscal_document_number").is_none());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let receipts = env.receipts(&format!("payment_id={id}")).await;
    let r = &receipts[0];
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["type"], "payment");
    assert_eq!(r["items"][0]["measure"], "piece");
    for field in [
        "fiscal_document_number",
        "fiscal_storage_number",
        "fiscal_attribute",
        "registered_at",
        "fiscal_provider_id",
    ] {
        assert!(
            r[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {r}"
        );
    }
    assert_eq!(env.payment(id).await["receipt_registration"], "succeeded");
    // The receipt by id; either id but not both; unknown objects are 404.
    let rid = r["id"].as_str().unwrap();
    assert_eq!(rid.len(), 39);
    let (status, one) = env
        .get("/receipts/{receipt_id}", &format!("/receipts/{rid}"))
        .await;
    assert_eq!((status, &one["id"]), (200, &r["id"]));
    let (status, e) = env
        .get(
            "/receipts",
            &format!("/receipts?payment_id={id}&refund_id={id}"),
        )
        .await;
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_request")));
    let (status, _) = env
        .get(
            "/payments/{payment_id}",
            "/payments/00000000-000f-5000-8000-000000000000",
        )
        .await;
    assert_eq!(status, 404);
    // A stalled cash register: receipts stay pending.
    env.sandbox.yookassa.stall_receipts(true);
    let (_, q) = env.create("pay-2", &payment("700.00", true)).await;
    env.sandbox.yookassa.pay(q["id"].as_str().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stalled = env
        .receipts(&format!("payment_id={}", q["id"].as_str().unwrap()))
        .await;
    assert_eq!(stalled[0]["status"], "pending");
}

#[tokio::test]
async fn two_stage_payments_decline_and_cancel() {
    let env = start().await;
    // Two stages: waiting_for_capture, then captured.
    let (_, p) = env.create("two-1", &payment("1500.00", false)).await;
    let id = p["id"].as_str().unwrap().to_owned();
    env.sandbox.yookassa.pay(&id).unwrap();
    let p = env.payment(&id).await;
    assert_eq!(p["status"], "waiting_for_capture");
    assert!(p["expires_at"].is_string());
    let (status, c) = env
        .post(
            "/payments/{payment_id}/capture",
            &format!("/payments/{id}/capture"),
            "cap-1",
            &json!({"amount": {"value": "1500.00", "currency": "RUB"}}),
        )
        .await;
    assert_eq!((status, c["status"].as_str()), (200, Some("succeeded")));
    // Capture again: refused (only from waiting_for_capture).
    let (status, e) = env
        .post(
            "/payments/{payment_id}/capture",
            &format!("/payments/{id}/capture"),
            "cap-2",
            &json!({}),
        )
        .await;
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_request")));

    // Declined by the bank on the page.
    let (_, d) = env.create("decl-1", &payment("1500.00", true)).await;
    let url = d["confirmation"]["confirmation_url"].as_str().unwrap();
    let r = env
        .http
        .post(format!("{url}/decline"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let d = env.payment(d["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "canceled");
    assert_eq!(d["paid"], false);
    assert_eq!(
        d["cancellation_details"],
        json!({"party": "payment_network", "reason": "insufficient_funds"})
    );

    // Canceled by the shop while waiting for capture.
    let (_, w) = env.create("canc-1", &payment("900.00", false)).await;
    let wid = w["id"].as_str().unwrap();
    env.sandbox.yookassa.pay(wid).unwrap();
    let (status, c) = env
        .post(
            "/payments/{payment_id}/cancel",
            &format!("/payments/{wid}/cancel"),
            "canc-2",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(c["status"], "canceled");
    assert_eq!(c["cancellation_details"]["reason"], "canceled_by_merchant");
}

#[tokio::test]
async fn a_payment_left_on_the_page_past_its_time_expires_and_is_not_declined() {
    let env = start_with(YooKassaOptions {
        confirmation_ttl: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let (_, p) = env.create("late-1", &payment("1500.00", true)).await;
    let id = p["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        env.sandbox
            .yookassa
            .decline(&id, "payment_network", "insufficient_funds")
            .is_err()
    );
    let p = env.payment(&id).await;
    assert_eq!(p["status"], "canceled");
    assert_eq!(
        p["cancellation_details"],
        json!({"party": "yoo_money", "reason": "expired_on_confirmation"})
    );
}

#[tokio::test]
async fn refunds_never_exceed_the_payment_and_get_receipts() {
    let env = start().await;
    let (_, p) = env.create("ref-pay", &payment("1500.00", true)).await;
    let id = p["id"].as_str().unwrap().to_owned();
    // Not yet paid: nothing to refund.
    let (status, _) = env
        .post("/refunds", "/refunds", "ref-0", &refund(&id, "100.00"))
        .await;
    assert_eq!(status, 400);
    env.sandbox.yookassa.pay(&id).unwrap();
    let (status, r1) = env
        .post("/refunds", "/refunds", "ref-1", &refund(&id, "500.00"))
        .await;
    assert_eq!(status, 200, "{r1}");
    assert_eq!(r1["status"], "succeeded");
    assert_eq!(r1["amount"]["value"], "500.00");
    // More than what is left: refused, nothing changes.
    let (status, e) = env
        .post("/refunds", "/refunds", "ref-2", &refund(&id, "1000.01"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(e["parameter"], "amount");
    // Without the receipt a 54-FZ shop needs: refused.
    let (status, e) = env
        .post(
            "/refunds",
            "/refunds",
            "ref-3",
            &json!({"payment_id": id, "amount": {"value": "100.00", "currency": "RUB"}}),
        )
        .await;
    assert_eq!((status, e["parameter"].as_str()), (400, Some("receipt")));
    let (status, r2) = env
        .post("/refunds", "/refunds", "ref-4", &refund(&id, "1000.00"))
        .await;
    assert_eq!(status, 200, "{r2}");
    let p = env.payment(&id).await;
    assert_eq!(p["refunded_amount"]["value"], "1500.00");
    assert_eq!(p["refundable"], false);
    let rid = r2["id"].as_str().unwrap();
    let (status, r) = env
        .get("/refunds/{refund_id}", &format!("/refunds/{rid}"))
        .await;
    assert_eq!((status, &r["payment_id"]), (200, &json!(id)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let receipts = env.receipts(&format!("refund_id={rid}")).await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["type"], "refund");
    assert_eq!(receipts[0]["status"], "succeeded");
    assert_eq!(receipts[0]["refund_id"], rid);
}

/// A receiver of notifications: what it got, from where; it answers 500 to the first `fail`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(IpAddr, Value)>>>,
    fail: Arc<Mutex<u32>>,
}

async fn receive(
    State(r): State<Receiver>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    r.got.lock().unwrap().push((from.ip(), body));
    let mut fail = r.fail.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/notifications", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (r, format!("http://{addr}/notifications"))
}

async fn wait_for(r: &Receiver, n: usize) -> Vec<(IpAddr, Value)> {
    for _ in 0..100 {
        if r.got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.got.lock().unwrap().clone()
}

#[tokio::test]
async fn notifications_come_from_the_source_address_duplicated_held_and_retried() {
    let env = start().await;
    let (r, url) = receiver().await;
    env.sandbox.yookassa.set_notification_url(Some(url));
    let (_, p) = env.create("n-1", &payment("1500.00", true)).await;
    let id = p["id"].as_str().unwrap().to_owned();
    env.sandbox.yookassa.pay(&id).unwrap();
    let got = wait_for(&r, 1).await;
    assert_eq!(got.len(), 1);
    let (from, body) = &got[0];
    assert_eq!(
        *from,
        SOURCE.parse::<IpAddr>().unwrap(),
        "sent from the configured address"
    );
    assert_eq!(body["type"], "notification");
    assert_eq!(body["event"], "payment.succeeded");
    assert_eq!(body["object"]["id"], id.as_str());
    env.spec.schema("Payment", &body["object"], false).unwrap();

    // Duplicates: each sent three times.
    env.sandbox.yookassa.set_notify_mode(NotifyMode {
        duplicates: 2,
        ..Default::default()
    });
    let (_, q) = env.create("n-2", &payment("100.00", true)).await;
    env.sandbox.yookassa.pay(q["id"].as_str().unwrap()).unwrap();
    assert_eq!(wait_for(&r, 4).await.len(), 4);

    // Held, then released newest first: out of order.
    env.sandbox.yookassa.set_notify_mode(NotifyMode {
        hold: true,
        ..Default::default()
    });
    let (_, w) = env.create("n-3", &payment("100.00", false)).await;
    let wid = w["id"].as_str().unwrap().to_owned();
    env.sandbox.yookassa.pay(&wid).unwrap();
    env.post(
        "/payments/{payment_id}/capture",
        &format!("/payments/{wid}/capture"),
        "n-3-cap",
        &json!({}),
    )
    .await;
    assert_eq!(env.sandbox.yookassa.release_notifications(), 2);
    let got = wait_for(&r, 6).await;
    let events: Vec<&str> = got[4..]
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["payment.succeeded", "payment.waiting_for_capture"]);

    // A receiver that fails is tried again until it answers 200.
    env.sandbox.yookassa.set_notify_mode(NotifyMode::default());
    *r.fail.lock().unwrap() = 1;
    env.sandbox.yookassa.renotify(&id, 1).unwrap();
    let got = wait_for(&r, 8).await;
    assert_eq!(got.len(), 8, "one failed delivery and its retry");
    let answers: Vec<Option<u16>> = env
        .sandbox
        .yookassa
        .sent()
        .iter()
        .rev()
        .take(2)
        .map(|s| s.answer)
        .collect();
    assert_eq!(answers, [Some(200), Some(500)]);
}

#[tokio::test]
async fn faults_500_202_429_and_a_lost_answer() {
    let env = start().await;
    let y = &env.sandbox.yookassa;
    // 500: nothing done; the retry with the same key creates the one payment.
    y.add_fault("POST /payments", Fault::ServerError, 1);
    let (status, e) = env.create("f-1", &payment("1500.00", true)).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (500, Some("internal_server_error"))
    );
    assert!(y.payments().is_empty());
    let (status, p) = env.create("f-1", &payment("1500.00", true)).await;
    assert_eq!(status, 200);
    assert_eq!(y.payments().len(), 1);
    // Lost answer: the payment exists although the caller saw a 500; the retry gets it.
    y.add_fault("POST /payments", Fault::LostAnswer, 1);
    let (status, _) = env.create("f-2", &payment("800.00", true)).await;
    assert_eq!(status, 500);
    assert_eq!(y.payments().len(), 2, "it was created");
    let (status, again) = env.create("f-2", &payment("800.00", true)).await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], y.payments()[1].id.as_str());
    assert_eq!(y.payments().len(), 2, "and only once");
    // 202 with retry_after, 429: nothing done.
    y.add_fault("GET /payments/{id}", Fault::Accepted, 1);
    let r = env
        .auth(env.http.get(format!(
            "{}/payments/{}",
            env.api,
            p["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert!(body["retry_after"].as_u64().is_some_and(|ms| ms > 0));
    y.add_fault("POST /payments", Fault::TooManyRequests, 1);
    let r = env
        .auth(env.http.post(format!("{}/payments", env.api)))
        .header("Idempotence-Key", "f-3")
        .json(&payment("100.00", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
    assert_eq!(y.payments().len(), 2);
}

#[tokio::test]
async fn the_admin_surface_drives_the_stand_in_over_http() {
    let env = start().await;
    let base = env.api.trim_end_matches("/yookassa/v3").to_owned();
    let (_, p) = env.create("adm-1", &payment("1500.00", true)).await;
    let id = p["id"].as_str().unwrap();
    let r = env
        .http
        .post(format!("{base}/sandbox/yookassa/payments/{id}/pay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = env
        .http
        .post(format!("{base}/sandbox/yookassa/payments/{id}/pay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "paid already");
    let r = env
        .http
        .post(format!("{base}/sandbox/yookassa/faults"))
        .json(&json!({"route": "POST /payments", "fault": "server_error", "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(env.create("adm-2", &payment("1.00", true)).await.0, 500);
    assert_eq!(env.create("adm-2", &payment("1.00", true)).await.0, 500);
    assert_eq!(env.create("adm-2", &payment("1.00", true)).await.0, 200);
    let state: Value = env
        .http
        .get(format!("{base}/sandbox/yookassa"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["payments"].as_array().unwrap().len(), 2);
    assert_eq!(state["shopId"], env.sandbox.yookassa.options().shop_id);
}
