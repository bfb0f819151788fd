//! Address ranges (`185.71.76.0/27`, `2a02:5180::/32`, a single address) and the caller's
//! address behind trusted proxies — for webhooks whose senders are known by address.

use std::net::IpAddr;
use std::str::FromStr;

/// A range of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or a range like 185.71.76.0/27")]
pub struct InvalidNet(pub String);

impl FromStr for IpNet {
    type Err = InvalidNet;

    fn from_str(s: &str) -> Result<IpNet, InvalidNet> {
        let bad = || InvalidNet(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl From<IpAddr> for IpNet {
    /// The single address.
    fn from(addr: IpAddr) -> IpNet {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 address written as IPv6 (::ffff:a.b.c.d) is the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Is `ip` in any of `nets`?
pub fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

/// The address a request came from: the peer, or — when the peer is a trusted proxy — the
/// nearest address in `X-Forwarded-For` (right to left) that is not a trusted proxy itself.
/// A forwarded header from anyone else is ignored: it is whatever the sender wrote.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    if !any_contains(trusted, peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if any_contains(trusted, ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let n: IpNet = "185.71.76.0/27".parse().unwrap();
        assert!(n.contains(ip("185.71.76.31")));
        assert!(!n.contains(ip("185.71.76.32")));
        assert!(n.contains(ip("::ffff:185.71.76.1")), "IPv4-mapped");
        let one: IpNet = "77.75.156.11".parse().unwrap();
        assert!(one.contains(ip("77.75.156.11")) && !one.contains(ip("77.75.156.12")));
        let v6: IpNet = "2a02:5180::/32".parse().unwrap();
        assert!(v6.contains(ip("2a02:5180:0:1509::1")));
        assert!(!v6.contains(ip("2a02:5181::1")));
        assert!(!v6.contains(ip("185.71.76.1")));
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("example.com".parse::<IpNet>().is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let header = Some("1.2.3.4, 185.71.76.5, 10.0.0.7");
        assert_eq!(
            client_address(ip("10.0.0.1"), header, &proxies),
            ip("185.71.76.5")
        );
        assert_eq!(
            client_address(ip("203.0.113.9"), header, &proxies),
            ip("203.0.113.9"),
            "not a proxy: its header is ignored"
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), None, &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), Some("garbage"), &proxies),
            ip("10.0.0.1")
        );
    }
}
