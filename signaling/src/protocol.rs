//! The wire protocol, version 1 (documented with an example per message in `docs/signaling.md`).

use serde::{Deserialize, Serialize};
use vizit_media::{
    LeaveReason, NetworkQuality, ParticipantId, ParticipantInfo, RecordingMode, RecordingPhase,
    TrackKind,
};

use crate::lobby::WaiterView;
use crate::token::CallRole;
use crate::turn::IceServer;

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest client frame accepted; an SDP of a 1:1 call is a few KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A message from the browser.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ClientMessage {
    Join {
        version: u32,
        token: String,
    },
    /// Take the session of a lost socket back (`resumeToken` from `joined` or `resumed`), on a
    /// new socket, instead of joining anew. The join token is checked again.
    Resume {
        version: u32,
        token: String,
        resume_token: String,
    },
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
    },
    Mute {
        kind: TrackKind,
        muted: bool,
    },
    Ping {
        #[serde(default)]
        nonce: Option<u64>,
    },
    /// Give (`true`) or withdraw (`false`) consent to the call being recorded.
    RecordingConsent {
        consent: bool,
    },
    /// The doctor starts or stops the recording.
    Recording {
        action: RecordingAction,
    },
    /// Start (`true`) or stop showing the screen: the next video track the client adds besides
    /// its camera's is the screen.
    ScreenShare {
        sharing: bool,
    },
    /// How well the sender's link carries the call, as its page judges it.
    Quality {
        level: NetworkQuality,
    },
    /// The sender's link cannot carry video (`true`): it stops sending video and the server
    /// stops forwarding it any; `false` when the link recovered.
    AudioOnly {
        on: bool,
    },
    /// The doctor lets a patient out of the waiting room into the call.
    Admit {
        participant_id: String,
    },
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordingAction {
    Start,
    Stop,
}

/// The `type` of every [`ClientMessage`], to tell an unknown type from a malformed known one.
const CLIENT_TYPES: &[&str] = &[
    "join",
    "resume",
    "offer",
    "answer",
    "candidate",
    "mute",
    "ping",
    "recordingConsent",
    "recording",
    "screenShare",
    "quality",
    "audioOnly",
    "admit",
    "leave",
];

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

impl ClientMessage {
    /// Parse one text frame, with the protocol error a client should get if it is wrong.
    pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::new(
                ErrorCode::TooLarge,
                format!(
                    "message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}",
                    text.len()
                ),
            ));
        }
        let envelope: Envelope = serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(
                ErrorCode::BadMessage,
                format!("not a JSON object with a \"type\": {e}"),
            )
        })?;
        if !CLIENT_TYPES.contains(&envelope.kind.as_str()) {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                format!("unknown message type {:?}", truncate(&envelope.kind, 40)),
            ));
        }
        serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(
                ErrorCode::BadMessage,
                format!("invalid {:?} message: {e}", envelope.kind),
            )
        })
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// How a participant appears to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub participant_id: ParticipantId,
    pub role: CallRole,
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// Shows its screen (as a second video track).
    pub screen_sharing: bool,
    /// Its link, as its page last said; absent until it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<NetworkQuality>,
    /// Its link cannot carry video: it sends none and gets none.
    pub audio_only: bool,
}

impl PeerView {
    /// `None` for participants the browser must not see (recorders).
    pub fn from_info(info: &ParticipantInfo) -> Option<PeerView> {
        Some(PeerView {
            participant_id: info.id.clone(),
            role: CallRole::from_media(info.role)?,
            name: info.name.clone(),
            audio_muted: info.audio_muted,
            video_muted: info.video_muted,
            screen_sharing: info.screen_sharing,
            quality: info.quality,
            audio_only: info.audio_only,
        })
    }
}

/// Why a room closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CloseReason {
    ServerShutdown,
    /// The consultation was cancelled or closed: there is nothing to rejoin.
    CallEnded,
}

/// A message to the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    Joined {
        version: u32,
        participant_id: ParticipantId,
        room: String,
        role: CallRole,
        name: String,
        participants: Vec<PeerView>,
        /// Presented by `resume` on a new socket, it takes this session back if the socket
        /// is lost; good once, for `resume_grace_ms` after the loss.
        resume_token: String,
        resume_grace_ms: u64,
        /// TURN servers with this join's credentials, for `RTCPeerConnection` (empty without
        /// TURN).
        ice_servers: Vec<IceServer>,
    },
    /// The patient's join waits for the doctor to admit them (the waiting room): nothing of
    /// theirs reaches anyone meanwhile. `joined` follows on admission.
    WaitingRoom {
        /// When the consultation is booked to start, Unix milliseconds (consultations only).
        #[serde(skip_serializing_if = "Option::is_none")]
        starts_at: Option<u64>,
    },
    /// To the doctor: who waits in the waiting room, longest first; after `joined` when anyone
    /// does, and on every change.
    Waiting {
        participants: Vec<WaiterView>,
    },
    /// The session of a lost socket is back on this one. Messages the server had for it
    /// meanwhile follow.
    Resumed {
        participant_id: ParticipantId,
        /// The next resume token (the one presented is spent).
        resume_token: String,
        resume_grace_ms: u64,
    },
    Answer {
        sdp: String,
    },
    Offer {
        sdp: String,
    },
    ParticipantJoined {
        participant: PeerView,
    },
    ParticipantLeft {
        participant_id: ParticipantId,
        reason: LeaveReason,
    },
    MuteChanged {
        participant_id: ParticipantId,
        kind: TrackKind,
        muted: bool,
    },
    /// Another participant started or stopped showing its screen.
    ScreenShareChanged {
        participant_id: ParticipantId,
        sharing: bool,
    },
    /// Another participant's link got better or worse.
    QualityChanged {
        participant_id: ParticipantId,
        level: NetworkQuality,
    },
    /// Another participant went to audio only (its link cannot carry video), or back.
    AudioOnlyChanged {
        participant_id: ParticipantId,
        on: bool,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
    RoomClosed {
        reason: CloseReason,
    },
    /// A track is sent in a codec its receiver did not accept: nothing of it is forwarded
    /// until the sender switches to one of `receiver_accepts`. Sent to both.
    CodecMismatch {
        kind: TrackKind,
        sender: ParticipantId,
        receiver: ParticipantId,
        codec: String,
        receiver_accepts: Vec<String>,
    },
    /// Where the room's recording stands: on join and on every change.
    Recording {
        mode: RecordingMode,
        state: RecordingPhase,
        consented: Vec<ParticipantId>,
        /// Who said no (declined, or withdrew) and has not consented since.
        declined: Vec<ParticipantId>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// Stable error codes of the `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    BadMessage,
    UnknownType,
    TooLarge,
    UnsupportedVersion,
    TokenExpired,
    TokenInvalid,
    RoomFull,
    NotJoined,
    AlreadyJoined,
    BadSdp,
    NoPendingOffer,
    ConnectionLost,
    Replaced,
    ServerShutdown,
    /// A recording command was refused (not the doctor, no consent, recording switched off).
    RecordingRefused,
    /// The socket did not join within the server's join timeout.
    JoinTimeout,
    /// The client sent messages faster than the server accepts them.
    TooManyMessages,
    /// An offer or trickled candidates went over the server's bound on ICE candidates.
    TooManyCandidates,
    /// The token is valid but no longer admits anyone: the consultation was cancelled or
    /// closed, or the account was disabled.
    CallUnavailable,
    /// A `resume` found no session to take back (unknown, spent or expired resume token, or
    /// one of another participant): `join` instead, on the same socket.
    ResumeFailed,
    /// The caller's role may not do this (a patient admitting someone).
    Forbidden,
    /// `admit` named nobody who waits in the waiting room.
    NotWaiting,
    /// The message needs a call, and the socket is still in the waiting room.
    InWaitingRoom,
    Internal,
}

impl ErrorCode {
    /// Whether the server closes the socket after this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::TooLarge
                | ErrorCode::UnsupportedVersion
                | ErrorCode::TokenExpired
                | ErrorCode::TokenInvalid
                | ErrorCode::RoomFull
                | ErrorCode::ConnectionLost
                | ErrorCode::Replaced
                | ErrorCode::ServerShutdown
                | ErrorCode::CallUnavailable
                | ErrorCode::JoinTimeout
                | ErrorCode::TooManyMessages
                | ErrorCode::Internal
        )
    }
}

/// An error to report to the client as an `error` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }

    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_client_message() {
        let cases = [
            (
                r#"{"type":"join","version":1,"token":"t"}"#,
                ClientMessage::Join {
                    version: 1,
                    token: "t".into(),
                },
            ),
            (
                r#"{"type":"offer","sdp":"v=0"}"#,
                ClientMessage::Offer { sdp: "v=0".into() },
            ),
            (
                r#"{"type":"answer","sdp":"v=0"}"#,
                ClientMessage::Answer { sdp: "v=0".into() },
            ),
            (
                r#"{"type":"candidate","candidate":"candidate:1 1 udp 1 192.0.2.1 5 typ host","sdpMid":"0"}"#,
                ClientMessage::Candidate {
                    candidate: "candidate:1 1 udp 1 192.0.2.1 5 typ host".into(),
                    sdp_mid: Some("0".into()),
                },
            ),
            (
                r#"{"type":"mute","kind":"video","muted":true}"#,
                ClientMessage::Mute {
                    kind: TrackKind::Video,
                    muted: true,
                },
            ),
            (
                r#"{"type":"ping","nonce":17}"#,
                ClientMessage::Ping { nonce: Some(17) },
            ),
            (
                r#"{"type":"recordingConsent","consent":true}"#,
                ClientMessage::RecordingConsent { consent: true },
            ),
            (
                r#"{"type":"recording","action":"stop"}"#,
                ClientMessage::Recording {
                    action: RecordingAction::Stop,
                },
            ),
            (
                r#"{"type":"admit","participantId":"p-1"}"#,
                ClientMessage::Admit {
                    participant_id: "p-1".into(),
                },
            ),
            (
                r#"{"type":"screenShare","sharing":true}"#,
                ClientMessage::ScreenShare { sharing: true },
            ),
            (
                r#"{"type":"quality","level":"poor"}"#,
                ClientMessage::Quality {
                    level: NetworkQuality::Poor,
                },
            ),
            (
                r#"{"type":"audioOnly","on":true}"#,
                ClientMessage::AudioOnly { on: true },
            ),
            (r#"{"type":"leave"}"#, ClientMessage::Leave),
        ];
        for (text, expected) in cases {
            assert_eq!(ClientMessage::parse(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn tells_bad_json_unknown_type_wrong_fields_and_size_apart() {
        let code = |text: &str| ClientMessage::parse(text).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"sdp":"x"}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"join","version":"one","token":"t"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"mute","kind":"smell","muted":true}"#),
            ErrorCode::BadMessage
        );
        let huge = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(&huge), ErrorCode::TooLarge);
    }

    #[test]
    fn server_messages_use_documented_names() {
        let msg = ServerMessage::ParticipantLeft {
            participant_id: ParticipantId::new("p-1"),
            reason: LeaveReason::ConnectionLost,
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"participantLeft","participantId":"p-1","reason":"connectionLost"}"#
        );
        let err = ProtocolError::new(ErrorCode::RoomFull, "full").to_message();
        assert_eq!(
            err.to_json(),
            r#"{"type":"error","code":"roomFull","message":"full"}"#
        );
        assert_eq!(
            ServerMessage::Pong { nonce: Some(3) }.to_json(),
            r#"{"type":"pong","nonce":3}"#
        );
        assert_eq!(
            ServerMessage::Recording {
                mode: RecordingMode::Auto,
                state: RecordingPhase::Paused,
                consented: vec![ParticipantId::new("p-1")],
                declined: vec![ParticipantId::new("d-1")],
            }
            .to_json(),
            r#"{"type":"recording","mode":"auto","state":"paused","consented":["p-1"],"declined":["d-1"]}"#
        );
        assert_eq!(
            ServerMessage::CodecMismatch {
                kind: TrackKind::Video,
                sender: ParticipantId::new("d-1"),
                receiver: ParticipantId::new("p-1"),
                codec: "VP8".into(),
                receiver_accepts: vec!["H264".into()],
            }
            .to_json(),
            r#"{"type":"codecMismatch","kind":"video","sender":"d-1","receiver":"p-1","codec":"VP8","receiverAccepts":["H264"]}"#
        );
        assert_eq!(
            ServerMessage::WaitingRoom {
                starts_at: Some(1_800_000_000_000)
            }
            .to_json(),
            r#"{"type":"waitingRoom","startsAt":1800000000000}"#
        );
        assert_eq!(
            ServerMessage::Waiting {
                participants: vec![WaiterView {
                    participant_id: ParticipantId::new("p-1"),
                    name: "Пациент".into(),
                    since: 5,
                }]
            }
            .to_json(),
            r#"{"type":"waiting","participants":[{"participantId":"p-1","name":"Пациент","since":5}]}"#
        );
    }
}
