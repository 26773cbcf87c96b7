//! Ingress hardening: slow clients cannot hold the node's sockets. Connections that never
//! finish their headers, and bodies that stall, are closed within `server.header_read_timeout_s`
//! and `server.body_read_timeout_s`, while ordinary ingest beside them keeps answering; past
//! `server.max_connections`, new connections wait instead of failing.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The state of the node's end of the loopback connection from `client_port` to `node_port`
/// (`/proc/net/tcp`: "01" established, "04"/"05"/"07"… once the node closed it), if it exists.
fn node_socket_state(node_port: u16, client_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |f: &str| f.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
        (port(fields.get(1)?)? == node_port && port(fields.get(2)?)? == client_port)
            .then(|| fields.get(3).map(|s| s.to_string()))?
    })
}

fn addr(node: &Node) -> String {
    node.api.base.trim_start_matches("http://").to_string()
}

/// Read until the peer closes (or `within` passes); returns what arrived, or `None` if the
/// connection was still open at the end.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut got)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&got).to_string()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slow_clients_are_closed_within_their_timeouts_while_ingest_keeps_answering() {
    let node = Node::start_ready(
        &NodeOpts::new(&shared_redis_url(), &unique_prefix("ingress"))
            .set("server__header_read_timeout_s", "5")
            .set("server__body_read_timeout_s", "6"),
    )
    .await;
    let pid = node.pid();
    let idle = open_files(pid);

    // 2,000 connections that send half a request line and headers, then nothing; 200 that send
    // their headers and promise a body they never finish.
    let started = Instant::now();
    let mut unfinished = Vec::new();
    for _ in 0..2_000 {
        let mut s = TcpStream::connect(addr(&node)).await.unwrap();
        s.write_all(b"POST /v1/tenants/t/events HTTP/1.1\r\nHost: x\r\nContent-Ty")
            .await
            .unwrap();
        unfinished.push(s);
    }
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr(&node)).await.unwrap();
        let head = format!(
            "POST /v1/tenants/t/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\": \"a.b\""
        );
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    let opened_in = started.elapsed();
    // The kernel has them all; the node accepts them as fast as a busy machine lets it (well
    // before the first header timeout, 5 s).
    let held = last_reading(
        Duration::from_secs(3),
        || async { open_files(pid) },
        |n| *n >= idle + 2_000,
    )
    .await;
    assert!(
        held >= idle + 2_000,
        "the node did not hold the slow connections open: {held} files, {idle} when idle"
    );

    // Ordinary ingest beside them, for longer than both timeouts.
    let api = Api::new(&node.api.base);
    let mut latencies = Vec::new();
    let ingest_until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < ingest_until {
        let sent = Instant::now();
        let id = api.post_event("t", "beside.slow", json!({"n": latencies.len()})).await;
        assert!(id.is_some(), "ingest failed beside the slow clients");
        latencies.push(sent.elapsed().as_micros() as u64);
    }
    latencies.sort_unstable();
    let p99 = hookline_loadtest::sink::percentile(&latencies, 0.99);
    println!(
        "slow clients: 2,200 opened in {opened_in:?}; {} ingests beside them, p50 {} µs, p99 {p99} µs",
        latencies.len(),
        hookline_loadtest::sink::percentile(&latencies, 0.5)
    );

    // Every slow connection has been closed by the node (well within a generous bound).
    for s in unfinished.iter_mut() {
        assert!(
            read_to_close(s, Duration::from_secs(10)).await.is_some(),
            "a connection with unfinished headers is still open"
        );
    }
    for s in stalled.iter_mut() {
        let answer = read_to_close(s, Duration::from_secs(10))
            .await
            .expect("a connection with a stalled body is still open");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"body_timeout\""), "{answer}");
    }
    drop((unfinished, stalled, api));
    let settled = last_reading(
        Duration::from_secs(10),
        || async { open_files(pid) },
        |n| *n <= idle + 5,
    )
    .await;
    assert!(settled <= idle + 5, "open files: {settled}, idle {idle}");
    assert!(node.api.ready().await);
}

#[tokio::test]
async fn past_max_connections_new_ones_wait_and_are_served_when_others_close() {
    let node = Node::start_ready(
        &NodeOpts::new(&shared_redis_url(), &unique_prefix("ingress-max")).set("server__max_connections", "20"),
    )
    .await;
    // Keep-alive connections, one after another, until one is not served: the node is full.
    // (The test's own API client may hold one or two of the 20.)
    let mut held = Vec::new();
    let waiting = loop {
        let mut s = TcpStream::connect(addr(&node)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(n) => {
                assert!(buf[..n.unwrap()].starts_with(b"HTTP/1.1 200"));
                held.push(s);
            }
            Err(_) => break s,
        }
        assert!(held.len() <= 20, "served more than max_connections at once");
    };
    assert!(held.len() >= 18, "only {} served before the limit", held.len());
    // The waiting one is served as soon as another closes. The node itself never failed.
    let mut waiting = waiting;
    held.pop();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), waiting.read(&mut buf))
        .await
        .expect("still waiting after a connection closed")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(held);
    assert!(node.api.ready().await);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let node = Node::start_ready(
        // Headers time out after a minute here, so only the write timeout can close it sooner.
        &NodeOpts::new(&shared_redis_url(), &unique_prefix("ingress-write"))
            .set("server__write_timeout_s", "2")
            .set("server__header_read_timeout_s", "60"),
    )
    .await;
    // Hundreds of pipelined requests for the OpenAPI document (tens of MB of answers), and not
    // one byte read: the node's writes fill the socket's buffers and wait.
    let mut s = TcpStream::connect(addr(&node)).await.unwrap();
    let (node_port, client_port) = (s.peer_addr().unwrap().port(), s.local_addr().unwrap().port());
    let requests = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(400);
    s.write_all(requests.as_bytes()).await.unwrap();
    // The node's end of this very connection (not a count of its files, which its other
    // connections can change meanwhile): established while it writes, then closed by the node
    // while this end still holds the socket unread.
    let state = || async { node_socket_state(node_port, client_port) };
    let established = |st: &Option<String>| st.as_deref() == Some("01");
    let held = last_reading(Duration::from_secs(2), state, established).await;
    assert!(established(&held), "the node never held the connection: {held:?}");
    let settled = last_reading(Duration::from_secs(15), state, |st| !established(st)).await;
    assert!(
        !established(&settled),
        "the node still holds the stalled connection: its end is {settled:?}"
    );
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(node.api.ready().await);
}
