//! The egress proxy's settings as the node reads them: `delivery.proxy_url` (where the proxy
//! is, and its credentials) and `delivery.no_proxy` (what is reached without it). The relay
//! that uses them is `relay.rs`.

use super::ssrf;
use crate::cidr::Cidr;

/// `delivery.no_proxy`: host names (a name also covers its subdomains; a leading dot is
/// allowed) and address ranges reached directly.
#[derive(Debug, Clone, Default)]
pub struct NoProxy {
    names: Vec<String>,
    ranges: Vec<Cidr>,
}

impl NoProxy {
    pub fn parse(entries: &[String]) -> Result<NoProxy, String> {
        let mut out = NoProxy::default();
        for entry in entries {
            let entry = entry.trim();
            if let Ok(range) = entry.parse::<Cidr>() {
                out.ranges.push(range);
            } else {
                let name = entry.trim_start_matches('.').to_ascii_lowercase();
                let valid = !name.is_empty()
                    && name.len() <= 253
                    && name
                        .split('.')
                        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
                if !valid {
                    return Err(format!(
                        "delivery.no_proxy: {entry:?} is neither a host name nor an address range"
                    ));
                }
                out.names.push(name);
            }
        }
        Ok(out)
    }

    pub fn matches(&self, host: &str) -> bool {
        if let Some(ip) = ssrf::literal_ip(host) {
            return self.ranges.iter().any(|r| r.contains(ip));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            host == *n
                || (host.len() > n.len() && host.ends_with(n.as_str()) && host[..host.len() - n.len()].ends_with('.'))
        })
    }
}

/// The upstream proxy: where it is and the `Proxy-Authorization` it wants, if any.
#[derive(Debug, Clone)]
pub(super) struct Upstream {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) authorization: Option<String>,
}

/// `delivery.proxy_url`: `http://[user:password@]host:port`.
pub fn parse_proxy_url(url: &str) -> Result<(), String> {
    upstream(url).map(|_| ())
}

pub(super) fn upstream(url: &str) -> Result<Upstream, String> {
    use base64::Engine;
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("delivery.proxy_url: not a URL ({e})"))?;
    if parsed.scheme() != "http" {
        return Err("delivery.proxy_url: must be http://host:port (a forward proxy; CONNECT carries https)".into());
    }
    let host = parsed
        .host_str()
        .ok_or("delivery.proxy_url: a host is required")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let authorization = (!parsed.username().is_empty()).then(|| {
        let pair = format!(
            "{}:{}",
            percent_decode(parsed.username()),
            percent_decode(parsed.password().unwrap_or(""))
        );
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    });
    Ok(Upstream {
        host,
        port: parsed.port_or_known_default().unwrap_or(80),
        authorization,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_takes_names_subdomains_and_ranges() {
        let list = NoProxy::parse(&[
            "internal.example".into(),
            ".corp".into(),
            "10.0.0.0/8".into(),
            "::1".into(),
        ])
        .unwrap();
        assert!(list.matches("internal.example"));
        assert!(list.matches("a.internal.example"));
        assert!(list.matches("API.Corp"));
        assert!(!list.matches("notinternal.example"));
        assert!(!list.matches("example"));
        assert!(list.matches("10.1.2.3"));
        assert!(list.matches("[::1]"));
        assert!(!list.matches("11.0.0.1"));
        assert!(NoProxy::parse(&["bad name!".into()]).is_err());
        assert!(NoProxy::parse(&["10.0.0.0/33".into()]).is_err());
    }

    #[test]
    fn proxy_urls_are_read_with_their_credentials() {
        let up = upstream("http://user:p%40ss@proxy.internal:3128").unwrap();
        assert_eq!((up.host.as_str(), up.port), ("proxy.internal", 3128));
        assert_eq!(up.authorization.as_deref(), Some("Basic dXNlcjpwQHNz")); // user:p@ss
        assert!(upstream("https://proxy:3128").is_err());
        assert!(upstream("socks5://proxy:1080").is_err());
    }
}
