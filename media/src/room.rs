//! A Room: the live call of one Consultation, and the Router of its media.

use crate::RoomMetrics;
use crate::ids::ParticipantKey;
use crate::recording::RoomRecording;

#[derive(Default)]
pub(crate) struct Room {
    /// Participants in join order. A room holds few (2 people + recorders), so a Vec beats a map.
    pub members: Vec<ParticipantKey>,
    pub metrics: RoomMetrics,
    pub recording: RoomRecording,
}

impl Room {
    pub fn others(&self, key: ParticipantKey) -> impl Iterator<Item = ParticipantKey> + '_ {
        self.members.iter().copied().filter(move |k| *k != key)
    }
}
