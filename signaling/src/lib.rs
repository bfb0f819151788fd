//! Vizit's signaling: the WebSocket protocol between the call page and the SFU.
//!
//! # Layout
//! - `protocol.rs` — the typed, versioned wire messages ([`ClientMessage`], [`ServerMessage`],
//!   [`ErrorCode`]); `docs/signaling.md` documents each with an example.
//! - `token.rs` — join tokens ([`TokenKeys`]): HS256 JWTs naming room, participant, role, name.
//! - `session.rs` — the per-connection state machine ([`Session`]) without sockets: client frame →
//!   [`Action`], SFU signal → message. Unit-tested here.
//! - `ws.rs` — `GET /ws`: drives a Session against a [`vizit_media::MediaHandle`]; parks the
//!   session of a lost socket for a `resume`.
//! - `turn.rs` — short-lived TURN credentials per join ([`Turn`]).
//! - `lobby.rs` — the waiting room: a patient's join waits there until a doctor of the room
//!   admits them ([`WaiterView`] is how the doctor sees them).
//!
//! # Invariants
//! - Every client mistake is answered with a typed `error {code, message}`; fatal ones then close
//!   the socket. A socket is never dropped silently.
//! - A socket closed with `leave` takes its participant out of the room at once; one lost
//!   without it does when the grace for a `resume` ends. The others are told why.
//! - Tokens, SDP and names never appear in logs at info or above.
//! - With the waiting room on, a patient reaches the media node only once a doctor of the room
//!   admitted them; a patient never admits anyone.

mod lobby;
mod protocol;
mod session;
mod token;
mod turn;
mod ws;

pub use lobby::WaiterView;
pub use protocol::{
    ClientMessage, CloseReason, ErrorCode, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, PeerView,
    ProtocolError, RecordingAction, ServerMessage,
};
pub use session::{Action, Delivery, Session, SessionState};
pub use token::{
    AUDIENCE, CallRole, JoinClaims, KeyError, MIN_SECRET_BYTES, TokenError, TokenKeys,
};
pub use turn::{IceServer, Turn};
pub use ws::{Admission, SignalingState, SocketLimits, router};
