//! A real Vizit on real sockets: Rust WebRTC peers (str0m) join over the WebSocket and exchange
//! VP8/Opus over real UDP; bad input gets typed errors while other rooms keep being served.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Peer, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use str0m::media::MediaKind;
use vizit_signaling::CallRole;

#[tokio::test]
async fn two_peers_exchange_audio_and_video_unchanged_over_real_udp() {
    let app = TestApp::spawn_with(|s| s.metrics.per_room = true).await;
    let mut doctor = Peer::connect(&app, "room-a", "doctor", CallRole::Doctor, true).await;
    let mut patient = Peer::connect(&app, "room-a", "patient", CallRole::Patient, true).await;
    tokio::join!(
        doctor.run(Duration::from_secs(4)),
        patient.run(Duration::from_secs(4))
    );

    for (receiver, sender) in [(&doctor, &patient), (&patient, &doctor)] {
        let sent: HashSet<&Vec<u8>> = sender.sent.iter().map(|(_, d)| d).collect();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let got: Vec<&Vec<u8>> = receiver
                .received
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, d)| d)
                .collect();
            let minimum = if kind == MediaKind::Audio { 50 } else { 25 };
            assert!(
                got.len() >= minimum,
                "{} received {} {kind:?} frames from {}, expected at least {minimum}",
                receiver.name,
                got.len(),
                sender.name
            );
            for data in got {
                assert!(
                    sent.contains(data),
                    "{} received a frame {} never sent",
                    receiver.name,
                    sender.name
                );
            }
        }
    }
    assert!(
        doctor
            .messages
            .iter()
            .any(|m| m["type"] == "participantJoined"
                && m["participant"]["participantId"] == "patient"),
        "{:?}",
        doctor.messages
    );

    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{room=\"room-a\"}} ")))
            .unwrap_or_else(|| panic!("{name} for room-a missing:\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("vizit_participants"), 2);
    assert!(value("vizit_packets_in_total") > 200);
    assert!(value("vizit_packets_out_total") > 200);
    assert!(value("vizit_keyframe_requests_total") >= 2);

    // Hanging up: the other side is told.
    patient.ws.send(json!({"type": "leave"})).await;
    patient.ws.expect_closed().await;
    let left = doctor.ws.expect("participantLeft").await;
    assert_eq!(left["participantId"], "patient");
    assert_eq!(left["reason"], "hangup");
    app.stop().await;
}

#[tokio::test]
async fn a_receive_only_peer_gets_the_others_media() {
    let app = TestApp::spawn().await;
    let mut doctor = Peer::connect(&app, "room-r", "doctor", CallRole::Doctor, true).await;
    let mut patient = Peer::connect(&app, "room-r", "patient", CallRole::Patient, false).await;
    tokio::join!(
        doctor.run(Duration::from_secs(3)),
        patient.run(Duration::from_secs(3))
    );
    assert!(
        patient.received.iter().any(|(k, _)| *k == MediaKind::Video),
        "no video"
    );
    assert!(
        patient.received.iter().any(|(k, _)| *k == MediaKind::Audio),
        "no audio"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_typed_errors_and_other_rooms_keep_working() {
    // A short grace for resuming a lost socket (the default is 15 s), for the midway case.
    let app = TestApp::spawn_with(|s| s.signaling.resume_grace = Duration::from_secs(1)).await;
    // A healthy call in another room, which must survive everything below.
    let mut doctor = Peer::connect(&app, "healthy", "doctor", CallRole::Doctor, true).await;
    let mut patient = Peer::connect(&app, "healthy", "patient", CallRole::Patient, true).await;

    // Malformed JSON and an unknown type: an error, the socket stays.
    let mut ws = app.ws().await;
    ws.send_text("{not json".into()).await;
    ws.expect_error("badMessage").await;
    ws.send(json!({"type": "teleport"})).await;
    ws.expect_error("unknownType").await;
    ws.send(json!({"type": "offer", "sdp": "v=0"})).await;
    ws.expect_error("notJoined").await;
    ws.assert_alive().await;

    // Over the size limit: an error, then the socket closes.
    ws.send(json!({"type": "offer", "sdp": "x".repeat(70 * 1024)}))
        .await;
    ws.expect_error("tooLarge").await;
    ws.expect_closed().await;

    // A token with a bad signature.
    let mut ws = app.ws().await;
    let other_keys = vizit_signaling::TokenKeys::new(&secrecy::SecretString::from(
        "some-other-secret-some-other-secret-000".to_owned(),
    ))
    .unwrap();
    let forged = other_keys.issue(
        "healthy",
        "intruder",
        CallRole::Doctor,
        "x",
        Duration::from_secs(60),
    );
    ws.send(json!({"type": "join", "version": 1, "token": forged}))
        .await;
    ws.expect_error("tokenInvalid").await;
    ws.expect_closed().await;

    // An expired token.
    let mut ws = app.ws().await;
    let expired = app
        .keys
        .issue("healthy", "late", CallRole::Patient, "x", Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ws.send(json!({"type": "join", "version": 1, "token": expired}))
        .await;
    ws.expect_error("tokenExpired").await;
    ws.expect_closed().await;

    // A wrong protocol version.
    let mut ws = app.ws().await;
    ws.send(json!({"type": "join", "version": 7, "token": app.token("x", "y", CallRole::Doctor)}))
        .await;
    ws.expect_error("unsupportedVersion").await;
    ws.expect_closed().await;

    // A third person in a full room.
    let mut ws = app.ws().await;
    ws.send(json!({"type": "join", "version": 1, "token": app.token("healthy", "third", CallRole::Patient)}))
        .await;
    ws.expect_error("roomFull").await;
    ws.expect_closed().await;

    // Garbage SDP: an error, the session goes on.
    let mut ws = app.ws().await;
    ws.join(&app.token("garbage", "g1", CallRole::Doctor)).await;
    ws.send(json!({"type": "offer", "sdp": "v=0\r\nthis is not SDP"}))
        .await;
    ws.expect_error("badSdp").await;
    ws.send(json!({"type": "answer", "sdp": "v=0"})).await;
    let e = ws.recv().await.unwrap();
    assert!(
        e["code"] == "badSdp" || e["code"] == "noPendingOffer",
        "{e}"
    );
    ws.send(json!({"type": "join", "version": 1, "token": app.token("garbage", "g1", CallRole::Doctor)}))
        .await;
    ws.expect_error("alreadyJoined").await;
    ws.assert_alive().await;

    // A socket closed in the middle of negotiation: once the grace for a resume is over, the
    // other side is told it left.
    let mut first = app.ws().await;
    first
        .join(&app.token("midway", "m1", CallRole::Doctor))
        .await;
    let mut second = app.ws().await;
    second
        .join(&app.token("midway", "m2", CallRole::Patient))
        .await;
    first.expect("participantJoined").await;
    second
        .send(json!({"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}))
        .await;
    drop(second);
    let left = first.expect("participantLeft").await;
    assert_eq!(left["participantId"], "m2");
    assert_eq!(left["reason"], "connectionLost");

    // The healthy room still carries media, and the server still answers.
    tokio::join!(
        doctor.run(Duration::from_secs(2)),
        patient.run(Duration::from_secs(2))
    );
    assert!(doctor.received.iter().any(|(k, _)| *k == MediaKind::Video));
    assert!(patient.received.iter().any(|(k, _)| *k == MediaKind::Audio));
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_tells_participants_the_room_closed() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;
    ws.join(&app.token("closing", "c1", CallRole::Doctor)).await;
    let stop = tokio::spawn(app.stop());
    let closed = ws.expect("roomClosed").await;
    assert_eq!(closed["reason"], "serverShutdown");
    ws.expect_closed().await;
    stop.await.unwrap();
}

#[tokio::test]
async fn rejoining_with_the_same_identity_replaces_the_old_socket() {
    let app = TestApp::spawn().await;
    let mut doctor = app.ws().await;
    doctor.join(&app.token("re", "d", CallRole::Doctor)).await;
    let mut old = app.ws().await;
    old.join(&app.token("re", "p", CallRole::Patient)).await;
    doctor.expect("participantJoined").await;

    let mut new = app.ws().await;
    let joined = new.join(&app.token("re", "p", CallRole::Patient)).await;
    assert_eq!(joined["participants"][0]["participantId"], "d");
    old.expect_error("replaced").await;
    old.expect_closed().await;
    let left = doctor.expect("participantLeft").await;
    assert_eq!(left["reason"], "replaced");
    doctor.expect("participantJoined").await;
    app.stop().await;
}

/// Media frames `peer` received from the other party so far.
fn frames_in(peer: &Peer) -> usize {
    peer.received.len()
}

#[tokio::test]
async fn a_lost_socket_is_resumed_on_a_new_one_while_the_media_goes_on() {
    let app = TestApp::spawn_with(|s| s.signaling.resume_grace = Duration::from_secs(3)).await;
    let room = "room-resume";
    let mut doctor = Peer::connect(&app, room, "doctor", CallRole::Doctor, true).await;
    let mut patient = Peer::connect(&app, room, "patient", CallRole::Patient, true).await;
    tokio::join!(
        doctor.run(Duration::from_secs(2)),
        patient.run(Duration::from_secs(2))
    );
    assert_eq!(patient.joined["resumeGraceMs"], 3000);
    let first = patient.joined["resumeToken"].as_str().unwrap().to_owned();
    assert!(first.len() >= 32, "{first}");
    let resume = |resume_token: &str, participant: &str, role| {
        json!({"type": "resume", "version": 1, "token": app.token(room, participant, role),
               "resumeToken": resume_token})
    };

    // 1. The patient's network changed: a new socket resumes while the old one (a dead TCP
    //    connection, as far as the server knows) is still open. The old one is closed.
    let mut old = std::mem::replace(&mut patient.ws, app.ws().await);
    patient
        .ws
        .send(resume(&first, "patient", CallRole::Patient))
        .await;
    let resumed = patient.ws.expect("resumed").await;
    assert_eq!(resumed["participantId"], "patient");
    let second = resumed["resumeToken"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "a resume token is good once");
    old.expect_closed().await;

    // 2. The socket drops without `leave`; the media goes on meanwhile, and a third socket
    //    takes the parked session back.
    drop(std::mem::replace(&mut patient.ws, app.ws().await));
    let before = (frames_in(&doctor), frames_in(&patient));
    tokio::join!(
        doctor.run(Duration::from_secs(1)),
        patient.run(Duration::from_secs(1))
    );
    assert!(
        frames_in(&doctor) > before.0 + 20 && frames_in(&patient) > before.1 + 20,
        "the media stopped while the socket was down"
    );
    patient
        .ws
        .send(resume(&second, "patient", CallRole::Patient))
        .await;
    let third = patient.ws.expect("resumed").await["resumeToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // The session works on the new socket, and the doctor never saw the patient leave.
    patient
        .ws
        .send(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    let muted = doctor.ws.expect("muteChanged").await;
    assert_eq!(muted["participantId"], "patient");
    assert!(
        !doctor
            .messages
            .iter()
            .any(|m| m["type"] == "participantLeft"),
        "{:?}",
        doctor.messages
    );

    // A spent token is refused, without closing the socket (it may `join` instead); so is a
    // live token presented with another participant's join token, which stays the patient's.
    let mut replay = app.ws().await;
    replay
        .send(resume(&first, "patient", CallRole::Patient))
        .await;
    replay.expect_error("resumeFailed").await;
    replay.assert_alive().await;
    let mut other = app.ws().await;
    other.send(resume(&third, "doctor", CallRole::Doctor)).await;
    other.expect_error("resumeFailed").await;
    patient.ws.assert_alive().await;

    // 3. Lost for good: after the grace the patient leaves and the doctor is told; the token
    //    no longer resumes anything.
    drop(std::mem::replace(&mut patient.ws, app.ws().await));
    let left = doctor.ws.expect("participantLeft").await;
    assert_eq!(left["participantId"], "patient");
    assert_eq!(left["reason"], "connectionLost");
    patient
        .ws
        .send(resume(&third, "patient", CallRole::Patient))
        .await;
    patient.ws.expect_error("resumeFailed").await;
    app.stop().await;
}

#[tokio::test]
async fn each_join_gets_short_lived_turn_credentials() {
    let url = "turns:turn.example:443?transport=tcp";
    let app = TestApp::spawn_with(|s| {
        s.turn.urls = vec![url.to_owned()];
        s.turn.secret = Some(secrecy::SecretString::from(
            "0123456789abcdef0123".to_owned(),
        ));
        s.turn.ttl = Duration::from_secs(600);
    })
    .await;
    let mut ws = app.ws().await;
    let joined = ws
        .join(&app.token("turn-room", "d-1", CallRole::Doctor))
        .await;
    let servers = joined["iceServers"].as_array().expect("iceServers");
    assert_eq!(servers.len(), 1, "{joined}");
    assert_eq!(servers[0]["urls"], json!([url]));
    // `<expiry>:<participant>`, the expiry `turn.ttl` from now (TURN REST API scheme; the
    // password's HMAC is checked in signaling's unit test against openssl).
    let username = servers[0]["username"].as_str().unwrap();
    let (expiry, participant) = username.split_once(':').unwrap();
    assert_eq!(participant, "d-1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );
    assert_eq!(servers[0]["credential"].as_str().unwrap().len(), 28);
    app.stop().await;

    // Without a TURN server: none.
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;
    let joined = ws
        .join(&app.token("turn-room", "d-1", CallRole::Doctor))
        .await;
    assert_eq!(joined["iceServers"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn pages_health_and_demo() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await, (200, "ok\n".to_owned()));
    let (status, page) = app.get("/call?token=x").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-testid=\"join\""),
        "the built call page is embedded"
    );
    let (status, demo) = app.get("/demo").await;
    assert_eq!(status, 200);
    let token = demo
        .split("/call#token=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a doctor link");
    let claims = app.keys.verify(token).expect("the demo token is valid");
    assert_eq!(claims.role, CallRole::Doctor);
    assert!(
        claims.rec,
        "the demo call is a consultation's: it may be recorded"
    );
    // The room is a real, paid consultation with the demo doctor.
    let consultation =
        vizit_api::consultations::load(&app.api.core(), &claims.room.parse().unwrap())
            .await
            .unwrap()
            .expect("the demo room is a consultation");
    assert_eq!(consultation.status().unwrap().as_str(), "paid");
    assert!(
        demo.contains("data-testid=\"demo-admin\" href=\"/consultations#session=vzs_"),
        "an admin link"
    );
    assert!(!demo.contains(&claims.room), "no ids for people to read");
    // Whoever opens /demo gets that admin session: it sees the clinic's consultations but may
    // not create staff or API keys.
    let admin = demo
        .split("data-testid=\"demo-admin\" href=\"/consultations#session=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://{}/api/v1{path}", app.http);
    let listed = http
        .get(api("/consultations"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);
    for (path, body) in [
        (
            "/staff",
            json!({"role": "admin", "email": "x@example.test", "name": "X", "password": "password-123456"}),
        ),
        ("/api-keys", json!({"name": "portal"})),
    ] {
        let refused = http
            .post(api(path))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 403, "{path}");
        let problem: serde_json::Value = refused.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("demo"),
            "{problem}"
        );
    }
    assert_eq!(app.get("/assets/app.js").await.0, 200);
    // Security headers: nothing is sniffed into another type; the API's docs page may not be
    // framed and may show its own icon.
    let health = reqwest::get(format!("http://{}/healthz", app.http))
        .await
        .unwrap();
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    let docs = reqwest::get(format!("http://{}/api/v1/docs", app.http))
        .await
        .unwrap();
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("img-src 'self' data:"), "{csp}");
    assert_eq!(docs.headers()["cache-control"], "no-store");
    app.stop().await;
}

/// The UDP port of the host candidate in an SDP.
fn candidate_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=candidate:"))
        .and_then(|c| c.split_whitespace().nth(5))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no candidate in {sdp}"))
}

#[tokio::test]
async fn media_threads_each_carry_whole_rooms() {
    let app = TestApp::spawn_with(|s| s.media.threads = 2).await;
    let rooms = ["threads-0", "threads-1", "threads-2", "threads-3"];
    let mut peers = Vec::new();
    for room in rooms {
        let doctor = Peer::connect(&app, room, "doctor", CallRole::Doctor, true).await;
        let patient = Peer::connect(&app, room, "patient", CallRole::Patient, true).await;
        peers.push((doctor, patient));
    }
    futures_util::future::join_all(
        peers
            .iter_mut()
            .flat_map(|(d, p)| [d.run(Duration::from_secs(3)), p.run(Duration::from_secs(3))]),
    )
    .await;

    let mut ports = HashSet::new();
    for (room, (doctor, patient)) in rooms.iter().zip(&peers) {
        // Both people of a room reach the same loop: its socket is in both answers.
        let port = candidate_port(&doctor.answer_sdp);
        assert_eq!(port, candidate_port(&patient.answer_sdp), "{room}");
        ports.insert(port);
        for (receiver, sender) in [(doctor, patient), (patient, doctor)] {
            for kind in [MediaKind::Audio, MediaKind::Video] {
                let got: Vec<_> = receiver
                    .received
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .collect();
                assert!(!got.is_empty(), "{room}: {} got no {kind:?}", receiver.name);
                for (_, data) in got {
                    assert!(
                        sender.sent.iter().any(|(_, d)| d == data),
                        "{room}: {} got a frame {} never sent",
                        receiver.name,
                        sender.name
                    );
                }
            }
        }
    }
    assert_eq!(ports.len(), 2, "the rooms are spread over both loops");
    // The counters of both loops, in one exposition.
    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\nvizit_rooms 4\n"), "{metrics}");
    for loop_number in 0..2 {
        // Two rooms of two people in each loop.
        let rooms = format!("\nvizit_media_loop_rooms{{loop=\"{loop_number}\"}} 2\n");
        let people = format!("\nvizit_media_loop_participants{{loop=\"{loop_number}\"}} 4\n");
        assert!(metrics.contains(&rooms), "{metrics}");
        assert!(metrics.contains(&people), "{metrics}");
    }
    app.stop().await;
}

/// A WebSocket upgrade's HTTP status when the server refuses it.
async fn refused_upgrade(app: &TestApp) -> u16 {
    match tokio_tungstenite::connect_async(format!("ws://{}/ws", app.http)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

#[tokio::test]
async fn sockets_that_never_join_are_closed_whatever_they_send() {
    let app = TestApp::spawn_with(|s| {
        s.signaling.join_timeout = Duration::from_secs(1);
    })
    .await;
    let mut idle = app.ws().await;
    // Pings would once have kept it open for ever.
    let pinging = async {
        for nonce in 0..100 {
            idle.send(json!({"type": "ping", "nonce": nonce})).await;
            let reply = idle.stream.next().await;
            match reply {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                    if v["type"] == "error" {
                        return v;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("still open after 10 s of pings");
    };
    let error = pinging.await;
    assert_eq!(error["code"], "joinTimeout");
    idle.expect_closed().await;

    // A socket that joins in time stays.
    let mut ws = app.ws().await;
    ws.join(&app.token("in-time", "d", CallRole::Doctor)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.assert_alive().await;
    app.stop().await;
}

#[tokio::test]
async fn sockets_are_capped_per_address_and_in_total() {
    let app = TestApp::spawn_with(|s| {
        s.signaling.max_sockets_per_address = 2;
    })
    .await;
    let first = app.ws().await;
    let mut second = app.ws().await;
    assert_eq!(refused_upgrade(&app).await, 429);
    drop(first);
    // The slot frees once the server sees the close.
    common::eventually("a freed slot", || async {
        tokio_tungstenite::connect_async(format!("ws://{}/ws", app.http))
            .await
            .is_ok()
    })
    .await;
    second.assert_alive().await;
    app.stop().await;

    let app = TestApp::spawn_with(|s| {
        s.signaling.max_sockets = 3;
    })
    .await;
    let _open = [app.ws().await, app.ws().await, app.ws().await];
    assert_eq!(refused_upgrade(&app).await, 503);
    assert_eq!(
        app.get("/healthz").await.0,
        200,
        "plain HTTP is still served"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_flood_of_messages_closes_the_socket_and_spares_the_room() {
    let app = TestApp::spawn().await;
    let mut doctor = app.ws().await;
    doctor
        .join(&app.token("flood", "d", CallRole::Doctor))
        .await;
    let mut patient = app.ws().await;
    patient
        .join(&app.token("flood", "p", CallRole::Patient))
        .await;
    doctor.expect("participantJoined").await;
    for i in 0..1000 {
        let sent = patient
            .stream
            .send(tokio_tungstenite::tungstenite::Message::text(
                json!({"type": "mute", "kind": "audio", "muted": i % 2 == 0}).to_string(),
            ))
            .await;
        if sent.is_err() {
            break;
        }
    }
    // The patient gets the error (after the mute echoes it may not read) and is closed…
    loop {
        match patient.recv().await {
            Some(m) if m["type"] == "error" => {
                assert_eq!(m["code"], "tooManyMessages");
                break;
            }
            Some(_) => {}
            None => panic!("closed without the error"),
        }
    }
    patient.expect_closed().await;
    // …and the doctor hears far fewer than a thousand mute changes, then that the patient left.
    let mut changes = 0;
    loop {
        let m = doctor.recv().await.expect("the doctor stays");
        if m["type"] == "muteChanged" {
            changes += 1;
        } else {
            assert_eq!(m["type"], "participantLeft", "{m}");
            break;
        }
    }
    assert!(changes <= 250, "{changes} mute changes passed");
    doctor.assert_alive().await;
    app.stop().await;
}

#[tokio::test]
async fn ice_candidates_are_bounded_per_participant() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;
    ws.join(&app.token("candidates", "d", CallRole::Doctor))
        .await;
    let candidate = |i: u32| {
        format!(
            "candidate:{i} 1 udp 2122260223 192.0.2.1 {} typ host",
            40000 + i
        )
    };
    // An offer carrying a thousand: refused as a whole, the session goes on.
    let mut offer = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    for i in 0..1000 {
        offer.push_str(&format!("a={}\r\n", candidate(i)));
    }
    ws.send(json!({"type": "offer", "sdp": offer})).await;
    ws.expect_error("tooManyCandidates").await;
    ws.assert_alive().await;
    // Trickled: the first 64 distinct ones are taken (repeats count once), the 65th is not.
    for i in 0..64 {
        ws.send(json!({"type": "candidate", "candidate": candidate(i)}))
            .await;
        ws.send(json!({"type": "candidate", "candidate": candidate(i)}))
            .await;
    }
    ws.assert_alive().await;
    ws.send(json!({"type": "candidate", "candidate": candidate(64)}))
        .await;
    ws.expect_error("tooManyCandidates").await;
    ws.assert_alive().await;
    app.stop().await;
}

/// Read from `stream` until the server closes it; what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection within 10 s")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_and_oversized_requests_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(|s| {
        s.http.header_read_timeout = Duration::from_secs(1);
        s.http.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    // Headers that never end: the connection is closed.
    let mut slow_headers = tokio::net::TcpStream::connect(app.http).await.unwrap();
    slow_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut slow_headers).await;
    // A connection that sends nothing at all, too.
    let mut silent = tokio::net::TcpStream::connect(app.http).await.unwrap();
    read_until_closed(&mut silent).await;
    // And one that sends only the start of an HTTP/2 preface.
    let mut preface = tokio::net::TcpStream::connect(app.http).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    read_until_closed(&mut preface).await;
    // And a kept-alive connection that asks nothing more.
    let mut idle = tokio::net::TcpStream::connect(app.http).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = read_until_closed(&mut idle).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // A body that never completes: 408, a problem document.
    let mut slow_body = tokio::net::TcpStream::connect(app.http).await.unwrap();
    slow_body
        .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":")
        .await
        .unwrap();
    let response = read_until_closed(&mut slow_body).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(response.contains("\"code\":\"body_timeout\""), "{response}");

    // A declared body over the limit: 413 at once, before any of it is sent.
    let mut big = tokio::net::TcpStream::connect(app.http).await.unwrap();
    big.write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
        .await
        .unwrap();
    let response = read_until_closed(&mut big).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("\"code\":\"body_too_large\""),
        "{response}"
    );

    // The same over the limit without a length (chunked): 413, a problem document too.
    let chunked = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/integrations/yookassa/notifications",
            app.http
        ))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            (0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status().as_u16(), 413);
    assert_eq!(
        chunked.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(|s| {
        s.http.max_connections = 2;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(app.http).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    let client = reqwest::Client::new();
    let url = format!("http://{}/healthz", app.http);
    let waiting = tokio::time::timeout(Duration::from_secs(2), client.get(&url).send()).await;
    assert!(waiting.is_err(), "served beyond the cap: {waiting:?}");
    // One of the two goes away: the next request is served.
    drop(held.pop());
    let served = tokio::time::timeout(Duration::from_secs(10), client.get(&url).send())
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    drop(held);
    app.stop().await;
}

/// The clinic cancels consultation `id`.
async fn cancel(app: &TestApp, id: &vizit_api::domain::ConsultationId) {
    use vizit_api::consultations::{TransitionData, transition};
    use vizit_api::domain::{CancelledBy, Transition};
    transition(
        &app.api.core(),
        None,
        id,
        Transition::Cancel(CancelledBy::Clinic),
        TransitionData::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_cancelled_consultation_ends_its_call_and_its_tokens_stop_admitting() {
    let app = TestApp::spawn().await;
    let tokens = |call: &vizit_api::demo::DemoCall| {
        (
            app.keys.issue_for_consultation(
                call.consultation_id.as_str(),
                call.doctor_id.as_str(),
                CallRole::Doctor,
                "Врач",
                Duration::from_secs(600),
                call.starts_at as u64,
            ),
            app.keys.issue_for_consultation(
                call.consultation_id.as_str(),
                call.patient_id.as_str(),
                CallRole::Patient,
                "Пациент",
                Duration::from_secs(600),
                call.starts_at as u64,
            ),
        )
    };

    // A live call; the clinic cancels the consultation.
    let call = vizit_api::demo::demo_call(&app.api).await.unwrap();
    let (doctor_token, patient_token) = tokens(&call);
    let mut doctor = app.ws().await;
    doctor.join(&doctor_token).await;
    let mut patient = app.ws().await;
    patient.join(&patient_token).await;
    doctor.expect("participantJoined").await;
    cancel(&app, &call.consultation_id).await;
    for ws in [&mut doctor, &mut patient] {
        let closed = loop {
            let m = ws.recv().await.expect("told before the socket closes");
            if m["type"] == "roomClosed" {
                break m;
            }
            assert_eq!(m["type"], "participantLeft", "{m}");
        };
        assert_eq!(closed["reason"], "callEnded");
        ws.expect_closed().await;
    }
    // The tokens, still within their lifetime, no longer admit.
    let mut again = app.ws().await;
    again
        .send(json!({"type": "join", "version": 1, "token": patient_token}))
        .await;
    let refused = again.expect_error("callUnavailable").await;
    assert!(
        refused["message"].as_str().unwrap().contains("cancelled"),
        "{refused}"
    );
    again.expect_closed().await;

    // A doctor disabled after the token was issued cannot join either; the patient still can.
    let call = vizit_api::demo::demo_call(&app.api).await.unwrap();
    let (doctor_token, patient_token) = tokens(&call);
    sqlx::query("UPDATE users SET disabled_at = 1 WHERE id = $1")
        .bind(call.doctor_id.as_str())
        .execute(&app.api.db.pool)
        .await
        .unwrap();
    let mut doctor = app.ws().await;
    doctor
        .send(json!({"type": "join", "version": 1, "token": doctor_token}))
        .await;
    doctor.expect_error("callUnavailable").await;
    let mut patient = app.ws().await;
    patient.join(&patient_token).await;
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_the_token_and_name_rooms_only_when_asked() {
    let app = TestApp::spawn_with(|s| {
        s.metrics.token = Some(secrecy::SecretString::from(
            "metrics-token-0123456789".to_owned(),
        ));
    })
    .await;
    let mut ws = app.ws().await;
    ws.join(&app.token("counted", "d", CallRole::Doctor)).await;
    let url = format!("http://{}/metrics", app.http);
    let http = reqwest::Client::new();
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let text = http
        .get(&url)
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\nvizit_rooms 1\n"), "{text}");
    assert!(text.contains("\nvizit_participants 1\n"), "{text}");
    assert!(text.contains("\nvizit_signaling_sockets 1\n"), "{text}");
    assert!(
        !text.contains("counted"),
        "no room id without metrics.per_room: {text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn data_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let app = TestApp::spawn().await;
    // A write, so the database has its WAL.
    vizit_api::demo::demo_call(&app.api).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(app.data_dir()), 0o700);
    for name in ["vizit.db", "vizit.db-wal"] {
        let path = app.data_dir().join(name);
        assert_eq!(mode(&path) & 0o077, 0, "{name} is {:o}", mode(&path));
    }
    app.stop().await;
}

#[tokio::test]
async fn without_a_token_metrics_are_for_local_unforwarded_clients() {
    let app = TestApp::spawn().await;
    let url = format!("http://{}/metrics", app.http);
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 200);
    // What a reverse proxy on this host passes on comes from loopback too: refused.
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let forwarded = http
            .get(&url)
            .header(header, "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(forwarded.status().as_u16(), 403, "{header}");
    }
    app.stop().await;
}

/// With the waiting room on, a patient's join waits — nothing of theirs reaches the call — until
/// the room's doctor admits them; then they go straight in on every later join. A patient and
/// another room's doctor cannot admit, a patient who gives up leaves the doctor's list.
#[tokio::test]
async fn a_patient_waits_in_the_waiting_room_until_the_doctor_admits_them() {
    let app = TestApp::spawn_with(|s| s.signaling.waiting_room = true).await;
    let join = |token: String| json!({"type": "join", "version": 1, "token": token});

    let mut patient = app.ws().await;
    patient
        .send(join(app.token("room-w", "patient", CallRole::Patient)))
        .await;
    let waiting = patient.expect("waitingRoom").await;
    assert!(
        waiting.get("startsAt").is_none(),
        "not a consultation: {waiting}"
    );
    patient.send(json!({"type": "offer", "sdp": "v=0"})).await;
    patient.expect_error("inWaitingRoom").await;
    patient.assert_alive().await;

    // Another room's doctor cannot let them in.
    let mut stranger = app.ws().await;
    stranger
        .join(&app.token("room-x", "doctor-x", CallRole::Doctor))
        .await;
    stranger
        .send(json!({"type": "admit", "participantId": "patient"}))
        .await;
    stranger.expect_error("notWaiting").await;

    // The doctor comes: the patient is not in the room, but on the list.
    let mut doctor = app.ws().await;
    let joined = doctor
        .join(&app.token("room-w", "doctor", CallRole::Doctor))
        .await;
    assert_eq!(joined["participants"], json!([]), "{joined}");
    let list = doctor.expect("waiting").await;
    assert_eq!(
        list["participants"][0]["participantId"], "patient",
        "{list}"
    );
    assert_eq!(list["participants"][0]["name"], "patient", "{list}");
    assert!(list["participants"][0]["since"].as_u64().unwrap() > 0);

    // A second patient waits, then gives up: off the list again.
    let mut quitter = app.ws().await;
    quitter
        .send(join(app.token("room-w", "patient-2", CallRole::Patient)))
        .await;
    quitter.expect("waitingRoom").await;
    let list = doctor.expect("waiting").await;
    assert_eq!(list["participants"].as_array().unwrap().len(), 2, "{list}");
    quitter.send(json!({"type": "leave"})).await;
    quitter.expect_closed().await;
    let list = doctor.expect("waiting").await;
    assert_eq!(list["participants"].as_array().unwrap().len(), 1, "{list}");

    doctor
        .send(json!({"type": "admit", "participantId": "patient"}))
        .await;
    let joined = patient.expect("joined").await;
    assert_eq!(
        joined["participants"][0]["participantId"], "doctor",
        "{joined}"
    );
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(doctor.recv().await.expect("the doctor is told"));
    }
    assert!(
        seen.iter()
            .any(|m| m["type"] == "participantJoined"
                && m["participant"]["participantId"] == "patient"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|m| m["type"] == "waiting" && m["participants"] == json!([])),
        "{seen:?}"
    );

    // In the call, a patient still cannot admit anyone.
    patient
        .send(json!({"type": "admit", "participantId": "patient-2"}))
        .await;
    patient.expect_error("forbidden").await;
    patient.assert_alive().await;

    // Admitted once: a reload goes straight in.
    patient.send(json!({"type": "leave"})).await;
    patient.expect_closed().await;
    let mut again = app.ws().await;
    again
        .join(&app.token("room-w", "patient", CallRole::Patient))
        .await;
    app.stop().await;
}

/// A consultation's token tells the waiting patient when the consultation starts; a second tab
/// of the same patient takes the wait over (`replaced`), and a cancelled consultation ends it
/// (`roomClosed`).
#[tokio::test]
async fn a_consultation_patient_waits_with_its_start_time_until_it_is_cancelled() {
    let app = TestApp::spawn_with(|s| s.signaling.waiting_room = true).await;
    let call = vizit_api::demo::demo_call(&app.api)
        .await
        .expect("demo call");
    let token = app.keys.issue_for_consultation(
        call.consultation_id.as_str(),
        call.patient_id.as_str(),
        CallRole::Patient,
        "Пациент",
        Duration::from_secs(600),
        call.starts_at as u64,
    );
    let mut patient = app.ws().await;
    patient
        .send(json!({"type": "join", "version": 1, "token": token}))
        .await;
    let waiting = patient.expect("waitingRoom").await;
    assert_eq!(waiting["startsAt"], call.starts_at, "{waiting}");

    let mut second_tab = app.ws().await;
    second_tab
        .send(json!({"type": "join", "version": 1, "token": token}))
        .await;
    second_tab.expect("waitingRoom").await;
    patient.expect_error("replaced").await;
    patient.expect_closed().await;

    cancel(&app, &call.consultation_id).await;
    let closed = second_tab.expect("roomClosed").await;
    assert_eq!(closed["reason"], "callEnded");
    second_tab.expect_closed().await;
    app.stop().await;
}
