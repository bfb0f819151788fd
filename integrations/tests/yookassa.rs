//! Vizit's YooKassa client against the YooKassa stand-in over real HTTP: every request it sends
//! is checked against YooKassa's OpenAPI document (strictly: a misspelt field fails), and the
//! retry rules hold — the same idempotence key on every repeat, one payment however often the
//! call is repeated, typed refusals.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use vizit_integrations::yookassa::{
    Amount, Client, Customer, Error, Item, Measure, NewPayment, NewRefund, PaymentMode,
    PaymentStatus, PaymentSubject, ReceiptData, RefundStatus, Settings,
};
use vizit_sandbox::spec::Spec;
use vizit_sandbox::yookassa::Fault;
use vizit_sandbox::{Bitrix24Options, RunningSandbox, Sandbox, YooKassaOptions};

struct Env {
    sandbox: Sandbox,
    _running: RunningSandbox,
    client: Client,
}

async fn start() -> Env {
    let sandbox = Sandbox::with(
        Bitrix24Options {
            seed: false,
            ..Default::default()
        },
        YooKassaOptions {
            receipt_delay: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let o = sandbox.yookassa.options();
    let mut settings = Settings::new(o.shop_id.clone(), SecretString::from(o.secret_key.clone()));
    settings.api_url = sandbox.yookassa.api_url();
    settings.backoff = Duration::from_millis(20);
    settings.request_timeout = Duration::from_secs(5);
    Env {
        client: Client::new(settings),
        sandbox,
        _running: running,
    }
}

impl Env {
    /// Every body the client sent follows the document.
    fn requests_follow_the_document(&self) {
        let spec = Spec::yookassa();
        let bodies = self.sandbox.yookassa.bodies();
        assert!(!bodies.is_empty());
        for (route, body) in bodies {
            let (method, path) = route.split_once(' ').unwrap();
            let template = path
                .replace("{id}/capture", "{payment_id}/capture")
                .replace("{id}/cancel", "{payment_id}/cancel");
            spec.request(method, &template, &body)
                .unwrap_or_else(|e| panic!("{e}\n{body}"));
        }
    }
}

fn receipt(kopecks: i64, mode: PaymentMode) -> ReceiptData {
    ReceiptData {
        customer: Customer {
            email: Some("patient@example.com".into()),
            phone: None,
        },
        items: vec![Item {
            description: "Телемедицинская консультация врача-терапевта".into(),
            quantity: 1,
            amount: Amount(kopecks),
            vat_code: 1,
            payment_subject: PaymentSubject::Service,
            payment_mode: mode,
            measure: Measure::Piece,
        }],
        internet: true,
        tax_system_code: None,
    }
}

fn new_payment(kopecks: i64) -> NewPayment {
    NewPayment {
        amount: Amount(kopecks),
        description: "Телеконсультация 12.12.2026 10:00".into(),
        return_url: "http://127.0.0.1:8080/pay/return?consultation=c-1".into(),
        capture: true,
        metadata: BTreeMap::from([("consultation_id".into(), "c-1".into())]),
        receipt: receipt(kopecks, PaymentMode::FullPrepayment),
    }
}

#[tokio::test]
async fn pay_read_and_get_the_fiscal_data() {
    let env = start().await;
    let p = env
        .client
        .create_payment(&new_payment(150_000), "op-1")
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Pending);
    assert_eq!(p.amount, Amount(150_000));
    assert!(p.confirmation_url().unwrap().contains(&p.id));
    assert_eq!(p.metadata["consultation_id"].as_deref(), Some("c-1"));
    env.sandbox.yookassa.pay(&p.id).unwrap();
    let read = env.client.payment(&p.id).await.unwrap();
    assert_eq!(read.status, PaymentStatus::Succeeded);
    assert!(read.paid);
    assert!(env.client.payment_receipts(&p.id).await.unwrap()[0].status == "pending");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receipts = env.client.payment_receipts(&p.id).await.unwrap();
    assert_eq!(receipts.len(), 1);
    let r = &receipts[0];
    assert!(r.is_registered());
    assert_eq!(r.kind, "payment");
    assert!(r.fiscal_storage_number.is_some() && r.fiscal_attribute.is_some());
    assert_eq!(r.items[0].amount, Amount(150_000));
    assert_eq!(r.items[0].measure.as_deref(), Some("piece"));
    env.requests_follow_the_document();
}

#[tokio::test]
async fn a_500_or_a_lost_answer_is_repeated_with_the_same_key_and_pays_once() {
    let env = start().await;
    let y = &env.sandbox.yookassa;
    y.add_fault("POST /payments", Fault::ServerError, 2);
    let p = env
        .client
        .create_payment(&new_payment(100_000), "op-500")
        .await
        .unwrap();
    assert_eq!(y.payments().len(), 1);
    // Created, but the answer lost: the repeat gets the same payment.
    y.add_fault("POST /payments", Fault::LostAnswer, 1);
    let q = env
        .client
        .create_payment(&new_payment(200_000), "op-lost")
        .await
        .unwrap();
    assert_ne!(q.id, p.id);
    assert_eq!(y.payments().len(), 2, "created once");
    // 202 and 429 are waited out.
    y.add_fault("GET /payments/{id}", Fault::Accepted, 1);
    y.add_fault("GET /payments/{id}", Fault::TooManyRequests, 1);
    assert_eq!(env.client.payment(&q.id).await.unwrap().id, q.id);
    // Every attempt fails: unavailable, retryable; later, the same key gets the one payment.
    y.add_fault("POST /payments", Fault::ServerError, 4);
    let e = env
        .client
        .create_payment(&new_payment(300_000), "op-down")
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(matches!(e, Error::Unavailable { .. }));
    assert_eq!(y.payments().len(), 2);
    let r = env
        .client
        .create_payment(&new_payment(300_000), "op-down")
        .await
        .unwrap();
    let again = env
        .client
        .create_payment(&new_payment(300_000), "op-down")
        .await
        .unwrap();
    assert_eq!(r.id, again.id);
    assert_eq!(y.payments().len(), 3);
    env.requests_follow_the_document();
}

#[tokio::test]
async fn refusals_are_typed_and_never_repeated() {
    let env = start().await;
    // A receipt that does not add up: refused for good, with the parameter.
    let mut bad = new_payment(150_000);
    bad.receipt.items[0].amount = Amount(100_000);
    let before = env.sandbox.yookassa.requests();
    let e = env.client.create_payment(&bad, "bad-1").await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.code(), Some("invalid_request"));
    assert_eq!(e.parameter(), Some("receipt.items"));
    assert_eq!(env.sandbox.yookassa.requests(), before + 1, "not repeated");
    // Wrong credentials.
    let o = env.sandbox.yookassa.options();
    let mut settings = Settings::new(
        o.shop_id.clone(),
        SecretString::from("test_wrong".to_owned()),
    );
    settings.api_url = env.sandbox.yookassa.api_url();
    let e = Client::new(settings)
        .payment("00000000-000f-5000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_credentials"));
    assert!(!e.to_string().contains("test_wrong"), "{e}");
    // Unknown payment.
    let e = env
        .client
        .payment("00000000-000f-5000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
}

#[tokio::test]
async fn two_stage_capture_cancel_and_refunds() {
    let env = start().await;
    let mut held = new_payment(120_000);
    held.capture = false;
    let p = env.client.create_payment(&held, "hold-1").await.unwrap();
    env.sandbox.yookassa.pay(&p.id).unwrap();
    assert_eq!(
        env.client.payment(&p.id).await.unwrap().status,
        PaymentStatus::WaitingForCapture
    );
    let captured = env.client.capture(&p.id, "cap-1").await.unwrap();
    assert_eq!(captured.status, PaymentStatus::Succeeded);

    let other = env.client.create_payment(&held, "hold-2").await.unwrap();
    env.sandbox.yookassa.pay(&other.id).unwrap();
    let canceled = env.client.cancel(&other.id, "cancel-1").await.unwrap();
    assert_eq!(canceled.status, PaymentStatus::Canceled);
    assert_eq!(
        canceled.cancellation_details.unwrap().reason,
        "canceled_by_merchant"
    );

    let refund = |kopecks: i64| NewRefund {
        payment_id: p.id.clone(),
        amount: Amount(kopecks),
        description: "Отмена консультации".into(),
        receipt: receipt(kopecks, PaymentMode::FullPrepayment),
        metadata: BTreeMap::from([("consultation_id".into(), "c-1".into())]),
    };
    let partial = env
        .client
        .create_refund(&refund(20_000), "ref-1")
        .await
        .unwrap();
    assert_eq!(partial.status, RefundStatus::Succeeded);
    assert_eq!(partial.amount, Amount(20_000));
    let e = env
        .client
        .create_refund(&refund(100_001), "ref-2")
        .await
        .unwrap_err();
    assert_eq!(e.parameter(), Some("amount"));
    let rest = env
        .client
        .create_refund(&refund(100_000), "ref-3")
        .await
        .unwrap();
    assert_eq!(env.client.refund(&rest.id).await.unwrap().payment_id, p.id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receipts = env.client.refund_receipts(&rest.id).await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].kind, "refund");
    assert!(receipts[0].is_registered());
    let paid = env.client.payment(&p.id).await.unwrap();
    assert_eq!(paid.refunded_amount, Some(Amount(120_000)));
    assert!(!paid.refundable);
    env.requests_follow_the_document();
}
