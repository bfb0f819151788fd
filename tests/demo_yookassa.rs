//! The README's default run takes payments on the built-in YooKassa sandbox: a patient books,
//! asks to pay, pays on the sandbox's payment page (the form a browser posts), is sent back to
//! Vizit, and the consultation is paid with its fiscal receipt registered — through the real
//! binary's wiring, the sandbox's own notification and Vizit's YooKassa client — and the
//! receipt e-mail lands in the sandbox's mail capture.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, json_of};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_payment_goes_through_the_yookassa_sandbox() {
    let app = TestApp::spawn().await;
    let (sandbox, sandbox_url) = app.sandbox.clone().expect("demo starts the sandbox");
    let base = format!("http://{}/api/v1", app.http);
    // The payment page answers the form with a redirect back to Vizit: look at it, not follow it.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let (status, session) = json_of(
        http.post(format!("{base}/auth/dev-login"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();

    // A free slot of a Bitrix24 doctor (the start-up sync brings them).
    let deadline = Instant::now() + Duration::from_secs(30);
    let slot = loop {
        let (_, doctors) = json_of(
            http.get(format!("{base}/doctors"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let doctor = doctors.as_array().and_then(|d| {
            d.iter()
                .find(|d| d["name"] == "Иванова Анна Петровна")
                .cloned()
        });
        if let Some(doctor) = doctor {
            let (_, slots) = json_of(
                http.get(format!(
                    "{base}/doctors/{}/slots",
                    doctor["id"].as_str().unwrap()
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
            )
            .await;
            if let Some(s) = slots.as_array().and_then(|s| s.first()) {
                break s.clone();
            }
        }
        assert!(Instant::now() < deadline, "no slots from the sandbox");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (status, c) = json_of(
        http.post(format!("{base}/consultations"))
            .bearer_auth(&token)
            .json(&json!({"slotId": slot["id"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();

    // The demo patient has no contact on file: the receipt needs one.
    let (status, problem) = json_of(
        http.post(format!("{base}/consultations/{id}/checkout"))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "contact_required");

    let (status, payment) = json_of(
        http.post(format!("{base}/consultations/{id}/checkout"))
            .bearer_auth(&token)
            .json(&json!({"email": "patient@example.ru"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{payment}");
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["amountKopecks"], slot["priceKopecks"]);
    let page = payment["confirmationUrl"].as_str().unwrap().to_owned();
    let html = http.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("1\u{a0}500,00\u{a0}₽"), "{html}");

    // The patient pays; the page sends them back to Vizit's return page of this consultation.
    let paid_at = Instant::now();
    let r = http.post(format!("{page}/pay")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.ends_with(&format!("/pay/return?consultation={id}")),
        "{back}"
    );

    // The sandbox's notification (from its own address) and the capture make it paid.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, c) = json_of(
            http.get(format!("{base}/consultations/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if c["status"] == "paid" {
            break;
        }
        assert!(Instant::now() < deadline, "never paid: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "paid in Vizit {} ms after «Оплатить»",
        paid_at.elapsed().as_millis()
    );
    let sent = sandbox.yookassa.bodies();
    assert!(
        sent.iter().any(|(path, _)| path.ends_with("/capture")),
        "two-stage payment is captured: {sent:?}"
    );

    // The receipt the sandbox registers is found and its fiscal data kept.
    let deadline = Instant::now() + Duration::from_secs(30);
    let receipt = loop {
        let (_, payments) = json_of(
            http.get(format!("{base}/consultations/{id}/payments"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let r = payments[0]["receipts"][0].clone();
        if r["status"] == "registered" {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "receipt never registered: {payments}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(receipt["kind"], "payment");
    assert_eq!(receipt["amountKopecks"], slot["priceKopecks"]);
    assert!(
        receipt["fiscalStorageNumber"]
            .as_str()
            .is_some_and(|s| s.len() == 16)
    );

    // The patient's receipt e-mail reaches the sandbox's mail capture (through SMTP), where the
    // demo's user reads it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mail = loop {
        let (_, mails) = json_of(
            http.get(format!("{sandbox_url}/sandbox/mail.json"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        // Notifications about the consultation arrive there too; the receipt is its own.
        if let Some(m) = mails.as_array().and_then(|m| {
            m.iter().find(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Чек об оплате"))
            })
        }) {
            break m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the receipt e-mail never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "receipt e-mail in the mail capture {} ms after «Оплатить»",
        paid_at.elapsed().as_millis()
    );
    assert_eq!(mail["to"], json!(["patient@example.ru"]));
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .starts_with("Чек об оплате")
    );
    let text = mail["text"].as_str().unwrap();
    for field in [
        "fiscalStorageNumber",
        "fiscalDocumentNumber",
        "fiscalAttribute",
    ] {
        assert!(
            text.contains(receipt[field].as_str().unwrap()),
            "{field} in {text}"
        );
    }
    let page = http
        .get(format!("{sandbox_url}/sandbox/mail/{}", mail["number"]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Чек об оплате"));
    // And the patient was told of the payment by e-mail, into the same capture, at the address
    // given at checkout (the booking came before any address was known).
    let (_, mails) = json_of(
        http.get(format!("{sandbox_url}/sandbox/mail.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let subjects: Vec<&str> = mails
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["to"] == json!(["patient@example.ru"]))
        .filter_map(|m| m["subject"].as_str())
        .collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("Оплата консультации получена")),
        "no payment notification among {subjects:?}"
    );

    app.stop().await;
}
