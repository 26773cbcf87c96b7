//! Who is calling: CIDR ranges (`allowed_ips`, `server.trusted_proxies`) and the caller's
//! address behind trusted proxies.

pub use crate::cidr::{any_contains, Cidr};
use std::net::IpAddr;

/// The address of one `X-Forwarded-For` hop: `1.2.3.4`, `2001:db8::1`, or with a port as some
/// proxies write it (`1.2.3.4:5678`, `[2001:db8::1]:5678`, `[2001:db8::1]`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The caller's address: the socket's peer, unless that peer is a trusted proxy; then the
/// `X-Forwarded-For` hops are read from the right (the hop the trusted proxy itself added)
/// leftwards, skipping trusted proxies, and the first untrusted hop is the caller. Hops left of
/// it were written by the caller and prove nothing. A malformed hop ends the walk at the last
/// trusted address (which is then the caller: the proxy did not say who it forwarded).
pub fn caller_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !any_contains(trusted, peer) {
        return peer;
    }
    let mut caller = peer;
    for hop in forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')) {
        let Some(ip) = hop_address(hop) else {
            return caller;
        };
        caller = ip.to_canonical();
        if !any_contains(trusted, caller) {
            return caller;
        }
    }
    caller
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: Cidr = "203.0.113.0/24".parse().unwrap();
        assert!(r.contains(ip("203.0.113.200")));
        assert!(!r.contains(ip("203.0.114.1")));
        assert!(
            r.contains(ip("::ffff:203.0.113.9")),
            "IPv4-mapped IPv6 is the IPv4 address"
        );
        let one: Cidr = "198.51.100.7".parse().unwrap();
        assert!(one.contains(ip("198.51.100.7")) && !one.contains(ip("198.51.100.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("203.0.113.1")));
        let odd: Cidr = "10.0.0.0/13".parse().unwrap();
        assert!(odd.contains(ip("10.7.255.255")) && !odd.contains(ip("10.8.0.0")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_caller_is_the_first_untrusted_hop_from_the_right() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        // No trusted proxy in front: the socket's peer, whatever the header says.
        assert_eq!(
            caller_ip(ip("198.51.100.1"), &["203.0.113.5"], &trusted),
            ip("198.51.100.1")
        );
        // One trusted proxy: the hop it added.
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // A spoofed hop left of the real one is ignored.
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["1.2.3.4, 203.0.113.5, 10.0.0.9"], &trusted),
            ip("203.0.113.5")
        );
        // Several headers are one list, in order.
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["1.2.3.4", "203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // A trusted proxy that names no one: the proxy itself.
        assert_eq!(caller_ip(ip("127.0.0.1"), &[], &trusted), ip("127.0.0.1"));
        assert_eq!(caller_ip(ip("127.0.0.1"), &["garbage"], &trusted), ip("127.0.0.1"));
        // Ports, as some proxies write them.
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["203.0.113.5:4711"], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["[2001:db8::9]:4711"], &trusted),
            ip("2001:db8::9")
        );
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["[2001:db8::9]"], &trusted),
            ip("2001:db8::9")
        );
        // A line that was not text (passed as ""), right of a forged one, ends the walk.
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["203.0.113.5", ""], &trusted),
            ip("127.0.0.1")
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            caller_ip(ip("127.0.0.1"), &["10.1.1.1, 10.2.2.2"], &trusted),
            ip("10.1.1.1")
        );
    }
}
