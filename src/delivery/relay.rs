//! The egress proxy (`delivery.proxy_url`), asked only for addresses the node checked itself.
//!
//! reqwest would ask a forward proxy to `CONNECT receiver.example:443` and let the proxy
//! resolve the name: a name that resolves to a private address would then reach the proxy's
//! network, whatever the SSRF guard thinks. So reqwest talks to a relay inside the node
//! instead (a listener on 127.0.0.1, one per transport). The transport resolves and checks the
//! destination before each attempt (`Relay::check`); the relay takes each connection reqwest
//! opens and asks the real proxy to `CONNECT <checked IP literal>:port`:
//! - `CONNECT host:port` (https): it answers 200 and copies bytes both ways. TLS runs end to end
//!   between reqwest and the receiver, so the SNI and the certificate check use the name.
//! - an absolute-form request (http): it passes that one request on in origin form, with the
//!   original `Host`, without the proxy headers and with `Connection: close`, then copies the
//!   answer back and closes (one request per connection, so nothing unread ever passes).
//!
//! Only the transport's own client may use it: every request must carry the relay's random
//! credentials (407 otherwise), so no other local process can borrow the proxy (or its
//! credentials) through it. Each connection is bounded: its head within `HEAD_TIMEOUT`, the
//! proxy's answer within `PROXY_TIMEOUT`, and no side idle longer than `IDLE_TIMEOUT`; when
//! either side closes, both are closed.

use super::egress::{upstream, Upstream};
use super::ssrf;
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
/// The time the proxy has to answer a `CONNECT` (all addresses of a name together).
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);
/// The time reqwest has to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection whose two sides both stay silent this long is closed: longer than the longest
/// attempt timeout (300 s, `timeout_ms`), so an attempt always ends on its own timer first, and
/// than the client pool's idle timeout, so a kept connection is closed by reqwest first.
const IDLE_TIMEOUT: Duration = Duration::from_secs(310);
/// The user name of the relay's credentials.
pub const RELAY_USER: &str = "hookline";

type Checked = Arc<Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>>;

/// The relay: its listener's address (reqwest's proxy) and what the transport checked.
pub struct Relay {
    pub addr: SocketAddr,
    /// The header the relay's own refusals carry (a name no receiver can guess), so that an
    /// http attempt it could not pass on is a failure without a status, not the receiver's
    /// answer. Its value is `blocked` or `proxy`.
    pub marker: Arc<str>,
    /// The password reqwest presents (`Proxy-Authorization: Basic hookline:<it>`).
    pub password: String,
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
        let marker: Arc<str> = Arc::from(format!("hookline-egress-{:016x}", rand::random::<u64>()));
        let password = format!("{:032x}", rand::random::<u128>());
        let shared = Arc::new(Shared {
            upstream,
            checked: checked.clone(),
            allow_private,
            marker: marker.clone(),
            authorization: {
                use base64::Engine;
                let pair = format!("{RELAY_USER}:{password}");
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
            },
        });
        let task = tokio::spawn(async move {
            loop {
                let conn = match listener.accept().await {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!(error = %e, "proxy relay: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = relay(conn, &shared).await {
                        tracing::debug!(error = %e, "proxy relay: a connection ended early");
                    }
                });
            }
        })
        .abort_handle();
        Ok(Relay {
            addr,
            marker,
            password,
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

/// What every connection's task shares.
struct Shared {
    upstream: Arc<Upstream>,
    checked: Checked,
    allow_private: bool,
    marker: Arc<str>,
    /// The `Proxy-Authorization` value reqwest must present.
    authorization: String,
}

/// A request head from reqwest, read: where it goes (`host`, `port`), whether it asks for a
/// tunnel (`CONNECT`), and its header lines.
#[derive(Debug, PartialEq)]
struct Head<'a> {
    method: &'a str,
    target: &'a str,
    host: String,
    port: u16,
    tunnel: bool,
    headers: Vec<(&'a str, &'a str)>,
}

fn parse_head(head: &str) -> Option<Head<'_>> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, _version) = (first.next()?, first.next()?, first.next()?);
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once(':').map(|(n, v)| (n.trim(), v.trim())))
        .collect::<Option<Vec<_>>>()?;
    let unbracket = |h: &str| h.trim_start_matches('[').trim_end_matches(']').to_string();
    if method == "CONNECT" {
        let (host, port) = target.rsplit_once(':')?;
        return Some(Head {
            method,
            target,
            host: unbracket(host),
            port: port.parse().ok()?,
            tunnel: true,
            headers,
        });
    }
    let url = reqwest::Url::parse(target).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    Some(Head {
        method,
        target,
        host: unbracket(url.host_str()?),
        port: url.port_or_known_default()?,
        tunnel: false,
        headers,
    })
}

impl Head<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The request as the receiver gets it: origin form, no proxy headers, one request only.
    fn for_receiver(&self) -> Option<String> {
        let url = reqwest::Url::parse(self.target).ok()?;
        let mut path = url.path().to_string();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        let mut out = format!("{} {path} HTTP/1.1\r\n", self.method);
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if !matches!(
                lower.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
            ) {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str("connection: close\r\n\r\n");
        Some(out)
    }
}

/// Read an HTTP head (up to the blank line) and whatever came after it.
async fn read_head(conn: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
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
            buf.truncate(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "head too long"));
        }
    }
}

async fn refuse(conn: &mut TcpStream, status: &str, marker: &str, kind: &str, why: &str) -> std::io::Result<()> {
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{marker}: {kind}\r\nproxy-authenticate: Basic realm=\"hookline\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{why}",
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
        (None, None) => tokio::time::timeout(PROXY_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("resolving {host}: no answer in time"))?
            .map_err(|e| format!("resolving {host}: {e}"))?
            .collect(),
    };
    if allow_private {
        return Ok(candidates);
    }
    ssrf::guard(host, candidates).map_err(|e| e.to_string())
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn relay(mut conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_nodelay(true).ok();
    let (head, rest) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut conn))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request head in time"))??;
    let marker = &*shared.marker;
    let Some(head) = std::str::from_utf8(&head).ok().and_then(parse_head) else {
        return refuse(
            &mut conn,
            "400 Bad Request",
            marker,
            "proxy",
            "proxy: not a proxy request",
        )
        .await;
    };
    let presented = head.header("proxy-authorization").unwrap_or_default();
    if !same(presented.as_bytes(), shared.authorization.as_bytes()) {
        return refuse(
            &mut conn,
            "407 Proxy Authentication Required",
            marker,
            "proxy",
            "proxy: who are you?",
        )
        .await;
    }
    let targets = match addresses(&head.host, head.port, &shared.checked, shared.allow_private).await {
        Ok(targets) => targets,
        Err(why) => return refuse(&mut conn, "403 Forbidden", marker, "blocked", &why).await,
    };
    let mut remote = match connect_through(&shared.upstream, &targets).await {
        Ok(remote) => remote,
        Err(why) => return refuse(&mut conn, "502 Bad Gateway", marker, "proxy", &format!("proxy: {why}")).await,
    };
    if head.tunnel {
        conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
        remote.write_all(&rest).await?;
        return pipe(conn, remote).await;
    }
    // One http request: its head in origin form, then exactly its body.
    let length: u64 = match head.header("content-length").map(str::parse) {
        Some(Ok(n)) => n,
        None if head.header("transfer-encoding").is_none() => 0,
        _ => {
            return refuse(
                &mut conn,
                "411 Length Required",
                marker,
                "proxy",
                "proxy: a body without a length",
            )
            .await
        }
    };
    let Some(request) = head.for_receiver() else {
        return refuse(
            &mut conn,
            "400 Bad Request",
            marker,
            "proxy",
            "proxy: not a proxy request",
        )
        .await;
    };
    remote.write_all(request.as_bytes()).await?;
    let first = rest.len().min(length as usize);
    remote.write_all(&rest[..first]).await?;
    let (mut conn_read, mut conn_write) = conn.into_split();
    let mut body = (&mut conn_read).take(length - first as u64);
    idle_bounded(tokio::io::copy(&mut body, &mut remote)).await?;
    // The answer, with `connection: close` so reqwest does not keep a connection the relay
    // closes next.
    let (answer, rest) = tokio::time::timeout(IDLE_TIMEOUT, read_head(&mut remote))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))??;
    let answer = String::from_utf8_lossy(&answer);
    let mut lines = answer.split("\r\n");
    let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
    for line in lines.filter(|l| {
        let name = l.split(':').next().unwrap_or_default().trim();
        !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive")
    }) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    conn_write.write_all(out.as_bytes()).await?;
    conn_write.write_all(&rest).await?;
    let (mut remote_read, _remote_write) = remote.into_split();
    idle_bounded(tokio::io::copy(&mut remote_read, &mut conn_write)).await?;
    Ok(())
}

/// `copy` that gives up after `IDLE_TIMEOUT` in all (an http request's body or its answer).
async fn idle_bounded(copy: impl std::future::Future<Output = std::io::Result<u64>>) -> std::io::Result<()> {
    tokio::time::timeout(IDLE_TIMEOUT, copy)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))?
        .map(|_| ())
}

/// Copy both ways until either side closes, fails or both stay silent for `IDLE_TIMEOUT`;
/// then both are closed.
async fn pipe(a: TcpStream, b: TcpStream) -> std::io::Result<()> {
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    let last = Arc::new(Mutex::new(Instant::now()));
    let idle = async {
        loop {
            let since = last.lock().expect("relay clock").elapsed();
            if since >= IDLE_TIMEOUT {
                return;
            }
            tokio::time::sleep(IDLE_TIMEOUT - since).await;
        }
    };
    tokio::select! {
        r = one_way(a_read, b_write, last.clone()) => r,
        r = one_way(b_read, a_write, last.clone()) => r,
        _ = idle => Ok(()),
    }
}

async fn one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    last: Arc<Mutex<Instant>>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        *last.lock().expect("relay clock") = Instant::now();
    }
}

/// A tunnel through the proxy to the first of `targets` it reaches, within `PROXY_TIMEOUT`.
async fn connect_through(upstream: &Upstream, targets: &[SocketAddr]) -> Result<TcpStream, String> {
    let attempt = async {
        let mut last_error = String::from("no address");
        for target in targets {
            match tunnel(upstream, *target).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    };
    tokio::time::timeout(PROXY_TIMEOUT, attempt)
        .await
        .map_err(|_| "the proxy did not answer in time".to_string())?
}

async fn tunnel(upstream: &Upstream, target: SocketAddr) -> Result<TcpStream, String> {
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
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.split(' ').nth(1).is_some_and(|code| code.starts_with('2')) && rest.is_empty() {
        Ok(proxy)
    } else {
        Err(format!("the proxy refused CONNECT {target}: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_and_rewritten() {
        let connect = parse_head("CONNECT receiver.example:443 HTTP/1.1\r\nHost: receiver.example:443").unwrap();
        assert_eq!(
            (connect.host.as_str(), connect.port, connect.tunnel),
            ("receiver.example", 443, true)
        );
        let post = parse_head(
            "POST http://[2606:4700::1]:8080/hook?a=1 HTTP/1.1\r\nhost: [2606:4700::1]:8080\r\n\
             proxy-authorization: Basic eA==\r\ncontent-length: 2\r\nconnection: keep-alive",
        )
        .unwrap();
        assert_eq!(
            (post.host.as_str(), post.port, post.tunnel),
            ("2606:4700::1", 8080, false)
        );
        assert_eq!(post.header("Content-Length"), Some("2"));
        assert_eq!(
            post.for_receiver().unwrap(),
            "POST /hook?a=1 HTTP/1.1\r\nhost: [2606:4700::1]:8080\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(parse_head("GET /relative HTTP/1.1"), None);
        assert_eq!(parse_head("GET https://x/ HTTP/1.1"), None);
        assert_eq!(parse_head("CONNECT x:443 HTTP/1.1\r\nno colon here"), None);
    }

    #[tokio::test]
    async fn names_are_checked_before_the_proxy_is_asked() {
        // Nothing listens on the proxy's port: the check alone decides.
        let relay = Relay::start("http://127.0.0.1:9", false).unwrap();
        let refused = relay.check("localhost").await.unwrap_err();
        assert!(refused.to_string().contains("destination_blocked"), "{refused}");
        assert!(
            relay.checked.lock().unwrap().is_empty(),
            "a refused name is not remembered"
        );
        let lenient = Relay::start("http://127.0.0.1:9", true).unwrap();
        lenient.check("localhost").await.unwrap();
        let ips = lenient.checked.lock().unwrap()["localhost"].1.clone();
        assert!(ips.iter().all(|ip| ip.is_loopback()) && !ips.is_empty(), "{ips:?}");
    }

    #[tokio::test]
    async fn only_the_transport_may_use_the_relay() {
        let relay = Relay::start("http://127.0.0.1:9", false).unwrap();
        let ask = |authorization: Option<String>| {
            let addr = relay.addr;
            async move {
                let mut conn = TcpStream::connect(addr).await.unwrap();
                let mut head = "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n".to_string();
                if let Some(value) = authorization {
                    head.push_str(&format!("Proxy-Authorization: {value}\r\n"));
                }
                head.push_str("\r\n");
                conn.write_all(head.as_bytes()).await.unwrap();
                let mut answer = String::new();
                conn.read_to_string(&mut answer).await.unwrap();
                answer
            }
        };
        use base64::Engine;
        let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        assert!(ask(None).await.starts_with("HTTP/1.1 407"));
        assert!(ask(Some(basic("hookline:guess"))).await.starts_with("HTTP/1.1 407"));
        // The right credentials get past, to the SSRF guard (127.0.0.1 is not public).
        let answer = ask(Some(basic(&format!("{RELAY_USER}:{}", relay.password)))).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains(&format!("{}: blocked", relay.marker)), "{answer}");
    }

    #[test]
    fn credentials_compare_whole() {
        assert!(same(b"Basic abc", b"Basic abc"));
        assert!(!same(b"Basic abc", b"Basic abd"));
        assert!(!same(b"Basic ab", b"Basic abc"));
    }
}
