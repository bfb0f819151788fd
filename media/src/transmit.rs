//! A datagram the SFU sends ([`Transmit`]): made by the transports, drained by the I/O edge;
//! and the [`Route`] of a participant's media, the selected candidate pair.

use std::net::SocketAddr;

pub use str0m::net::Protocol;

/// A datagram to send: over UDP, or framed (RFC 4571) on the ICE-TCP connection from
/// `destination`.
#[derive(Debug)]
pub struct Transmit {
    pub proto: Protocol,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// Where a participant's datagrams go: the protocol and addresses of the candidate pair str0m
/// sends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub proto: Protocol,
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

impl Route {
    #[inline]
    pub fn transmit(self, contents: Vec<u8>) -> Transmit {
        Transmit {
            proto: self.proto,
            source: self.source,
            destination: self.destination,
            contents,
        }
    }
}
