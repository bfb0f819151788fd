//! The Bitrix24 stand-in speaks the documented wire format: envelope, errors, paging, batch,
//! OAuth, the leaky bucket and form-encoded events — checked over real HTTP.

use std::time::Duration;

use serde_json::{Value, json};
use vizit_sandbox::{Bitrix24Options, Sandbox};

async fn start(options: Bitrix24Options) -> (Sandbox, vizit_sandbox::RunningSandbox) {
    let sandbox = Sandbox::new(options);
    let running = sandbox.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (sandbox, running)
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn envelope_errors_and_paging() {
    let (s, _running) = start(Bitrix24Options::default()).await;
    let hook = s.bitrix24.webhook_url();
    let (status, body) = post(&format!("{hook}booking.v1.resource.list"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["result"]["resource"].as_array().unwrap().len(),
        3,
        "seeded doctors"
    );
    for key in [
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
    ] {
        assert!(!body["time"][key].is_null(), "time.{key}");
    }
    assert_eq!(body["total"], 3);
    assert!(body.get("next").is_none(), "no `next` on the last page");

    // 60 bookings → pages of 50 with `next`.
    let r = s.bitrix24.add_resource("Врач", None);
    for i in 0..60 {
        s.bitrix24
            .add_booking(serde_json::from_value(json!({"resourceIds": [r], "datePeriod": {
                "from": {"timestamp": 2_000_000_000 + i * 3600, "timezone": "Europe/Moscow"},
                "to": {"timestamp": 2_000_000_000 + i * 3600 + 1800, "timezone": "Europe/Moscow"}}}))
            .unwrap())
            .unwrap();
    }
    let filter =
        json!({"filter": {"within": {"dateFrom": 2_000_000_000i64, "dateTo": 2_100_000_000i64}}});
    let (_, page1) = post(
        &format!("{hook}booking.v1.booking.list.json"),
        filter.clone(),
    )
    .await;
    assert_eq!(page1["result"]["booking"].as_array().unwrap().len(), 50);
    assert_eq!(
        (page1["next"].as_i64(), page1["total"].as_i64()),
        (Some(50), Some(60))
    );
    let mut next = filter.clone();
    next["start"] = json!(50);
    let (_, page2) = post(&format!("{hook}booking.v1.booking.list"), next).await;
    assert_eq!(page2["result"]["booking"].as_array().unwrap().len(), 10);
    assert!(page2.get("next").is_none());

    // Method errors: numeric codes, HTTP 400.
    let (status, e) = post(
        &format!("{hook}booking.v1.booking.get"),
        json!({"id": 999_999}),
    )
    .await;
    assert_eq!(
        (status, e["error"].clone(), e["error_description"].clone()),
        (400, json!(1021), json!("Booking not found"))
    );
    let (status, e) = post(
        &format!("{hook}booking.v1.booking.list"),
        json!({"filter": {"within": {"dateFrom": 5}}}),
    )
    .await;
    assert_eq!((status, e["error"].clone()), (400, json!(422)));
    let (status, e) = post(
        &format!("{hook}booking.v1.booking.add"),
        json!({"fields": {"resourceIds": [r], "datePeriod": {
        "from": {"timestamp": 2_000_000_000i64, "timezone": "Europe/Moscow"},
        "to": {"timestamp": 2_000_000_900i64, "timezone": "Europe/Moscow"}}}}),
    )
    .await;
    assert_eq!(
        (status, e["error"].clone()),
        (400, json!(1018)),
        "busy resource"
    );
    let (status, e) = post(&format!("{hook}booking.v1.nope"), json!({})).await;
    assert_eq!(
        (status, e["error"].clone()),
        (404, json!("ERROR_METHOD_NOT_FOUND"))
    );
    // Wrong webhook code, no auth at all.
    let bad = hook.replace(&s.bitrix24.options().webhook_code, "wrong");
    let (status, e) = post(&format!("{bad}booking.v1.resource.list"), json!({})).await;
    assert_eq!(
        (status, e["error"].clone()),
        (401, json!("INVALID_CREDENTIALS"))
    );
    let base = hook.split("/rest/").next().unwrap().to_owned();
    let (status, e) = post(&format!("{base}/rest/booking.v1.resource.list"), json!({})).await;
    assert_eq!((status, e["error"].clone()), (401, json!("NO_AUTH_FOUND")));
    // Form-encoded and query parameters work like JSON.
    let r2 = reqwest::Client::new()
        .post(format!("{hook}booking.v1.resource.slots.list"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("resourceId=1")
        .send()
        .await
        .unwrap();
    let v: Value = r2.json().await.unwrap();
    assert_eq!(v["result"]["slots"][0]["timezone"], "Europe/Moscow");
}

#[tokio::test]
async fn batch_runs_subcalls_and_reports_errors_per_key() {
    let (s, _running) = start(Bitrix24Options::default()).await;
    let hook = s.bitrix24.webhook_url();
    let (status, body) = post(
        &format!("{hook}batch"),
        json!({"halt": 0, "cmd": {
            "a": "booking.v1.resource.slots.list?resourceId=1",
            "b": "booking.v1.booking.get?id=424242",
            "c": "batch?cmd[x]=booking.v1.resource.list",
        }}),
    )
    .await;
    assert_eq!(status, 200, "a batch is always 200");
    let r = &body["result"];
    assert!(r["result"]["a"]["slots"].is_array());
    assert_eq!(r["result_error"]["b"]["error"], 1021);
    assert_eq!(
        r["result_error"]["c"]["error"],
        "ERROR_BATCH_METHOD_NOT_ALLOWED"
    );
    assert_eq!(r["result_next"], json!([]), "empty maps are [] like PHP");
    assert!(r["result_time"]["a"]["start"].is_number());
}

#[tokio::test]
async fn leaky_bucket_refuses_with_503_and_drains() {
    let (s, _running) = start(Bitrix24Options {
        burst: 3.0,
        drain_per_second: 10.0,
        ..Default::default()
    })
    .await;
    let url = format!("{}booking.v1.resource.list", s.bitrix24.webhook_url());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body) = post(&url, json!({})).await;
        if status == 503 {
            assert_eq!(body["error"], "QUERY_LIMIT_EXCEEDED");
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&503), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(post(&url, json!({})).await.0, 200, "the bucket drained");
}

#[tokio::test]
async fn oauth_code_token_refresh_and_expiry() {
    let (s, running) = start(Bitrix24Options::default()).await;
    let o = s.bitrix24.options().clone();
    let base = running.url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(format!(
            "{base}/oauth/authorize/?client_id={}&state=xyz&redirect_uri=https://app.example/cb",
            o.client_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://app.example/cb?code=") && location.contains("state=xyz"),
        "{location}"
    );
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let token_url = |grant: &str, extra: &str| {
        format!(
            "{base}/oauth/token/?grant_type={grant}&client_id={}&client_secret={}&{extra}",
            o.client_id, o.client_secret
        )
    };
    let tokens: Value = http
        .get(token_url("authorization_code", &format!("code={code}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["expires_in"], 3600);
    let access = tokens["access_token"].as_str().unwrap();
    // The code is single-use.
    let again = http
        .get(token_url("authorization_code", &format!("code={code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 400);
    let (status, body) = post(
        &format!("{base}/rest/booking.v1.resource.list"),
        json!({"auth": access}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    http.post(format!("{base}/sandbox/bitrix24/expire-tokens"))
        .send()
        .await
        .unwrap();
    let (status, body) = post(
        &format!("{base}/rest/booking.v1.resource.list"),
        json!({"auth": access}),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("expired_token"))
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let fresh: Value = http
        .get(token_url(
            "refresh_token",
            &format!("refresh_token={refresh}"),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, _) = post(
        &format!("{base}/rest/booking.v1.resource.list"),
        json!({"auth": fresh["access_token"]}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn events_are_form_encoded_with_the_application_token() {
    use axum::routing::post as route_post;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let app = axum::Router::new().route(
        "/hook",
        route_post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let ct = headers["content-type"].to_str().unwrap().to_owned();
                let _ = tx.send((ct, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (s, _running) = start(Bitrix24Options {
        event_handler: Some(hook),
        application_token: "tok123".into(),
        ..Default::default()
    })
    .await;
    let (_, added) = post(
        &format!("{}booking.v1.booking.add", s.bitrix24.webhook_url()),
        json!({"fields": {"name": "x", "resourceIds": [1], "datePeriod": {
            "from": {"timestamp": 2_100_000_000i64, "timezone": "Europe/Moscow"},
            "to": {"timestamp": 2_100_001_800i64, "timezone": "Europe/Moscow"}}}}),
    )
    .await;
    let id = added["result"]["id"]
        .as_i64()
        .expect("booking.add answers {\"id\": N}");
    let (ct, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ct, "application/x-www-form-urlencoded");
    let v = vizit_sandbox::php::parse(&body);
    assert_eq!(v["event"], "ONBOOKINGADD");
    assert_eq!(v["data"]["ID"], id.to_string());
    assert_eq!(v["auth"]["application_token"], "tok123");
    assert!(v["ts"].as_str().unwrap().parse::<i64>().is_ok());
    s.bitrix24.delete_booking(id);
    let (_, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(vizit_sandbox::php::parse(&body)["event"], "ONBOOKINGDELETE");
}
