//! Who a participant is, as the others (and the recorder) see it: [`ParticipantInfo`], its
//! [`Role`] in the call, and the [`TrackKind`]s the signaling protocol names.

use std::fmt;

use str0m::media::MediaKind;

use crate::ids::ParticipantId;

/// Who a participant is in the call. `Recorder` is a server-side consumer (later issues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Doctor,
    Patient,
    Recorder,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Patient => "patient",
            Role::Recorder => "recorder",
        }
    }
}

/// The kind of a track, as the signaling protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackKind {
    Audio,
    Video,
}

impl From<MediaKind> for TrackKind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Video => TrackKind::Video,
        }
    }
}

impl TrackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }
}

/// How well a participant's link carries the call, as its own page judges it from its
/// connection's statistics (round trip, loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetworkQuality {
    Good,
    Fair,
    Poor,
}

/// What the others see of a participant.
#[derive(Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    /// Display name: personal data, so `Debug` redacts it.
    pub name: String,
    pub role: Role,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// Shows its screen: its next video track besides the camera's is the screen.
    pub screen_sharing: bool,
    /// Its link, as its page last said (none yet).
    pub quality: Option<NetworkQuality>,
    /// Its link cannot carry video: it sends none, and the SFU forwards it none (audio only),
    /// until its page says the link recovered.
    pub audio_only: bool,
    /// Joined a room that may be recorded (a consultation's). A room is recordable while every
    /// person in it joined so.
    pub recordable: bool,
}

impl fmt::Debug for ParticipantInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParticipantInfo")
            .field("id", &self.id)
            .field("name", &"<redacted>")
            .field("role", &self.role)
            .field("audio_muted", &self.audio_muted)
            .field("video_muted", &self.video_muted)
            .field("screen_sharing", &self.screen_sharing)
            .field("quality", &self.quality)
            .field("audio_only", &self.audio_only)
            .field("recordable", &self.recordable)
            .finish()
    }
}
