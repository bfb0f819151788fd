//! Vizit's SFU: the media plane of a call.
//!
//! # Layout
//! The vocabulary is mediasoup's and livekit's: a **Room** (one per Consultation call) has
//! **Participants**; each has a **Transport** (its ICE/DTLS/SRTP connection), **Producers** (its
//! inbound tracks) and **Consumers** (another participant's Producer forwarded to it); a
//! **Router** routes a Room's media. From the edge and the coordinator down to the leaves:
//!
//! - [`MediaServer`] (`server.rs`) — the thin I/O edge: one or more media loops, each a thread
//!   with one UDP socket (and an ICE-TCP listener, `ice_tcp.rs`) for its participants and its
//!   own [`Sfu`] by value, commands in over a channel, signals out over per-participant channels.
//!   A room lives in one loop (by its id); a participant key names its loop. No locks on the
//!   packet path.
//! - [`Sfu`] (`sfu.rs`) — the sans-IO coordinator. It owns every Room and Participant of one
//!   media loop; inputs are `handle_*` calls with the current time passed in, outputs are drained
//!   with `poll_*`; it admits and removes participants, applies commands, drives each Transport's
//!   str0m state machine and hands what one produces to the Router of its room. It never reads a
//!   clock or a socket, so tests drive it faster than real time.
//! - `router.rs` — the Router of a room: a view made per event from borrows of the room and the
//!   participants (nothing allocated). A new Producer becomes a Consumer of every other
//!   participant; each media packet goes to the Consumers of its Producer (payload type, numbers
//!   and clock of each receiver; past str0m on the receiver's egress, or written into str0m) and
//!   to the recorder; keyframe requests go back to the sender.
//! - `participant.rs`, `room.rs` — a Participant (identity, Transport, Producers, Consumers,
//!   negotiation, liveness) and a Room (members, counters, recording state).
//! - `transport.rs` — a Transport: str0m's [`str0m::Rtc`] and, once its DTLS handshake has handed
//!   over the SRTP keys ([`srtp`]), the SFU's two halves past str0m, the egress and the ingress.
//!   The byte-level work on one connection: what str0m sends (reports rewritten), media opened
//!   and new SSRCs described, RTCP from the participant (NACKs answered), feedback sent.
//! - `negotiation.rs` — SDP offer/answer of a participant's session, one server offer at a time.
//! - `track.rs`, `producer.rs`, `consumer.rs` — a recorded Track, whose frames go to the
//!   recorder's [`MediaTap`]; a Producer (loss count, codec cache, frame assembler); a Consumer
//!   (m-line state, renumbering `SeqMap`, egress stream).
//! - `egress.rs` — fast forwarding, the sending half of a transport: the SFU protects and sends
//!   forwarded packets itself, writes the sender info of their reports into str0m's SRTCP and
//!   answers NACKs from its own ring of sent packets.
//! - `ingress.rs` — fast receiving, the receiving half: the SFU opens received SRTP itself
//!   (replay window, repair streams) and decides when to send the feedback str0m would have.
//! - `rtcp/` — RTCP written and read past str0m: transport-wide congestion control feedback
//!   (`twcc.rs`), generic NACKs (`nack.rs`), receiver reports and the rewrite of str0m's
//!   reports (`report.rs`), what a receiver's RTCP asks (`feedback.rs`); `rtp.rs` reads RTP
//!   headers ([`RtpHeader`]).
//! - `assembler.rs`, `recording.rs` — while a room is recorded, each track's packets are
//!   reordered and depacketized into frames for the tap (media is otherwise forwarded packet by
//!   packet, str0m's RTP mode); consent and recording per room, and the recorder's interface
//!   ([`MediaTap`], [`TapFactory`]).
//! - The Sfu's public inputs and outputs: [`SfuOptions`] (`options.rs`), [`Command`]
//!   (`command.rs`), [`Signal`] and [`LeaveReason`] (`signal.rs`), [`Transmit`] (`transmit.rs`).
//! - Below them: `demux.rs` (which participant a datagram is for; SRTP or not), `ids.rs` (ids and
//!   [`ParticipantKey`]), `info.rs` ([`ParticipantInfo`], [`Role`], [`TrackKind`]), `clock.rs`
//!   (RTP time against wall clock of a forwarded stream), `deadline.rs`, [`Metrics`]
//!   (`metrics.rs`, Prometheus text), [`srtp`] (SRTP and SRTCP with the DTLS handshake's keys).
//!
//! Imports point one way, without loops, down this order: server → sfu → router → participant
//! → {transport, track} → {negotiation, producer, command} → {consumer, assembler, options, room,
//! signal} → {egress, ingress, recording} → {demux, info, metrics, rtcp/feedback, rtcp/report,
//! rtcp/twcc} → {clock, deadline, ice_tcp, ids, rtcp, rtcp/nack, rtp, srtp, transmit}. A file imports
//! only from groups to its right; a helper two files share lives below both.
//!
//! # Invariants
//! - A participant belongs to exactly one Room; a Room exists while it has participants.
//! - Media of a participant is forwarded only to the other participants of its Room.
//! - Only one SDP offer of the server is outstanding per participant; an offer from the client
//!   while ours is outstanding wins (ours is rolled back and re-made after the answer).
//! - Nothing per packet is logged above `trace!`.
//! - A room is recorded only while both a doctor and a patient have consented; the media loop
//!   never waits for the recorder.

mod assembler;
mod candidates;
mod clock;
mod command;
mod consumer;
mod deadline;
mod demux;
mod egress;
#[cfg(test)]
mod fuzz;
mod ice_tcp;
mod ids;
mod info;
mod ingress;
mod metrics;
mod negotiation;
mod options;
mod participant;
mod producer;
mod recording;
mod resend;
mod room;
mod router;
mod rtcp;
mod rtp;
mod server;
mod sfu;
mod signal;
pub mod srtp;
mod track;
mod transmit;
mod transport;

pub use candidates::{MAX_REMOTE_CANDIDATES, Parsed};
pub use command::Command;
pub use ids::{ParticipantId, ParticipantKey, RoomId};
pub use info::{NetworkQuality, ParticipantInfo, Role, TrackKind};
pub use metrics::{LoopLoad, Metrics, RoomMetrics};
pub use negotiation::NegotiationError;
pub use options::SfuOptions;
pub use recording::{
    MediaTap, RecordingError, RecordingMode, RecordingPhase, RecordingStatus, RoomEvent,
    StopReason, TapCodec, TapFactory, TapFrame,
};
pub use rtp::Header as RtpHeader;
pub use server::{
    DEFAULT_SOCKET_BUFFER, IceTcp, MediaHandle, MediaServer, MediaServerError, SIGNAL_QUEUE,
};
pub use sfu::{JoinError, Sfu};
pub use signal::{CodecMismatch, LeaveReason, Signal};
pub use transmit::{Protocol, Transmit};
