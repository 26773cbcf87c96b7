//! Retention (invariant 4 of docs/ARCHITECTURE.md: nothing grows without bound), with a retention of seconds:
//! events, delivery records, attempts, delivery logs, dead letters, idempotency keys and stream
//! entries all go; the janitor removes router consumers of nodes that are gone.

use crate::support::*;
use fred::prelude::*;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::time::{Duration, Instant};

async fn redis_client(url: &str) -> fred::clients::Client {
    let client = Builder::from_config(hookline::store::redis_config(url).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    client
}

/// Keys under `prefix` matching `pattern` (e.g. `*:evt:*`).
fn keys_matching(url: &str, prefix: &str, pattern: &str) -> Vec<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", &format!("{prefix}{pattern}")])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

/// What retention must clear, counted: (stream entries, event records, idempotency keys,
/// delivery records, delivery log entries, dead letters).
async fn retained(client: &fred::clients::Client, url: &str, prefix: &str) -> [u64; 6] {
    let stream: u64 = client.xlen(format!("{prefix}:{{ev0}}:events")).await.unwrap();
    let mut counts = [stream, 0, 0, 0, 0, 0];
    counts[1] = keys_matching(url, prefix, ":{ev0}:evt:*").len() as u64;
    counts[2] = keys_matching(url, prefix, ":{ev0}:idem:*").len() as u64;
    counts[3] = keys_matching(url, prefix, ":*:ep:*:d:*").len() as u64;
    for key in keys_matching(url, prefix, ":*:ep:*:log") {
        counts[4] += client.zcard::<u64, _>(key).await.unwrap();
    }
    for key in keys_matching(url, prefix, ":*:ep:*:dead") {
        counts[5] += client.zcard::<u64, _>(key).await.unwrap();
    }
    counts
}

#[tokio::test]
async fn retention_of_seconds_clears_everything_and_idle_consumers() {
    // A private Redis: the counts below scan the keyspace, and on a shared Redis full of other
    // tests' keys a scan takes seconds, longer than this test's retention.
    let server = RedisServer::start(false);
    let redis = server.url();
    let prefix = unique_prefix("retain");
    let opts = NodeOpts::new(&redis, &prefix)
        .set("retention__seconds", "6")
        .set("retention__janitor_interval_s", "1")
        .node_id("retain-node");
    let node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    api.create_endpoint("r", json!({"url": sink.url("ok/ok")})).await;
    let refused = api
        .create_endpoint("r", json!({"url": sink.url("status/400/no")}))
        .await;

    let mut events = Vec::new();
    for i in 0..6 {
        let (status, body) = api
            .post(
                "/v1/tenants/r/events",
                json!({"type": "a.b", "payload": {"i": i}, "idempotency_key": format!("k{i}")}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        events.push(body["id"].as_str().unwrap().to_string());
    }
    for id in &events {
        let e = api
            .get_until(&format!("/v1/tenants/r/events/{id}"), Duration::from_secs(10), |e| {
                e["deliveries"].as_array().is_some_and(|d| {
                    d.len() == 2 && d.iter().all(|d| d["status"] == "delivered" || d["status"] == "dead")
                })
            })
            .await;
        assert_eq!(e["deliveries"].as_array().map(Vec::len), Some(2), "{e}");
    }
    // A router consumer of a node that is gone (`store::janitor_keeps_consumers_holding_entries`
    // covers the one that must stay).
    let client = redis_client(&redis).await;
    let stream = format!("{prefix}:{{ev0}}:events");
    redis_cli(&redis, &["XGROUP", "CREATECONSUMER", &stream, "router", "gone-node"]);

    let before = retained(&client, &redis, &prefix).await;
    assert!(before[0] >= 6, "stream: {before:?}");
    // Six events and the node's one `hookline.endpoint.dead_letters` notice (an event with an
    // idempotency key of its own, delivered to no one here: no endpoint asks for it).
    assert_eq!(before[1..], [7, 7, 12, 12, 6], "(evt, idem, records, log, dead)");

    // Retention is 6 s (room for a loaded machine to count everything first) and the janitor
    // runs every second: all of it goes.
    let start = Instant::now();
    let mut now = before;
    while start.elapsed() < Duration::from_secs(30) {
        now = retained(&client, &redis, &prefix).await;
        if now == [0; 6] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        now, [0; 6],
        "(stream, evt, idem, records, log, dead) left after retention"
    );
    let (_, list) = api.get("/v1/tenants/r/deliveries").await;
    assert_eq!(list["data"], json!([]), "{list}");
    let (status, _) = api.get(&format!("/v1/tenants/r/events/{}", events[0])).await;
    assert_eq!(status, 404);
    let (_, dead) = api
        .get(&format!(
            "/v1/tenants/r/endpoints/{}/dead-letters",
            refused["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(dead["data"], json!([]), "{dead}");
    // The idempotency keys went with their events: the same key makes a new event now.
    let (status, again) = api
        .post(
            "/v1/tenants/r/events",
            json!({"type": "a.b", "payload": {}, "idempotency_key": "k0"}),
        )
        .await;
    assert_eq!(status, 202, "{again}");
    assert_ne!(again["id"].as_str(), Some(events[0].as_str()));

    let listed = redis_cli(&redis, &["XINFO", "CONSUMERS", &stream, "router"]);
    assert!(
        !listed.contains("gone-node"),
        "an idle consumer of a gone node stays: {listed}"
    );
    assert!(
        listed.contains("retain-node"),
        "the live node's consumer was removed: {listed}"
    );
    assert!(
        node.logs().iter().all(|l| !l.contains("janitor pass failed")),
        "a janitor pass failed"
    );
    client.quit().await.ok();
}
