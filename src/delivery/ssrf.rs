//! The SSRF guard: receivers are on the internet, never inside the node's own network, unless
//! `delivery.allow_private_networks` says otherwise. Literal addresses are refused when an
//! endpoint is created; host names are resolved at delivery time and the connection is made
//! only to an address that passed this check (the resolver below hands reqwest nothing else).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_blocked_v4(v4),
            None => is_blocked_v6(v6),
        },
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes the 169.254.169.254 metadata address
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 0 && ip.octets()[2] == 2) // documentation (TEST-NET-1)
        || (a == 198 && b == 51 && ip.octets()[2] == 100) // TEST-NET-2
        || (a == 203 && b == 0 && ip.octets()[2] == 113) // TEST-NET-3
        || a >= 240
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local (includes fd00:ec2::254 metadata)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard, 100::/64
        || (s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0) // IPv4-translated, ::ffff:0:a.b.c.d
        || (s[..6] == [0; 6] && is_blocked_v4(ip.to_ipv4().expect("an IPv4-compatible address"))) // IPv4-compatible
        // Addresses that lead into IPv4 through a translator or a tunnel, whatever they embed:
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) // NAT64, 64:ff9b::/96
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64, 64:ff9b:1::/48
        || s[0] == 0x2002 // 6to4, 2002::/16
        || (s[0] == 0x2001 && s[1] == 0) // Teredo, 2001::/32
}

/// The host of a URL as a literal IP address, if it is one.
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The error a blocked resolution carries, so the transport can tell it from a DNS failure.
#[derive(Debug)]
pub struct BlockedDestination(pub String);

impl std::fmt::Display for BlockedDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "destination_blocked: {} resolves only to non-public addresses",
            self.0
        )
    }
}
impl std::error::Error for BlockedDestination {}

/// What a name resolved to, less every blocked address; refused when nothing is left.
pub fn guard(host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| !is_blocked(a.ip())).collect();
    if allowed.is_empty() {
        return Err(Box::new(BlockedDestination(host.to_string())));
    }
    Ok(allowed)
}

/// A reqwest resolver that drops every blocked address.
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = guard(&host, addrs)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range the guard refuses (docs/API.md), by an address inside it.
    const BLOCKED: [&str; 37] = [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "100.127.255.254",
        "192.0.0.8",
        "198.18.0.1",
        "198.19.255.255",
        "255.255.255.255",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::10.0.0.1",
        "64:ff9b::8.8.8.8",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "2002:c0a8:101::1",
        "2002:808:808::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "fec0::1",
        "2001:db8::1",
        "100::1",
        "::ffff:0:7f00:1",
    ];

    #[test]
    fn every_listed_range_is_blocked_as_a_literal_and_as_what_a_name_resolves_to() {
        for ip in BLOCKED {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_blocked(ip), "{ip}");
            let refused = guard("receiver.test", vec![SocketAddr::new(ip, 443)]).unwrap_err();
            assert!(refused.to_string().contains("destination_blocked"), "{ip}: {refused}");
        }
        // A name with one public address among blocked ones is delivered to that one only.
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let mixed = vec![SocketAddr::new("10.0.0.1".parse().unwrap(), 443), public];
        assert_eq!(guard("receiver.test", mixed).unwrap(), vec![public]);
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
        ] {
            assert!(!is_blocked(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_hosts_are_recognised() {
        assert_eq!(literal_ip("127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(literal_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal_ip("example.com"), None);
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_loopback() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = GuardedResolver
            .resolve(name)
            .await
            .err()
            .expect("localhost must be refused");
        assert!(err.to_string().contains("destination_blocked"), "{err}");
    }
}
