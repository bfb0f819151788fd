//! The README's default run: slots shown in Vizit come from the built-in Bitrix24 sandbox, a
//! booking made in Vizit appears there, and a booking added in the sandbox (a receptionist) removes
//! that slot from Vizit within seconds — through the real binary's wiring and the sandbox's own
//! outgoing events.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, json_of};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_slots_come_from_the_bitrix24_sandbox_and_go_back() {
    let app = TestApp::spawn_with(|s| assert!(s.demo, "demo mode is the default")).await;
    let (sandbox, sandbox_url) = app.sandbox.clone().expect("demo starts the sandbox");
    let base = format!("http://{}/api/v1", app.http);
    let http = reqwest::Client::new();

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

    // The start-up sync brings the sandbox's seeded doctors.
    let deadline = Instant::now() + Duration::from_secs(20);
    let doctors = loop {
        let (_, doctors) = json_of(
            http.get(format!("{base}/doctors"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if doctors.as_array().is_some_and(|d| d.len() == 3) {
            break doctors;
        }
        assert!(
            Instant::now() < deadline,
            "doctors never arrived: {doctors}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let doctor = doctors
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Иванова Анна Петровна")
        .expect("seeded doctor")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resource = sandbox
        .bitrix24
        .resources()
        .into_iter()
        .find(|r| r.name == "Иванова Анна Петровна")
        .unwrap()
        .id;
    let slots = || async {
        let (status, slots) = json_of(
            http.get(format!("{base}/doctors/{doctor}/slots"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{slots}");
        slots.as_array().unwrap().clone()
    };
    // The start-up sync creates the doctors first, then their slots: wait for those too.
    let deadline = Instant::now() + Duration::from_secs(20);
    let free = loop {
        let free = slots().await;
        if free.len() > 10 {
            break free;
        }
        assert!(
            Instant::now() < deadline,
            "two weeks of a weekday template, got {} slots",
            free.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Seeded receptionist bookings are not offered.
    let seeded: Vec<i64> = sandbox
        .bitrix24
        .bookings()
        .iter()
        .filter(|b| b.resource_ids.contains(&resource))
        .map(|b| b.date_period.from.timestamp)
        .collect();
    let start_of = |s: &Value| {
        s["startsAt"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    };
    assert!(free.iter().all(|s| !seeded.contains(&start_of(s))));

    // A booking made in Vizit appears in Bitrix24.
    let (status, c) = json_of(
        http.post(format!("{base}/consultations"))
            .bearer_auth(&token)
            .json(&json!({"slotId": free[0]["id"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["bookingSync"], "synced");
    let id = c["id"].as_str().unwrap();
    assert!(
        sandbox
            .bitrix24
            .bookings()
            .iter()
            .any(|b| b.name.contains(id) && b.date_period.from.timestamp == start_of(&free[0])),
        "the booking is in Bitrix24"
    );

    // A receptionist books the next slot in Bitrix24 (through the sandbox's HTTP surface); its
    // ONBOOKINGADD event reaches Vizit, which removes the slot.
    let target = start_of(&free[1]);
    let booked = Instant::now();
    let r = http
        .post(format!("{sandbox_url}/sandbox/bitrix24/bookings"))
        .json(
            &json!({"name": "Запись через регистратуру", "resourceIds": [resource],
            "datePeriod": {"from": {"timestamp": target, "timezone": "Europe/Moscow"},
                           "to": {"timestamp": target + 1800, "timezone": "Europe/Moscow"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if !slots().await.iter().any(|s| start_of(s) == target) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot booked in Bitrix24 is still offered after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "slot removed from Vizit {} ms after the Bitrix24 booking",
        booked.elapsed().as_millis()
    );

    app.stop().await;
}
