//! What the SFU tells one participant's session ([`Signal`]), and why a participant left a
//! room ([`LeaveReason`]).

use crate::ids::ParticipantId;
use crate::info::{NetworkQuality, ParticipantInfo, TrackKind};
use crate::recording::RecordingStatus;

/// A message from the SFU to one participant's session.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// A server-initiated SDP offer (another participant's tracks came or went).
    Offer(String),
    ParticipantJoined(ParticipantInfo),
    ParticipantLeft {
        id: ParticipantId,
        reason: LeaveReason,
    },
    MuteChanged {
        id: ParticipantId,
        kind: TrackKind,
        muted: bool,
    },
    /// Another participant started or stopped showing its screen.
    ScreenShareChanged {
        id: ParticipantId,
        sharing: bool,
    },
    /// Another participant's link got better or worse.
    QualityChanged {
        id: ParticipantId,
        quality: NetworkQuality,
    },
    /// Another participant went to audio only (its link cannot carry video), or back.
    AudioOnlyChanged {
        id: ParticipantId,
        on: bool,
    },
    /// The room's recording state changed (sent on join, too).
    Recording(RecordingStatus),
    /// This session was removed from its room; nothing more will follow.
    Closed(LeaveReason),
    /// A track cannot reach a receiver: it is sent in a codec the receiver did not accept.
    /// Told to both, once per track and codec.
    CodecMismatch(CodecMismatch),
}

/// One party sends a track in a codec the other did not accept: nothing of it is forwarded
/// until the sender switches to one of `receiver_accepts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecMismatch {
    pub kind: TrackKind,
    pub sender: ParticipantId,
    pub receiver: ParticipantId,
    /// The codec sent, by its SDP name (`VP8`, `H264`, `opus`).
    pub codec: String,
    /// The codecs of this kind the receiver accepted, by their SDP names.
    pub receiver_accepts: Vec<String>,
}

/// Why a participant left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LeaveReason {
    /// Hung up or closed the socket.
    Hangup,
    /// Its media path went silent.
    ConnectionLost,
    /// The same participant joined again from another session.
    Replaced,
    /// The server is stopping.
    ServerShutdown,
    /// The consultation was cancelled, closed or expired: the room is over for good.
    CallEnded,
}
