//! Fuzzing of what a client sends over the WebSocket: every text frame goes through the
//! protocol parser and the session state machine, before and after joining. Nothing may panic
//! (bounded; see `vizit-fuzzkit`).

use std::time::Duration;

use secrecy::SecretString;
use vizit_fuzzkit::Fuzz;
use vizit_media::ParticipantKey;
use vizit_signaling::{Action, CallRole, ServerMessage, Session, TokenKeys};

#[test]
fn client_frames() {
    let keys = TokenKeys::new(&SecretString::from(
        "fuzz-secret-fuzz-secret-fuzz-secret-01".to_owned(),
    ))
    .unwrap();
    let token = keys.issue(
        "room",
        "p1",
        CallRole::Patient,
        "Пациент",
        Duration::from_secs(3600),
    );
    let join = format!(r#"{{"type":"join","version":1,"token":"{token}"}}"#);
    let seeds: Vec<&[u8]> = vec![
        join.as_bytes(),
        br#"{"type":"offer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}"#,
        br#"{"type":"answer","sdp":"v=0\r\n"}"#,
        br#"{"type":"candidate","candidate":"candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host","sdpMid":"0"}"#,
        br#"{"type":"mute","kind":"video","muted":true}"#,
        br#"{"type":"ping","nonce":17}"#,
        br#"{"type":"recordingConsent","consent":true}"#,
        br#"{"type":"recording","action":"start"}"#,
        br#"{"type":"leave"}"#,
    ];
    Fuzz::new("signaling", &seeds).run(|bytes| {
        let text = String::from_utf8_lossy(bytes);
        let mut session = Session::new();
        for _ in 0..2 {
            match session.handle_text(&text, &keys) {
                Action::Join(claims) => {
                    assert_eq!(claims.room, "room", "only the signed token's claims");
                    session.joined(ParticipantKey::test(1));
                }
                Action::Reply(ServerMessage::Error { code, .. }) => {
                    let _ = code.is_fatal();
                }
                _ => {}
            }
        }
    });
}
