//! A load generator for Vizit's SFU.
//!
//! N rooms × 2 synthetic participants, each a real WebRTC peer (str0m: ICE, DTLS, SRTP) with
//! its own UDP socket, all driven as tasks on the caller's runtime (one thread in the benchmark
//! binary). Each publishes Opus-sized audio (50 frames/s) and VP8-sized video (a configurable
//! bitrate and frame rate, with a bigger keyframe every 2 s) and receives the other's.
//!
//! Every frame carries a header — room, sender, kind, sequence number, send time — and a body
//! derived from the sequence number, so the receiver checks that the payload arrived unchanged,
//! counts what never arrived, and measures one-way forwarding latency on the shared host clock.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage};
use quinn_udp::UdpSocketState;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::io::IoSliceMut;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use vizit_media::srtp::{self, KeySlot};
use vizit_signaling::{CallRole, TokenKeys};

pub mod janus;
mod rtp;
pub mod soak;

const MAGIC: u32 = 0x5649_5a54; // "VIZT"
const HEADER: usize = 4 + 4 + 1 + 1 + 8 + 8;
const AUDIO_BYTES: usize = 160;
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// A `ping` on the signaling socket this often.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// The server under load.
#[derive(Debug, Clone)]
pub enum Target {
    /// Vizit: `http://host:port`, and its `auth.token_secret` to mint join tokens.
    Vizit {
        base_url: String,
        token_secret: String,
    },
    /// Janus with the VideoRoom plugin: its HTTP API, e.g. `http://10.99.0.1:8088/janus`, and
    /// the address the participants' sockets bind (one Janus can reach: not loopback).
    Janus {
        url: String,
        peer_ip: std::net::IpAddr,
    },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub target: Target,
    pub rooms: usize,
    /// Sending time: every peer starts once all of them connected.
    pub duration: Duration,
    /// Video bitrate per publisher, bits per second.
    pub video_bitrate: u32,
    pub video_fps: u32,
    /// Latency and jitter are sampled from this long after the common start (loss counts every
    /// frame): it leaves out the first keyframes, which every peer sends at once, and a start-up
    /// transient of the generator's own str0m peers (~2.5 s of p99 spikes, the same against
    /// Vizit and Janus).
    pub warmup: Duration,
    /// A peer ends with `leave` (hangs up); without, it just closes its socket (a dropped
    /// connection, as when a phone loses its network).
    pub hang_up: bool,
    start: Arc<Start>,
}

/// The common start of a step: the moment the last peer connected (or failed).
#[derive(Debug)]
struct Start {
    arrived: Mutex<HashSet<(u32, u8)>>,
    /// `micros_now()` of the start, `u64::MAX` until then.
    at_us: AtomicU64,
}

impl Default for Start {
    fn default() -> Start {
        Start {
            arrived: Mutex::default(),
            at_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl Start {
    /// Peer `(room, sender)` is ready (or gave up); idempotent.
    fn arrive(&self, peer: (u32, u8), expected: usize) {
        let mut arrived = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
        if arrived.insert(peer) && arrived.len() == expected {
            self.at_us.store(micros_now(), Ordering::Release);
        }
    }

    fn at_us(&self) -> Option<u64> {
        let at = self.at_us.load(Ordering::Acquire);
        (at != u64::MAX).then_some(at)
    }
}

impl LoadOptions {
    fn arrive(&self, peer: (u32, u8)) {
        self.start.arrive(peer, self.rooms * 2);
    }

    pub fn new(base_url: impl Into<String>, token_secret: impl Into<String>, rooms: usize) -> Self {
        Self::for_target(
            Target::Vizit {
                base_url: base_url.into(),
                token_secret: token_secret.into(),
            },
            rooms,
        )
    }

    pub fn for_target(target: Target, rooms: usize) -> Self {
        LoadOptions {
            target,
            rooms,
            duration: Duration::from_secs(10),
            video_bitrate: 1_500_000,
            video_fps: 30,
            warmup: Duration::from_secs(3),
            hang_up: true,
            start: Arc::default(),
        }
    }
}

/// What one receiving peer saw of its one sender.
#[derive(Debug, Default, Clone)]
pub struct PeerStats {
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frames inside the received sequence range that never arrived.
    pub frames_lost: u64,
    /// Frames whose header or body did not match what the sender wrote.
    pub corrupt: u64,
    /// One-way latency of each received frame, microseconds.
    pub latencies_us: Vec<u32>,
    /// Interarrival jitter (RFC 3550 style) of video frames, microseconds.
    pub jitter_us: f64,
    /// UDP datagrams that reached this participant's sockets from the server.
    pub datagrams_in: u64,
    /// Media (RTP) packets from the server, and those of them that failed SRTP authentication.
    pub media_packets_in: u64,
    pub srtp_rejected: u64,
    /// Media sends of this participant the kernel refused.
    pub send_errors: u64,
}

/// The whole run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub rooms: usize,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub frames_lost: u64,
    pub corrupt: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub jitter_ms: f64,
    /// Peers that failed to join or connect.
    pub failed_peers: usize,
    /// UDP datagrams the server sent to the participants (media, RTCP, ICE): the same measure
    /// for every server.
    pub datagrams_in: u64,
    /// Media (RTP) packets the server forwarded to the participants: the measure of "CPU per
    /// forwarded packet", the same for every server.
    pub media_packets_in: u64,
    /// Media packets that failed SRTP authentication at the receivers.
    pub srtp_rejected: u64,
    /// Media sends the kernel refused at the senders (their frames count as lost).
    pub send_errors: u64,
}

impl Report {
    pub fn loss_percent(&self) -> f64 {
        let expected = self.frames_received + self.frames_lost;
        if expected == 0 {
            0.0
        } else {
            self.frames_lost as f64 * 100.0 / expected as f64
        }
    }
}

fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros_now() -> u64 {
    clock().elapsed().as_micros() as u64
}

/// Bytes the frame bodies are cut from: a fixed pseudo-random pattern, so a sender copies its body
/// (and a receiver compares it) at memcpy speed instead of generating it byte by byte.
const PATTERN_LEN: usize = 1 << 16;

fn pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut x = 2_654_435_761u32;
        (0..2 * PATTERN_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    })
}

/// The body of frame `seq`, `len` bytes: where it starts in the pattern depends on `seq`.
fn body(seq: u64, len: usize) -> impl Iterator<Item = &'static [u8]> {
    let start = (seq.wrapping_mul(7919) % PATTERN_LEN as u64) as usize;
    let pattern = pattern();
    let first = len.min(PATTERN_LEN);
    std::iter::once(&pattern[start..start + first])
        .chain(std::iter::repeat_n(
            &pattern[..PATTERN_LEN],
            (len - first) / PATTERN_LEN,
        ))
        .chain(std::iter::once(&pattern[..(len - first) % PATTERN_LEN]))
}

/// The frame a sender writes, into `data` (emptied first, so one buffer serves every frame of a
/// peer): `prefix` (the VP8 payload header byte, which the receiver strips), then the header,
/// then a body derived from the sequence number; `len` counts header and body.
pub fn frame(
    data: &mut Vec<u8>,
    (room, sender, kind): (u32, u8, u8),
    seq: u64,
    len: usize,
    prefix: Option<u8>,
) {
    let len = len.max(HEADER);
    data.clear();
    data.extend(prefix);
    data.extend_from_slice(&MAGIC.to_be_bytes());
    data.extend_from_slice(&room.to_be_bytes());
    data.push(sender);
    data.push(kind);
    data.extend_from_slice(&seq.to_be_bytes());
    data.extend_from_slice(&micros_now().to_be_bytes());
    for chunk in body(seq, len - HEADER) {
        data.extend_from_slice(chunk);
    }
}

struct Parsed {
    room: u32,
    sender: u8,
    kind: u8,
    seq: u64,
    sent_us: u64,
}

/// Parse and verify a received frame (`first_byte` is what the sender overwrote for VP8).
fn parse(data: &[u8]) -> Option<Parsed> {
    if data.len() < HEADER || u32::from_be_bytes(data[0..4].try_into().ok()?) != MAGIC {
        return None;
    }
    let p = Parsed {
        room: u32::from_be_bytes(data[4..8].try_into().ok()?),
        sender: data[8],
        kind: data[9],
        seq: u64::from_be_bytes(data[10..18].try_into().ok()?),
        sent_us: u64::from_be_bytes(data[18..26].try_into().ok()?),
    };
    let mut rest = &data[HEADER..];
    for chunk in body(p.seq, rest.len()) {
        let (head, tail) = rest.split_at(chunk.len());
        if head != chunk {
            return None;
        }
        rest = tail;
    }
    Some(p)
}

/// Mint a join token the server accepts.
fn token(keys: &TokenKeys, room: &str, participant: &str, role: CallRole) -> String {
    keys.issue(
        room,
        participant,
        role,
        participant,
        Duration::from_secs(3600),
    )
}

/// Run `rooms` rooms of two publishers for `duration`; returns what the receivers saw.
pub async fn run(options: &LoadOptions) -> anyhow::Result<Report> {
    // A fresh start line for this step's peers.
    let options = &LoadOptions {
        start: Arc::default(),
        ..options.clone()
    };
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut tasks = tokio::task::JoinSet::new();
    // Janus: the session that created the rooms, and the rooms, destroyed after the run.
    let mut janus_rooms = None;
    match &options.target {
        Target::Vizit {
            base_url,
            token_secret,
        } => {
            let keys = TokenKeys::new(&SecretString::from(token_secret.clone()))
                .context("token secret")?;
            for room in 0..options.rooms {
                for sender in 0..2u8 {
                    let role = if sender == 0 {
                        CallRole::Doctor
                    } else {
                        CallRole::Patient
                    };
                    let room_name = format!("bench-{run_id}-{room}");
                    let token = token(&keys, &room_name, &format!("p{sender}"), role);
                    let (options, base_url) = (options.clone(), base_url.clone());
                    tasks.spawn(async move {
                        let stats = peer(&options, &base_url, room as u32, sender, token).await;
                        options.arrive((room as u32, sender));
                        stats
                    });
                }
            }
        }
        Target::Janus { url, peer_ip } => {
            let janus = janus::Janus::new(url);
            let admin = janus.admin().await.context("Janus")?;
            let mut ids = Vec::new();
            for room in 0..options.rooms {
                let id = admin.create_room().await?;
                ids.push(id);
                for sender in 0..2u8 {
                    let (options, janus, ip) = (options.clone(), janus.clone(), *peer_ip);
                    tasks.spawn(async move {
                        let stats =
                            janus::peer(&options, &janus, ip, id, room as u32, sender).await;
                        options.arrive((room as u32, sender));
                        stats
                    });
                }
            }
            janus_rooms = Some((admin, ids));
        }
    }
    let mut report = Report {
        rooms: options.rooms,
        ..Report::default()
    };
    let mut latencies = Vec::new();
    let mut jitter = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(stats) => {
                report.frames_sent += stats.frames_sent;
                report.frames_received += stats.frames_received;
                report.frames_lost += stats.frames_lost;
                report.corrupt += stats.corrupt;
                report.datagrams_in += stats.datagrams_in;
                report.media_packets_in += stats.media_packets_in;
                report.srtp_rejected += stats.srtp_rejected;
                report.send_errors += stats.send_errors;
                latencies.extend(stats.latencies_us);
                jitter.push(stats.jitter_us);
            }
            Err(e) => {
                // The first failure of a step is worth seeing; the count says how many.
                if report.failed_peers == 0 {
                    eprintln!("a peer failed: {e:#}");
                }
                report.failed_peers += 1;
            }
        }
    }
    if let Some((admin, ids)) = janus_rooms {
        for id in ids {
            admin.destroy_room(id).await;
        }
        admin.destroy().await;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |v| *v as f64 / 1000.0)
    };
    report.p50_ms = pct(0.50);
    report.p99_ms = pct(0.99);
    report.max_ms = latencies.last().map_or(0.0, |v| *v as f64 / 1000.0);
    report.jitter_ms = if jitter.is_empty() {
        0.0
    } else {
        jitter.iter().sum::<f64>() / jitter.len() as f64 / 1000.0
    };
    Ok(report)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A participant's signaling WebSocket. A task of its own reads it and hands over each text
/// message: polling the stream from the media loop on every wake-up made tungstenite zero its
/// read buffer each time — a fifth of the generator's CPU.
pub(crate) struct Signaling {
    sink: futures_util::stream::SplitSink<Ws, Message>,
    inbox: tokio::sync::mpsc::UnboundedReceiver<anyhow::Result<Value>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Signaling {
    async fn connect(url: &str) -> anyhow::Result<Signaling> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("websocket")?;
        let (sink, mut stream) = ws.split();
        let (tx, inbox) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            loop {
                let item = match stream.next().await {
                    Some(Ok(Message::Text(text))) => {
                        serde_json::from_str(text.as_str()).map_err(anyhow::Error::from)
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => Err(anyhow::anyhow!("websocket: {e}")),
                    None => Err(anyhow::anyhow!("websocket closed")),
                };
                let end = item.is_err();
                if tx.send(item).is_err() || end {
                    return;
                }
            }
        });
        Ok(Signaling {
            sink,
            inbox,
            reader,
        })
    }

    async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        self.sink.send(Message::text(message.to_string())).await?;
        Ok(())
    }

    /// The next message, or `None` once the reader has stopped.
    async fn recv(&mut self) -> Option<anyhow::Result<Value>> {
        self.inbox.recv().await
    }

    /// The next message within 20 s.
    async fn next_json(&mut self) -> anyhow::Result<Value> {
        match tokio::time::timeout(Duration::from_secs(20), self.recv()).await? {
            Some(item) => item,
            None => bail!("websocket closed"),
        }
    }
}

impl Drop for Signaling {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// As the doctor: let in whoever a `waiting` message lists (the waiting room).
async fn admit_waiting(ws: &mut Signaling, message: &Value) -> anyhow::Result<()> {
    if message["type"] != "waiting" {
        return Ok(());
    }
    let waiting = message["participants"].as_array().into_iter().flatten();
    for id in waiting.filter_map(|w| w["participantId"].as_str()) {
        ws.send(json!({"type": "admit", "participantId": id}))
            .await?;
    }
    Ok(())
}

/// One participant on Vizit: join over the signaling WebSocket, publish audio and video, receive
/// the other's (the server offers it when they join), report.
async fn peer(
    options: &LoadOptions,
    base_url: &str,
    room: u32,
    me: u8,
    token: String,
) -> anyhow::Result<PeerStats> {
    let ws_url = format!("{}/ws", base_url.replacen("http", "ws", 1));
    let mut ws = Signaling::connect(&ws_url).await?;
    ws.send(json!({"type": "join", "version": 1, "token": token}))
        .await?;
    let mut joined = ws.next_json().await?;
    if joined["type"] == "waitingRoom" {
        // The waiting room (on by default): the room's doctor peer admits us.
        joined = ws.next_json().await?;
    }
    if joined["type"] != "joined" {
        bail!("join refused: {joined}");
    }
    let mut leg = Leg::new().await?;
    let (mids, offer, pending) = leg.offer_senders(me)?;
    ws.send(json!({"type": "offer", "sdp": offer.to_sdp_string()}))
        .await?;
    let answer = loop {
        let message = ws.next_json().await?;
        if message["type"] == "answer" {
            break message;
        }
        admit_waiting(&mut ws, &message).await?;
    };
    leg.rtc.sdp_api().accept_answer(
        pending,
        SdpAnswer::from_sdp_string(answer["sdp"].as_str().unwrap_or(""))?,
    )?;
    let stats = media_loop(options, room, me, &mut [leg], mids, Some(&mut ws)).await?;
    if options.hang_up {
        let _ = ws.send(json!({"type": "leave"})).await;
    }
    Ok(stats)
}

/// One WebRTC transport of a participant: a str0m `Rtc` for ICE, DTLS and RTCP, the generator's
/// own RTP path for the media ([`rtp::Direct`], keyed by that DTLS), and its own UDP socket.
pub(crate) struct Leg {
    pub rtc: Rtc,
    socket: UdpSocket,
    udp: UdpSocketState,
    addr: SocketAddr,
    keys: Arc<KeySlot>,
    direct: Option<rtp::Direct>,
    /// Where str0m last sent to: the server's end of the selected ICE pair.
    remote: Option<SocketAddr>,
    /// The send streams, by mid, once the first frame of each was sent.
    outgoing: Vec<(Mid, rtp::Outgoing)>,
    batch: Vec<u8>,
    /// Media sends the kernel refused.
    send_errors: u64,
}

/// Largest GSO send, bytes: the kernel's limit is 64 KiB per call.
const GSO_MAX_BYTES: usize = 60_000;
/// Datagrams per receive system call.
const RECV_BATCH: usize = 8;

/// The receive buffers of every transport on this thread (each peer's task uses them only
/// between two awaits): with GRO a slot holds a whole burst, too much to keep per transport.
struct RecvBuffers {
    data: Vec<u8>,
    slot: usize,
    /// Per received buffer: length, source, GRO segment size, arrival (`micros_now()` time).
    meta: Vec<(usize, Option<SocketAddr>, usize, u64)>,
}

thread_local! {
    static RECV: std::cell::RefCell<Option<RecvBuffers>> = const { std::cell::RefCell::new(None) };
}

impl Leg {
    pub async fn new() -> anyhow::Result<Leg> {
        Leg::bound(std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// A transport whose socket (and ICE candidate) is on `ip`.
    pub async fn bound(ip: std::net::IpAddr) -> anyhow::Result<Leg> {
        let socket = stamped_socket(ip).await?;
        // Room for a burst while the generator's thread is busy elsewhere: frames lost in the
        // generator's own socket would be charged to the server.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
        let udp = UdpSocketState::new((&socket).into())?;
        let addr: SocketAddr = socket.local_addr()?;
        let keys = Arc::new(KeySlot::default());
        let config = Rtc::builder().set_crypto_provider(srtp::provider());
        let mut rtc = srtp::capture(&keys, || config.build(Instant::now()));
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        Ok(Leg {
            rtc,
            socket,
            udp,
            addr,
            keys,
            direct: None,
            remote: None,
            outgoing: Vec::new(),
            batch: Vec::new(),
            send_errors: 0,
        })
    }

    /// Offer a send-only audio and a video track; returns their mids, the offer and the pending
    /// change the answer completes.
    pub fn offer_senders(
        &mut self,
        me: u8,
    ) -> anyhow::Result<((Mid, Mid), SdpOffer, SdpPendingOffer)> {
        let mut api = self.rtc.sdp_api();
        let mut add = |kind| {
            api.add_media(
                kind,
                Direction::SendOnly,
                Some(format!("p{me}")),
                None,
                None,
            )
        };
        let (audio, video) = (add(MediaKind::Audio), add(MediaKind::Video));
        let (offer, pending) = api.apply().context("offer")?;
        Ok(((audio, video), offer, pending))
    }

    /// Send what the transport has to send and hand each media frame str0m decoded (none once
    /// the media path is up) to `on_media`; returns when it next needs a timeout.
    async fn pump(
        &mut self,
        mut on_media: impl FnMut(Option<MediaKind>, &[u8], u64),
    ) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    self.remote = Some(t.destination);
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::MediaData(data)) => {
                    let kind = self.rtc.media(data.mid).map(|m| m.kind());
                    on_media(kind, &data.data, micros_now());
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Keep this transport going (ICE, DTLS, RTCP) until `work` completes; returns its output.
    pub async fn drive_while<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> anyhow::Result<T> {
        tokio::pin!(work);
        loop {
            let timeout = self.pump(|_, _, _| {}).await?;
            // str0m advances only on input: wake at least every 50 ms (an answer just applied
            // starts ICE at the next timeout, which it reports as "nothing to do yet").
            let timeout = timeout.min(Instant::now() + Duration::from_millis(50));
            let readable = tokio::select! {
                out = &mut work => return Ok(out),
                r = self.socket.readable() => Some(r),
                _ = tokio::time::sleep_until(timeout.into()) => None,
            };
            if let Some(r) = readable {
                r?;
                self.receive_ready(|_, _, _| {}, &mut 0)?;
            }
            self.rtc.handle_input(Input::Timeout(Instant::now()))?;
        }
    }

    /// Set up the media path once the DTLS handshake has exported its keys.
    fn start_direct(&mut self) -> anyhow::Result<()> {
        if self.direct.is_none()
            && let Some(keys) = self.keys.keys()
        {
            let Some(mut direct) = rtp::Direct::new(keys) else {
                bail!("SRTP profile {:?} is not supported", keys.profile());
            };
            direct.set_kinds(kinds(&self.rtc));
            self.direct = Some(direct);
        }
        Ok(())
    }

    /// Send one frame on the track `mid`: its packets in one GSO system call where the kernel
    /// can, as the server sends its own.
    async fn send_frame(
        &mut self,
        mid: Mid,
        kind: MediaKind,
        frame: &[u8],
        rtp_time: u32,
    ) -> anyhow::Result<()> {
        let stream = match self.outgoing.iter().position(|(m, _)| *m == mid) {
            Some(i) => i,
            None => {
                let ssrc = *self
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(mid, None)
                    .context("no send stream")?
                    .ssrc();
                let codec = match kind {
                    MediaKind::Audio => Codec::Opus,
                    MediaKind::Video => Codec::Vp8,
                };
                let pt = self
                    .rtc
                    .writer(mid)
                    .and_then(|w| {
                        w.payload_params()
                            .find(|p| p.spec().codec == codec)
                            .map(|p| *p.pt())
                    })
                    .with_context(|| format!("{codec:?} was not negotiated"))?;
                // One-byte header extensions carry ids 1–14 (RFC 8285).
                let twcc_id = self
                    .rtc
                    .media(mid)
                    .and_then(|m| m.remote_extmap().id_of(Extension::TransportSequenceNumber))
                    .filter(|id| (1..=14).contains(id));
                self.outgoing.push((
                    mid,
                    rtp::Outgoing {
                        ssrc,
                        pt,
                        kind,
                        index: 0,
                        twcc_id,
                    },
                ));
                self.outgoing.len() - 1
            }
        };
        let Some(destination) = self.remote else {
            bail!("connected without a remote address");
        };
        self.start_direct()?;
        let Some(direct) = self.direct.as_mut() else {
            bail!("connected without SRTP keys");
        };
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        let segment =
            direct.packetize(&mut self.outgoing[stream].1, rtp_time, frame, &mut batch)?;
        // At most the kernel's GSO limits per call: 64 segments and 64 KiB (as the server).
        let segments = self
            .udp
            .max_gso_segments()
            .clamp(1, (GSO_MAX_BYTES / segment.max(1)).max(1));
        for contents in batch.chunks(segment.max(1) * segments) {
            let transmit = quinn_udp::Transmit {
                destination,
                ecn: None,
                contents,
                segment_size: (contents.len() > segment).then_some(segment),
                src_ip: None,
            };
            let send = || self.udp.send((&self.socket).into(), &transmit);
            let sent = match self.socket.try_io(Interest::WRITABLE, send) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.socket.async_io(Interest::WRITABLE, send).await
                }
                other => other,
            };
            // Like a browser's, a send that fails is lost packets, which the receiver counts as
            // lost frames; counted here too, so the table can tell whose loss it was.
            if sent.is_err() {
                self.send_errors += 1;
            }
        }
        self.batch = batch;
        Ok(())
    }

    /// Read every datagram queued on the socket: media through the direct path (each frame to
    /// `on_media`), the rest to str0m; counts them into `datagrams`.
    fn receive_ready(
        &mut self,
        mut on_media: impl FnMut(Option<MediaKind>, &[u8], u64),
        datagrams: &mut u64,
    ) -> anyhow::Result<()> {
        RECV.with_borrow_mut(|rx| {
            let rx = rx.get_or_insert_with(|| {
                let slot = (2048 * self.udp.gro_segments()).min(u16::MAX as usize);
                RecvBuffers {
                    data: vec![0; slot * RECV_BATCH],
                    slot,
                    meta: Vec::with_capacity(RECV_BATCH),
                }
            });
            loop {
                let received = recv_stamped(&self.socket, rx);
                let n = match received {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                for (i, &(len, source, stride, arrival_us)) in rx.meta.iter().enumerate() {
                    let Some(source) = source else { continue };
                    let data = &rx.data[i * rx.slot..i * rx.slot + len];
                    // With GRO one buffer holds several datagrams of `stride` bytes (the last
                    // may be shorter).
                    for datagram in data.chunks(stride.max(1)) {
                        *datagrams += 1;
                        self.handle(source, datagram, arrival_us, &mut on_media)?;
                    }
                }
                if n < RECV_BATCH {
                    return Ok(());
                }
            }
        })
    }

    /// One datagram: a media packet to the direct path, the rest to str0m.
    fn handle(
        &mut self,
        source: SocketAddr,
        datagram: &[u8],
        arrival_us: u64,
        on_media: &mut impl FnMut(Option<MediaKind>, &[u8], u64),
    ) -> anyhow::Result<()> {
        self.start_direct()?;
        if let Some(direct) = self.direct.as_mut() {
            let mut on_frame = |kind, frame: &[u8]| on_media(Some(kind), frame, arrival_us);
            let mut received = direct.receive(datagram, &mut on_frame);
            if let rtp::Received::UnknownPt(pt) = received {
                // The other side's payload types may have come with a later offer; one that is
                // still unknown is not media (retransmission, padding) and is ignored from then.
                direct.set_kinds(kinds(&self.rtc));
                received = direct.receive(datagram, &mut on_frame);
                if received == rtp::Received::UnknownPt(pt) {
                    direct.ignore(pt);
                }
            }
            if received != rtp::Received::NotRtp {
                return Ok(());
            }
        }
        if let Ok(contents) = datagram.try_into() {
            let receive = Receive {
                proto: Protocol::Udp,
                source,
                destination: self.addr,
                contents,
            };
            self.rtc
                .handle_input(Input::Receive(Instant::now(), receive))?;
        }
        Ok(())
    }
}

/// A UDP socket on `ip` whose datagrams the kernel stamps on arrival: latency is measured to
/// the socket, not to when the (busy, low-priority) generator thread got round to reading it.
async fn stamped_socket(ip: std::net::IpAddr) -> anyhow::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimestampns,
        &true,
    )
    .context("SO_TIMESTAMPNS")?;
    Ok(socket)
}

/// One `recvmmsg` into `rx` with each buffer's kernel arrival time (SO_TIMESTAMPNS) and GRO
/// segment size; returns how many buffers were filled (`rx.meta`).
fn recv_stamped(socket: &UdpSocket, rx: &mut RecvBuffers) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    socket.try_io(Interest::READABLE, || {
        let RecvBuffers { data, slot, meta } = rx;
        meta.clear();
        // Made anew for every call: the kernel shrinks each header's control length to what it
        // used, and nix does not restore it. Room for the arrival time, the GRO segment size and
        // what quinn-udp asked the socket for (packet info, ECN).
        let mut headers =
            MultiHeaders::<SockaddrStorage>::preallocate(RECV_BATCH, Some(vec![0; 256]));
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = data
            .chunks_mut(*slot)
            .map(|c| [IoSliceMut::new(c)])
            .collect();
        let received = nix::sys::socket::recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        // The kernel's stamps are wall-clock time; latency is measured on `micros_now()`.
        let (wall_now, now_us) = (std::time::SystemTime::now(), micros_now());
        for msg in received {
            let mut stride = msg.bytes;
            let mut arrival_us = now_us;
            // Truncated control data (more than expected was asked for on the socket): the
            // datagram still counts, with the time it was read and no GRO split.
            for cmsg in msg.cmsgs().into_iter().flatten() {
                match cmsg {
                    ControlMessageOwned::ScmTimestampns(ts) => {
                        let at = std::time::UNIX_EPOCH + Duration::from(ts);
                        let waited = wall_now.duration_since(at).unwrap_or_default();
                        arrival_us = now_us.saturating_sub(waited.as_micros() as u64);
                    }
                    ControlMessageOwned::UdpGroSegments(size) => stride = size.max(1) as usize,
                    _ => {}
                }
            }
            let source = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|a| SocketAddr::from(std::net::SocketAddrV4::from(*a)))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|a| SocketAddr::from(std::net::SocketAddrV6::from(*a)))
                    })
            });
            meta.push((msg.bytes, source, stride, arrival_us));
        }
        Ok(meta.len())
    })
}

/// Payload type → media kind of the codecs a transport negotiated.
fn kinds(rtc: &Rtc) -> Vec<(u8, MediaKind)> {
    rtc.codec_config()
        .params()
        .iter()
        .filter_map(|p| match p.spec().codec {
            Codec::Opus => Some((*p.pt(), MediaKind::Audio)),
            Codec::Vp8 => Some((*p.pt(), MediaKind::Video)),
            _ => None,
        })
        .collect()
}

enum Wake {
    Udp(usize, std::io::Result<()>),
    Signal(Option<anyhow::Result<Value>>),
    Timer,
}

/// Send on `legs[0]` (audio and video on `mids`), receive on every leg, for `options.duration`
/// after all legs connected; a server offer on `ws` is answered on `legs[0]`.
pub(crate) async fn media_loop(
    options: &LoadOptions,
    room: u32,
    me: u8,
    legs: &mut [Leg],
    (audio, video): (Mid, Mid),
    mut ws: Option<&mut Signaling>,
) -> anyhow::Result<PeerStats> {
    let mut stats = PeerStats::default();
    let mut receiving = Receiving {
        sample_from_us: u64::MAX,
        ..Receiving::default()
    };
    let video_bytes = (options.video_bitrate / 8 / options.video_fps.max(1)) as usize;
    let video_interval = Duration::from_secs(1) / options.video_fps.max(1);
    let connect_deadline = Instant::now() + Duration::from_secs(20);
    let mut sending_until: Option<Instant> = None;
    let (mut next_audio, mut next_video) = (Instant::now(), Instant::now());
    let (mut audio_seq, mut video_seq) = (0u64, 0u64);
    let mut drain_until = None;
    // The frame being sent: one buffer for all of them.
    let mut data = Vec::new();
    // When each leg's transport next needs a timeout input.
    let mut due = vec![Instant::now(); legs.len()];
    // The signaling socket is kept alive as the protocol asks (the server closes one that is
    // silent for `signaling.idle_timeout`, 30 s by default).
    let mut next_ping = Instant::now() + PING_INTERVAL;
    loop {
        let now = Instant::now();
        if now >= next_ping {
            if let Some(ws) = ws.as_mut() {
                ws.send(json!({"type": "ping"})).await?;
            }
            next_ping = now + PING_INTERVAL;
        }
        if sending_until.is_none() && legs.iter().all(|l| l.rtc.is_connected()) {
            options.arrive((room, me));
            // Everyone sends from the same moment, once the last peer is connected.
            if options.start.at_us().is_some() {
                sending_until = Some(now + options.duration);
                // Each peer at its own phase within the frame intervals, as independent
                // browsers are: started in lockstep, every audio and every video frame of the
                // step would reach the server as one burst.
                let phase = (room as u64 * 2 + me as u64).wrapping_mul(2_654_435_761) % 1000;
                next_audio = now + AUDIO_INTERVAL * phase as u32 / 1000;
                next_video = now + video_interval * phase as u32 / 1000;
                receiving.sample_from_us = options
                    .start
                    .at_us()
                    .map_or(0, |at| at + options.warmup.as_micros() as u64);
            }
        } else if sending_until.is_none() && now > connect_deadline {
            bail!("not connected after 20 s");
        }
        if let Some(until) = sending_until {
            if now >= until && drain_until.is_none() {
                // Stop sending; keep receiving what is in flight.
                drain_until = Some(now + Duration::from_millis(700));
            }
            if drain_until.is_none() {
                let leg = &mut legs[0];
                if now >= next_audio {
                    audio_seq += 1;
                    frame(&mut data, (room, me, 0), audio_seq, AUDIO_BYTES, None);
                    // 20 ms frames on the 48 kHz clock.
                    let rtp_time = (audio_seq * 960) as u32;
                    leg.send_frame(audio, MediaKind::Audio, &data, rtp_time)
                        .await?;
                    next_audio += AUDIO_INTERVAL;
                }
                if now >= next_video {
                    video_seq += 1;
                    // Keyframes every 2 s, each peer at its own phase: browsers' keyframes are
                    // not synchronized, and a burst from every peer at once is not a real load.
                    let period = options.video_fps as u64 * 2;
                    let phase = (room as u64 * 2 + me as u64) * 7919 % period;
                    let keyframe = (video_seq + phase).is_multiple_of(period) || video_seq == 1;
                    let len = if keyframe {
                        video_bytes * 4
                    } else {
                        video_bytes
                    };
                    // VP8 payload header: P bit 0 marks a keyframe. Keep the magic intact by
                    // placing it in a leading byte the receiver strips.
                    let prefix = Some(if keyframe { 0x10 } else { 0x11 });
                    frame(&mut data, (room, me, 1), video_seq, len, prefix);
                    // The 90 kHz clock.
                    let rtp_time = (video_seq * 90_000 / options.video_fps.max(1) as u64) as u32;
                    leg.send_frame(video, MediaKind::Video, &data, rtp_time)
                        .await?;
                    next_video += video_interval;
                }
            }
        }
        if drain_until.is_some_and(|d| now >= d) {
            break;
        }
        // Drain every leg's output.
        let mut wake = if sending_until.is_some() {
            next_audio.min(next_video)
        } else {
            now + Duration::from_millis(20)
        }
        .min(next_ping);
        if let Some(d) = drain_until {
            wake = wake.min(d);
        }
        for (leg, due) in legs.iter_mut().zip(&mut due) {
            *due = leg
                .pump(|kind, data, at| receiving.record(room, me, kind, data, at, &mut stats))
                .await?;
            wake = wake.min(*due);
        }
        let event = {
            let second = legs.get(1).map(|l| &l.socket);
            tokio::select! {
                r = legs[0].socket.readable() => Wake::Udp(0, r),
                r = async { match second { Some(s) => s.readable().await, None => std::future::pending().await } } => Wake::Udp(1, r),
                m = async { match ws.as_mut() { Some(ws) => ws.recv().await, None => std::future::pending().await } } => Wake::Signal(m),
                _ = tokio::time::sleep_until(wake.into()) => Wake::Timer,
            }
        };
        match event {
            Wake::Udp(i, ready) => {
                ready?;
                let mut datagrams = 0;
                legs[i].receive_ready(
                    |kind, data, at| receiving.record(room, me, kind, data, at, &mut stats),
                    &mut datagrams,
                )?;
                stats.datagrams_in += datagrams;
            }
            Wake::Signal(Some(Ok(value))) => {
                if let Some(ws) = ws.as_mut() {
                    admit_waiting(ws, &value).await?;
                }
                if value["type"] == "offer" {
                    let offer = SdpOffer::from_sdp_string(value["sdp"].as_str().unwrap_or(""))?;
                    let answer = legs[0].rtc.sdp_api().accept_offer(offer)?;
                    if let Some(ws) = ws.as_mut() {
                        ws.send(json!({"type": "answer", "sdp": answer.to_sdp_string()}))
                            .await?;
                    }
                }
            }
            Wake::Signal(Some(Err(e))) => return Err(e.context("signaling")),
            Wake::Signal(_) => bail!("signaling closed"),
            Wake::Timer => {}
        }
        // Only a transport whose timer is due: an early timeout input walks all of str0m's
        // timers for nothing (it was a sixth of the generator's CPU).
        let now = Instant::now();
        for (leg, due) in legs.iter_mut().zip(&due) {
            if now >= *due {
                leg.rtc.handle_input(Input::Timeout(now))?;
            }
        }
    }
    stats.frames_sent = audio_seq + video_seq;
    for leg in legs.iter() {
        stats.send_errors += leg.send_errors;
        if let Some(direct) = &leg.direct {
            stats.media_packets_in += direct.received;
            stats.srtp_rejected += direct.rejected;
        }
    }
    receiving.finish(&mut stats);
    Ok(stats)
}

/// Per-kind bookkeeping of the frames received from the other participant.
#[derive(Default)]
struct Receiving {
    /// (first seq, last seq, count) per kind (0 audio, 1 video).
    seen: [Option<(u64, u64, u64)>; 2],
    last_video: Option<(u64, u64)>,
    jitter: f64,
    /// Frames sent before this (`micros_now()`) are not sampled for latency and jitter.
    sample_from_us: u64,
}

impl Receiving {
    fn record(
        &mut self,
        room: u32,
        me: u8,
        kind: Option<MediaKind>,
        data: &[u8],
        arrival_us: u64,
        stats: &mut PeerStats,
    ) {
        let body = if kind == Some(MediaKind::Video) && !data.is_empty() {
            &data[1..]
        } else {
            data
        };
        let Some(p) = parse(body).filter(|p| {
            p.room == room
                && p.sender != me
                && Some(p.kind) == kind.map(|k| (k == MediaKind::Video) as u8)
        }) else {
            stats.corrupt += 1;
            return;
        };
        let now = arrival_us;
        stats.frames_received += 1;
        let sampled = p.sent_us >= self.sample_from_us;
        if sampled {
            stats
                .latencies_us
                .push(now.saturating_sub(p.sent_us).min(u32::MAX as u64) as u32);
        }
        let slot = &mut self.seen[p.kind as usize];
        *slot = Some(match *slot {
            None => (p.seq, p.seq, 1),
            Some((first, last, count)) => (first.min(p.seq), last.max(p.seq), count + 1),
        });
        if p.kind == 1 && sampled {
            if let Some((prev_sent, prev_recv)) = self.last_video {
                let d = (now as f64 - prev_recv as f64) - (p.sent_us as f64 - prev_sent as f64);
                self.jitter += (d.abs() - self.jitter) / 16.0;
            }
            self.last_video = Some((p.sent_us, now));
        }
    }

    fn finish(&self, stats: &mut PeerStats) {
        for (first, last, count) in self.seen.iter().flatten() {
            stats.frames_lost += (last - first + 1).saturating_sub(*count);
        }
        stats.jitter_us = self.jitter;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffers() -> RecvBuffers {
        RecvBuffers {
            data: vec![0; 2048 * RECV_BATCH],
            slot: 2048,
            meta: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Datagrams queued on a stamped socket are read in one call, each with its length, its
    /// source and the kernel's arrival time: after it was sent, before it was read.
    #[tokio::test]
    async fn each_datagram_comes_with_its_source_and_kernel_arrival_time() {
        let socket = stamped_socket(std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        // The kernel turns its receive timestamps on for the whole host when the first socket
        // asks, from a work queue: a datagram arriving before that is stamped when read. One
        // warm-up datagram, read, and a pause make sure stamping is on.
        sender.send_to(b"warm-up", to).unwrap();
        socket.readable().await.unwrap();
        recv_stamped(&socket, &mut buffers()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sizes = [1, 200, 1200];
        let before_send = micros_now();
        for len in sizes {
            sender.send_to(&vec![7; len], to).unwrap();
        }
        // Read well after the arrival: the stamps must not be the reading time.
        tokio::time::sleep(Duration::from_millis(50)).await;
        socket.readable().await.unwrap();
        let mut rx = buffers();
        let before_read = micros_now();
        let n = recv_stamped(&socket, &mut rx).unwrap();
        assert_eq!(n, sizes.len(), "every queued datagram in one call");
        for (&(len, source, stride, arrival_us), expected) in rx.meta.iter().zip(sizes) {
            assert_eq!(len, expected);
            assert_eq!(
                stride, expected,
                "no GRO on this socket: one datagram per buffer"
            );
            assert_eq!(source, Some(sender.local_addr().unwrap()));
            assert!(
                (before_send..before_read).contains(&arrival_us),
                "arrival {arrival_us} µs: sent from {before_send}, read at {before_read}"
            );
        }
        assert!(rx.data[2048..2048 + 200].iter().all(|b| *b == 7));
        // Nothing more is queued.
        let again = recv_stamped(&socket, &mut rx);
        assert!(matches!(again, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
    }

    /// Without kernel stamps a datagram counts as arriving when it was read.
    #[tokio::test]
    async fn without_stamps_the_reading_time_is_the_arrival() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"x", socket.local_addr().unwrap()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        socket.readable().await.unwrap();
        let mut rx = buffers();
        let before_read = micros_now();
        assert_eq!(recv_stamped(&socket, &mut rx).unwrap(), 1);
        assert!(rx.meta[0].3 >= before_read);
    }
}
