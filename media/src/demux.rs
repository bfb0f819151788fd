//! Demultiplexing: which participant a datagram on the shared socket is for ([`Demux`]), and
//! what kind of datagram it is (RFC 7983, RFC 5761).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::ids::{FastMap, ParticipantKey};
use crate::transmit::Protocol;

/// Demultiplexing cache: once a source (protocol and address) was accepted by a Transport, its
/// datagrams go straight there (verified with `Rtc::accepts` so a reused address cannot be
/// hijacked). Source addresses are the peers' choice: SipHash, which resists hash flooding.
#[derive(Debug, Default)]
pub(crate) struct Demux {
    by_source: HashMap<(Protocol, SocketAddr), ParticipantKey>,
}

impl Demux {
    /// The participant whose transport accepts a datagram from `source` over `proto` (`accepts`
    /// asks it): the one that took the last datagram from there if it still does, else the
    /// first that does, remembered.
    #[inline]
    pub fn find<P>(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        participants: &FastMap<ParticipantKey, P>,
        accepts: impl Fn(&P) -> bool,
    ) -> Option<ParticipantKey> {
        let cached = self
            .by_source
            .get(&(proto, source))
            .copied()
            .filter(|k| participants.get(k).is_some_and(&accepts));
        if cached.is_some() {
            return cached;
        }
        let key = participants
            .iter()
            .find(|(_, p)| accepts(p))
            .map(|(k, _)| *k)?;
        self.by_source.insert((proto, source), key);
        Some(key)
    }

    /// A participant is gone: no address leads to it any more.
    pub fn forget(&mut self, key: ParticipantKey) {
        self.by_source.retain(|_, k| *k != key);
    }
}

/// An RTP or RTCP datagram (RFC 7983: the first byte is 128–191), as opposed to STUN or DTLS.
#[inline]
pub(crate) fn is_srtp(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b >> 6 == 2)
}

/// Of RTP and RTCP datagrams, RTCP (RFC 5761 §4: the second byte is 192–223).
#[inline]
pub(crate) fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.get(1).is_some_and(|b| (192..=223).contains(b))
}
