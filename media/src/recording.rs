//! Recording inside the SFU: who consented, whether the room is being recorded, and the tap that
//! hands every forwarded frame of the room to the recorder.
//!
//! The policy is small and lives with the room it governs: a room is recorded only while a doctor
//! and a patient are both in it (a party reconnecting on the same session is still in it) and
//! both have consented; in [`RecordingMode::Auto`] it starts as soon as that holds, in
//! [`RecordingMode::Doctor`] when the doctor also asks for it. A withdrawn consent, the doctor's
//! stop, or the end of the room stops it; a party leaving pauses it (the file ends; a new one
//! starts when both are back). The recorder itself (GStreamer, files, catalogue) lives outside the SFU behind
//! [`TapFactory`] / [`MediaTap`]: the media loop only hands over reference-counted frames and never
//! waits for a disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::{ParticipantId, ParticipantInfo, ParticipantKey, Role, RoomId, TrackKind};

/// When a room is recorded (a clinic setting).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum RecordingMode {
    /// Never.
    Off,
    /// As soon as both parties have consented.
    #[default]
    Auto,
    /// When both parties have consented and the doctor starts it.
    Doctor,
}

/// Where a room's recording stands, as both parties see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordingPhase {
    /// Recording is switched off for this clinic.
    Off,
    /// Waiting for both parties' consent.
    AwaitingConsent,
    /// Both consented; waiting for the doctor to start (doctor mode, or after the doctor stopped).
    AwaitingStart,
    Recording,
    /// It would record, but one party is not in the call: it goes on when both are back.
    Paused,
}

/// What the call page shows about recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingStatus {
    pub mode: RecordingMode,
    pub phase: RecordingPhase,
    /// Participants whose consent is given (and not withdrawn).
    pub consented: Vec<ParticipantId>,
    /// Participants whose last answer was no (declined, or withdrew).
    pub declined: Vec<ParticipantId>,
}

/// Why a recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    /// Everyone left: the call is over.
    RoomEnded,
    /// A party withdrew consent.
    ConsentWithdrawn,
    /// The doctor stopped it.
    Stopped,
    /// A party left the call: paused until both are back (a new recording then).
    PartyLeft,
    /// The server is stopping.
    ServerShutdown,
}

/// A codec as the recorder needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapCodec {
    Opus,
    Vp8,
    H264,
    Other,
}

impl From<str0m::format::Codec> for TapCodec {
    fn from(c: str0m::format::Codec) -> Self {
        match c {
            str0m::format::Codec::Opus => TapCodec::Opus,
            str0m::format::Codec::Vp8 => TapCodec::Vp8,
            str0m::format::Codec::H264 => TapCodec::H264,
            _ => TapCodec::Other,
        }
    }
}

/// One frame of one participant's track, put together from the forwarded packets.
#[derive(Clone)]
pub struct TapFrame {
    /// The participant's session the frame came through: a reconnect (same participant, new
    /// session) starts new RTP clocks and a new encoder.
    pub transport: ParticipantKey,
    pub kind: TrackKind,
    pub codec: TapCodec,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// Media time (the RTP timestamp, unwrapped) in units of `clock_rate`.
    pub rtp_time: u64,
    pub clock_rate: u32,
    /// False after a gap (lost packets): video cannot be decoded until the next keyframe.
    pub contiguous: bool,
    pub keyframe: bool,
    /// The frame (Opus: the forwarded payload itself, shared; video: its packets' payloads, put
    /// together once).
    pub data: Arc<[u8]>,
}

impl fmt::Debug for TapFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapFrame")
            .field("kind", &self.kind)
            .field("codec", &self.codec)
            .field("rtp_time", &self.rtp_time)
            .field("keyframe", &self.keyframe)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// The recorder's end of a recorded room. Called on the media loop: every method must return at
/// once (hand the frame to another thread; never block on a disk or a lock held long).
pub trait MediaTap: Send {
    fn frame(&mut self, from: &ParticipantInfo, frame: TapFrame);
    /// The recording stopped. The tap finishes its files on its own time.
    fn close(self: Box<Self>, reason: StopReason);
}

/// Opens a [`MediaTap`] when a room's recording starts. Must return at once.
pub trait TapFactory: Send + Sync {
    /// `session` counts the recordings of this room (a stop and a new start make a new one).
    fn open(
        &self,
        room: &RoomId,
        session: u32,
        participants: &[ParticipantInfo],
    ) -> Box<dyn MediaTap>;
}

/// Something about recording that the layer above the SFU must store or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A participant gave (`true`) or withdrew (`false`) consent to recording.
    Consent {
        room: RoomId,
        participant: ParticipantId,
        role: Role,
        consent: bool,
    },
    RecordingStarted {
        room: RoomId,
        session: u32,
    },
    RecordingStopped {
        room: RoomId,
        session: u32,
        reason: StopReason,
    },
}

/// Why a recording command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    #[error("only the doctor starts and stops the recording")]
    DoctorOnly,
    #[error("recording is switched off for this clinic")]
    Disabled,
    #[error("both parties must consent before the recording starts")]
    NoConsent,
    #[error("the participant is no longer in the room")]
    Gone,
}

/// The recording state of one room.
#[derive(Default)]
pub(crate) struct RoomRecording {
    /// Consent per participant (role kept so a reconnecting party is still counted).
    pub consents: BTreeMap<ParticipantId, Role>,
    /// Participants who said no (declined or withdrew), until they consent.
    pub declined: BTreeSet<ParticipantId>,
    /// The doctor asked for it (doctor mode), or the doctor stopped it (`false` in auto mode).
    pub requested: Option<bool>,
    pub session: u32,
    pub tap: Option<Box<dyn MediaTap>>,
}

impl RoomRecording {
    pub fn active(&self) -> bool {
        self.tap.is_some()
    }

    /// Both a doctor and a patient have consented.
    pub fn both_consented(&self) -> bool {
        self.consents.values().any(|r| *r == Role::Doctor)
            && self.consents.values().any(|r| *r == Role::Patient)
    }

    /// Whether recording should run, given the mode, if both parties are in the call.
    fn would_record(&self, mode: RecordingMode) -> bool {
        match mode {
            RecordingMode::Off => false,
            RecordingMode::Auto => self.both_consented() && self.requested != Some(false),
            RecordingMode::Doctor => self.both_consented() && self.requested == Some(true),
        }
    }

    /// Whether recording should run now: as the mode and consents say, with both parties in
    /// the call (`both_present`).
    pub fn wanted(&self, mode: RecordingMode, both_present: bool) -> bool {
        both_present && self.would_record(mode)
    }

    /// Stop a running recording of `room`: the tap is closed, and the event to report returned.
    pub fn stop(&mut self, room: &RoomId, reason: StopReason) -> Option<RoomEvent> {
        let tap = self.tap.take()?;
        tap.close(reason);
        tracing::info!(room = %room, session = self.session, ?reason, "recording stopped");
        Some(RoomEvent::RecordingStopped {
            room: room.clone(),
            session: self.session,
            reason,
        })
    }

    pub fn status(&self, mode: RecordingMode, both_present: bool) -> RecordingStatus {
        let phase = if mode == RecordingMode::Off {
            RecordingPhase::Off
        } else if self.active() {
            RecordingPhase::Recording
        } else if !both_present && self.would_record(mode) {
            RecordingPhase::Paused
        } else if !self.both_consented() {
            RecordingPhase::AwaitingConsent
        } else {
            RecordingPhase::AwaitingStart
        };
        RecordingStatus {
            mode,
            phase,
            consented: self.consents.keys().cloned().collect(),
            declined: self.declined.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_needs_both_parties_and_the_mode() {
        let mut r = RoomRecording::default();
        r.consents.insert(ParticipantId::new("d"), Role::Doctor);
        assert!(!r.wanted(RecordingMode::Auto, true));
        r.consents.insert(ParticipantId::new("p"), Role::Patient);
        assert!(r.wanted(RecordingMode::Auto, true));
        assert!(
            !r.wanted(RecordingMode::Auto, false),
            "one party away: paused"
        );
        assert_eq!(
            r.status(RecordingMode::Auto, false).phase,
            RecordingPhase::Paused
        );
        assert!(!r.wanted(RecordingMode::Off, true));
        assert!(
            !r.wanted(RecordingMode::Doctor, true),
            "doctor mode waits for start"
        );
        r.requested = Some(true);
        assert!(r.wanted(RecordingMode::Doctor, true));
        r.requested = Some(false);
        assert!(
            !r.wanted(RecordingMode::Auto, true),
            "the doctor stopped it"
        );
        assert_eq!(
            r.status(RecordingMode::Auto, true).phase,
            RecordingPhase::AwaitingStart
        );
        assert_eq!(
            r.status(RecordingMode::Auto, false).phase,
            RecordingPhase::AwaitingStart,
            "stopped by the doctor is not paused"
        );
        assert_eq!(
            r.status(RecordingMode::Off, true).phase,
            RecordingPhase::Off
        );
    }
}
