//! The sans-IO coordinator of one media loop: every Room, Participant and Transport in it.
//! Inputs are `handle_*` calls, outputs are drained with `poll_*`; the byte-level work lives in
//! the spokes (`transport.rs`, `router.rs`, `negotiation.rs` and below).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::media::{MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpPacket;
use str0m::{Candidate, Event, Input, Output};
use tracing::{debug, info, trace, warn};

use crate::candidates::{Parsed, RemoteCandidates};
use crate::command::Command;
use crate::consumer::{Consumer, ConsumerState, SeqMap};
use crate::deadline::lower;
use crate::demux::{Demux, is_rtcp, is_srtp};
use crate::ids::{FastMap, ParticipantId, ParticipantKey, RoomId};
use crate::info::{NetworkQuality, ParticipantInfo, Role, TrackKind};
use crate::metrics::{Metrics, RoomMetrics};
use crate::negotiation::{Negotiation, NegotiationError};
use crate::options::SfuOptions;
use crate::participant::Participant;
use crate::producer::Producer;
use crate::recording::{RecordingError, RecordingMode, RoomEvent, StopReason};
use crate::room::Room;
use crate::router::{Mismatch, Router};
use crate::rtcp::feedback::Feedback;
use crate::signal::{CodecMismatch, LeaveReason, Signal};
use crate::transmit::{Route, Transmit};
use crate::transport::Transport;

/// Recordings one room may start (each stop and start makes a new set of files).
const MAX_RECORDING_SESSIONS: u32 = 20;
/// How long the SFU sleeps when nothing has a deadline.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the room already has {max} participants")]
    RoomFull { max: usize },
    #[error("the media server is not running")]
    Unavailable,
    /// The room was ended ([`LeaveReason::CallEnded`]): nobody joins it again.
    #[error("the call has ended")]
    Ended,
}

/// Rooms ended lately, remembered so that a join racing the end cannot reopen one.
const ENDED_REMEMBERED: usize = 10_000;

/// Something a participant's Transport produced that concerns other participants.
// Media packets dominate and are moved once; boxing them would allocate per packet.
#[allow(clippy::large_enum_variant)]
enum Propagated {
    ProducerAdded(Mid, MediaKind),
    ProducerRemoved,
    /// A media packet of the producer on this mid.
    Rtp(Mid, RtpPacket),
    /// The receiver asked for a keyframe on one of its consumer mids.
    KeyframeRequest(Mid),
}

pub struct Sfu {
    options: SfuOptions,
    crypto: Arc<CryptoProvider>,
    dtls_cert: DtlsCert,
    next_key: u64,
    /// Keys go up by this much: the SFUs of one node's loops hand out disjoint keys.
    key_step: u64,
    participants: FastMap<ParticipantKey, Participant>,
    rooms: FastMap<RoomId, Room>,
    /// Rooms ended ([`Sfu::close_room`] with [`LeaveReason::CallEnded`]), oldest first.
    ended_rooms: std::collections::HashSet<RoomId>,
    ended_order: VecDeque<RoomId>,
    /// Which participant a datagram is for.
    demux: Demux,
    /// Counters of rooms that have ended.
    ended: RoomMetrics,
    transmits: VecDeque<Transmit>,
    signals: VecDeque<(ParticipantKey, Signal)>,
    events: VecDeque<RoomEvent>,
    dirty: Vec<ParticipantKey>,
    removals: Vec<(ParticipantKey, LeaveReason)>,
    /// Reused by `drive`.
    propagated: Vec<Propagated>,
    /// Tracks in a codec their receiver did not accept, found by forwarding, to tell both.
    mismatches: Vec<Mismatch>,
    /// Reused for the NACKs, the reported SSRCs and the sender reports of a participant's RTCP.
    feedback: Feedback,
    /// The earliest of every participant's deadlines, or earlier ([`Sfu::poll_timeout`]):
    /// lowered wherever one may move earlier, made exact by [`Sfu::handle_timeout`], which scans
    /// them all anyway. Scanning every participant on every turn of the media loop cost 4 % of
    /// its CPU at 200 participants.
    deadline: Option<Instant>,
    /// Reused for the payload of a packet the SFU opened itself, and its own RTCP.
    payload: Vec<u8>,
    rtcp_out: Vec<Vec<u8>>,
}

impl Sfu {
    pub fn new(options: SfuOptions) -> Self {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        // One DTLS certificate for every Transport: generating a key pair per participant would
        // cost milliseconds of CPU on every join.
        let dtls_cert = crypto
            .dtls_provider
            .generate_certificate()
            .expect("the aws-lc-rs provider always generates certificates");
        Sfu {
            options,
            crypto,
            dtls_cert,
            next_key: 1,
            key_step: 1,
            participants: FastMap::default(),
            rooms: FastMap::default(),
            ended_rooms: Default::default(),
            ended_order: VecDeque::new(),
            demux: Demux::default(),
            ended: RoomMetrics::default(),
            transmits: VecDeque::new(),
            signals: VecDeque::new(),
            events: VecDeque::new(),
            dirty: Vec::new(),
            deadline: None,
            removals: Vec::new(),
            feedback: Feedback::default(),
            payload: Vec::new(),
            rtcp_out: Vec::new(),
            propagated: Vec::new(),
            mismatches: Vec::new(),
        }
    }

    pub fn options(&self) -> &SfuOptions {
        &self.options
    }

    /// Hand out the keys `first`, `first + step`, … — one residue class per SFU of a node with
    /// `step` loops, so a key names its loop.
    pub(crate) fn with_keys(mut self, first: u64, step: u64) -> Self {
        self.next_key = first.max(1);
        self.key_step = step.max(1);
        self
    }

    /// Admit a participant to a room (created on first join). A participant id already in the
    /// room is replaced: its old session gets [`Signal::Closed`] with [`LeaveReason::Replaced`].
    pub fn join(
        &mut self,
        now: Instant,
        room_id: RoomId,
        info: ParticipantInfo,
    ) -> Result<ParticipantKey, JoinError> {
        if self.ended_rooms.contains(&room_id) {
            return Err(JoinError::Ended);
        }
        let existing = self.rooms.get(&room_id).and_then(|room| {
            room.members.iter().copied().find(|k| {
                self.participants
                    .get(k)
                    .is_some_and(|p| p.info.id == info.id)
            })
        });
        if let Some(old) = existing {
            self.remove(now, old, LeaveReason::Replaced);
        } else if info.role != Role::Recorder {
            let people = self.rooms.get(&room_id).map_or(0, |room| {
                room.members
                    .iter()
                    .filter(|k| {
                        self.participants
                            .get(k)
                            .is_some_and(|p| p.info.role != Role::Recorder)
                    })
                    .count()
            });
            if people >= self.options.max_participants {
                return Err(JoinError::RoomFull {
                    max: self.options.max_participants,
                });
            }
        }

        let key = ParticipantKey(self.next_key);
        self.next_key += self.key_step;
        let transport = Transport::new(now, &self.options, &self.crypto, &self.dtls_cert);

        let room = self.rooms.entry(room_id.clone()).or_default();
        if info.role != Role::Recorder {
            for other in room.members.iter() {
                self.signals
                    .push_back((*other, Signal::ParticipantJoined(info.clone())));
            }
        }
        room.members.push(key);
        room.metrics.participants = room.members.len() as u64;

        // The newcomer consumes every producer already in the room.
        let mut consumers = Vec::new();
        for other in room.members.iter().filter(|k| **k != key) {
            if let Some(p) = self.participants.get(other) {
                for producer in &p.producers {
                    consumers.push(Consumer::new(*other, producer.mid, producer.kind));
                }
            }
        }
        info!(room = %room_id, participant = %info.id, role = info.role.as_str(), %key, "participant joined");
        lower(&mut self.deadline, now);
        self.participants.insert(
            key,
            Participant {
                key,
                room: room_id,
                info,
                transport,
                producers: Vec::new(),
                consumers,
                negotiation: Negotiation::new(),
                remote_candidates: RemoteCandidates::default(),
                joined_at: now,
                last_seen: None,
            },
        );
        // Everyone hears the recording state (the newcomer may have changed whether the room
        // may be recorded at all).
        let room_id = self.participants[&key].room.clone();
        self.update_recording(now, &room_id, StopReason::Stopped);
        self.dirty.push(key);
        self.drive(now);
        Ok(key)
    }

    /// The others in the participant's room, as the newcomer should see them.
    pub fn peers_of(&self, key: ParticipantKey) -> Vec<ParticipantInfo> {
        let Some(p) = self.participants.get(&key) else {
            return Vec::new();
        };
        self.rooms
            .get(&p.room)
            .map(|room| {
                room.others(key)
                    .filter_map(|k| self.participants.get(&k))
                    .filter(|p| p.info.role != Role::Recorder)
                    .map(|p| p.info.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn is_member(&self, key: ParticipantKey) -> bool {
        self.participants.contains_key(&key)
    }

    /// Apply a command; offers are answered with the answer SDP.
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: Command,
    ) -> Result<Option<String>, NegotiationError> {
        match command {
            Command::Offer { key, offer } => self.accept_offer(now, key, *offer).map(Some),
            Command::Answer { key, answer } => self.accept_answer(now, key, *answer).map(|()| None),
            Command::Candidate { key, candidate } => self.candidate(key, &candidate).map(|()| None),
            Command::Mute { key, kind, muted } => {
                self.set_muted(key, kind, muted);
                Ok(None)
            }
            Command::Leave { key, reason } => {
                self.remove(now, key, reason);
                Ok(None)
            }
            Command::Consent { key, consent } => {
                self.consent(now, key, consent)?;
                Ok(None)
            }
            Command::Recording { key, start } => {
                self.control_recording(now, key, start)?;
                Ok(None)
            }
            Command::ScreenShare { key, sharing } => {
                self.set_screen_sharing(key, sharing);
                Ok(None)
            }
            Command::Quality { key, quality } => {
                self.set_quality(key, quality);
                Ok(None)
            }
            Command::AudioOnly { key, on } => {
                self.set_audio_only(now, key, on);
                Ok(None)
            }
        }
    }

    /// A participant gives or withdraws consent to recording. Consent is kept for the life of the
    /// room, across reconnects of the same participant.
    pub fn consent(
        &mut self,
        now: Instant,
        key: ParticipantKey,
        consent: bool,
    ) -> Result<(), RecordingError> {
        let p = self.participants.get(&key).ok_or(RecordingError::Gone)?;
        if p.info.role == Role::Recorder {
            return Err(RecordingError::Gone);
        }
        let (room_id, id, role) = (p.room.clone(), p.info.id.clone(), p.info.role);
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return Err(RecordingError::Gone);
        };
        let changed = if consent {
            room.recording.declined.remove(&id);
            room.recording.consents.insert(id.clone(), role).is_none()
        } else {
            // Declined or withdrawn: the other party is told at once (`declined`).
            room.recording.declined.insert(id.clone());
            // A withdrawn consent also cancels the doctor's start: consenting again does not
            // resume recording by itself in doctor mode.
            if room.recording.requested == Some(true) {
                room.recording.requested = None;
            }
            room.recording.consents.remove(&id).is_some()
        };
        if changed {
            self.events.push_back(RoomEvent::Consent {
                room: room_id.clone(),
                participant: id,
                role,
                consent,
            });
        }
        self.update_recording(now, &room_id, StopReason::ConsentWithdrawn);
        // A recording that starts asks the senders for keyframes: out now.
        self.drive(now);
        Ok(())
    }

    /// The doctor starts or stops the recording.
    pub fn control_recording(
        &mut self,
        now: Instant,
        key: ParticipantKey,
        start: bool,
    ) -> Result<(), RecordingError> {
        let p = self.participants.get(&key).ok_or(RecordingError::Gone)?;
        if p.info.role != Role::Doctor {
            return Err(RecordingError::DoctorOnly);
        }
        let room_id = p.room.clone();
        let mode = self.rooms.get(&room_id).map(|r| self.room_mode(r));
        if mode.unwrap_or(RecordingMode::Off) == RecordingMode::Off {
            return Err(RecordingError::Disabled);
        }
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return Err(RecordingError::Gone);
        };
        if start && !room.recording.both_consented() {
            return Err(RecordingError::NoConsent);
        }
        room.recording.requested = Some(start);
        self.update_recording(now, &room_id, StopReason::Stopped);
        // A recording that starts asks the senders for keyframes: out now.
        self.drive(now);
        Ok(())
    }

    /// The recording mode of a room: the configured one, or `Off` when someone in it joined with a
    /// token that does not allow recording (not a consultation's room).
    fn room_mode(&self, room: &Room) -> RecordingMode {
        let recordable = room
            .members
            .iter()
            .filter_map(|k| self.participants.get(k))
            .filter(|p| p.info.role != Role::Recorder)
            .all(|p| p.info.recordable);
        if recordable {
            self.options.recording_mode()
        } else {
            RecordingMode::Off
        }
    }

    /// Whether a doctor and a patient are both in `room` (a party reconnecting on its session
    /// is still a member).
    fn both_present(&self, room: &Room) -> bool {
        let role_in = |role: Role| {
            room.members
                .iter()
                .filter_map(|k| self.participants.get(k))
                .any(|p| p.info.role == role)
        };
        role_in(Role::Doctor) && role_in(Role::Patient)
    }

    /// Start or stop a room's recording to match its consents, mode and who is in it; tell the
    /// members. `reason` is why it stops, if it does.
    fn update_recording(&mut self, now: Instant, room_id: &RoomId, reason: StopReason) {
        let Some((mode, both_present)) = self
            .rooms
            .get(room_id)
            .map(|r| (self.room_mode(r), self.both_present(r)))
        else {
            return;
        };
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let wanted = room.recording.wanted(mode, both_present);
        if wanted && !room.recording.active() && room.recording.session >= MAX_RECORDING_SESSIONS {
            // Consent toggled (or start/stop pressed) over and over: each start costs a recorder
            // and a composite. Enough is enough for one call.
            warn!(room = %room_id, "recording restarted too often in this call; not started again");
        } else if wanted && !room.recording.active() {
            let Some(factory) = self.options.recorder.clone() else {
                return;
            };
            room.recording.session += 1;
            let people: Vec<ParticipantInfo> = room
                .members
                .iter()
                .filter_map(|k| self.participants.get(k))
                .filter(|p| p.info.role != Role::Recorder)
                .map(|p| p.info.clone())
                .collect();
            room.recording.tap = Some(factory.open(room_id, room.recording.session, &people));
            info!(room = %room_id, session = room.recording.session, "recording started");
            self.events.push_back(RoomEvent::RecordingStarted {
                room: room_id.clone(),
                session: room.recording.session,
            });
            if let Some(mut router) = self.router(room_id) {
                router.recording_started(now);
            }
        } else if !wanted && room.recording.active() {
            if let Some(tap) = room.recording.tap.as_mut() {
                for key in &room.members {
                    if let Some(p) = self.participants.get_mut(key) {
                        p.finish_tracks(tap.as_mut());
                    }
                }
            }
            if let Some(stopped) = room.recording.stop(room_id, reason) {
                self.events.push_back(stopped);
            }
        }
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let status = room.recording.status(mode, both_present);
        for &member in &room.members {
            self.signals
                .push_back((member, Signal::Recording(status.clone())));
        }
    }

    /// A client's SDP offer; returns the answer. If our own offer is outstanding, the client's
    /// wins: ours is rolled back and made again after this exchange.
    pub fn offer(
        &mut self,
        now: Instant,
        key: ParticipantKey,
        sdp: &str,
    ) -> Result<String, NegotiationError> {
        self.accept_offer(now, key, Parsed::offer(sdp)?)
    }

    /// [`Sfu::offer`] of an offer parsed already (off the media loop).
    pub fn accept_offer(
        &mut self,
        now: Instant,
        key: ParticipantKey,
        offer: Parsed<SdpOffer>,
    ) -> Result<String, NegotiationError> {
        let p = self
            .participants
            .get_mut(&key)
            .ok_or(NegotiationError::Gone)?;
        // An offer with new ICE credentials (a restart) starts the bound afresh.
        p.remote_candidates.generation(offer.ufrag.as_deref());
        p.remote_candidates
            .admit(offer.candidates.iter().map(String::as_str))?;
        let formats = offer.formats;
        let offer = offer.sdp;
        if p.negotiation.is_pending() {
            debug!(participant = %p.info.id, "offer collision: the client's offer wins");
        }
        let answer =
            p.negotiation
                .accept_offer(&mut p.transport.rtc, &mut p.consumers, offer, formats)?;
        self.dirty.push(key);
        self.drive(now);
        Ok(answer)
    }

    /// The client's answer to our offer.
    pub fn answer(
        &mut self,
        now: Instant,
        key: ParticipantKey,
        sdp: &str,
    ) -> Result<(), NegotiationError> {
        self.accept_answer(now, key, Parsed::answer(sdp)?)
    }

    /// [`Sfu::answer`] of an answer parsed already (off the media loop).
    pub fn accept_answer(
        &mut self,
        now: Instant,
        key: ParticipantKey,
        answer: Parsed<SdpAnswer>,
    ) -> Result<(), NegotiationError> {
        let p = self
            .participants
            .get_mut(&key)
            .ok_or(NegotiationError::Gone)?;
        // Refused: our offer stays outstanding; the client may answer again within the bound.
        p.remote_candidates
            .admit(answer.candidates.iter().map(String::as_str))?;
        let formats = answer.formats;
        let answer = answer.sdp;
        let room_id = p.room.clone();
        let answered =
            p.negotiation
                .accept_answer(&mut p.transport.rtc, &mut p.consumers, answer, formats);
        let opened = match answered {
            Ok(opened) => opened,
            Err(e @ NegotiationError::NoPendingOffer) => return Err(e),
            Err(e) => {
                // The rejected offer was rolled back: everything in it is offered again.
                self.dirty.push(key);
                self.drive(now);
                return Err(e);
            }
        };
        self.keyframes_for(now, &room_id, opened);
        self.dirty.push(key);
        self.drive(now);
        Ok(())
    }

    pub fn candidate(
        &mut self,
        key: ParticipantKey,
        candidate: &str,
    ) -> Result<(), NegotiationError> {
        let p = self
            .participants
            .get_mut(&key)
            .ok_or(NegotiationError::Gone)?;
        let trimmed = candidate.trim();
        if trimmed.is_empty() {
            return Ok(());
        }
        let text = trimmed.strip_prefix("a=").unwrap_or(trimmed);
        let parsed = Candidate::from_sdp_string(text)
            .map_err(|e| NegotiationError::BadCandidate(e.to_string()))?;
        p.remote_candidates.admit([text])?;
        p.transport.rtc.add_remote_candidate(parsed);
        Ok(())
    }

    /// Tell the others in `key`'s room a signal about it (made for each from its id).
    fn tell_others(&mut self, key: ParticipantKey, signal: impl Fn(ParticipantId) -> Signal) {
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        if let Some(room) = self.rooms.get(&p.room) {
            for other in room.others(key) {
                self.signals.push_back((other, signal(p.info.id.clone())));
            }
        }
    }

    /// A participant starts or stops showing its screen: the others are told (a change only).
    pub fn set_screen_sharing(&mut self, key: ParticipantKey, sharing: bool) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if p.info.screen_sharing == sharing {
            return;
        }
        p.info.screen_sharing = sharing;
        self.tell_others(key, |id| Signal::ScreenShareChanged { id, sharing });
    }

    /// A participant's page judged its link: the others are told (a change only).
    pub fn set_quality(&mut self, key: ParticipantKey, quality: NetworkQuality) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if p.info.quality == Some(quality) {
            return;
        }
        p.info.quality = Some(quality);
        self.tell_others(key, |id| Signal::QualityChanged { id, quality });
    }

    /// A participant's link cannot carry video (`on`), or can again: while on, no video is
    /// forwarded to it (its page sends none either); the others are told (a change only). On
    /// the way back its video streams number on from where they stopped, each starting at a
    /// keyframe asked of its sender.
    pub fn set_audio_only(&mut self, now: Instant, key: ParticipantKey, on: bool) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        if p.info.audio_only == on {
            return;
        }
        p.info.audio_only = on;
        let room_id = p.room.clone();
        let mut resumed = Vec::new();
        if !on {
            for c in p
                .consumers
                .iter_mut()
                .filter(|c| c.kind == MediaKind::Video)
            {
                c.seq = c.seq.take().map(SeqMap::detached);
                if matches!(c.state, ConsumerState::Open(_)) {
                    resumed.push((c.source, c.source_mid));
                }
            }
        }
        self.tell_others(key, |id| Signal::AudioOnlyChanged { id, on });
        self.keyframes_for(now, &room_id, resumed);
    }

    pub fn set_muted(&mut self, key: ParticipantKey, kind: TrackKind, muted: bool) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let state = match kind {
            TrackKind::Audio => &mut p.info.audio_muted,
            TrackKind::Video => &mut p.info.video_muted,
        };
        if *state == muted {
            // Nothing changed: the others are not told again.
            return;
        }
        *state = muted;
        self.tell_others(key, |id| Signal::MuteChanged { id, kind, muted });
    }

    /// Remove a participant; the others are told why. Removing an unknown key does nothing.
    pub fn remove(&mut self, now: Instant, key: ParticipantKey, reason: LeaveReason) {
        let Some(mut p) = self.participants.remove(&key) else {
            return;
        };
        p.transport.rtc.disconnect();
        self.demux.forget(key);
        info!(room = %p.room, participant = %p.info.id, %key, ?reason, "participant left");
        if reason != LeaveReason::Hangup {
            self.signals.push_back((key, Signal::Closed(reason)));
        }
        let mut room_ended = false;
        if let Some(room) = self.rooms.get_mut(&p.room) {
            if let Some(tap) = room.recording.tap.as_mut() {
                p.finish_tracks(tap.as_mut());
            }
            room.members.retain(|k| *k != key);
            room.metrics.participants = room.members.len() as u64;
            for other in room.members.iter().copied() {
                if p.info.role != Role::Recorder {
                    self.signals.push_back((
                        other,
                        Signal::ParticipantLeft {
                            id: p.info.id.clone(),
                            reason,
                        },
                    ));
                }
            }
            room_ended = room.members.is_empty();
        }
        // A party gone (not replaced by its own new session): the recording pauses.
        if !room_ended && reason != LeaveReason::Replaced && p.info.role != Role::Recorder {
            self.update_recording(now, &p.room, StopReason::PartyLeft);
        }
        // Their consumers of our producers are stopped in their next offers.
        let others: Vec<_> = self
            .rooms
            .get(&p.room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for other in others {
            self.needs_offer(other);
        }
        if room_ended && let Some(mut room) = self.rooms.remove(&p.room) {
            self.ended.add(&room.metrics);
            let reason = if reason == LeaveReason::ServerShutdown {
                StopReason::ServerShutdown
            } else {
                StopReason::RoomEnded
            };
            if let Some(stopped) = room.recording.stop(&p.room, reason) {
                self.events.push_back(stopped);
            }
            info!(room = %p.room, "room ended");
        }
        self.drive(now);
    }

    /// Remove everyone (server shutdown).
    /// Remove everyone in `room` (recorders too), each told `reason`. Returns how many left.
    pub fn close_room(&mut self, now: Instant, room: &RoomId, reason: LeaveReason) -> usize {
        if reason == LeaveReason::CallEnded && self.ended_rooms.insert(room.clone()) {
            self.ended_order.push_back(room.clone());
            if self.ended_order.len() > ENDED_REMEMBERED
                && let Some(oldest) = self.ended_order.pop_front()
            {
                self.ended_rooms.remove(&oldest);
            }
        }
        let keys: Vec<_> = self
            .participants
            .iter()
            .filter(|(_, p)| &p.room == room)
            .map(|(key, _)| *key)
            .collect();
        for &key in &keys {
            self.remove(now, key, reason);
        }
        keys.len()
    }

    pub fn close_all(&mut self, now: Instant, reason: LeaveReason) {
        let keys: Vec<_> = self.participants.keys().copied().collect();
        for key in keys {
            self.remove(now, key, reason);
        }
    }

    /// A datagram arrived on the SFU's UDP socket (`proto` [`Protocol::Udp`]), or a frame on an
    /// ICE-TCP connection from `source` ([`Protocol::Tcp`]). Returns whether a participant
    /// accepted it.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        let len = contents.len() as u64;
        let raw = contents;
        let Ok(contents) = contents.try_into() else {
            trace!(%source, "datagram is neither STUN, DTLS nor RTP");
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );

        let accepts = |p: &Participant| p.transport.rtc.accepts(&input);
        let Some(key) = self.demux.find(proto, source, &self.participants, accepts) else {
            trace!(%source, "no participant accepts this datagram");
            return false;
        };
        let p = self
            .participants
            .get_mut(&key)
            .expect("the key was found among participants");
        if p.last_seen.is_none() {
            // From the connect limit to the (shorter) silence limit.
            lower(&mut self.deadline, now + self.options.ice_timeout);
        }
        p.last_seen = Some(now);
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.metrics.packets_in += 1;
            room.metrics.bytes_in += len;
        }
        if is_srtp(raw)
            && !is_rtcp(raw)
            && let Some(opened) = p.transport.open(raw, &p.producers, now)
        {
            // Media opened past str0m (`ingress.rs`).
            let sent = p
                .transport
                .send_feedback(now, &mut self.rtcp_out, &mut self.transmits);
            if let Some(due) = p.transport.next_feedback() {
                lower(&mut self.deadline, due);
            }
            let room_id = p.room.clone();
            count_out(&mut self.rooms, &room_id, sent);
            match opened {
                Ok(opened) => {
                    let mut payload = std::mem::take(&mut self.payload);
                    let range = p.transport.take_payload(&mut payload);
                    if let Some(mut router) = self.router(&room_id) {
                        router.forward_opened(now, key, opened, &payload[range]);
                    }
                    self.payload = payload;
                }
                Err(refused) => trace!(?refused, "media packet not forwarded"),
            }
            self.drive(now);
            return true;
        }
        if is_srtp(raw)
            && is_rtcp(raw)
            && let Some(resent) = p.transport.read_rtcp(
                raw,
                &mut p.consumers,
                &mut self.feedback,
                &mut self.transmits,
                now,
            )
        {
            // Retransmissions of egress streams: str0m did not send those packets.
            count_out(&mut self.rooms, &p.room, resent);
        }
        if let Err(e) = p.transport.rtc.handle_input(input) {
            debug!(participant = %p.info.id, error = %e, "transport failed on input");
            self.removals.push((key, LeaveReason::ConnectionLost));
        }
        self.dirty.push(key);
        self.drive(now);
        true
    }

    /// Advance time: Transport timers, liveness.
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in self.participants.values_mut() {
            let silent_since = p.last_seen.unwrap_or(p.joined_at);
            let limit = if p.last_seen.is_some() {
                self.options.ice_timeout
            } else {
                self.options.connect_timeout
            };
            if now.saturating_duration_since(silent_since) >= limit {
                self.removals.push((p.key, LeaveReason::ConnectionLost));
                continue;
            }
            if p.transport.next_feedback().is_some_and(|t| t <= now) {
                // Feedback on received media while none arrives (NACK retries, the last
                // arrivals, reports).
                let sent = p
                    .transport
                    .send_feedback(now, &mut self.rtcp_out, &mut self.transmits);
                count_out(&mut self.rooms, &p.room, sent);
            }
            if p.transport.next_timeout <= now {
                if let Err(e) = p.transport.rtc.handle_input(Input::Timeout(now)) {
                    debug!(participant = %p.info.id, error = %e, "transport failed on timeout");
                    self.removals.push((p.key, LeaveReason::ConnectionLost));
                }
                self.dirty.push(p.key);
            }
        }
        self.drive(now);
        self.deadline = Some(self.earliest_deadline(now));
    }

    /// When [`Sfu::handle_timeout`] must be called next.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let idle = now + IDLE_TIMEOUT;
        self.deadline.map_or(idle, |d| d.min(idle))
    }

    /// The earliest deadline of all participants: their transports' timers, their feedback on
    /// received media, their silence limits.
    fn earliest_deadline(&self, now: Instant) -> Instant {
        let mut next = now + IDLE_TIMEOUT;
        for p in self.participants.values() {
            next = next.min(p.transport.next_timeout);
            if let Some(due) = p.transport.next_feedback() {
                next = next.min(due);
            }
            let deadline = match p.last_seen {
                Some(seen) => seen + self.options.ice_timeout,
                None => p.joined_at + self.options.connect_timeout,
            };
            next = next.min(deadline);
        }
        next
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_signal(&mut self) -> Option<(ParticipantKey, Signal)> {
        if !self.mismatches.is_empty() {
            self.tell_mismatches();
        }
        self.signals.pop_front()
    }

    /// Each track forwarding found in a codec its receiver did not accept: both parties are
    /// told (once per track and codec: the consumer remembers it).
    fn tell_mismatches(&mut self) {
        for m in std::mem::take(&mut self.mismatches) {
            let (Some(sender), Some(receiver)) = (
                self.participants.get(&m.sender),
                self.participants.get(&m.receiver),
            ) else {
                continue;
            };
            // Recorders are not shown to people (they take what is sent anyway).
            if receiver.info.role == Role::Recorder {
                continue;
            }
            let told = CodecMismatch {
                kind: m.kind.into(),
                sender: sender.info.id.clone(),
                receiver: receiver.info.id.clone(),
                codec: m.codec.to_string(),
                receiver_accepts: m.accepts.iter().map(ToString::to_string).collect(),
            };
            warn!(sender = %told.sender, receiver = %told.receiver, codec = %told.codec,
                  accepts = ?told.receiver_accepts, "a track's codec is not accepted by its receiver");
            self.signals
                .push_back((m.sender, Signal::CodecMismatch(told.clone())));
            self.signals
                .push_back((m.receiver, Signal::CodecMismatch(told)));
        }
    }

    /// Consents given and recordings started or stopped, for the layer above to store.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    pub fn metrics(&self) -> Metrics {
        let mut total = self.ended.clone();
        let mut rooms = BTreeMap::new();
        for (id, room) in &self.rooms {
            total.add(&room.metrics);
            total.participants += room.metrics.participants;
            rooms.insert(id.clone(), room.metrics.clone());
        }
        Metrics {
            total,
            rooms,
            // Filled by the node, which knows which loop this is.
            loops: BTreeMap::new(),
        }
    }

    /// Drain every dirty Transport, propagating what concerns the others, until all are idle.
    fn drive(&mut self, now: Instant) {
        loop {
            while let Some((key, reason)) = self.removals.pop() {
                self.remove(now, key, reason);
            }
            let Some(key) = self.dirty.pop() else {
                break;
            };
            // A reused buffer: media packets pass through here one by one.
            let mut propagated = std::mem::take(&mut self.propagated);
            self.drain(now, key, &mut propagated);
            for item in propagated.drain(..) {
                self.propagate(now, key, item);
            }
            self.propagated = propagated;
        }
    }

    /// Build the offer a participant's consumer changes need, if any and if none is in flight.
    fn renegotiate(&mut self, now: Instant, key: ParticipantKey) {
        let Some(room_id) = self
            .participants
            .get(&key)
            .filter(|p| p.negotiation.wants_offer())
            .map(|p| p.room.clone())
        else {
            return;
        };
        let members: &[ParticipantKey] = self.rooms.get(&room_id).map_or(&[], |r| &r.members);
        let stream_ids: HashMap<ParticipantKey, String> = members
            .iter()
            .filter_map(|k| {
                self.participants
                    .get(k)
                    .map(|p| (*k, p.info.id.to_string()))
            })
            .collect();
        let alive: Vec<(ParticipantKey, Mid)> = members
            .iter()
            .filter_map(|k| self.participants.get(k))
            .flat_map(|p| p.producers.iter().map(|pr| (p.key, pr.mid)))
            .collect();
        let p = self.participants.get_mut(&key).expect("checked above");
        let made = p.negotiation.make_offer(
            &mut p.transport.rtc,
            &mut p.consumers,
            |k, mid| alive.contains(&(k, mid)),
            |k| stream_ids.get(&k).cloned(),
        );
        if let Some(offer) = made.sdp {
            self.signals.push_back((key, Signal::Offer(offer)));
        }
        // A taken-over line that needed no offer.
        self.keyframes_for(now, &room_id, made.opened);
    }

    /// Consumers just opened (source and source mid) need a keyframe to start decoding: their
    /// sources are asked.
    fn keyframes_for(
        &mut self,
        now: Instant,
        room_id: &RoomId,
        opened: Vec<(ParticipantKey, Mid)>,
    ) {
        if opened.is_empty() {
            return;
        }
        if let Some(mut router) = self.router(room_id) {
            for (source, mid) in opened {
                router.request_keyframe(now, source, mid);
            }
        }
    }

    /// Mark that a participant's consumers changed: its next drain offers the change.
    fn needs_offer(&mut self, key: ParticipantKey) {
        if let Some(p) = self.participants.get_mut(&key) {
            p.negotiation.needs_offer();
            self.dirty.push(key);
        }
    }

    fn drain(&mut self, now: Instant, key: ParticipantKey, out: &mut Vec<Propagated>) {
        self.renegotiate(now, key);
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let room_id = p.room.clone();
        let mut bytes_out = 0u64;
        let mut packets_out = 0u64;
        loop {
            if !p.transport.rtc.is_alive() {
                self.removals.push((key, LeaveReason::ConnectionLost));
                break;
            }
            match p.transport.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    p.transport.next_timeout = t;
                    lower(&mut self.deadline, t);
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let mut contents: Vec<u8> = t.contents.into();
                    let route = Route {
                        proto: t.proto,
                        source: t.source,
                        destination: t.destination,
                    };
                    p.transport
                        .sent_by_str0m(&mut contents, route, &p.consumers, now);
                    packets_out += 1;
                    bytes_out += contents.len() as u64;
                    self.transmits.push_back(route.transmit(contents));
                }
                Ok(Output::Event(event)) => match event {
                    Event::MediaAdded(added)
                        if added.direction.is_receiving()
                            && p.producer_mut(added.mid).is_none() =>
                    {
                        p.producers.push(Producer::new(added.mid, added.kind));
                        out.push(Propagated::ProducerAdded(added.mid, added.kind));
                    }
                    Event::MediaChanged(changed) => {
                        let has = p.producer_mut(changed.mid).is_some();
                        if has && !changed.direction.is_receiving() {
                            p.producers.retain(|pr| pr.mid != changed.mid);
                            out.push(Propagated::ProducerRemoved);
                        } else if !has
                            && changed.direction.is_receiving()
                            && let Some(kind) = p.transport.rtc.media(changed.mid).map(|m| m.kind())
                        {
                            p.producers.push(Producer::new(changed.mid, kind));
                            out.push(Propagated::ProducerAdded(changed.mid, kind));
                        }
                    }
                    Event::RtpPacket(packet) => {
                        // The producer of this SSRC: known after its first packet (asking str0m
                        // through its direct API costs a full re-poll of the transport).
                        let ssrc = *packet.header.ssrc;
                        let mid = match p.producers.iter().find(|pr| pr.ssrc == Some(ssrc)) {
                            Some(pr) => Some(pr.mid),
                            None => p
                                .transport
                                .rtc
                                .direct_api()
                                .stream_rx(&packet.header.ssrc)
                                .map(|s| s.mid()),
                        };
                        if let Some(mid) = mid {
                            out.push(Propagated::Rtp(mid, packet));
                        }
                    }
                    Event::KeyframeRequest(req) => out.push(Propagated::KeyframeRequest(req.mid)),
                    Event::IceConnectionStateChange(state) => {
                        debug!(participant = %p.info.id, ?state, "ICE state");
                    }
                    Event::Connected => {
                        info!(participant = %p.info.id, %key, "transport connected");
                    }
                    _ => {}
                },
                Err(e) => {
                    debug!(participant = %p.info.id, error = %e, "transport failed");
                    p.transport.rtc.disconnect();
                    self.removals.push((key, LeaveReason::ConnectionLost));
                    break;
                }
            }
        }
        count_out(&mut self.rooms, &room_id, (packets_out, bytes_out));
    }

    /// What a participant's transport produced, routed in its room.
    fn propagate(&mut self, now: Instant, origin: ParticipantKey, item: Propagated) {
        let Some(room_id) = self.participants.get(&origin).map(|p| p.room.clone()) else {
            return;
        };
        let Some(mut router) = self.router(&room_id) else {
            return;
        };
        match item {
            Propagated::ProducerAdded(mid, kind) => router.producer_added(origin, mid, kind),
            Propagated::ProducerRemoved => router.producer_removed(origin),
            Propagated::Rtp(mid, packet) => router.forward_rtp(now, origin, mid, &packet),
            Propagated::KeyframeRequest(mid) => router.keyframe_request(now, origin, mid),
        }
    }

    /// The Router of room `room_id`, borrowing the SFU's state for one event.
    fn router(&mut self, room_id: &RoomId) -> Option<Router<'_>> {
        Some(Router {
            room: self.rooms.get_mut(room_id)?,
            participants: &mut self.participants,
            transmits: &mut self.transmits,
            dirty: &mut self.dirty,
            deadline: &mut self.deadline,
            mismatches: &mut self.mismatches,
        })
    }
}

/// Count datagrams and bytes (`sent`) a room's participants were sent.
fn count_out(rooms: &mut FastMap<RoomId, Room>, room: &RoomId, sent: (u64, u64)) {
    if let Some(room) = rooms.get_mut(room) {
        room.count_out(sent);
    }
}
