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
