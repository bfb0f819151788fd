//! A Participant: one joined identity in a Room, its [`Transport`], its Producers (inbound
//! tracks) and its Consumers (the other participants' tracks forwarded to it).

use std::time::Instant;

use str0m::media::{MediaKind, Mid};

use crate::candidates::RemoteCandidates;
use crate::consumer::Consumer;
use crate::ids::{ParticipantKey, RoomId};
use crate::info::ParticipantInfo;
use crate::negotiation::Negotiation;
use crate::producer::Producer;
use crate::recording::MediaTap;
use crate::track::Track;
use crate::transport::Transport;

pub(crate) struct Participant {
    pub key: ParticipantKey,
    pub room: RoomId,
    pub info: ParticipantInfo,
    pub transport: Transport,
    pub producers: Vec<Producer>,
    pub consumers: Vec<Consumer>,
    /// Where the SDP exchange of its session stands.
    pub negotiation: Negotiation,
    /// The remote ICE candidates it gave (bounded).
    pub remote_candidates: RemoteCandidates,
    pub joined_at: Instant,
    /// Last UDP datagram from this participant: its liveness.
    pub last_seen: Option<Instant>,
}

impl Participant {
    pub fn producer_mut(&mut self, mid: Mid) -> Option<&mut Producer> {
        self.producers.iter_mut().find(|p| p.mid == mid)
    }

    /// Send a keyframe request to the remote producer of `mid`, at most once per `min_interval`.
    /// Returns whether a request was sent.
    pub fn request_keyframe(
        &mut self,
        mid: Mid,
        now: Instant,
        min_interval: std::time::Duration,
    ) -> bool {
        let Some(producer) = self.producers.iter_mut().find(|p| p.mid == mid) else {
            return false;
        };
        if producer.kind != MediaKind::Video {
            return false;
        }
        if producer
            .last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at) < min_interval)
        {
            return false;
        }
        if !self.transport.request_keyframe(mid) {
            return false;
        }
        producer.last_keyframe_request = Some(now);
        true
    }

    /// Its tracks stop being recorded: the frames their assemblers hold go to the recorder.
    pub fn finish_tracks(&mut self, tap: &mut dyn MediaTap) {
        for producer in &mut self.producers {
            Track::finish(tap, &self.info, self.key, producer);
        }
    }
}
