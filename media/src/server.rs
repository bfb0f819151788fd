//! The I/O edge of the SFU: one or more media loops, each a thread with its own UDP socket (and
//! ICE-TCP listener, `ice_tcp.rs`) and its own [`Sfu`], and a cloneable [`MediaHandle`] that
//! signaling uses to send commands. A room lives in one loop, chosen by its id; a participant key
//! names its loop.

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::candidates::Parsed;
use crate::ice_tcp::{TcpIn, TcpSide};
use crate::ids::ParticipantKey;
use crate::transmit::Protocol;
use crate::{
    Command, JoinError, LeaveReason, Metrics, NegotiationError, ParticipantInfo, RoomEvent, RoomId,
    Sfu, SfuOptions, Signal, TrackKind,
};

/// Largest datagram we accept; WebRTC keeps packets under the path MTU (~1200–1500 bytes).
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read per `recvmmsg` call.
const RECV_BATCH: usize = quinn_udp::BATCH_SIZE;
/// Receive batches handled before timers, commands and sends get their turn.
const RECV_ROUNDS: usize = 4;
/// Largest GSO send: the kernel's limit is 64 segments and 64 KiB.
const GSO_MAX_BYTES: usize = 60_000;
/// Commands waiting for the run loop. Backpressure beyond this slows signaling, never media.
const COMMAND_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum MediaServerError {
    #[error("cannot bind the media UDP socket to {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot listen for ICE-TCP on {addr}: {source}")]
    BindTcp { addr: SocketAddr, source: io::Error },
    #[error("{threads} media threads from port {first} need ports past 65535")]
    PortRange { first: u16, threads: usize },
    #[error("cannot start a media thread: {0}")]
    Thread(io::Error),
}

enum ServerCommand {
    Join {
        room: RoomId,
        info: ParticipantInfo,
        signals: mpsc::Sender<Signal>,
        reply: oneshot::Sender<Result<(ParticipantKey, Vec<ParticipantInfo>), JoinError>>,
    },
    Command {
        command: Command,
        reply: Option<oneshot::Sender<Result<Option<String>, NegotiationError>>>,
    },
    Metrics(oneshot::Sender<Metrics>),
    /// Remove everyone in a room; replies how many left.
    CloseRoom {
        room: RoomId,
        reason: LeaveReason,
        reply: oneshot::Sender<usize>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Signals waiting for one session's socket; a session this far behind is removed.
pub const SIGNAL_QUEUE: usize = 256;

/// The media node: bind it, hand out [`MediaHandle`]s, then [`MediaServer::spawn`] it.
pub struct MediaServer {
    loops: Vec<MediaLoop>,
}

/// One media loop: a socket, the [`Sfu`] of the rooms assigned to it, and its commands.
struct MediaLoop {
    sfu: Sfu,
    socket: UdpSocket,
    /// Batched receive (`recvmmsg`, GRO) and segmentation offload (GSO) on `socket`.
    udp: UdpSocketState,
    /// The address str0m sees as every datagram's destination: the announced candidate.
    destination: SocketAddr,
    /// The ICE-TCP listener and its announced address, until the loop's thread takes them.
    tcp_listener: Option<(std::net::TcpListener, SocketAddr)>,
    commands: mpsc::Receiver<ServerCommand>,
    sessions: HashMap<ParticipantKey, mpsc::Sender<Signal>>,
    events: Option<mpsc::UnboundedSender<RoomEvent>>,
}

/// Commands to the media node. Cheap to clone.
#[derive(Clone)]
pub struct MediaHandle {
    loops: Arc<[LoopHandle]>,
}

struct LoopHandle {
    commands: mpsc::Sender<ServerCommand>,
    local_addr: SocketAddr,
    announced: SocketAddr,
    tcp_local_addr: Option<SocketAddr>,
}

/// Whether and where each media loop listens for ICE over TCP (passive candidates, RFC 6544).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceTcp {
    Off,
    /// Each loop on the port number of its UDP socket (when the OS chose that port and the same
    /// TCP port is taken, on one the OS chooses).
    UdpPorts,
    /// Loop `i` on this port + `i`; 0: a port the OS chooses, each.
    From(u16),
}

impl MediaServer {
    /// Bind `threads` media loops (at least one), each with its own UDP socket: loop `i` on port
    /// `bind.port() + i`, or on a port the OS chooses each when `bind`'s port is 0; the announced
    /// candidates use the ports bound. `announce_ip` is the address browsers send media to.
    /// `buffer_bytes` is the kernel buffer asked for each direction of each socket
    /// ([`DEFAULT_SOCKET_BUFFER`] is a good start). With `tcp` each loop also listens for ICE
    /// over TCP on `bind`'s address and announces a passive TCP candidate.
    pub async fn bind(
        bind: SocketAddr,
        announce_ip: std::net::IpAddr,
        options: SfuOptions,
        buffer_bytes: usize,
        threads: usize,
        tcp: IceTcp,
    ) -> Result<(MediaServer, MediaHandle), MediaServerError> {
        let threads = threads.max(1);
        let mut loops = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let port = loop_port(bind.port(), i, threads)?;
            let addr = SocketAddr::new(bind.ip(), port);
            let bind_error = |source| MediaServerError::Bind { addr, source };
            let socket = bind_udp(addr, buffer_bytes).map_err(bind_error)?;
            let udp = UdpSocketState::new((&socket).into()).map_err(bind_error)?;
            let local_addr = socket.local_addr().map_err(bind_error)?;
            let announced = SocketAddr::new(announce_ip, local_addr.port());
            let mut options = options.clone();
            options.candidates = vec![announced];
            let tcp_port = match tcp {
                IceTcp::Off => None,
                IceTcp::UdpPorts => Some(local_addr.port()),
                IceTcp::From(first) => Some(loop_port(first, i, threads)?),
            };
            let tcp_listener = match tcp_port {
                None => None,
                Some(port) => {
                    let addr = SocketAddr::new(bind.ip(), port);
                    let bind_error = |source| MediaServerError::BindTcp { addr, source };
                    let listener = match crate::ice_tcp::bind(addr) {
                        // The OS chose the UDP port: the same number may be another TCP
                        // socket's (an ephemeral port); then the OS chooses this one too.
                        Err(e) if bind.port() == 0 && tcp == IceTcp::UdpPorts => {
                            debug!(error = %e, "ICE-TCP on the UDP port's number refused");
                            crate::ice_tcp::bind(SocketAddr::new(bind.ip(), 0))
                        }
                        other => other,
                    }
                    .map_err(bind_error)?;
                    let local = listener.local_addr().map_err(bind_error)?;
                    let announced = SocketAddr::new(announce_ip, local.port());
                    options.tcp_candidates = vec![announced];
                    info!(local_addr = %local, %announced, "ICE-TCP listener bound");
                    Some((listener, announced))
                }
            };
            let tcp_local_addr = tcp_listener.as_ref().and_then(|(l, _)| l.local_addr().ok());
            let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
            info!(%local_addr, %announced, "media UDP socket bound");
            loops.push(MediaLoop {
                sfu: Sfu::new(options).with_keys(i as u64 + 1, threads as u64),
                socket,
                udp,
                destination: announced,
                tcp_listener,
                commands: rx,
                sessions: HashMap::new(),
                events: None,
            });
            handles.push(LoopHandle {
                commands: tx,
                local_addr,
                announced,
                tcp_local_addr,
            });
        }
        Ok((
            MediaServer { loops },
            MediaHandle {
                loops: handles.into(),
            },
        ))
    }

    /// The stream of [`RoomEvent`]s (consents, recordings started and stopped) of every loop.
    /// Without a call to this they are dropped.
    pub fn room_events(&mut self) -> mpsc::UnboundedReceiver<RoomEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        for media_loop in &mut self.loops {
            media_loop.events = Some(tx.clone());
        }
        rx
    }

    /// Run every loop on a thread of its own ("vizit-media", "vizit-media-1", …) with a
    /// single-threaded runtime, its socket moved to it: the packet path never waits behind HTTP
    /// handlers, database calls, another loop or anything else on a shared worker. Resolves once
    /// every loop runs, or fails if a thread, its runtime or its socket could not be set up (the
    /// loops already started stop once the handles are dropped); the future it returns resolves
    /// when every loop has ended.
    pub async fn spawn(
        self,
    ) -> Result<impl Future<Output = ()> + Send + 'static, MediaServerError> {
        let mut finished = Vec::with_capacity(self.loops.len());
        for (i, media_loop) in self.loops.into_iter().enumerate() {
            finished.push(media_loop.spawn(i).await?);
        }
        Ok(async move {
            for loop_finished in finished {
                let _ = loop_finished.await;
            }
        })
    }
}

impl MediaLoop {
    /// Start the loop's thread; resolves once it runs. The returned receiver resolves when it
    /// has ended.
    async fn spawn(self, index: usize) -> Result<oneshot::Receiver<()>, MediaServerError> {
        let (done, finished) = oneshot::channel::<()>();
        let (started, ready) = oneshot::channel::<io::Result<()>>();
        let name = match index {
            0 => "vizit-media".to_owned(),
            i => format!("vizit-media-{i}"),
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                // Made here, so it is dropped here too (never inside another runtime).
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    // Register the socket with this thread's reactor.
                    match self.socket.into_std().and_then(UdpSocket::from_std) {
                        Ok(socket) => {
                            let _ = started.send(Ok(()));
                            MediaLoop { socket, ..self }.run().await;
                        }
                        Err(e) => {
                            let _ = started.send(Err(e));
                        }
                    }
                });
                drop(done);
            })
            .map_err(MediaServerError::Thread)?;
        match ready.await {
            Ok(result) => result.map_err(MediaServerError::Thread)?,
            Err(_) => {
                return Err(MediaServerError::Thread(io::Error::other(
                    "the media thread ended before its loop started",
                )));
            }
        }
        Ok(finished)
    }

    /// Run until a shutdown command (or every handle dropped). On shutdown every participant gets
    /// [`Signal::Closed`] with [`LeaveReason::ServerShutdown`].
    async fn run(mut self) {
        let (mut tcp, mut tcp_frames) = match self.tcp_listener.take() {
            None => (None, None),
            Some((listener, announced)) => match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    let (side, frames) = TcpSide::new(listener, announced);
                    (Some(side), Some(frames))
                }
                Err(e) => {
                    warn!(error = %e, "ICE-TCP listener unusable: UDP only");
                    (None, None)
                }
            },
        };
        let mut rx = RecvBuffers::new(&self.udp);
        let mut tx = GsoBatch::default();
        let mut shutdown_reply: Option<oneshot::Sender<()>> = None;
        // One timer, moved when the deadline moves: a new one per wake-up costs a timer-wheel
        // insertion and removal each time.
        let mut deadline = self.sfu.poll_timeout(Instant::now());
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::pin!(sleep);
        loop {
            self.flush(&mut tx, tcp.as_mut()).await;
            if let Some(reply) = shutdown_reply.take() {
                let _ = reply.send(());
                break;
            }
            let next = self.sfu.poll_timeout(Instant::now());
            if next != deadline {
                deadline = next;
                sleep.as_mut().reset(deadline.into());
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(ServerCommand::Shutdown(reply)) => {
                        self.sfu.close_all(Instant::now(), LeaveReason::ServerShutdown);
                        shutdown_reply = Some(reply);
                    }
                    Some(command) => self.handle_command(command),
                    None => {
                        self.sfu.close_all(Instant::now(), LeaveReason::ServerShutdown);
                        self.flush(&mut tx, tcp.as_mut()).await;
                        break;
                    }
                },
                ready = self.socket.readable() => match ready {
                    Ok(()) => self.receive(&mut rx),
                    Err(e) => debug!(error = %e, "UDP socket not readable"),
                },
                accepted = accept_tcp(tcp.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        if let Some(tcp) = tcp.as_mut() {
                            tcp.accept(stream, peer);
                        }
                    }
                    // Out of descriptors, or a connection reset before it was taken.
                    Err(e) => debug!(error = %e, "ICE-TCP accept failed"),
                },
                Some(first) = frame_tcp(tcp_frames.as_mut()) => {
                    if let (Some(tcp), Some(frames)) = (tcp.as_mut(), tcp_frames.as_mut()) {
                        self.receive_tcp(tcp, frames, first);
                    }
                }
                _ = &mut sleep => {}
            }
            // Recomputed: the work above may have made a timer due now (e.g. a packet to send),
            // and handling it in this round beats another trip through the select.
            let now = Instant::now();
            if self.sfu.poll_timeout(now) <= now {
                self.sfu.handle_timeout(now);
            }
        }
        info!("media server stopped");
    }

    /// Read what the socket has queued, a batch per system call, and hand every datagram to the
    /// SFU. Stops after [`RECV_ROUNDS`] full batches so sends and timers are not starved.
    fn receive(&mut self, rx: &mut RecvBuffers) {
        for _ in 0..RECV_ROUNDS {
            let received = {
                // On the stack: no allocation per system call.
                let mut chunks = rx.data.chunks_mut(rx.slot);
                let mut slices: [IoSliceMut<'_>; RECV_BATCH] = std::array::from_fn(|_| {
                    IoSliceMut::new(chunks.next().expect("RECV_BATCH slots"))
                });
                let udp = &self.udp;
                let socket = &self.socket;
                socket.try_io(Interest::READABLE, || {
                    udp.recv(socket.into(), &mut slices, &mut rx.meta)
                })
            };
            let n = match received {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors of earlier sends surface here on Linux; they concern one peer.
                Err(e) => {
                    debug!(error = %e, "UDP receive error");
                    return;
                }
            };
            let now = Instant::now();
            for (i, meta) in rx.meta[..n].iter().enumerate() {
                let data = &rx.data[i * rx.slot..i * rx.slot + meta.len];
                // With GRO one buffer holds several datagrams of `stride` bytes (the last may
                // be shorter).
                for datagram in data.chunks(meta.stride.max(1)) {
                    self.sfu.handle_receive(
                        now,
                        Protocol::Udp,
                        meta.addr,
                        self.destination,
                        datagram,
                    );
                }
            }
            if n < rx.meta.len() {
                return;
            }
        }
    }

    /// Hand the SFU `first` and what else the ICE-TCP readers have queued (a bounded number, so
    /// UDP, timers and commands get their turn); close the connections it refuses.
    fn receive_tcp(&mut self, tcp: &mut TcpSide, frames: &mut mpsc::Receiver<TcpIn>, first: TcpIn) {
        let now = Instant::now();
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(event) = next.take() {
            match event {
                // A frame of a connection closed since is not taken: its address may be another
                // connection's now.
                TcpIn::Frame(id, frame) if tcp.current(id) => {
                    let (peer, to) = (id.peer, tcp.destination);
                    let taken = self
                        .sfu
                        .handle_receive(now, Protocol::Tcp, peer, to, &frame);
                    tcp.taken(id, taken);
                }
                TcpIn::Frame(..) => {}
                TcpIn::Closed(id) => tcp.ended(id),
            }
            handled += 1;
            if handled < RECV_BATCH * RECV_ROUNDS {
                next = frames.try_recv().ok();
            }
        }
    }

    fn handle_command(&mut self, command: ServerCommand) {
        let now = Instant::now();
        match command {
            ServerCommand::Join {
                room,
                info,
                signals,
                reply,
            } => {
                let result = self.sfu.join(now, room, info).map(|key| {
                    self.sessions.insert(key, signals);
                    (key, self.sfu.peers_of(key))
                });
                let _ = reply.send(result);
            }
            ServerCommand::Command { command, reply } => {
                let result = self.sfu.handle_command(now, command);
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            debug!(error = %e, "command failed");
                        }
                    }
                }
            }
            ServerCommand::Metrics(reply) => {
                let _ = reply.send(self.sfu.metrics());
            }
            ServerCommand::CloseRoom {
                room,
                reason,
                reply,
            } => {
                let _ = reply.send(self.sfu.close_room(now, &room, reason));
            }
            ServerCommand::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    /// Send queued datagrams and deliver queued signals. Consecutive datagrams to the same
    /// peer — the packets of one video frame — leave in one system call with UDP segmentation
    /// offload (GSO) where the kernel supports it: all but the last the same size.
    async fn flush(&mut self, batch: &mut GsoBatch, mut tcp: Option<&mut TcpSide>) {
        while let Some(t) = self.sfu.poll_transmit() {
            if t.proto != Protocol::Udp {
                if let Some(tcp) = tcp.as_deref_mut() {
                    tcp.send(t.destination, t.contents);
                }
                continue;
            }
            if !batch.joins(t.destination, t.contents.len(), self.udp.max_gso_segments()) {
                batch.send(&self.socket, &self.udp).await;
            }
            batch.push(t.destination, &t.contents);
        }
        batch.send(&self.socket, &self.udp).await;
        loop {
            let mut behind = Vec::new();
            let mut gone = Vec::new();
            while let Some((key, signal)) = self.sfu.poll_signal() {
                let closed = matches!(signal, Signal::Closed(_));
                if let Some(session) = self.sessions.get(&key) {
                    // A session that went away is cleaned up below; its signals have no reader.
                    if let Err(mpsc::error::TrySendError::Full(_)) = session.try_send(signal) {
                        behind.push(key);
                    }
                }
                if closed {
                    self.sessions.remove(&key);
                } else if !self.sfu.is_member(key) {
                    // Removed, but its own `Closed` may still be queued behind this signal.
                    gone.push(key);
                }
            }
            for key in gone {
                self.sessions.remove(&key);
            }
            if behind.is_empty() {
                break;
            }
            // A session that does not take its signals (its client stopped reading) is not
            // buffered for without limit: it is dropped (its socket sees the channel close)
            // and the others are told it left, which the next round delivers.
            for key in behind {
                if self.sessions.remove(&key).is_some() {
                    warn!(%key, "a session fell behind on its signals: removed");
                    self.sfu
                        .remove(Instant::now(), key, LeaveReason::ConnectionLost);
                }
            }
        }
        while let Some(event) = self.sfu.poll_event() {
            if let Some(events) = &self.events {
                let _ = events.send(event);
            }
        }
    }
}

/// The port of loop `i` of `threads` from the first loop's `first` (0: the OS chooses, each).
fn loop_port(first: u16, i: usize, threads: usize) -> Result<u16, MediaServerError> {
    match first {
        0 => Ok(0),
        first => u16::try_from(i)
            .ok()
            .and_then(|i| first.checked_add(i))
            .ok_or(MediaServerError::PortRange { first, threads }),
    }
}

/// The next ICE-TCP connection; never, without ICE-TCP.
async fn accept_tcp(tcp: Option<&TcpSide>) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let Some(tcp) = tcp else {
        return std::future::pending().await;
    };
    let accepted = tcp.listener.accept().await;
    if accepted.is_err() {
        // Out of descriptors, most likely: accept fails at once until some close, so wait a
        // little rather than spin.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    accepted
}

/// The next frame or close from an ICE-TCP connection; never, without ICE-TCP.
async fn frame_tcp(frames: Option<&mut mpsc::Receiver<TcpIn>>) -> Option<TcpIn> {
    match frames {
        Some(frames) => frames.recv().await,
        None => std::future::pending().await,
    }
}

/// FNV-1a of the room id, its high half folded into the low one (FNV's low bits depend only on
/// the bytes' low bits): a room maps to the same loop in every process and every version.
fn room_hash(room: &RoomId) -> u64 {
    let h = room.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    h ^ (h >> 32)
}

/// Consecutive datagrams to one destination, sent in one system call with UDP segmentation
/// offload: all of `segment` bytes but the last, which may be shorter.
#[derive(Default)]
struct GsoBatch {
    contents: Vec<u8>,
    /// Destination, segment size, datagrams in the batch.
    to: Option<(SocketAddr, usize, usize)>,
}

impl GsoBatch {
    /// Whether a datagram of `len` bytes to `destination` may be added to this batch (an empty
    /// batch takes anything).
    fn joins(&self, destination: SocketAddr, len: usize, max_segments: usize) -> bool {
        match self.to {
            None => true,
            Some((to, segment, count)) => {
                to == destination
                    && len <= segment
                    // Every datagram so far is a full segment: a shorter one ends the batch.
                    && self.contents.len() == segment * count
                    && count < max_segments
                    && self.contents.len() + len <= GSO_MAX_BYTES
            }
        }
    }

    /// Add a datagram; the caller checked [`GsoBatch::joins`].
    fn push(&mut self, destination: SocketAddr, datagram: &[u8]) {
        self.contents.extend_from_slice(datagram);
        self.to = Some(match self.to {
            Some((to, segment, count)) => (to, segment, count + 1),
            None => (destination, datagram.len(), 1),
        });
    }

    /// Send the batch, if any, and empty it.
    async fn send(&mut self, socket: &UdpSocket, udp: &UdpSocketState) {
        let Some((destination, segment, _)) = self.to.take() else {
            return;
        };
        let transmit = quinn_udp::Transmit {
            destination,
            ecn: None,
            contents: &self.contents,
            segment_size: (self.contents.len() > segment).then_some(segment),
            src_ip: None,
        };
        let send = || udp.send(socket.into(), &transmit);
        let sent = match socket.try_io(Interest::WRITABLE, send) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket.async_io(Interest::WRITABLE, send).await
            }
            other => other,
        };
        // Other errors are logged (rate-limited) by quinn-udp and dropped: media is lossy and
        // str0m retransmits what a peer reports missing.
        if let Err(e) = sent {
            debug!(%destination, error = %e, "UDP send failed");
        }
        self.contents.clear();
    }
}

/// The receive side's buffers: [`RECV_BATCH`] slots, each big enough for a GRO batch.
struct RecvBuffers {
    data: Vec<u8>,
    slot: usize,
    meta: Vec<RecvMeta>,
}

impl RecvBuffers {
    fn new(udp: &UdpSocketState) -> RecvBuffers {
        let slot = (MAX_DATAGRAM * udp.gro_segments()).min(u16::MAX as usize);
        RecvBuffers {
            data: vec![0; slot * RECV_BATCH],
            slot,
            meta: vec![RecvMeta::default(); RECV_BATCH],
        }
    }
}

/// Kernel buffer to ask for on the media socket. Every participant's media shares this one
/// socket, and keyframes arrive in bursts: the Linux default (~208 KiB) overflows at a few dozen
/// rooms and drops packets. The kernel caps it at `net.core.rmem_max`/`wmem_max`.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

fn bind_udp(bind: SocketAddr, buffer_bytes: usize) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(bind),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer still works, it only drops sooner under load.
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    let _ = socket.set_send_buffer_size(buffer_bytes);
    let (recv, send) = (socket.recv_buffer_size()?, socket.send_buffer_size()?);
    // Linux reports twice what it granted (its bookkeeping overhead included).
    if recv < buffer_bytes {
        warn!(
            bytes = recv,
            "the media socket's receive buffer is smaller than media.socket_buffer_bytes; raise \
             net.core.rmem_max to {buffer_bytes} to avoid drops under load"
        );
    }
    debug!(recv, send, "media socket buffers");
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    UdpSocket::from_std(socket.into())
}

impl MediaHandle {
    /// The first loop's socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.loops[0].local_addr
    }

    /// Every loop's announced address: the UDP ports browsers send media to.
    pub fn announced_addrs(&self) -> Vec<SocketAddr> {
        self.loops.iter().map(|l| l.announced).collect()
    }

    /// Every loop's ICE-TCP listening address (none without ICE-TCP).
    pub fn tcp_local_addrs(&self) -> Vec<SocketAddr> {
        self.loops.iter().filter_map(|l| l.tcp_local_addr).collect()
    }

    /// The loop of a room: the same for everyone who joins it.
    fn loop_of_room(&self, room: &RoomId) -> &LoopHandle {
        &self.loops[(room_hash(room) % self.loops.len() as u64) as usize]
    }

    /// The loop whose SFU handed out `key` (keys of loop `i` are `i + 1` modulo the count).
    fn loop_of_key(&self, key: ParticipantKey) -> &LoopHandle {
        &self.loops[(key.0.wrapping_sub(1) % self.loops.len() as u64) as usize]
    }

    /// Join a room. Returns the session key, the others already there, and the stream of signals
    /// for this session.
    pub async fn join(
        &self,
        room: RoomId,
        info: ParticipantInfo,
    ) -> Result<(ParticipantKey, Vec<ParticipantInfo>, mpsc::Receiver<Signal>), JoinError> {
        let (signals, signal_rx) = mpsc::channel(SIGNAL_QUEUE);
        let (reply, reply_rx) = oneshot::channel();
        self.loop_of_room(&room)
            .commands
            .send(ServerCommand::Join {
                room,
                info,
                signals,
                reply,
            })
            .await
            .map_err(|_| JoinError::Unavailable)?;
        let (key, peers) = reply_rx.await.map_err(|_| JoinError::Unavailable)??;
        Ok((key, peers, signal_rx))
    }

    async fn request(&self, command: Command) -> Result<Option<String>, NegotiationError> {
        let (reply, reply_rx) = oneshot::channel();
        self.loop_of_key(command.key())
            .commands
            .send(ServerCommand::Command {
                command,
                reply: Some(reply),
            })
            .await
            .map_err(|_| NegotiationError::Gone)?;
        reply_rx.await.map_err(|_| NegotiationError::Gone)?
    }

    async fn tell(&self, command: Command) {
        if self
            .loop_of_key(command.key())
            .commands
            .send(ServerCommand::Command {
                command,
                reply: None,
            })
            .await
            .is_err()
        {
            warn!("media server is gone");
        }
    }

    /// The client's offer; returns the SFU's answer.
    pub async fn offer(
        &self,
        key: ParticipantKey,
        sdp: String,
    ) -> Result<String, NegotiationError> {
        // Parsed here, on the caller's task: the media loop only applies it.
        let offer = Box::new(Parsed::offer(&sdp)?);
        self.request(Command::Offer { key, offer })
            .await?
            .ok_or_else(|| NegotiationError::BadSdp("no answer was produced".into()))
    }

    pub async fn answer(&self, key: ParticipantKey, sdp: String) -> Result<(), NegotiationError> {
        let answer = Box::new(Parsed::answer(&sdp)?);
        self.request(Command::Answer { key, answer })
            .await
            .map(|_| ())
    }

    pub async fn candidate(
        &self,
        key: ParticipantKey,
        candidate: String,
    ) -> Result<(), NegotiationError> {
        self.request(Command::Candidate { key, candidate })
            .await
            .map(|_| ())
    }

    pub async fn mute(&self, key: ParticipantKey, kind: TrackKind, muted: bool) {
        self.tell(Command::Mute { key, kind, muted }).await;
    }

    /// The participant's page judged its link.
    pub async fn quality(&self, key: ParticipantKey, quality: crate::NetworkQuality) {
        self.tell(Command::Quality { key, quality }).await;
    }

    /// The participant starts or stops showing its screen.
    pub async fn screen_share(&self, key: ParticipantKey, sharing: bool) {
        self.tell(Command::ScreenShare { key, sharing }).await;
    }

    /// The participant's link cannot carry video (`true`): the SFU stops forwarding it video
    /// and tells the others; `false` undoes it.
    pub async fn audio_only(&self, key: ParticipantKey, on: bool) {
        self.tell(Command::AudioOnly { key, on }).await;
    }

    pub async fn leave(&self, key: ParticipantKey, reason: LeaveReason) {
        self.tell(Command::Leave { key, reason }).await;
    }

    /// Give (`true`) or withdraw consent to recording.
    pub async fn consent(
        &self,
        key: ParticipantKey,
        consent: bool,
    ) -> Result<(), NegotiationError> {
        self.request(Command::Consent { key, consent })
            .await
            .map(|_| ())
    }

    /// The doctor starts (`true`) or stops the recording.
    pub async fn recording(
        &self,
        key: ParticipantKey,
        start: bool,
    ) -> Result<(), NegotiationError> {
        self.request(Command::Recording { key, start })
            .await
            .map(|_| ())
    }

    /// Send every running loop the command `ask` makes, all before waiting for any; returns
    /// the replies that came, with the loop's number.
    async fn ask_every_loop<T>(
        &self,
        ask: impl Fn(oneshot::Sender<T>) -> ServerCommand,
    ) -> Vec<(usize, T)> {
        let mut pending = Vec::with_capacity(self.loops.len());
        for (index, media_loop) in self.loops.iter().enumerate() {
            let (reply, reply_rx) = oneshot::channel();
            if media_loop.commands.send(ask(reply)).await.is_ok() {
                pending.push((index, reply_rx));
            }
        }
        let mut replies = Vec::with_capacity(pending.len());
        for (index, reply) in pending {
            if let Ok(value) = reply.await {
                replies.push((index, value));
            }
        }
        replies
    }

    /// The counters of every loop that runs; `None` if none does (the media server stopped).
    pub async fn metrics(&self) -> Option<Metrics> {
        let mut total: Option<Metrics> = None;
        for (index, metrics) in self.ask_every_loop(ServerCommand::Metrics).await {
            total.get_or_insert_default().merge(index, metrics);
        }
        total
    }

    /// End a room: everyone in it is removed and told `reason`. Returns how many were in it (0
    /// for a room that is not live, or when the media server is gone).
    pub async fn close_room(&self, room: RoomId, reason: LeaveReason) -> usize {
        let (reply, reply_rx) = oneshot::channel();
        let sent = self
            .loop_of_room(&room)
            .commands
            .send(ServerCommand::CloseRoom {
                room,
                reason,
                reply,
            })
            .await;
        if sent.is_err() {
            return 0;
        }
        reply_rx.await.unwrap_or(0)
    }

    /// Tell every participant the server is stopping, close the rooms, stop every loop: every
    /// loop is told first, then all are awaited.
    pub async fn shutdown(&self) {
        self.ask_every_loop(ServerCommand::Shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(batch: &mut GsoBatch, to: SocketAddr, sizes: &[usize]) -> Vec<bool> {
        sizes
            .iter()
            .map(|&len| {
                let joins = batch.joins(to, len, 64);
                if joins {
                    batch.push(to, &vec![0; len]);
                }
                joins
            })
            .collect()
    }

    #[test]
    fn a_frame_to_one_peer_is_one_batch_ending_with_its_shorter_packet() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let mut batch = GsoBatch::default();
        assert_eq!(
            fill(&mut batch, a, &[1200, 1200, 1200, 700]),
            [true, true, true, true]
        );
        assert_eq!(batch.to, Some((a, 1200, 4)));
        assert_eq!(batch.contents.len(), 3 * 1200 + 700);
        // After the short one nothing more joins, not even a full segment.
        assert!(!batch.joins(a, 1200, 64));
        assert!(!batch.joins(a, 100, 64));
    }

    #[test]
    fn another_peer_a_bigger_packet_or_the_limits_start_a_new_batch() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1000".parse().unwrap(),
            "127.0.0.1:2000".parse().unwrap(),
        );
        let mut batch = GsoBatch::default();
        assert!(batch.joins(a, 500, 64));
        batch.push(a, &[0; 500]);
        assert!(!batch.joins(b, 500, 64), "another destination");
        assert!(!batch.joins(a, 501, 64), "bigger than the segment");
        assert!(batch.joins(a, 500, 64));
        assert!(
            !batch.joins(a, 500, 1),
            "the kernel's segment limit (no GSO: 1)"
        );

        let mut big = GsoBatch::default();
        let n = GSO_MAX_BYTES / 1200;
        assert!(fill(&mut big, a, &vec![1200; n]).iter().all(|&j| j));
        assert!(!big.joins(a, 1200, 64), "the byte limit");
    }
}
