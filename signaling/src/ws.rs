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
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};
use vizit_media::{
    JoinError, LeaveReason, MediaHandle, NegotiationError, ParticipantId, ParticipantInfo, RoomId,
    Signal,
};

use crate::lobby::{Entry, Lobby, Outcome, WaitTicket, WaiterView};
use crate::protocol::{
    CloseReason, ErrorCode, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, PeerView, ProtocolError,
    ServerMessage,
};
use crate::session::{Action, Session};
use crate::token::{CallRole, JoinClaims, TokenKeys};
use crate::turn::Turn;

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
    /// A joined socket lost without `leave` keeps its participant in the Room this long, for a
    /// `resume` on a new socket; then the participant leaves (`connectionLost`).
    pub resume_grace: Duration,
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
            resume_grace: Duration::from_secs(15),
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
    /// Joined sessions by resume token: on a socket, or parked after its loss.
    sessions: Arc<Mutex<HashMap<String, Holder>>>,
    /// A TURN server to give each join credentials for.
    turn: Option<Arc<Turn>>,
    /// The waiting room, when patients wait to be admitted.
    lobby: Option<Arc<Lobby>>,
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
            sessions: Arc::default(),
            turn: None,
            lobby: None,
        }
    }

    /// The call of `room` ended (its consultation was cancelled or closed): whoever waits to be
    /// admitted gets `roomClosed`, and its admissions are forgotten.
    pub fn close_waiting_room(&self, room: &str) {
        if let Some(lobby) = &self.lobby {
            lobby.close(room);
        }
    }

    /// The same state with (`true`) or without a waiting room: with it, a patient's join waits
    /// until a doctor of the room admits them.
    pub fn with_waiting_room(mut self, on: bool) -> Self {
        self.lobby = on.then(Arc::default);
        self
    }

    /// The same state giving each join credentials for this TURN server.
    pub fn with_turn(mut self, turn: Turn) -> Self {
        self.turn = Some(Arc::new(turn));
        self
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

    /// Sessions whose socket was lost, waiting for a `resume`.
    pub fn parked_sessions(&self) -> usize {
        self.sessions
            .lock()
            .expect("sessions")
            .values()
            .filter(|h| matches!(h, Holder::Parked(_)))
            .count()
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

/// A session in a Room: what moves from a lost socket to the one that resumes it.
struct Joined {
    key: vizit_media::ParticipantKey,
    signals: mpsc::Receiver<Signal>,
    room: String,
    participant: String,
    role: CallRole,
    /// The token that takes this session to another socket (one use).
    resume_token: String,
}

/// A socket's part in the waiting room: the patient's join waiting for admission, or the
/// doctor's view of who waits.
#[derive(Default)]
struct Lobbying {
    waiting: Option<(JoinClaims, WaitTicket)>,
    list: Option<watch::Receiver<Vec<WaiterView>>>,
}

/// Who holds a joined session, by its resume token.
enum Holder {
    /// A socket: a `resume` asks it to hand the session over (its TCP connection may be dead
    /// without its knowing yet, as after a phone's change of network).
    Live {
        room: String,
        participant: String,
        ask: oneshot::Sender<oneshot::Sender<Joined>>,
    },
    /// No socket: its participant stays in the Room until a `resume` or the grace's end.
    Parked(Joined),
}

/// How long until `unix` (seconds since the epoch); zero if it has passed.
fn until_unix(unix: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(unix).saturating_sub(now)
}

/// A new resume token: 244 random bits.
fn new_resume_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl SignalingState {
    /// Register `joined` as held by the calling socket: returns where a `resume` on another
    /// socket asks for it.
    fn hold(&self, joined: &Joined) -> oneshot::Receiver<oneshot::Sender<Joined>> {
        let (ask, rx) = oneshot::channel();
        self.sessions.lock().expect("sessions").insert(
            joined.resume_token.clone(),
            Holder::Live {
                room: joined.room.clone(),
                participant: joined.participant.clone(),
                ask,
            },
        );
        rx
    }

    /// The session of `resume_token` for `claims`' participant, from the socket or the parking
    /// that holds it; `None` if there is none (unknown, spent, expired, or another's).
    async fn take(&self, resume_token: &str, claims: &JoinClaims) -> Option<Joined> {
        // Twice: a socket that ended between our asking and its answer has parked it.
        for _ in 0..2 {
            let ask = {
                let mut sessions = self.sessions.lock().expect("sessions");
                let (room, participant) = match sessions.get(resume_token)? {
                    Holder::Live {
                        room, participant, ..
                    } => (room, participant),
                    Holder::Parked(j) => (&j.room, &j.participant),
                };
                if *room != claims.room || *participant != claims.sub {
                    // Another participant's token: it stays theirs.
                    return None;
                }
                match sessions.remove(resume_token)? {
                    Holder::Parked(j) => return Some(j),
                    Holder::Live { ask, .. } => ask,
                }
            };
            let (reply, answer) = oneshot::channel();
            if ask.send(reply).is_err() {
                continue;
            }
            if let Ok(Ok(j)) = tokio::time::timeout(Duration::from_secs(2), answer).await {
                return Some(j);
            }
        }
        None
    }

    /// The socket of `joined` was lost: keep its participant in the Room for the grace, then
    /// let it leave unless a `resume` took the session.
    fn park(&self, joined: Joined) {
        let token = joined.resume_token.clone();
        let grace = self.limits.resume_grace;
        info!(?grace, "socket lost: the session waits for a resume");
        self.sessions
            .lock()
            .expect("sessions")
            .insert(token.clone(), Holder::Parked(joined));
        let state = self.clone();
        tokio::spawn(
            async move {
                tokio::time::sleep(grace).await;
                // Still parked, or taken by a resume (which holds it under a new token: a
                // token is never held again once parked).
                let expired = state.sessions.lock().expect("sessions").remove(&token);
                if let Some(Holder::Parked(j)) = expired {
                    info!("no resume within the grace: the participant leaves");
                    state.media.leave(j.key, LeaveReason::ConnectionLost).await;
                }
            }
            .in_current_span(),
        );
    }

    /// The session of `resume_token` ends for good on its socket.
    fn forget(&self, resume_token: &str) {
        self.sessions.lock().expect("sessions").remove(resume_token);
    }
}

async fn run(socket: WebSocket, state: SignalingState) {
    let (mut sink, mut stream) = socket.split();
    let mut session = Session::new();
    let mut joined: Option<Joined> = None;
    let mut lobbying = Lobbying::default();
    // Where a `resume` on another socket asks for this socket's session.
    let mut handover: Option<oneshot::Receiver<oneshot::Sender<Joined>>> = None;
    let mut shutdown = state.shutdown.clone();
    let mut left_on_purpose = false;
    // The socket went away (not closed by us): the session may be resumed elsewhere.
    let mut lost = false;
    let join_deadline = tokio::time::Instant::now() + state.limits.join_timeout;
    let mut budget = MessageBudget::new(&state.limits);
    let span = info_span!(
        "ws",
        room = tracing::field::Empty,
        participant = tracing::field::Empty
    );

    async {
        loop {
            let awaiting_join = joined.is_none() && lobbying.waiting.is_none();
            let wait_left = lobbying.waiting.as_ref().map(|(claims, _)| until_unix(claims.exp));
            let waited = async {
                match lobbying.waiting.as_mut() {
                    Some((_, ticket)) => (&mut ticket.outcome).await.ok(),
                    None => std::future::pending().await,
                }
            };
            // A wait lasts no longer than the join token: then the page needs a new one anyway.
            let wait_over = async {
                match wait_left {
                    Some(left) => tokio::time::sleep(left).await,
                    None => std::future::pending().await,
                }
            };
            let list_changed = async {
                match lobbying.list.as_mut() {
                    Some(list) => list.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let signal = async {
                match joined.as_mut() {
                    Some(j) => j.signals.recv().await,
                    None => std::future::pending().await,
                }
            };
            let asked = async {
                match handover.as_mut() {
                    Some(rx) => rx.await.ok(),
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
                reply = asked => {
                    handover = None;
                    if let (Some(reply), Some(j)) = (reply, joined.take()) {
                        match reply.send(j) {
                            Ok(()) => {
                                // The same participant resumed on another socket: this one is
                                // stale (its TCP connection was probably dead already).
                                info!("session taken over by a resume on another socket");
                                session.close();
                                close = true;
                            }
                            Err(j) => {
                                // The resume gave up waiting: keep the session here.
                                handover = Some(state.hold(&j));
                                joined = Some(j);
                            }
                        }
                    }
                }
                outcome = waited => {
                    let claims = lobbying.waiting.take().map(|(claims, _ticket)| claims);
                    match (outcome, claims) {
                        (Some(Outcome::Admitted), Some(claims)) => {
                            info!("admitted from the waiting room");
                            // Asked again: the consultation may have been cancelled meanwhile.
                            close = match admitted(&state, &claims, "admission").await {
                                Ok(()) => join_media(&state, claims, &mut session, &mut joined, &mut lobbying, &mut outgoing).await,
                                Err(e) => {
                                    outgoing.push(e.to_message());
                                    true
                                }
                            };
                            if let Some(j) = &joined {
                                handover = Some(state.hold(j));
                            }
                        }
                        (Some(Outcome::Replaced), _) => {
                            outgoing.push(ProtocolError::new(ErrorCode::Replaced, "the same participant waits from another socket").to_message());
                            close = true;
                        }
                        (Some(Outcome::Closed), _) => {
                            outgoing.push(ServerMessage::RoomClosed { reason: CloseReason::CallEnded });
                            close = true;
                        }
                        _ => {
                            outgoing.push(ProtocolError::new(ErrorCode::Internal, "the waiting room went away; join again").to_message());
                            close = true;
                        }
                    }
                },
                _ = wait_over => {
                    lobbying.waiting = None;
                    outgoing.push(ProtocolError::new(ErrorCode::TokenExpired, "the join token expired while waiting to be admitted").to_message());
                    close = true;
                },
                changed = list_changed => {
                    match (changed, lobbying.list.as_mut()) {
                        (true, Some(list)) => outgoing.push(ServerMessage::Waiting { participants: list.borrow_and_update().clone() }),
                        _ => lobbying.list = None,
                    }
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
                            // The SFU already removed us: nothing to leave or resume.
                            if let Some(j) = joined.take() {
                                state.forget(&j.resume_token);
                            }
                            close = true;
                        }
                    }
                    None => {
                        // The media server dropped this session: it fell behind on its
                        // messages, or the server is stopping.
                        if let Some(j) = joined.take() {
                            state.forget(&j.resume_token);
                        }
                        outgoing.push(ProtocolError::new(ErrorCode::ConnectionLost, "the server dropped this session; join again").to_message());
                        close = true;
                    }
                },
                frame = tokio::time::timeout(state.idle_timeout, stream.next()) => match frame {
                    Err(_) => {
                        debug!("socket idle for too long");
                        lost = true;
                        break;
                    }
                    Ok(None) | Ok(Some(Err(_))) => {
                        lost = true;
                        break;
                    }
                    Ok(Some(Ok(Message::Text(_) | Message::Binary(_)))) if !budget.take() => {
                        outgoing.push(ProtocolError::new(ErrorCode::TooManyMessages, "too many messages; slow down").to_message());
                        close = true;
                    }
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let action = session.handle_text(text.as_str(), &state.keys);
                        let was_joined = joined.is_some();
                        close = perform(action, &state, &mut session, &mut joined, &mut lobbying, &mut outgoing, &mut left_on_purpose).await;
                        if !was_joined && let Some(j) = &joined {
                            handover = Some(state.hold(j));
                        }
                    }
                    Ok(Some(Ok(Message::Binary(bytes)))) => {
                        let code = if bytes.len() > MAX_MESSAGE_BYTES { ErrorCode::TooLarge } else { ErrorCode::BadMessage };
                        outgoing.push(ProtocolError::new(code, "binary frames are not part of the protocol; send JSON text").to_message());
                        close = code.is_fatal();
                    }
                    Ok(Some(Ok(Message::Close(_)))) => {
                        // Closed without `leave`: as good as lost.
                        lost = true;
                        break;
                    }
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
            if let Some(reply) = handover.as_mut().and_then(|rx| rx.try_recv().ok()) {
                // A resume on another socket asked for it as this one ended.
                if let Err(j) = reply.send(j) {
                    state.park(j);
                }
            } else if lost && !left_on_purpose && !*shutdown.borrow() {
                state.park(j);
            } else {
                state.forget(&j.resume_token);
                let reason = if left_on_purpose { LeaveReason::Hangup } else { LeaveReason::ConnectionLost };
                state.media.leave(j.key, reason).await;
            }
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
    lobbying: &mut Lobbying,
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
            if let Err(e) = admitted(state, &claims, "join").await {
                return fail(outgoing, e);
            }
            if let (Some(lobby), CallRole::Patient) = (&state.lobby, claims.role) {
                match lobby.enter(&claims.room, &claims.sub, &claims.name) {
                    Entry::Wait(ticket) => {
                        info!("waiting to be admitted");
                        session.waiting();
                        outgoing.push(ServerMessage::WaitingRoom {
                            starts_at: claims.starts,
                        });
                        lobbying.waiting = Some((claims, ticket));
                        return false;
                    }
                    Entry::Full => {
                        return fail(
                            outgoing,
                            ProtocolError::new(ErrorCode::RoomFull, "the waiting room is full"),
                        );
                    }
                    Entry::Admitted => {}
                }
            }
            join_media(state, claims, session, joined, lobbying, outgoing).await
        }
        Action::Resume(claims, resume_token) => {
            if let Err(e) = admitted(state, &claims, "resume").await {
                return fail(outgoing, e);
            }
            let Some(mut taken) = state.take(&resume_token, &claims).await else {
                info!("resume refused: no session to take back");
                return fail(
                    outgoing,
                    ProtocolError::new(
                        ErrorCode::ResumeFailed,
                        "no session to resume (the resume token is unknown, spent or expired); join instead",
                    ),
                );
            };
            session.joined(taken.key);
            taken.resume_token = new_resume_token();
            info!("resumed on a new socket");
            outgoing.push(ServerMessage::Resumed {
                participant_id: ParticipantId::new(claims.sub.as_str()),
                resume_token: taken.resume_token.clone(),
                resume_grace_ms: state.limits.resume_grace.as_millis() as u64,
            });
            if taken.role == CallRole::Doctor {
                watch_lobby(state, &taken.room, lobbying, outgoing);
            }
            *joined = Some(taken);
            false
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
        Action::Quality(level) => {
            if let Some(key) = key {
                state.media.quality(key, level).await;
            }
            false
        }
        Action::AudioOnly(on) => {
            if let Some(key) = key {
                state.media.audio_only(key, on).await;
            }
            false
        }
        Action::ScreenShare(sharing) => {
            if let Some(key) = key {
                state.media.screen_share(key, sharing).await;
            }
            false
        }
        Action::Admit(participant) => {
            let Some(j) = joined.as_ref() else {
                return false;
            };
            if j.role != CallRole::Doctor {
                info!("admit refused: not the doctor");
                return fail(
                    outgoing,
                    ProtocolError::new(ErrorCode::Forbidden, "only the doctor admits patients"),
                );
            }
            let admitted = state
                .lobby
                .as_ref()
                .is_some_and(|lobby| lobby.admit(&j.room, &participant));
            if admitted {
                info!("admitted a patient from the waiting room");
                false
            } else {
                fail(
                    outgoing,
                    ProtocolError::new(
                        ErrorCode::NotWaiting,
                        "nobody of that id waits in this room's waiting room",
                    ),
                )
            }
        }
        Action::Leave => {
            *left_on_purpose = true;
            true
        }
    }
}

/// Take the verified participant into its Room on the media node (past the waiting room, if
/// any): `joined`, and for a doctor with a waiting room, who waits. Returns whether the socket
/// must close.
async fn join_media(
    state: &SignalingState,
    claims: JoinClaims,
    session: &mut Session,
    joined: &mut Option<Joined>,
    lobbying: &mut Lobbying,
    outgoing: &mut Vec<ServerMessage>,
) -> bool {
    let fail = |outgoing: &mut Vec<ServerMessage>, e: ProtocolError| {
        let fatal = e.code.is_fatal();
        outgoing.push(e.to_message());
        fatal
    };
    let info = ParticipantInfo {
        id: ParticipantId::new(claims.sub.as_str()),
        name: claims.name.clone(),
        role: claims.role.to_media(),
        audio_muted: false,
        video_muted: false,
        screen_sharing: false,
        quality: None,
        audio_only: false,
        recordable: claims.rec,
    };
    match state
        .media
        .join(RoomId::new(claims.room.as_str()), info)
        .await
    {
        Ok((key, peers, signals)) => {
            session.joined(key);
            let resume_token = new_resume_token();
            *joined = Some(Joined {
                key,
                signals,
                room: claims.room.clone(),
                participant: claims.sub.clone(),
                role: claims.role,
                resume_token: resume_token.clone(),
            });
            info!(role = ?claims.role, "joined");
            let room = claims.room.clone();
            outgoing.push(ServerMessage::Joined {
                version: PROTOCOL_VERSION,
                participant_id: ParticipantId::new(claims.sub.as_str()),
                room: claims.room,
                role: claims.role,
                name: claims.name,
                participants: peers.iter().filter_map(PeerView::from_info).collect(),
                resume_token,
                resume_grace_ms: state.limits.resume_grace.as_millis() as u64,
                ice_servers: state
                    .turn
                    .iter()
                    .map(|t| t.credentials(&claims.sub, std::time::SystemTime::now()))
                    .collect(),
            });
            if claims.role == CallRole::Doctor {
                watch_lobby(state, &room, lobbying, outgoing);
            }
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

/// A doctor's socket watches the room's waiting room (if there is one): who waits now, if
/// anyone, then every change.
fn watch_lobby(
    state: &SignalingState,
    room: &str,
    lobbying: &mut Lobbying,
    outgoing: &mut Vec<ServerMessage>,
) {
    let Some(lobby) = &state.lobby else { return };
    let mut list = lobby.watch(room);
    let now = list.borrow_and_update().clone();
    if !now.is_empty() {
        outgoing.push(ServerMessage::Waiting { participants: now });
    }
    lobbying.list = Some(list);
}

/// Name the socket's span after the verified token, and ask the business layer whether the token
/// still admits its holder (`what`: "join" or "resume", for the log).
async fn admitted(
    state: &SignalingState,
    claims: &JoinClaims,
    what: &str,
) -> Result<(), ProtocolError> {
    tracing::Span::current().record("room", claims.room.as_str());
    tracing::Span::current().record("participant", claims.sub.as_str());
    if let Some(admission) = &state.admission
        && let Err(why) = admission.admit(claims).await
    {
        info!("{what} refused: the token no longer admits");
        return Err(ProtocolError::new(ErrorCode::CallUnavailable, why));
    }
    Ok(())
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
