//! What signaling asks of the SFU for one participant's session ([`Command`]).

use str0m::change::{SdpAnswer, SdpOffer};

use crate::candidates::Parsed;
use crate::ids::ParticipantKey;
use crate::info::{NetworkQuality, TrackKind};
use crate::signal::LeaveReason;

/// A command to the SFU, as the I/O edge carries it from signaling.
#[derive(Debug)]
pub enum Command {
    /// The client's offer, parsed before it reaches the media loop.
    Offer {
        key: ParticipantKey,
        offer: Box<Parsed<SdpOffer>>,
    },
    /// The client's answer to our offer, parsed before it reaches the media loop.
    Answer {
        key: ParticipantKey,
        answer: Box<Parsed<SdpAnswer>>,
    },
    Candidate {
        key: ParticipantKey,
        candidate: String,
    },
    Mute {
        key: ParticipantKey,
        kind: TrackKind,
        muted: bool,
    },
    Leave {
        key: ParticipantKey,
        reason: LeaveReason,
    },
    /// The participant gives (`true`) or withdraws consent to recording.
    Consent { key: ParticipantKey, consent: bool },
    /// The doctor starts (`true`) or stops the recording.
    Recording { key: ParticipantKey, start: bool },
    /// The participant starts (`true`) or stops showing its screen.
    ScreenShare { key: ParticipantKey, sharing: bool },
    /// The participant's page judged its link anew.
    Quality {
        key: ParticipantKey,
        quality: NetworkQuality,
    },
    /// The participant's link cannot carry video (`true`), or can again.
    AudioOnly { key: ParticipantKey, on: bool },
}

impl Command {
    /// The participant session the command is for.
    pub fn key(&self) -> ParticipantKey {
        match self {
            Command::Offer { key, .. }
            | Command::Answer { key, .. }
            | Command::Candidate { key, .. }
            | Command::Mute { key, .. }
            | Command::Leave { key, .. }
            | Command::Consent { key, .. }
            | Command::Recording { key, .. }
            | Command::ScreenShare { key, .. }
            | Command::Quality { key, .. }
            | Command::AudioOnly { key, .. } => *key,
        }
    }
}
