//! Who the client is, behind any number of trusted proxies, and the key it is limited under.
//!
//! Only proxies listed in `PORTICO_TRUSTED_PROXIES` may speak for a client. Each proxy appends
//! the address it received the request from to `X-Forwarded-For`, so the client is the
//! right-most address that is not one of ours: everything left of it was written by the
//! client and is ignored. A request whose peer is not a trusted proxy is its own client,
//! whatever headers it sends.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// The proxies allowed to name the client (`PORTICO_TRUSTED_PROXIES`, a CIDR list).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a list of CIDRs or single addresses; the error names the bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{e}` is not an address or CIDR block"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address: the peer itself unless it is a trusted proxy, else the right-most
    /// untrusted address of the `X-Forwarded-For` values (in header order).
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Not an address: nothing left of it can be believed either.
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest
            .split(']')
            .next()?
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| canonical(ip.into()));
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<IpAddr>().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses are the IPv4 client they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The rate-limit key of a client: the address for IPv4, its /64 network for IPv6 (one
/// subscriber usually holds a whole /64, so per-address keys would be 2^64 budgets).
pub fn limit_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("203.0.113.9"), ["1.1.1.1"].into_iter()),
            ip("203.0.113.9")
        );
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            proxies.client(ip("203.0.113.9"), ["1.1.1.1"].into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // The client wrote "6.6.6.6" itself; the edge proxy appended the real address.
        let xff = ["6.6.6.6, 198.51.100.7", "10.1.2.3"];
        assert_eq!(proxies.client(ip("192.168.1.1"), xff.into_iter()), ip("198.51.100.7"));
        // A fresh made-up left-most value per request changes nothing.
        let xff = ["1.2.3.4, 198.51.100.7, 10.1.2.3"];
        assert_eq!(proxies.client(ip("10.9.9.9"), xff.into_iter()), ip("198.51.100.7"));
        // Only proxies in the header: the left-most of them.
        assert_eq!(proxies.client(ip("10.9.9.9"), ["10.1.1.1"].into_iter()), ip("10.1.1.1"));
        // No header from a proxy: the proxy itself.
        assert_eq!(proxies.client(ip("10.9.9.9"), std::iter::empty()), ip("10.9.9.9"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            proxies.client(ip("10.9.9.9"), ["nonsense, 10.1.1.1"].into_iter()),
            ip("10.1.1.1")
        );
        // Ports and brackets are tolerated.
        assert_eq!(
            proxies.client(ip("10.9.9.9"), ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies.client(ip("10.9.9.9"), ["198.51.100.7:1234"].into_iter()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(limit_key(ip("2001:db8:1:2::1")), limit_key(ip("2001:db8:1:3::1")));
        assert_eq!(limit_key(ip("::ffff:198.51.100.7")), "ip:198.51.100.7");
        assert_eq!(limit_key(ip("198.51.100.7")), "ip:198.51.100.7");
    }

    #[test]
    fn bad_entries_are_named() {
        let e = TrustedProxies::parse(&["10.0.0.0/8", "ten"]).unwrap_err();
        assert!(e.contains("`ten`"), "{e}");
        assert!(TrustedProxies::parse(&["::1", "fd00::/8"]).is_ok());
    }
}
