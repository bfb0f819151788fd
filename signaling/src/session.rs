//! The per-connection session state machine, without sockets: it turns client frames into the
//! action to take and SFU signals into messages for the client. `ws.rs` drives it.

use vizit_media::{LeaveReason, ParticipantKey, Signal, TrackKind};

use crate::protocol::{
    ClientMessage, CloseReason, ErrorCode, PROTOCOL_VERSION, PeerView, ProtocolError,
    RecordingAction, ServerMessage,
};
use crate::token::{JoinClaims, TokenError, TokenKeys};

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    AwaitingJoin,
    /// In the waiting room: a verified join the doctor has not admitted yet.
    Waiting,
    Joined(ParticipantKey),
    Closed,
}

/// What the driver must do for one client frame.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Admit the verified participant to its room.
    Join(JoinClaims),
    /// Give the verified participant the session parked under this resume token.
    Resume(JoinClaims, String),
    Offer(String),
    Answer(String),
    Candidate(String),
    Mute(TrackKind, bool),
    /// Give (`true`) or withdraw consent to recording.
    Consent(bool),
    /// Start (`true`) or stop the recording (the doctor).
    Recording(bool),
    /// Let this participant out of the waiting room (the doctor).
    Admit(String),
    /// Start (`true`) or stop showing the screen.
    ScreenShare(bool),
    /// The page judged its link.
    Quality(vizit_media::NetworkQuality),
    /// The page's link cannot carry video (`true`), or can again.
    AudioOnly(bool),
    /// Hang up: leave the room and close the socket.
    Leave,
    /// Send this message (a `pong`, or an `error`); close the socket if the error is fatal.
    Reply(ServerMessage),
}

/// What the driver must do for one SFU signal.
#[derive(Debug, PartialEq)]
pub struct Delivery {
    pub message: Option<ServerMessage>,
    pub close: bool,
}

#[derive(Debug)]
pub struct Session {
    state: SessionState,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Session {
            state: SessionState::AwaitingJoin,
        }
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    pub fn key(&self) -> Option<ParticipantKey> {
        match self.state {
            SessionState::Joined(key) => Some(key),
            _ => None,
        }
    }

    /// The SFU admitted the participant.
    pub fn joined(&mut self, key: ParticipantKey) {
        self.state = SessionState::Joined(key);
    }

    /// The join waits in the waiting room.
    pub fn waiting(&mut self) {
        self.state = SessionState::Waiting;
    }

    pub fn close(&mut self) {
        self.state = SessionState::Closed;
    }

    /// Decide what one client text frame means in the current state.
    pub fn handle_text(&mut self, text: &str, keys: &TokenKeys) -> Action {
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err(e) => return error(e),
        };
        match (&self.state, message) {
            (SessionState::Closed, _) => error(ProtocolError::new(
                ErrorCode::NotJoined,
                "the session has ended",
            )),
            (_, ClientMessage::Ping { nonce }) => Action::Reply(ServerMessage::Pong { nonce }),
            (SessionState::AwaitingJoin, ClientMessage::Join { version, token }) => {
                match verify(version, &token, keys) {
                    Ok(claims) => Action::Join(claims),
                    Err(e) => error(e),
                }
            }
            (
                SessionState::AwaitingJoin,
                ClientMessage::Resume {
                    version,
                    token,
                    resume_token,
                },
            ) => match verify(version, &token, keys) {
                Ok(claims) => Action::Resume(claims, resume_token),
                Err(e) => error(e),
            },
            (
                SessionState::Joined(_) | SessionState::Waiting,
                ClientMessage::Join { .. } | ClientMessage::Resume { .. },
            ) => error(ProtocolError::new(
                ErrorCode::AlreadyJoined,
                "this socket has already joined a room",
            )),
            (SessionState::AwaitingJoin, _) => error(ProtocolError::new(
                ErrorCode::NotJoined,
                "send \"join\" with a token first",
            )),
            (SessionState::Waiting, ClientMessage::Leave) => Action::Leave,
            (SessionState::Waiting, _) => error(ProtocolError::new(
                ErrorCode::InWaitingRoom,
                "you are in the waiting room: the doctor has not admitted you yet",
            )),
            (SessionState::Joined(_), message) => match message {
                ClientMessage::Offer { sdp } => Action::Offer(sdp),
                ClientMessage::Answer { sdp } => Action::Answer(sdp),
                ClientMessage::Candidate { candidate, .. } => Action::Candidate(candidate),
                ClientMessage::Mute { kind, muted } => Action::Mute(kind, muted),
                ClientMessage::RecordingConsent { consent } => Action::Consent(consent),
                ClientMessage::Recording { action } => {
                    Action::Recording(action == RecordingAction::Start)
                }
                ClientMessage::Admit { participant_id } => Action::Admit(participant_id),
                ClientMessage::ScreenShare { sharing } => Action::ScreenShare(sharing),
                ClientMessage::Quality { level } => Action::Quality(level),
                ClientMessage::AudioOnly { on } => Action::AudioOnly(on),
                ClientMessage::Leave => Action::Leave,
                ClientMessage::Join { .. }
                | ClientMessage::Resume { .. }
                | ClientMessage::Ping { .. } => {
                    unreachable!("matched above")
                }
            },
        }
    }

    /// Turn a signal of the SFU into what the client must hear.
    pub fn handle_signal(&mut self, signal: Signal) -> Delivery {
        let deliver = |message| Delivery {
            message: Some(message),
            close: false,
        };
        match signal {
            Signal::Offer(sdp) => deliver(ServerMessage::Offer { sdp }),
            Signal::ParticipantJoined(info) => match PeerView::from_info(&info) {
                Some(participant) => deliver(ServerMessage::ParticipantJoined { participant }),
                None => Delivery {
                    message: None,
                    close: false,
                },
            },
            Signal::ParticipantLeft { id, reason } => deliver(ServerMessage::ParticipantLeft {
                participant_id: id,
                reason,
            }),
            Signal::MuteChanged { id, kind, muted } => deliver(ServerMessage::MuteChanged {
                participant_id: id,
                kind,
                muted,
            }),
            Signal::ScreenShareChanged { id, sharing } => {
                deliver(ServerMessage::ScreenShareChanged {
                    participant_id: id,
                    sharing,
                })
            }
            Signal::QualityChanged { id, quality } => deliver(ServerMessage::QualityChanged {
                participant_id: id,
                level: quality,
            }),
            Signal::AudioOnlyChanged { id, on } => deliver(ServerMessage::AudioOnlyChanged {
                participant_id: id,
                on,
            }),
            Signal::CodecMismatch(m) => deliver(ServerMessage::CodecMismatch {
                kind: m.kind,
                sender: m.sender,
                receiver: m.receiver,
                codec: m.codec,
                receiver_accepts: m.receiver_accepts,
            }),
            Signal::Recording(status) => deliver(ServerMessage::Recording {
                mode: status.mode,
                state: status.phase,
                consented: status.consented,
                declined: status.declined,
            }),
            Signal::Closed(reason) => {
                self.state = SessionState::Closed;
                let message = match reason {
                    LeaveReason::ServerShutdown => ServerMessage::RoomClosed {
                        reason: CloseReason::ServerShutdown,
                    },
                    LeaveReason::CallEnded => ServerMessage::RoomClosed {
                        reason: CloseReason::CallEnded,
                    },
                    LeaveReason::Replaced => ProtocolError::new(
                        ErrorCode::Replaced,
                        "the same participant joined from another tab or device",
                    )
                    .to_message(),
                    LeaveReason::ConnectionLost | LeaveReason::Hangup => ProtocolError::new(
                        ErrorCode::ConnectionLost,
                        "the media connection was lost; join again",
                    )
                    .to_message(),
                };
                Delivery {
                    message: Some(message),
                    close: true,
                }
            }
        }
    }
}

/// The claims of a join token presented with protocol `version`, or the error for the client.
fn verify(version: u32, token: &str, keys: &TokenKeys) -> Result<JoinClaims, ProtocolError> {
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!("this server speaks protocol version {PROTOCOL_VERSION}, not {version}"),
        ));
    }
    keys.verify(token).map_err(|e| match e {
        TokenError::Expired => ProtocolError::new(
            ErrorCode::TokenExpired,
            "the join token has expired; ask for a new link",
        ),
        TokenError::Invalid(why) => ProtocolError::new(
            ErrorCode::TokenInvalid,
            format!("the join token is invalid ({why})"),
        ),
    })
}

fn error(e: ProtocolError) -> Action {
    Action::Reply(e.to_message())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;
    use vizit_media::{ParticipantId, ParticipantInfo, Role};

    use super::*;
    use crate::token::CallRole;

    fn keys() -> TokenKeys {
        TokenKeys::new(&SecretString::from(
            "0123456789abcdef0123456789abcdef".to_owned(),
        ))
        .unwrap()
    }

    fn code_of(action: Action) -> ErrorCode {
        match action {
            Action::Reply(ServerMessage::Error { code, .. }) => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn only_ping_and_join_before_joining() {
        let k = keys();
        let mut s = Session::new();
        assert_eq!(
            code_of(s.handle_text(r#"{"type":"offer","sdp":"v=0"}"#, &k)),
            ErrorCode::NotJoined
        );
        assert_eq!(
            code_of(s.handle_text(r#"{"type":"leave"}"#, &k)),
            ErrorCode::NotJoined
        );
        assert_eq!(
            s.handle_text(r#"{"type":"ping","nonce":5}"#, &k),
            Action::Reply(ServerMessage::Pong { nonce: Some(5) })
        );
        assert_eq!(s.state(), &SessionState::AwaitingJoin);
    }

    #[test]
    fn in_the_waiting_room_only_ping_and_leave() {
        let k = keys();
        let mut s = Session::new();
        s.waiting();
        for text in [
            r#"{"type":"offer","sdp":"v=0"}"#,
            r#"{"type":"mute","kind":"audio","muted":true}"#,
            r#"{"type":"admit","participantId":"p"}"#,
        ] {
            assert_eq!(
                code_of(s.handle_text(text, &k)),
                ErrorCode::InWaitingRoom,
                "{text}"
            );
        }
        let token = k.issue("r", "p", CallRole::Patient, "P", Duration::from_secs(60));
        let join = format!(r#"{{"type":"join","version":1,"token":"{token}"}}"#);
        assert_eq!(code_of(s.handle_text(&join, &k)), ErrorCode::AlreadyJoined);
        assert_eq!(
            s.handle_text(r#"{"type":"ping"}"#, &k),
            Action::Reply(ServerMessage::Pong { nonce: None })
        );
        assert_eq!(s.handle_text(r#"{"type":"leave"}"#, &k), Action::Leave);
    }

    #[test]
    fn join_checks_version_and_token() {
        let k = keys();
        let mut s = Session::new();
        let token = k.issue("r", "p", CallRole::Doctor, "D", Duration::from_secs(60));
        let v2 = format!(r#"{{"type":"join","version":2,"token":"{token}"}}"#);
        assert_eq!(
            code_of(s.handle_text(&v2, &k)),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            code_of(s.handle_text(r#"{"type":"join","version":1,"token":"x.y.z"}"#, &k)),
            ErrorCode::TokenInvalid
        );
        let ok = format!(r#"{{"type":"join","version":1,"token":"{token}"}}"#);
        let Action::Join(claims) = s.handle_text(&ok, &k) else {
            panic!("expected a join")
        };
        assert_eq!(claims.room, "r");
        s.joined(ParticipantKey::test(1));
        assert_eq!(code_of(s.handle_text(&ok, &k)), ErrorCode::AlreadyJoined);
        assert_eq!(
            s.handle_text(r#"{"type":"answer","sdp":"v=0"}"#, &k),
            Action::Answer("v=0".into())
        );
        assert_eq!(s.handle_text(r#"{"type":"leave"}"#, &k), Action::Leave);
    }

    #[test]
    fn signals_become_messages_and_closing_ones_close() {
        let mut s = Session::new();
        s.joined(ParticipantKey::test(1));
        let recorder = ParticipantInfo {
            id: ParticipantId::new("rec"),
            name: String::new(),
            role: Role::Recorder,
            audio_muted: false,
            video_muted: false,
            screen_sharing: false,
            quality: None,
            audio_only: false,
            recordable: false,
        };
        assert_eq!(
            s.handle_signal(Signal::ParticipantJoined(recorder)),
            Delivery {
                message: None,
                close: false
            },
            "recorders are invisible to browsers"
        );
        let closed = s.handle_signal(Signal::Closed(LeaveReason::ConnectionLost));
        assert!(closed.close);
        assert!(matches!(
            closed.message,
            Some(ServerMessage::Error {
                code: ErrorCode::ConnectionLost,
                ..
            })
        ));
        assert_eq!(s.state(), &SessionState::Closed);
    }
}
