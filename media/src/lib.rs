//! Vizit's SFU: the media plane of a call.
//!
//! # Layout
//! - [`Sfu`] (`sfu.rs`) — the sans-IO core. It owns every Room, Participant and WebRTC state machine
//!   ([`str0m::Rtc`], one per Participant = one Transport). Inputs are `handle_*` calls with the
//!   current time passed in; outputs are drained with `poll_*`. It never reads a clock or a socket,
//!   so tests drive it faster than real time.
//! - [`MediaServer`] (`server.rs`) — the thin I/O edge: one or more media loops, each a thread
//!   with one UDP socket for its participants and its own [`Sfu`] by value, commands in over a
//!   channel, signals out over per-participant channels. A room lives in one loop (by its id); a
//!   participant key names its loop. No locks on the packet path.
//! - `room.rs`, `participant.rs` — a Room (one per Consultation call) and its Participants, each
//!   with Producers (inbound tracks) and Consumers (another participant's track forwarded to it).
//! - `recording.rs` — consent and recording per room; the [`MediaTap`] that hands forwarded
//!   frames to the recorder (which lives outside the SFU, behind [`TapFactory`]).
//! - `assembler.rs` — media is forwarded packet by packet (str0m's RTP mode); while a room is
//!   recorded, each track's packets are also reordered and depacketized into frames for the tap.
//! - `egress.rs`, [`srtp`] — fast forwarding, the sending half of a transport: the SFU protects
//!   and sends forwarded packets itself with the SRTP keys of each transport's DTLS handshake,
//!   writes the sender reports of those streams into str0m's SRTCP and answers their NACKs from
//!   its own ring of sent packets.
//! - `ingress.rs` — fast receiving, the receiving half: the SFU opens received SRTP itself with
//!   the same keys and sends the senders the feedback str0m would have (transport-wide congestion
//!   control feedback, NACKs, receiver reports).
//! - [`Metrics`] (`metrics.rs`) — counters per room and in total, rendered as Prometheus text.
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
mod clock;
mod command;
mod consumer;
mod deadline;
mod demux;
mod egress;
mod ids;
mod info;
mod ingress;
mod metrics;
mod negotiation;
mod options;
mod participant;
mod producer;
mod recording;
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

pub use command::Command;
pub use ids::{ParticipantId, ParticipantKey, RoomId};
pub use info::{ParticipantInfo, Role, TrackKind};
pub use metrics::{LoopLoad, Metrics, RoomMetrics};
pub use negotiation::NegotiationError;
pub use options::SfuOptions;
pub use recording::{
    MediaTap, RecordingError, RecordingMode, RecordingPhase, RecordingStatus, RoomEvent,
    StopReason, TapCodec, TapFactory, TapFrame,
};
pub use rtp::Header as RtpHeader;
pub use server::{DEFAULT_SOCKET_BUFFER, MediaHandle, MediaServer, MediaServerError};
pub use sfu::{JoinError, Sfu};
pub use signal::{LeaveReason, Signal};
pub use transmit::Transmit;
