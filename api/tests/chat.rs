//! The consultation's chat over real HTTP: messages and files between the parties of a call
//! (with their join tokens), the long poll, retries, the checks of files by their bytes, the
//! flood limit, who reads afterwards, the audit — on SQLite and PostgreSQL, files in a local
//! folder and in S3 (SeaweedFS, which `scripts/test.sh` starts).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Clinic, TestApi};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use vizit_api::chat::ChatSettings;
use vizit_api::recordings::Recordings;
use vizit_api::{ApiSettings, Backend};
use vizit_recordings::{ObjectStore, Spool};
use vizit_signaling::CallRole;

const MAX_FILE: u64 = 100_000;

/// A PNG's signature and the start of its header: enough for the type check.
fn png(len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend((0..len.saturating_sub(b.len())).map(|i| (i * 7) as u8));
    b
}

fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.7\n".to_vec();
    b.resize(len, b'x');
    b
}

/// A clinic whose API keeps files in `store`, with a small file limit and a slow refill (one
/// message a minute after a burst of 10) so the flood limit is deterministic.
async fn clinic(backend: Backend, store: ObjectStore) -> (Clinic, std::path::PathBuf) {
    let mut c = Clinic::new(backend).await;
    let settings = ApiSettings {
        demo: true,
        chat: ChatSettings {
            max_file_bytes: MAX_FILE,
            per_minute: 1,
            burst: 10,
        },
        ..ApiSettings::default()
    };
    // The same database, served with the chat's settings.
    let state = vizit_api::ApiState::new(c.api.state.db.clone(), c.api.keys.clone(), settings);
    let dir = std::env::temp_dir().join(format!("vizit-chat-{}", uuid::Uuid::new_v4()));
    let spool = Spool::open(dir.join("spool"), Arc::new(store)).unwrap();
    let rec = Arc::new(Recordings::new(
        spool,
        Duration::from_secs(60),
        None,
        b"url-key".to_vec(),
    ));
    c.api.state = state.with_recordings(rec).with_documents();
    c.api.respawn().await;
    (c, dir)
}

async fn join(api: &TestApi, id: &str, who: &str) -> String {
    let (status, join) = api
        .post(&format!("/consultations/{id}/join"), who, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{join}");
    join["token"].as_str().unwrap().to_owned()
}

async fn say(api: &TestApi, token: &str, text: &str, client_id: &str) -> (StatusCode, Value) {
    api.post(
        "/call/messages",
        token,
        json!({"text": text, "clientId": client_id}),
    )
    .await
}

/// Send a file as the call page does: raw bytes, the name and client id in the query.
async fn send(
    api: &TestApi,
    token: &str,
    name: &str,
    client_id: &str,
    bytes: Vec<u8>,
    conclusion: bool,
) -> (StatusCode, Value) {
    let mut url = reqwest::Url::parse(&format!("{}/call/files", api.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("name", name)
        .append_pair("clientId", client_id)
        .append_pair("conclusion", if conclusion { "true" } else { "false" });
    let res = api
        .http
        .post(url)
        .bearer_auth(token)
        // What the browser claims is not believed.
        .header("content-type", "text/plain")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    if !status.is_success() {
        assert_eq!(ct, "application/problem+json");
    }
    (status, body)
}

async fn fetch(api: &TestApi, path: &str, token: &str) -> (StatusCode, Vec<u8>, String, String) {
    let res = api
        .http
        .get(format!("{}{path}", api.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let h = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (ct, cd) = (h("content-type"), h("content-disposition"));
    (res.status(), res.bytes().await.unwrap().to_vec(), ct, cd)
}

fn files_under(dir: &std::path::Path) -> usize {
    fn walk(d: &std::path::Path, n: &mut usize) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

on_both_databases!(chat_of_a_call, super::chat_of_a_call);

async fn chat_of_a_call(backend: Backend) {
    let store_dir = std::env::temp_dir().join(format!("vizit-chat-store-{}", uuid::Uuid::new_v4()));
    let (c, dir) = clinic(backend, ObjectStore::local(&store_dir)).await;
    let api = &c.api;
    let id = c.paid(5).await;
    let patient = join(api, &id, &c.patient).await;
    let doctor = join(api, &id, &c.doctor).await;

    let (status, empty) = api.get("/call/messages", &patient).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty, json!({"items": [], "last": 0}));

    // The doctor waits for the next message; the patient's arrives there.
    let waiting = {
        let (http, base, doctor) = (api.http.clone(), api.base.clone(), doctor.clone());
        tokio::spawn(async move {
            let r = http
                .get(format!("{base}/call/messages?after=0&waitSeconds=20"))
                .bearer_auth(doctor)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, sent) = say(api, &patient, "  Здравствуйте, доктор!  ", "m-1").await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["text"], "Здравствуйте, доктор!");
    assert_eq!(sent["mine"], true);
    assert_eq!(sent["senderRole"], "patient");
    assert_eq!(sent["senderName"], "Пациент Петров");
    let (status, got) = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the waiting read answers when the message comes")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["items"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["items"][0]["id"], sent["id"]);
    assert_eq!(got["items"][0]["mine"], false);
    assert_eq!(got["last"], sent["seq"]);

    // A resend (the answer was lost) posts nothing new.
    let (status, again) = say(api, &patient, "Здравствуйте, доктор!", "m-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], sent["id"]);

    // Bad messages.
    for (text, client_id) in [("   ", "m-2"), ("ok", ""), ("ok", "a b"), ("a\u{7}", "m-3")] {
        let (status, p) = say(api, &patient, text, client_id).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_message")),
            "{text:?} {client_id:?}"
        );
    }
    let (status, p) = say(api, &patient, &"я".repeat(4001), "m-4").await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_message"))
    );

    // A photo: its type from its bytes, its name without folders.
    let photo = png(5000);
    let (status, file) = send(
        api,
        &patient,
        "../../Анализ крови.png",
        "f-1",
        photo.clone(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["file"]["name"], "Анализ крови.png");
    assert_eq!(file["file"]["contentType"], "image/png");
    assert_eq!(file["file"]["sizeBytes"], 5000);
    assert_eq!(file["conclusion"], false);
    let file_id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(files_under(&store_dir), 1);
    let (status, bytes, ct, cd) = fetch(api, &format!("/call/files/{file_id}"), &doctor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, photo);
    assert_eq!(ct, "image/png");
    assert!(
        cd.starts_with("attachment;") && cd.contains("filename*=UTF-8''"),
        "{cd}"
    );

    // Refused files leave nothing behind.
    let refused = [
        (
            "program.pdf",
            b"MZ\x90\0\x03\0\0\0 not a pdf".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            "page.jpg",
            b"<html><script>alert(1)</script></html>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            "big.pdf",
            pdf(MAX_FILE as usize + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
        ),
        (
            "empty.pdf",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "empty_file",
        ),
    ];
    for (i, (name, bytes, status, code)) in refused.into_iter().enumerate() {
        let (got, p) = send(api, &patient, name, &format!("bad-{i}"), bytes, false).await;
        assert_eq!(
            (got, p["code"].as_str()),
            (status, Some(code)),
            "{name}: {p}"
        );
    }
    // Only the doctor sends the conclusion.
    let (status, p) = send(api, &patient, "conclusion.pdf", "f-2", pdf(2000), true).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(files_under(&store_dir), 1, "a refused file is not stored");
    assert_eq!(
        api.count("SELECT COUNT(*) FROM chat_messages").await,
        2,
        "refused messages are not recorded"
    );
    let (status, conclusion) = send(api, &doctor, "Заключение.pdf", "c-1", pdf(3000), true).await;
    assert_eq!(status, StatusCode::CREATED, "{conclusion}");
    assert_eq!(conclusion["conclusion"], true);
    assert_eq!(conclusion["senderRole"], "doctor");

    // Outsiders: a forged token, a token of this room for someone who is not its party.
    let forged = vizit_signaling::TokenKeys::new(&SecretString::from(
        "another-secret-another-secret-0000001".to_owned(),
    ))
    .unwrap()
    .issue(
        &id,
        &c.patient_id,
        CallRole::Patient,
        "x",
        Duration::from_secs(600),
    );
    let (status, _) = api.get("/call/messages", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stranger = c.api.keys.issue(
        &id,
        &c.other_patient_id,
        CallRole::Patient,
        "x",
        Duration::from_secs(600),
    );
    let (status, _) = api.get("/call/messages", &stranger).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = say(api, &stranger, "hi", "s-1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A session token is not a join token.
    let (status, _) = api.get("/call/messages", &c.patient).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another consultation's party reads only their own chat.
    let other = {
        let slot = api.slot(&c.service, &c.doctor_id, 5).await;
        let (status, body) = api
            .post("/consultations", &c.other_patient, json!({"slotId": slot}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let other = body["id"].as_str().unwrap().to_owned();
        api.mark_paid(&c.service, &other).await;
        other
    };
    let theirs = join(api, &other, &c.other_patient).await;
    let (status, page) = api.get("/call/messages", &theirs).await;
    assert_eq!(
        (status, page["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (status, ..) = fetch(api, &format!("/call/files/{file_id}"), &theirs).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a file of another consultation"
    );

    // A reload reads the whole history in order.
    let (_, all) = api.get("/call/messages?after=0", &doctor).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{all}");
    assert_eq!(items[0]["text"], "Здравствуйте, доктор!");
    assert_eq!(items[1]["id"], file_id.as_str());
    assert_eq!(items[2]["conclusion"], true);
    assert!(items[0]["seq"].as_i64() < items[1]["seq"].as_i64());
    let (_, tail) = api
        .get(
            &format!("/call/messages?after={}", items[1]["seq"]),
            &doctor,
        )
        .await;
    assert_eq!(tail["items"].as_array().unwrap().len(), 1);

    // A flood: the patient spent 2 of 10; 8 more, then 429 with Retry-After.
    for i in 0..8 {
        let (status, p) = say(api, &patient, &format!("{i}"), &format!("flood-{i}")).await;
        assert_eq!(status, StatusCode::CREATED, "{i}: {p}");
    }
    let res = api
        .http
        .post(format!("{}/call/messages", api.base))
        .bearer_auth(&patient)
        .json(&json!({"text": "one more", "clientId": "flood-x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The doctor's allowance is their own.
    let (status, _) = say(api, &doctor, "Продолжим", "d-1").await;
    assert_eq!(status, StatusCode::CREATED);

    // Afterwards, on the consultations page (the session): the parties, head doctors and the
    // portal read it; a clinic admin does not (medical data); strangers do not see it exists.
    let (status, done) = api
        .post(
            &format!("/consultations/{id}/complete"),
            &c.doctor,
            json!({"conclusion": "См. файл заключения."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (status, _) = say(api, &patient, "после", "late-1").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the call's chat closes with it"
    );
    let path = format!("/consultations/{id}/messages");
    for (who, expect) in [
        (&c.patient, StatusCode::OK),
        (&c.doctor, StatusCode::OK),
        (&c.head, StatusCode::OK),
        (&c.service, StatusCode::OK),
        (&c.admin, StatusCode::FORBIDDEN),
        (&c.other_patient, StatusCode::NOT_FOUND),
        (&c.other_doctor, StatusCode::NOT_FOUND),
    ] {
        let (status, page) = api.get(&path, who).await;
        assert_eq!(status, expect, "{page}");
        if status == StatusCode::OK {
            assert_eq!(page["items"].as_array().unwrap().len(), 12);
        }
    }
    let (status, bytes, ..) = fetch(
        api,
        &format!("/consultations/{id}/files/{file_id}"),
        &c.patient,
    )
    .await;
    assert_eq!((status, bytes), (StatusCode::OK, photo));
    let (status, ..) = fetch(
        api,
        &format!("/consultations/{id}/files/{file_id}"),
        &c.admin,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Audited, without the content.
    assert_eq!(
        api.count("SELECT COUNT(*) FROM audit_log WHERE action = 'chat.message'")
            .await,
        10
    );
    assert_eq!(
        api.count("SELECT COUNT(*) FROM audit_log WHERE action = 'chat.file'")
            .await,
        2
    );
    assert!(
        api.count("SELECT COUNT(*) FROM audit_log WHERE action = 'chat.file.read'")
            .await
            >= 2
    );
    assert!(
        api.count("SELECT COUNT(*) FROM audit_log WHERE action = 'chat.read'")
            .await
            >= 1
    );
    assert_eq!(
        api.count("SELECT COUNT(*) FROM audit_log WHERE details LIKE '%доктор%' OR details LIKE '%Анализ%'").await,
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&store_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_files_in_s3() {
    let store = common::s3_store("chat").await;
    let (c, dir) = clinic(Backend::Sqlite, store).await;
    let api = &c.api;
    let id = c.paid(5).await;
    let patient = join(api, &id, &c.patient).await;
    let doctor = join(api, &id, &c.doctor).await;
    let scan = pdf(90_000);
    let (status, sent) = send(api, &patient, "scan.pdf", "s3-1", scan.clone(), false).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (status, bytes, ct, _) = fetch(
        api,
        &format!("/call/files/{}", sent["id"].as_str().unwrap()),
        &doctor,
    )
    .await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/pdf"));
    assert_eq!(bytes, scan);
    let (status, ..) = fetch(
        api,
        "/call/files/00000000-0000-4000-8000-000000000000",
        &doctor,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&dir);
}
