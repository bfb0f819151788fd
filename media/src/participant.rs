//! A Participant: one joined identity in a Room, its [`Transport`], its Producers (inbound
//! tracks) and its Consumers (the other participants' tracks forwarded to it).

use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, MediaKind, Mid};

use crate::consumer::{Consumer, ConsumerState};
use crate::ids::{ParticipantKey, RoomId};
use crate::info::{ParticipantInfo, TrackKind};
use crate::producer::Producer;
use crate::transport::Transport;

pub(crate) struct Participant {
    pub key: ParticipantKey,
    pub room: RoomId,
    pub info: ParticipantInfo,
    pub transport: Transport,
    pub producers: Vec<Producer>,
    pub consumers: Vec<Consumer>,
    /// Our outstanding offer, if any.
    pub pending: Option<SdpPendingOffer>,
    /// The client's first offer has been accepted: from then on the server may offer.
    pub negotiated: bool,
    /// Consumers changed since our last offer was made: make another when none is in flight.
    pub renegotiate: bool,
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

    /// Roll back our outstanding offer (the client's offer won a collision, or its answer was bad):
    /// everything that was in it goes back to "to do".
    pub fn roll_back_pending(&mut self) {
        self.pending = None;
        self.renegotiate = true;
        for consumer in &mut self.consumers {
            consumer.state = match consumer.state {
                ConsumerState::Negotiating(_) => ConsumerState::ToOpen,
                ConsumerState::NegotiatingStop(mid) => ConsumerState::ToStop(mid),
                other => other,
            };
        }
    }

    /// Our offer was answered: its changes are now in effect.
    pub fn commit_pending(&mut self) -> Vec<(ParticipantKey, Mid)> {
        let mut opened = Vec::new();
        for consumer in &mut self.consumers {
            if let ConsumerState::Negotiating(mid) = consumer.state {
                consumer.state = ConsumerState::Open(mid);
                opened.push((consumer.source, consumer.source_mid));
            }
        }
        self.consumers
            .retain(|c| !matches!(c.state, ConsumerState::NegotiatingStop(_)));
        opened
    }

    /// Build our next offer if there are consumer changes and no exchange is in flight.
    /// `alive(source, mid)` says whether a source producer still exists.
    pub fn make_offer(
        &mut self,
        alive: impl Fn(ParticipantKey, Mid) -> bool,
        stream_id: impl Fn(ParticipantKey) -> Option<String>,
    ) -> Option<String> {
        if !self.negotiated || self.pending.is_some() {
            return None;
        }
        // A consumer whose source is gone is dropped if it was never negotiated, stopped if it was.
        self.consumers
            .retain(|c| c.state != ConsumerState::ToOpen || alive(c.source, c.source_mid));
        for consumer in &mut self.consumers {
            if let ConsumerState::Open(mid) = consumer.state
                && !alive(consumer.source, consumer.source_mid)
            {
                consumer.state = ConsumerState::ToStop(mid);
            }
        }
        if !self
            .consumers
            .iter()
            .any(|c| matches!(c.state, ConsumerState::ToOpen | ConsumerState::ToStop(_)))
        {
            return None;
        }
        let mut change = self.transport.rtc.sdp_api();
        for consumer in &mut self.consumers {
            match consumer.state {
                ConsumerState::ToOpen => {
                    let stream = stream_id(consumer.source);
                    let track = stream
                        .as_ref()
                        .map(|s| format!("{s}-{}", TrackKind::from(consumer.kind).as_str()));
                    let mid =
                        change.add_media(consumer.kind, Direction::SendOnly, stream, track, None);
                    consumer.state = ConsumerState::Negotiating(mid);
                }
                ConsumerState::ToStop(mid) => {
                    change.stop_media(mid);
                    consumer.state = ConsumerState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }
}
