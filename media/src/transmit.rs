//! A datagram the SFU sends ([`Transmit`]): made by the transports, drained by the I/O edge.

use std::net::SocketAddr;

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}
