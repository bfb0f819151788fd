//! ICE over TCP (RFC 6544) at the I/O edge: a media loop's listener for passive TCP candidates
//! and its connections ([`TcpSide`]), datagrams framed with a 16-bit length (RFC 4571).
//!
//! Each connection has a reader task, which hands whole frames to the loop, and a writer task,
//! which the loop hands frames to without waiting (a full queue drops, as UDP would). A
//! connection is kept only once the SFU accepted its first frame (a STUN binding request with a
//! participant's credentials); before that it is one of a few per address, and closed if its
//! first frame is late, refused or not a frame at all.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, trace};

/// Connections per media loop, accepted or not.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// Connections per client address, accepted or not (a clinic's NAT may hold a few dozen calls).
pub(crate) const MAX_PER_ADDRESS: usize = 32;
/// Connections per client address whose first frame the SFU has not accepted yet.
pub(crate) const MAX_PENDING_PER_ADDRESS: usize = 8;
/// Largest frame taken: WebRTC keeps its datagrams under the path MTU, as over UDP.
pub(crate) const MAX_FRAME: usize = 2048;
/// A new connection's first frame must arrive within this.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// A connection silent this long is closed: browsers check consent every few seconds.
const IDLE: Duration = Duration::from_secs(30);
/// A write that has not gone through in this long closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames waiting for one connection's writer; beyond this they are dropped.
const SEND_QUEUE: usize = 512;
/// Frames from every connection waiting for the loop; readers wait beyond this (TCP's own
/// flow control then slows the senders).
const RECEIVE_QUEUE: usize = 1024;
/// Frames one write gathers at most.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Which connection an event is of: its peer's address, and a number of its own (a new
/// connection from the same address and port is another one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnId {
    pub peer: SocketAddr,
    serial: u64,
}

/// What a connection's reader hands the loop.
pub(crate) enum TcpIn {
    Frame(ConnId, Vec<u8>),
    /// The peer closed, sent something that is not a frame, or was silent too long.
    Closed(ConnId),
}

struct Connection {
    serial: u64,
    out: mpsc::Sender<Vec<u8>>,
    /// The SFU took a frame of it: a participant's path.
    accepted: bool,
    reader: AbortHandle,
}

/// A media loop's ICE-TCP: its listener and connections, by the peer's address.
pub(crate) struct TcpSide {
    pub listener: TcpListener,
    /// The passive candidate announced: every frame's destination for str0m.
    pub destination: SocketAddr,
    incoming: mpsc::Sender<TcpIn>,
    connections: HashMap<SocketAddr, Connection>,
    next_serial: u64,
}

impl TcpSide {
    /// The side, and the frames (and ends) its connections hand the loop.
    pub fn new(listener: TcpListener, destination: SocketAddr) -> (TcpSide, mpsc::Receiver<TcpIn>) {
        let (incoming, frames) = mpsc::channel(RECEIVE_QUEUE);
        let side = TcpSide {
            listener,
            destination,
            incoming,
            connections: HashMap::new(),
            next_serial: 0,
        };
        (side, frames)
    }

    /// A connection came in: keep it (a reader and a writer task on the current runtime) unless
    /// the loop or its address has too many.
    pub fn accept(&mut self, stream: TcpStream, peer: SocketAddr) {
        let (mut here, mut pending_here) = (0, 0);
        for c in self.connections.iter().filter(|(a, _)| a.ip() == peer.ip()) {
            here += 1;
            pending_here += usize::from(!c.1.accepted);
        }
        if self.connections.len() >= MAX_CONNECTIONS
            || here >= MAX_PER_ADDRESS
            || pending_here >= MAX_PENDING_PER_ADDRESS
        {
            debug!(%peer, "ICE-TCP connection refused: too many");
            return;
        }
        self.next_serial += 1;
        let id = ConnId {
            peer,
            serial: self.next_serial,
        };
        // The one before from the same address and port is gone (its events are stale).
        self.close(peer);
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (out, queue) = mpsc::channel(SEND_QUEUE);
        let reader = tokio::spawn(read_frames(read, id, self.incoming.clone()));
        tokio::spawn(write_frames(write, queue, peer));
        self.connections.insert(
            peer,
            Connection {
                serial: id.serial,
                out,
                accepted: false,
                reader: reader.abort_handle(),
            },
        );
    }

    /// Whether `id` is the connection from its address now (not one closed since).
    pub fn current(&self, id: ConnId) -> bool {
        self.connections
            .get(&id.peer)
            .is_some_and(|c| c.serial == id.serial)
    }

    /// The SFU took (`true`) or refused a frame of connection `id`. A connection none of whose
    /// frames was ever taken is closed at its first refusal.
    pub fn taken(&mut self, id: ConnId, taken: bool) {
        let peer = id.peer;
        match self
            .connections
            .get_mut(&peer)
            .filter(|c| c.serial == id.serial)
        {
            Some(c) if taken => c.accepted = true,
            Some(c) if !c.accepted => {
                debug!(%peer, "ICE-TCP connection closed: its first frame was refused");
                self.close(peer);
            }
            _ => {}
        }
    }

    /// Connection `id` ended (its reader said so): forget it, unless a newer one took its place.
    pub fn ended(&mut self, id: ConnId) {
        if self.current(id) {
            self.close(id.peer);
        }
    }

    /// Forget and close the connection from `peer`.
    pub fn close(&mut self, peer: SocketAddr) {
        if let Some(c) = self.connections.remove(&peer) {
            // The writer ends with its queue (the sender is dropped here).
            c.reader.abort();
        }
    }

    /// Queue a datagram for the connection from `peer`; dropped if there is none or its queue
    /// is full (media is lossy; str0m and the egress resend what a receiver reports missing).
    pub fn send(&mut self, peer: SocketAddr, datagram: Vec<u8>) {
        match self
            .connections
            .get(&peer)
            .map(|c| c.out.try_send(datagram))
        {
            Some(Ok(())) => {}
            Some(Err(mpsc::error::TrySendError::Full(_))) => {
                trace!(%peer, "ICE-TCP send queue full: datagram dropped")
            }
            Some(Err(mpsc::error::TrySendError::Closed(_))) => self.close(peer),
            None => trace!(%peer, "no ICE-TCP connection: datagram dropped"),
        }
    }

    #[cfg(test)]
    fn pending(&self, ip: std::net::IpAddr) -> usize {
        self.connections
            .iter()
            .filter(|(a, c)| !c.accepted && a.ip() == ip)
            .count()
    }
}

/// Bind an ICE-TCP listener (address reuse, so a restart does not wait out TIME_WAIT).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Read frames until the peer closes, breaks the framing or falls silent; then say so.
async fn read_frames(read: OwnedReadHalf, id: ConnId, to_loop: mpsc::Sender<TcpIn>) {
    let peer = id.peer;
    let mut read = BufReader::new(read);
    let mut limit = FIRST_FRAME;
    loop {
        let frame = match tokio::time::timeout(limit, read_frame(&mut read)).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "ICE-TCP connection ended");
                break;
            }
            Err(_) => {
                debug!(%peer, "ICE-TCP connection silent: closed");
                break;
            }
        };
        limit = IDLE;
        if to_loop.send(TcpIn::Frame(id, frame)).await.is_err() {
            return;
        }
    }
    let _ = to_loop.send(TcpIn::Closed(id)).await;
}

/// One RFC 4571 frame: a 16-bit big-endian length, then that many bytes.
async fn read_frame(read: &mut BufReader<OwnedReadHalf>) -> io::Result<Vec<u8>> {
    let len = read.read_u16().await? as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes"),
        ));
    }
    let mut frame = vec![0; len];
    read.read_exact(&mut frame).await?;
    Ok(frame)
}

/// Write what the loop queues, framed, as many frames per write as are waiting.
async fn write_frames(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Vec<u8>>,
    peer: SocketAddr,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES);
    while let Some(first) = queue.recv().await {
        buf.clear();
        frame_into(&mut buf, &first);
        while buf.len() < WRITE_BATCH_BYTES {
            match queue.try_recv() {
                Ok(more) => frame_into(&mut buf, &more),
                Err(_) => break,
            }
        }
        match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "ICE-TCP write failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "ICE-TCP peer takes nothing: closed");
                return;
            }
        }
    }
    let _ = write.shutdown().await;
}

fn frame_into(buf: &mut Vec<u8>, datagram: &[u8]) {
    // Datagrams the SFU makes are far below 64 KiB; a bigger one would be a bug, not dropped
    // silently into a broken stream.
    let len = u16::try_from(datagram.len()).expect("a datagram under 64 KiB");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(datagram);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn side() -> (TcpSide, mpsc::Receiver<TcpIn>, SocketAddr) {
        let listener =
            TcpListener::from_std(bind("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (side, frames) = TcpSide::new(listener, addr);
        (side, frames, addr)
    }

    fn id_of(side: &TcpSide, peer: SocketAddr) -> ConnId {
        ConnId {
            peer,
            serial: side.connections[&peer].serial,
        }
    }

    async fn connect(side: &mut TcpSide, addr: SocketAddr) -> (TcpStream, SocketAddr) {
        let client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = side.listener.accept().await.unwrap();
        side.accept(stream, peer);
        (client, peer)
    }

    #[tokio::test]
    async fn frames_go_both_ways_split_and_joined_as_rfc_4571_says() {
        let (mut side, mut frames, addr) = side().await;
        let (mut client, peer) = connect(&mut side, addr).await;
        // Two frames in one write, the second split over two writes.
        client.write_all(&[0, 3, 1, 2, 3, 0, 2, 9]).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.write_all(&[8]).await.unwrap();
        for expected in [vec![1, 2, 3], vec![9, 8]] {
            match frames.recv().await.unwrap() {
                TcpIn::Frame(from, frame) => {
                    assert_eq!(from.peer, peer);
                    assert_eq!(frame, expected);
                }
                TcpIn::Closed(_) => panic!("closed"),
            }
        }
        side.taken(id_of(&side, peer), true);
        side.send(peer, vec![7; 300]);
        side.send(peer, vec![5]);
        let mut got = vec![0; 2 + 300 + 2 + 1];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..2], &[1, 44]);
        assert!(got[2..302].iter().all(|&b| b == 7));
        assert_eq!(&got[302..], &[0, 1, 5]);
    }

    #[tokio::test]
    async fn a_broken_frame_ends_the_connection() {
        let (mut side, mut frames, addr) = side().await;
        for bad in [vec![0u8, 0], vec![0x10, 0x00]] {
            let (mut client, peer) = connect(&mut side, addr).await;
            client.write_all(&bad).await.unwrap();
            match frames.recv().await.unwrap() {
                TcpIn::Closed(from) => assert_eq!(from.peer, peer),
                TcpIn::Frame(..) => panic!("{bad:?} taken as a frame"),
            }
        }
    }

    #[tokio::test]
    async fn a_refused_first_frame_closes_the_connection_a_taken_one_keeps_it() {
        let (mut side, _frames, addr) = side().await;
        let (mut refused, peer) = connect(&mut side, addr).await;
        side.taken(id_of(&side, peer), false);
        let mut rest = Vec::new();
        // The server closed: the client reads the end of the stream.
        refused.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());

        let (mut kept, peer) = connect(&mut side, addr).await;
        side.taken(id_of(&side, peer), true);
        side.taken(id_of(&side, peer), false);
        side.send(peer, vec![1]);
        let mut got = [0; 3];
        kept.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0, 1, 1]);
    }

    #[tokio::test]
    async fn an_address_has_a_bounded_number_of_connections_even_accepted_ones() {
        let (mut side, _frames, addr) = side().await;
        let mut clients = Vec::new();
        for _ in 0..MAX_PER_ADDRESS {
            let (client, peer) = connect(&mut side, addr).await;
            side.taken(id_of(&side, peer), true);
            clients.push(client);
        }
        let (mut refused, peer) = connect(&mut side, addr).await;
        assert!(!side.connections.contains_key(&peer));
        let mut rest = Vec::new();
        refused.read_to_end(&mut rest).await.unwrap();
        assert_eq!(side.connections.len(), MAX_PER_ADDRESS);
    }

    #[tokio::test]
    async fn an_address_has_a_few_pending_connections_at_most() {
        let (mut side, _frames, addr) = side().await;
        let mut clients = Vec::new();
        for _ in 0..MAX_PENDING_PER_ADDRESS + 3 {
            clients.push(connect(&mut side, addr).await);
        }
        let ip = addr.ip();
        assert_eq!(side.pending(ip), MAX_PENDING_PER_ADDRESS);
        // Those refused are closed at once.
        let (mut last, _) = clients.pop().unwrap();
        let mut rest = Vec::new();
        last.read_to_end(&mut rest).await.unwrap();
        // One accepted makes room for one more.
        side.taken(id_of(&side, clients[0].1), true);
        let (_, more) = connect(&mut side, addr).await;
        assert_eq!(side.pending(ip), MAX_PENDING_PER_ADDRESS);
        assert!(side.connections.contains_key(&more));
    }
}
