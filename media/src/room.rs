//! A Room: the live call of one Consultation: its members, counters and recording. Its media
//! is routed by a [`Router`](crate::router::Router) made for each event.

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

    /// Count datagrams and bytes (`sent`) the room's participants were sent.
    #[inline]
    pub fn count_out(&mut self, sent: (u64, u64)) {
        self.metrics.packets_out += sent.0;
        self.metrics.bytes_out += sent.1;
    }
}
