//! The pre-call connection check's tokens over real HTTP: a fresh test room per check, never a
//! consultation's, and the limit per address.

mod common;

use common::TestApi;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_check_gets_its_own_room_and_an_address_only_ten() {
    let api = TestApi::spawn(vizit_api::Backend::Sqlite).await;
    let mut rooms = std::collections::HashSet::new();
    for _ in 0..10 {
        let (status, check) = api
            .call(Method::POST, "/connection-check", None, Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{check}");
        let tokens: Vec<_> = check["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| api.keys.verify(t.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].room, tokens[1].room);
        assert_ne!(tokens[0].sub, tokens[1].sub, "two peers");
        assert!(tokens[0].room.starts_with("check-"));
        assert!(!tokens[0].rec, "a check is never recorded");
        assert!(tokens[0].exp - tokens[0].iat <= 120, "short-lived");
        assert!(
            rooms.insert(tokens[0].room.clone()),
            "a fresh room each time"
        );
    }
    let res = api
        .http
        .post(format!("{}/connection-check", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
}

/// The call page checks its link before it asks for the camera: who, whom, when — or why not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_link_says_who_whom_and_when_or_why_not() {
    let c = common::Clinic::new(vizit_api::Backend::Sqlite).await;
    let api = &c.api;
    let id = c.paid(5).await;
    // A link as `POST /consultations/{id}/join` makes it (a join would start the consultation,
    // and a started one cannot be cancelled below).
    let token = &api.keys.issue_for_consultation(
        &id,
        &c.patient_id,
        vizit_signaling::CallRole::Patient,
        "Пациент Петров",
        std::time::Duration::from_secs(600),
        0,
    );
    let (status, link) = api.get("/call/link", token).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["role"], "patient");
    assert_eq!(link["name"], "Пациент Петров");
    let consultation = &link["consultation"];
    assert_eq!(consultation["id"], id.as_str());
    assert_eq!(consultation["patientName"], "Пациент Петров");
    assert!(
        consultation["doctorName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert!(consultation["opensAt"].as_str() < consultation["startsAt"].as_str());
    assert!(consultation["closesAt"].as_str() > consultation["endsAt"].as_str());

    // Why not, in codes the page turns into words.
    let code = |v: &serde_json::Value| v["code"].as_str().unwrap_or_default().to_owned();
    let (status, p) = api.get("/call/link", "not-a-token").await;
    assert_eq!(
        (status, code(&p).as_str()),
        (StatusCode::UNAUTHORIZED, "link_invalid")
    );
    let stale = api.keys.issue(
        &id,
        &c.patient_id,
        vizit_signaling::CallRole::Patient,
        "x",
        std::time::Duration::ZERO,
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, p) = api.get("/call/link", &stale).await;
    assert_eq!(
        (status, code(&p).as_str()),
        (StatusCode::UNAUTHORIZED, "link_expired")
    );
    let stranger = api.keys.issue(
        &id,
        &c.other_patient_id,
        vizit_signaling::CallRole::Patient,
        "x",
        std::time::Duration::from_secs(60),
    );
    let (status, _) = api.get("/call/link", &stranger).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .post(
            &format!("/consultations/{id}/cancel"),
            &c.patient,
            json!({"reason": "не смогу"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, p) = api.get("/call/link", token).await;
    assert_eq!(
        (status, code(&p).as_str()),
        (StatusCode::CONFLICT, "consultation_cancelled")
    );

    // Another room (a test link from `vizit token`): valid, no consultation.
    let other = api.keys.issue(
        "e2e-room",
        "p-1",
        vizit_signaling::CallRole::Patient,
        "Гость",
        std::time::Duration::from_secs(60),
    );
    let (status, link) = api.get("/call/link", &other).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert!(link["consultation"].is_null());
}
