//! The WebSocket endpoint: drives one [`Session`] per socket against the media node.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
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

/// What the WebSocket endpoint needs.
#[derive(Clone)]
pub struct SignalingState {
    media: MediaHandle,
    keys: Arc<TokenKeys>,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
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
        }
    }
}

/// `GET /ws`.
pub fn router(state: SignalingState) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(state)
}

async fn upgrade(State(state): State<SignalingState>, ws: WebSocketUpgrade) -> Response {
    // Frames up to 1 MiB are read so that a merely large one gets a typed `tooLarge` error;
    // the protocol limit itself is MAX_MESSAGE_BYTES.
    ws.max_message_size(1024 * 1024)
        .max_frame_size(1024 * 1024)
        .on_upgrade(move |socket| run(socket, state))
}

struct Joined {
    key: vizit_media::ParticipantKey,
    signals: mpsc::UnboundedReceiver<Signal>,
}

async fn run(socket: WebSocket, state: SignalingState) {
    let (mut sink, mut stream) = socket.split();
    let mut session = Session::new();
    let mut joined: Option<Joined> = None;
    let mut shutdown = state.shutdown.clone();
    let mut left_on_purpose = false;
    let span = info_span!(
        "ws",
        room = tracing::field::Empty,
        participant = tracing::field::Empty
    );

    async {
        loop {
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
                        joined = None;
                        outgoing.push(ProtocolError::new(ErrorCode::Internal, "the media server stopped").to_message());
                        close = true;
                    }
                },
                frame = tokio::time::timeout(state.idle_timeout, stream.next()) => match frame {
                    Err(_) => {
                        debug!("socket idle for too long");
                        break;
                    }
                    Ok(None) | Ok(Some(Err(_))) => break,
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
            for message in outgoing {
                if sink.send(Message::Text(Utf8Bytes::from(message.to_json()))).await.is_err() {
                    close = true;
                    break;
                }
            }
            if close {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame { code: 1000, reason: Utf8Bytes::from_static("bye") })))
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
