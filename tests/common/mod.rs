//! Test harness: a real Vizit on port 0, WebSocket clients, and str0m peers on real UDP sockets.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vizit::config::Settings;
use vizit::startup::Application;
use vizit_signaling::{CallRole, TokenKeys};

pub const SECRET: &str = "test-secret-test-secret-test-secret-0001";

pub struct TestApp {
    pub http: SocketAddr,
    pub keys: TokenKeys,
    /// The business layer of the running server (its database).
    pub api: vizit_api::ApiState,
    /// The built-in sandbox and its URL, when the settings start it (demo mode).
    pub sandbox: Option<(vizit_sandbox::Sandbox, String)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    data_dir: std::path::PathBuf,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// A server whose settings `adjust` changes first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let data_dir = std::env::temp_dir().join(format!("vizit-test-{}", uuid::Uuid::new_v4()));
        let mut settings = Settings {
            data_dir: data_dir.clone(),
            ..Settings::default()
        };
        settings.http.listen = "127.0.0.1:0".parse().unwrap();
        settings.media.udp_bind = "127.0.0.1:0".parse().unwrap();
        settings.auth.token_secret = Some(SecretString::from(SECRET.to_owned()));
        // Patients go straight into calls here; the waiting room's own tests turn it on.
        settings.signaling.waiting_room = false;
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let http = app.http_addr();
        let api = app.api().clone();
        let sandbox = app.sandbox().map(|(s, url)| (s.clone(), url));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let keys = TokenKeys::new(&SecretString::from(SECRET.to_owned())).unwrap();
        TestApp {
            http,
            keys,
            api,
            sandbox,
            stop: Some(stop),
            task: Some(task),
            data_dir,
        }
    }

    /// The server's data folder.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    pub fn token(&self, room: &str, participant: &str, role: CallRole) -> String {
        self.keys.issue(
            room,
            participant,
            role,
            participant,
            Duration::from_secs(600),
        )
    }

    pub async fn ws(&self) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.http))
            .await
            .expect("websocket connects");
        Ws { stream }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A response's status and JSON body (`null` if it has none).
pub async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, value: Value) {
        self.stream
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// The next JSON message, skipping pongs and `recording` statuses (room state, not
    /// conversation); `None` when the server closed the socket.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("a message within 10 s");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap();
                    if value["type"] != "pong" && value["type"] != "recording" {
                        return Some(value);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message must be of this type.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self
            .recv()
            .await
            .unwrap_or_else(|| panic!("socket closed, expected {kind}"));
        assert_eq!(message["type"], kind, "unexpected message: {message}");
        message
    }

    pub async fn expect_error(&mut self, code: &str) -> Value {
        let message = self.expect("error").await;
        assert_eq!(message["code"], code, "{message}");
        message
    }

    pub async fn join(&mut self, token: &str) -> Value {
        self.send(json!({"type": "join", "version": 1, "token": token}))
            .await;
        self.expect("joined").await
    }

    /// After a fatal error the server closes the socket.
    pub async fn expect_closed(&mut self) {
        assert!(self.recv().await.is_none(), "the socket should be closed");
    }

    /// The socket is still served: a ping gets its pong (room `recording` statuses aside).
    pub async fn assert_alive(&mut self) {
        self.send(json!({"type": "ping", "nonce": 99})).await;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("pong within 10 s");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap();
                    if value["type"] != "recording" {
                        assert_eq!(value, json!({"type": "pong", "nonce": 99}));
                        return;
                    }
                }
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    }
}

/// A WebRTC peer in Rust (str0m) on a real UDP socket, signaling over a real WebSocket.
pub struct Peer {
    pub name: String,
    pub ws: Ws,
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    pub audio: Option<Mid>,
    pub video: Option<Mid>,
    /// Frames received, with their media kind, in arrival order.
    pub received: Vec<(MediaKind, Vec<u8>)>,
    /// Frames sent, by kind.
    pub sent: Vec<(MediaKind, Vec<u8>)>,
    pub messages: Vec<Value>,
    /// The SFU's answer to our first offer.
    pub answer_sdp: String,
    /// The server's `joined`.
    pub joined: Value,
    frames: u64,
}

impl Peer {
    /// Join over the WebSocket and offer audio and video (publishing) or nothing but a data
    /// channel (receive-only).
    pub async fn connect(
        app: &TestApp,
        room: &str,
        name: &str,
        role: CallRole,
        publish: bool,
    ) -> Peer {
        let mut ws = app.ws().await;
        let joined = ws.join(&app.token(room, name, role)).await;
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let (audio, video) = if publish {
            (
                Some(api.add_media(
                    MediaKind::Audio,
                    Direction::SendOnly,
                    Some(name.into()),
                    None,
                    None,
                )),
                Some(api.add_media(
                    MediaKind::Video,
                    Direction::SendOnly,
                    Some(name.into()),
                    None,
                    None,
                )),
            )
        } else {
            api.add_channel("vizit".into());
            (None, None)
        };
        let (offer, pending) = api.apply().unwrap();
        ws.send(json!({"type": "offer", "sdp": offer.to_sdp_string()}))
            .await;
        let mut peer = Peer {
            name: name.to_owned(),
            ws,
            rtc,
            socket,
            addr,
            pending: Some(pending),
            audio,
            video,
            received: Vec::new(),
            sent: Vec::new(),
            messages: Vec::new(),
            answer_sdp: String::new(),
            joined,
            frames: 0,
        };
        let answer = peer.ws.expect("answer").await;
        peer.answer_sdp = answer["sdp"].as_str().unwrap().to_owned();
        let answer = SdpAnswer::from_sdp_string(&peer.answer_sdp).unwrap();
        let pending = peer.pending.take().unwrap();
        peer.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        peer
    }

    fn handle_message(&mut self, message: Value) -> Option<Value> {
        if message["type"] == "offer" {
            let offer = SdpOffer::from_sdp_string(message["sdp"].as_str().unwrap()).unwrap();
            let answer = self.rtc.sdp_api().accept_offer(offer).unwrap();
            return Some(json!({"type": "answer", "sdp": answer.to_sdp_string()}));
        }
        self.messages.push(message);
        None
    }

    fn write_media(&mut self, now: Instant) {
        if !self.rtc.is_connected() {
            return;
        }
        self.frames += 1;
        let n = self.frames;
        if let Some(mid) = self.audio {
            let data = frame(&self.name, "audio", n, 160);
            let writer = self.rtc.writer(mid).unwrap();
            let pt = writer
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .unwrap()
                .pt();
            writer
                .write(pt, now, MediaTime::from_millis(n * 20), data.clone())
                .unwrap();
            self.sent.push((MediaKind::Audio, data));
        }
        if let (Some(mid), true) = (self.video, n.is_multiple_of(2)) {
            let mut data = frame(&self.name, "video", n, 4000);
            data[0] = if n.is_multiple_of(50) { 0x10 } else { 0x11 };
            let writer = self.rtc.writer(mid).unwrap();
            let pt = writer
                .payload_params()
                .find(|p| p.spec().codec == Codec::Vp8)
                .unwrap()
                .pt();
            writer
                .write(pt, now, MediaTime::from_90khz(n * 1800), data.clone())
                .unwrap();
            self.sent.push((MediaKind::Video, data));
        }
    }

    /// Run the peer for `duration` on real sockets, publishing a frame every 20 ms.
    pub async fn run(&mut self, duration: Duration) {
        let end = Instant::now() + duration;
        let mut next_frame = Instant::now();
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end {
            let timeout = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Event(Event::MediaData(data)) => {
                        let kind = self.rtc.media(data.mid).map(|m| m.kind()).unwrap();
                        self.received.push((kind, data.data.to_vec()));
                    }
                    Output::Event(_) => {}
                }
            };
            let wake = timeout.min(next_frame).min(end);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let (n, source) = received.unwrap();
                    let receive = Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.addr,
                        contents: buf[..n].try_into().unwrap(),
                    };
                    self.rtc.handle_input(Input::Receive(Instant::now(), receive)).unwrap();
                }
                message = self.ws.stream.next() => {
                    if let Some(Ok(Message::Text(text))) = message {
                        let value: Value = serde_json::from_str(text.as_str()).unwrap();
                        if let Some(reply) = self.handle_message(value) {
                            self.ws.send(reply).await;
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            self.rtc.handle_input(Input::Timeout(now)).unwrap();
            if now >= next_frame {
                self.write_media(now);
                next_frame = now + Duration::from_millis(20);
            }
        }
    }
}

pub fn frame(name: &str, kind: &str, n: u64, len: usize) -> Vec<u8> {
    let mut data = format!("#{name}:{kind}:{n:06}:").into_bytes();
    let mut x: u32 = (n as u32).wrapping_mul(2_654_435_761) | 1;
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.push(x as u8);
    }
    data
}

/// Wait until `check` holds, polling for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}
