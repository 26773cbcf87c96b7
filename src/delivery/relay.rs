//! The egress proxy (`delivery.proxy_url`), asked only for addresses the node checked itself.
//!
//! reqwest would ask a forward proxy to `CONNECT receiver.example:443` and let the proxy
//! resolve the name: a name that resolves to a private address would then reach the proxy's
//! network, whatever the SSRF guard thinks. So reqwest talks to a relay inside the node
//! instead (a listener on 127.0.0.1, one per transport). The transport resolves and checks the
//! destination before each attempt (`Relay::check`); the relay takes each connection reqwest
//! opens (`CONNECT host:port` for https, an absolute-form request for http), asks the real
//! proxy to `CONNECT <checked IP literal>:port` and then only copies bytes both ways. TLS runs
//! end to end between reqwest and the receiver, so the SNI and the certificate check use the
//! original name, and so does the `Host` header.

use super::ssrf;
use crate::cidr::Cidr;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request head (reqwest's, or the proxy's answer) longer than this is refused.
const MAX_HEAD: usize = 16 * 1024;
/// How long a destination's checked addresses are used before it is resolved again.
const CHECKED_FOR: Duration = Duration::from_secs(5);
/// Destinations remembered at most (the map is cleared past it).
const MAX_CHECKED: usize = 10_000;
/// The time the proxy has to answer a `CONNECT`.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);

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
struct Upstream {
    host: String,
    port: u16,
    authorization: Option<String>,
}

/// `delivery.proxy_url`: `http://[user:password@]host:port`.
pub fn parse_proxy_url(url: &str) -> Result<(), String> {
    upstream(url).map(|_| ())
}

fn upstream(url: &str) -> Result<Upstream, String> {
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

type Checked = Arc<Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>>;

/// The relay: its listener's address (reqwest's proxy) and what the transport checked.
pub struct Relay {
    pub addr: SocketAddr,
    /// The header the relay's own refusals carry (a name no receiver can guess), so that an
    /// http attempt it could not pass on is a failure without a status, not the receiver's
    /// answer. Its value is `blocked` or `proxy`.
    pub marker: Arc<str>,
    checked: Checked,
    allow_private: bool,
    task: tokio::task::AbortHandle,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Start the relay in front of the proxy at `proxy_url` (already checked by the
    /// configuration). Must be called inside the runtime.
    pub fn start(proxy_url: &str, allow_private: bool) -> Result<Relay, String> {
        let upstream = Arc::new(upstream(proxy_url)?);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy relay: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let listener = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let checked: Checked = Arc::default();
        let shared = checked.clone();
        let marker: Arc<str> = Arc::from(format!("hookline-egress-{:016x}", rand::random::<u64>()));
        let refusals = marker.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let (upstream, checked, marker) = (upstream.clone(), shared.clone(), refusals.clone());
                tokio::spawn(async move {
                    if let Err(e) = relay(conn, &upstream, &checked, allow_private, &marker).await {
                        tracing::debug!(error = %e, "proxy relay: a connection ended early");
                    }
                });
            }
        })
        .abort_handle();
        Ok(Relay {
            addr,
            marker,
            checked,
            allow_private,
            task,
        })
    }

    /// Resolve `host` and check what it resolves to (unless private networks are allowed),
    /// before the proxy is asked for it; the relay then asks for these addresses only.
    pub async fn check(&self, host: &str) -> Result<(), ssrf::BlockedDestination> {
        let host = host.to_ascii_lowercase();
        if ssrf::literal_ip(&host).is_some() {
            return Ok(()); // checked as a literal by the transport
        }
        if let Some((at, _)) = self.checked.lock().expect("relay map").get(&host) {
            if at.elapsed() < CHECKED_FOR {
                return Ok(());
            }
        }
        let resolved: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
            Ok(addrs) => addrs.collect(),
            // Not resolvable: the relay will fail the connection, as a DNS error would.
            Err(_) => return Ok(()),
        };
        let allowed = if self.allow_private {
            resolved
        } else {
            ssrf::guard(&host, resolved).map_err(|_| ssrf::BlockedDestination(host.clone()))?
        };
        let mut map = self.checked.lock().expect("relay map");
        if map.len() >= MAX_CHECKED {
            map.clear();
        }
        map.insert(host, (Instant::now(), allowed.iter().map(|a| a.ip()).collect()));
        Ok(())
    }
}

/// Where one connection from reqwest goes: `(host, port, tunnel?)`; `tunnel` is false for an
/// absolute-form http request, whose head is then passed on.
fn destination(head: &str) -> Option<(String, u16, bool)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    if method == "CONNECT" {
        let (host, port) = target.rsplit_once(':')?;
        return Some((
            host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port.parse().ok()?,
            true,
        ));
    }
    let url = reqwest::Url::parse(target).ok()?;
    Some((
        url.host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        url.port_or_known_default()?,
        false,
    ))
}

/// Read an HTTP head (up to the blank line) and whatever came after it.
async fn read_head(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before a head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "head too long"));
        }
    }
}

async fn refuse(conn: &mut TcpStream, status: &str, marker: &str, kind: &str, why: &str) -> std::io::Result<()> {
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{marker}: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{why}",
        why.len()
    );
    conn.write_all(answer.as_bytes()).await
}

/// The addresses to ask the proxy for: what the transport checked, else resolved and checked
/// here (a literal is checked as it is).
async fn addresses(host: &str, port: u16, checked: &Checked, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let with_port = |ips: &[IpAddr]| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect::<Vec<_>>();
    let known = checked
        .lock()
        .expect("relay map")
        .get(&host.to_ascii_lowercase())
        .map(|(_, ips)| ips.clone());
    let candidates = match (ssrf::literal_ip(host), known) {
        (Some(ip), _) => vec![SocketAddr::new(ip, port)],
        (None, Some(ips)) => with_port(&ips),
        (None, None) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("resolving {host}: {e}"))?
            .collect(),
    };
    if allow_private {
        return Ok(candidates);
    }
    ssrf::guard(host, candidates).map_err(|e| e.to_string())
}

async fn relay(
    mut conn: TcpStream,
    upstream: &Upstream,
    checked: &Checked,
    allow_private: bool,
    marker: &str,
) -> std::io::Result<()> {
    conn.set_nodelay(true).ok();
    let (head, rest) = read_head(&mut conn).await?;
    let Some((host, port, tunnel)) = destination(&head) else {
        return refuse(&mut conn, "400 Bad Request", marker, "proxy", "not a proxy request").await;
    };
    let targets = match addresses(&host, port, checked, allow_private).await {
        Ok(targets) => targets,
        Err(why) => return refuse(&mut conn, "403 Forbidden", marker, "blocked", &why).await,
    };
    let mut last_error = String::from("no address");
    for target in targets {
        match connect_through(upstream, target).await {
            Ok(mut remote) => {
                if tunnel {
                    conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
                } else {
                    remote.write_all(head.as_bytes()).await?;
                }
                remote.write_all(&rest).await?;
                tokio::io::copy_bidirectional(&mut conn, &mut remote).await?;
                return Ok(());
            }
            Err(e) => last_error = e,
        }
    }
    refuse(
        &mut conn,
        "502 Bad Gateway",
        marker,
        "proxy",
        &format!("proxy: {last_error}"),
    )
    .await
}

/// A tunnel to `target` through the proxy.
async fn connect_through(upstream: &Upstream, target: SocketAddr) -> Result<TcpStream, String> {
    let attempt = async {
        let mut proxy = TcpStream::connect((upstream.host.as_str(), upstream.port))
            .await
            .map_err(|e| format!("connecting to the proxy: {e}"))?;
        proxy.set_nodelay(true).ok();
        let mut ask = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &upstream.authorization {
            ask.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        ask.push_str("\r\n");
        proxy.write_all(ask.as_bytes()).await.map_err(|e| e.to_string())?;
        let (answer, rest) = read_head(&mut proxy)
            .await
            .map_err(|e| format!("the proxy's answer: {e}"))?;
        let status = answer.lines().next().unwrap_or_default().to_string();
        if status.split(' ').nth(1).is_some_and(|code| code.starts_with('2')) && rest.is_empty() {
            Ok(proxy)
        } else {
            Err(format!("the proxy refused CONNECT {target}: {status}"))
        }
    };
    tokio::time::timeout(PROXY_TIMEOUT, attempt)
        .await
        .map_err(|_| "the proxy did not answer in time".to_string())?
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
    fn proxy_urls_and_heads_are_read() {
        let up = upstream("http://user:p%40ss@proxy.internal:3128").unwrap();
        assert_eq!((up.host.as_str(), up.port), ("proxy.internal", 3128));
        assert_eq!(up.authorization.as_deref(), Some("Basic dXNlcjpwQHNz")); // user:p@ss
        assert!(upstream("https://proxy:3128").is_err());
        assert!(upstream("socks5://proxy:1080").is_err());
        assert_eq!(
            destination("CONNECT receiver.example:443 HTTP/1.1\r\nHost: receiver.example:443\r\n\r\n"),
            Some(("receiver.example".into(), 443, true))
        );
        assert_eq!(
            destination("POST http://[2606:4700::1]:8080/hook HTTP/1.1\r\n\r\n"),
            Some(("2606:4700::1".into(), 8080, false))
        );
        assert_eq!(destination("GET /relative HTTP/1.1\r\n\r\n"), None);
    }
}
