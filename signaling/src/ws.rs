//! The WebSocket endpoint: drives one [`Session`] per socket against the media node.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};
use vizit_media::{
    JoinError, LeaveReason, MediaHandle, NegotiationError, ParticipantId, ParticipantInfo, RoomId,
    Signal,
};

use crate::protocol::{
    CloseReason, ErrorCode, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, PeerView, ProtocolError,
    ServerMessage,
};
use crate::session::{Action, Session};
use crate::token::TokenKeys;

/// Bytes read from a socket at a time. tungstenite's default (128 KiB) is allocated and zeroed
/// for every socket — a quarter of a 1:1 call's memory for two sockets that carry a few
/// kilobytes of SDP and small messages; a longer message is read in several reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Bounds on the sockets of `GET /ws`, so that no one can hold the server's memory or sockets
/// without joining a call.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// A socket that has not joined a room this long after opening is closed (`joinTimeout`),
    /// whatever it sends meanwhile.
    pub join_timeout: Duration,
    /// Open sockets in total; beyond it an upgrade gets `503`.
    pub max_sockets: usize,
    /// Open sockets per client address; beyond it an upgrade gets `429`.
    pub max_sockets_per_address: usize,
    /// Messages a client may send in a burst…
    pub message_burst: u32,
    /// …refilled at this many per second; a client past it gets `tooManyMessages` and is closed.
    pub messages_per_second: u32,
    /// A frame the client does not take within this (it stopped reading) closes the socket.
    pub send_timeout: Duration,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            join_timeout: Duration::from_secs(10),
            max_sockets: 10_000,
            max_sockets_per_address: 100,
            message_burst: 200,
            messages_per_second: 20,
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// Open sockets, in total and per address.
#[derive(Default)]
struct OpenSockets {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One open socket's place in [`OpenSockets`]; freed when dropped.
struct SocketSlot {
    open: Arc<Mutex<OpenSockets>>,
    address: Option<IpAddr>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("open sockets");
        open.total -= 1;
        if let Some(a) = self.address
            && let Some(n) = open.by_address.get_mut(&a)
        {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&a);
            }
        }
    }
}

/// Asked at every join (a rejoin included) whether a verified token still admits its holder:
/// the business layer knows when a consultation was cancelled or closed, or an account
/// disabled, after the token was issued.
pub trait Admission: Send + Sync + 'static {
    /// `Err` says why not, in words for the client.
    fn admit<'a>(
        &'a self,
        claims: &'a crate::token::JoinClaims,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>>;
}

/// What the WebSocket endpoint needs.
#[derive(Clone)]
pub struct SignalingState {
    media: MediaHandle,
    keys: Arc<TokenKeys>,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    limits: Arc<SocketLimits>,
    open: Arc<Mutex<OpenSockets>>,
    admission: Option<Arc<dyn Admission>>,
}

impl SignalingState {
    /// `shutdown` turning `true` closes every socket with `roomClosed`.
    pub fn new(
        media: MediaHandle,
        keys: TokenKeys,
        idle_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        SignalingState {
            media,
            keys: Arc::new(keys),
            idle_timeout,
            shutdown,
            limits: Arc::new(SocketLimits::default()),
            open: Arc::default(),
            admission: None,
        }
    }

    /// The same state asking `admission` at every join.
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// The same state with these socket limits.
    pub fn with_limits(mut self, limits: SocketLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// Sockets open now.
    pub fn open_sockets(&self) -> usize {
        self.open.lock().expect("open sockets").total
    }

    /// A place for a new socket from `address`, or why not.
    fn admit(&self, address: Option<IpAddr>) -> Result<SocketSlot, Refusal> {
        let mut open = self.open.lock().expect("open sockets");
        if open.total >= self.limits.max_sockets {
            return Err(Refusal::Full);
        }
        if let Some(a) = address {
            let n = open.by_address.entry(a).or_default();
            if *n >= self.limits.max_sockets_per_address {
                return Err(Refusal::TooManyFromAddress);
            }
            *n += 1;
        }
        open.total += 1;
        Ok(SocketSlot {
            open: self.open.clone(),
            address,
        })
    }
}

/// Why a socket was not opened.
enum Refusal {
    Full,
    TooManyFromAddress,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::Full => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many open calls on this server; try again shortly\n",
            ),
            Refusal::TooManyFromAddress => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many open calls from this address\n",
            ),
        };
        (status, [(axum::http::header::RETRY_AFTER, "5")], text).into_response()
    }
}

/// The client's address, when the server was started with connect info.
struct ClientAddress(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip()),
        ))
    }
}

/// A token bucket over the messages of one socket.
struct MessageBudget {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: tokio::time::Instant,
}

impl MessageBudget {
    fn new(limits: &SocketLimits) -> Self {
        MessageBudget {
            tokens: limits.message_burst as f64,
            burst: limits.message_burst as f64,
            per_second: limits.messages_per_second as f64,
            last: tokio::time::Instant::now(),
        }
    }

    /// Take one message's worth; false when the client is over its budget.
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `GET /ws`.
pub fn router(state: SignalingState) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(state)
}

async fn upgrade(
    State(state): State<SignalingState>,
    ClientAddress(address): ClientAddress,
    ws: WebSocketUpgrade,
) -> Response {
    let slot = match state.admit(address) {
        Ok(slot) => slot,
        Err(refused) => {
            debug!("WebSocket refused: too many open");
            return refused.into_response();
        }
    };
    // Frames up to 1 MiB are read so that a merely large one gets a typed `tooLarge` error;
    // the protocol limit itself is MAX_MESSAGE_BYTES.
    ws.max_message_size(1024 * 1024)
        .max_frame_size(1024 * 1024)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            run(socket, state).await;
            drop(slot);
        })
}

struct Joined {
    key: vizit_media::ParticipantKey,
    signals: mpsc::Receiver<Signal>,
}

async fn run(socket: WebSocket, state: SignalingState) {
    let (mut sink, mut stream) = socket.split();
    let mut session = Session::new();
    let mut joined: Option<Joined> = None;
    let mut shutdown = state.shutdown.clone();
    let mut left_on_purpose = false;
    let join_deadline = tokio::time::Instant::now() + state.limits.join_timeout;
    let mut budget = MessageBudget::new(&state.limits);
    let span = info_span!(
        "ws",
        room = tracing::field::Empty,
        participant = tracing::field::Empty
    );

    async {
        loop {
            let awaiting_join = joined.is_none();
            let signal = async {
                match joined.as_mut() {
                    Some(j) => j.signals.recv().await,
                    None => std::future::pending().await,
                }
            };
            let mut outgoing: Vec<ServerMessage> = Vec::new();
            let mut close = false;
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|stopping| *stopping).await; } => {
                    outgoing.push(ServerMessage::RoomClosed { reason: CloseReason::ServerShutdown });
                    close = true;
                }
                _ = tokio::time::sleep_until(join_deadline), if awaiting_join => {
                    debug!("socket did not join in time");
                    outgoing.push(ProtocolError::new(ErrorCode::JoinTimeout, "join within a few seconds of opening the socket").to_message());
                    close = true;
                }
                signal = signal => match signal {
                    Some(signal) => {
                        let delivery = session.handle_signal(signal);
                        outgoing.extend(delivery.message);
                        if delivery.close {
                            // The SFU already removed us.
                            joined = None;
                            close = true;
                        }
                    }
                    None => {
                        // The media server dropped this session: it fell behind on its
                        // messages, or the server is stopping.
                        joined = None;
                        outgoing.push(ProtocolError::new(ErrorCode::ConnectionLost, "the server dropped this session; join again").to_message());
                        close = true;
                    }
                },
                frame = tokio::time::timeout(state.idle_timeout, stream.next()) => match frame {
                    Err(_) => {
                        debug!("socket idle for too long");
                        break;
                    }
                    Ok(None) | Ok(Some(Err(_))) => break,
                    Ok(Some(Ok(Message::Text(_) | Message::Binary(_)))) if !budget.take() => {
                        outgoing.push(ProtocolError::new(ErrorCode::TooManyMessages, "too many messages; slow down").to_message());
                        close = true;
                    }
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let action = session.handle_text(text.as_str(), &state.keys);
                        close = perform(action, &state, &mut session, &mut joined, &mut outgoing, &mut left_on_purpose).await;
                    }
                    Ok(Some(Ok(Message::Binary(bytes)))) => {
                        let code = if bytes.len() > MAX_MESSAGE_BYTES { ErrorCode::TooLarge } else { ErrorCode::BadMessage };
                        outgoing.push(ProtocolError::new(code, "binary frames are not part of the protocol; send JSON text").to_message());
                        close = code.is_fatal();
                    }
                    Ok(Some(Ok(Message::Close(_)))) => break,
                    Ok(Some(Ok(_))) => {} // ping/pong frames are answered by the library
                },
            }
            let send_timeout = state.limits.send_timeout;
            let mut stalled = false;
            for message in outgoing {
                let sent = tokio::time::timeout(send_timeout, sink.send(Message::Text(Utf8Bytes::from(message.to_json())))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    // Gone, or not reading: a client that does not take its messages is dropped.
                    stalled = sent.is_err();
                    close = true;
                    break;
                }
            }
            if stalled {
                debug!("client stopped reading its socket");
                break;
            }
            if close {
                let _ = tokio::time::timeout(send_timeout, sink
                    .send(Message::Close(Some(CloseFrame { code: 1000, reason: Utf8Bytes::from_static("bye") }))))
                    .await;
                break;
            }
        }
        if let Some(j) = joined.take() {
            let reason = if left_on_purpose { LeaveReason::Hangup } else { LeaveReason::ConnectionLost };
            state.media.leave(j.key, reason).await;
        }
        session.close();
    }
    .instrument(span)
    .await;
}

/// Carry out one client action; returns whether the socket must close.
async fn perform(
    action: Action,
    state: &SignalingState,
    session: &mut Session,
    joined: &mut Option<Joined>,
    outgoing: &mut Vec<ServerMessage>,
    left_on_purpose: &mut bool,
) -> bool {
    let fail = |outgoing: &mut Vec<ServerMessage>, e: ProtocolError| {
        let fatal = e.code.is_fatal();
        outgoing.push(e.to_message());
        fatal
    };
    let key = joined.as_ref().map(|j| j.key);
    match action {
        Action::Reply(message) => {
            let fatal = matches!(&message, ServerMessage::Error { code, .. } if code.is_fatal());
            outgoing.push(message);
            fatal
        }
        Action::Join(claims) => {
            tracing::Span::current().record("room", claims.room.as_str());
            tracing::Span::current().record("participant", claims.sub.as_str());
            if let Some(admission) = &state.admission
                && let Err(why) = admission.admit(&claims).await
            {
                info!("join refused: the token no longer admits");
                return fail(
                    outgoing,
                    ProtocolError::new(ErrorCode::CallUnavailable, why),
                );
            }
            let info = ParticipantInfo {
                id: ParticipantId::new(claims.sub.as_str()),
                name: claims.name.clone(),
                role: claims.role.to_media(),
                audio_muted: false,
                video_muted: false,
                recordable: claims.rec,
            };
            match state
                .media
                .join(RoomId::new(claims.room.as_str()), info)
                .await
            {
                Ok((key, peers, signals)) => {
                    session.joined(key);
                    *joined = Some(Joined { key, signals });
                    info!(role = ?claims.role, "joined");
                    outgoing.push(ServerMessage::Joined {
                        version: PROTOCOL_VERSION,
                        participant_id: ParticipantId::new(claims.sub.as_str()),
                        room: claims.room,
                        role: claims.role,
                        name: claims.name,
                        participants: peers.iter().filter_map(PeerView::from_info).collect(),
                    });
                    false
                }
                Err(JoinError::RoomFull { max }) => fail(
                    outgoing,
                    ProtocolError::new(
                        ErrorCode::RoomFull,
                        format!("the room already has {max} participants"),
                    ),
                ),
                Err(JoinError::Ended) => fail(
                    outgoing,
                    ProtocolError::new(ErrorCode::CallUnavailable, "the consultation has ended"),
                ),
                Err(JoinError::Unavailable) => fail(
                    outgoing,
                    ProtocolError::new(ErrorCode::Internal, "the media server is not available"),
                ),
            }
        }
        Action::Offer(sdp) => {
            let Some(key) = key else { return false };
            match state.media.offer(key, sdp).await {
                Ok(answer) => {
                    outgoing.push(ServerMessage::Answer { sdp: answer });
                    false
                }
                Err(e) => fail(outgoing, negotiation_error(e)),
            }
        }
        Action::Answer(sdp) => {
            let Some(key) = key else { return false };
            match state.media.answer(key, sdp).await {
                Ok(()) => false,
                Err(e) => fail(outgoing, negotiation_error(e)),
            }
        }
        Action::Candidate(candidate) => {
            let Some(key) = key else { return false };
            match state.media.candidate(key, candidate).await {
                Ok(()) => false,
                Err(e) => fail(outgoing, negotiation_error(e)),
            }
        }
        Action::Mute(kind, muted) => {
            if let Some(key) = key {
                state.media.mute(key, kind, muted).await;
            }
            false
        }
        Action::Consent(consent) => {
            let Some(key) = key else { return false };
            match state.media.consent(key, consent).await {
                Ok(()) => false,
                Err(e) => fail(outgoing, negotiation_error(e)),
            }
        }
        Action::Recording(start) => {
            let Some(key) = key else { return false };
            match state.media.recording(key, start).await {
                Ok(()) => false,
                Err(e) => fail(outgoing, negotiation_error(e)),
            }
        }
        Action::Leave => {
            *left_on_purpose = true;
            true
        }
    }
}

fn negotiation_error(e: NegotiationError) -> ProtocolError {
    match e {
        NegotiationError::BadSdp(why) => {
            ProtocolError::new(ErrorCode::BadSdp, format!("the SDP was refused: {why}"))
        }
        NegotiationError::TooManyCandidates { max } => ProtocolError::new(
            ErrorCode::TooManyCandidates,
            format!("more than {max} ICE candidates; the extra ones were not taken"),
        ),
        NegotiationError::BadCandidate(why) => ProtocolError::new(
            ErrorCode::BadMessage,
            format!("the ICE candidate was refused: {why}"),
        ),
        NegotiationError::NoPendingOffer => ProtocolError::new(
            ErrorCode::NoPendingOffer,
            "there is no offer of the server to answer",
        ),
        NegotiationError::Recording(e) => {
            ProtocolError::new(ErrorCode::RecordingRefused, e.to_string())
        }
        NegotiationError::Gone => {
            warn!("session outlived its participant");
            ProtocolError::new(
                ErrorCode::ConnectionLost,
                "the participant is no longer in the room; join again",
            )
        }
    }
}
