//! Repair paths: states that only faults or stale views produce, set up directly in Redis
//! through the store, then handed to a real node.

use crate::support::*;
use hookline::config::Config;
use hookline::store::RedisStore;
use hookline_actors::model::{RoutedEvent, StreamEvent};
use hookline_actors::EndpointConfig;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The shard count the test nodes use (support::node sets HOOKLINE__SHARDS__COUNT=16).
const SHARDS: u32 = 16;

async fn store_for(redis_url: &str, prefix: &str) -> Arc<RedisStore> {
    let mut cfg = Config::default();
    cfg.redis.url = redis_url.to_string();
    cfg.redis.prefix = prefix.to_string();
    cfg.shards.count = SHARDS;
    cfg.auth.insecure_no_auth = true;
    let store = RedisStore::connect(&cfg.store_settings()).await.unwrap();
    assert!(store.wait_connected(Duration::from_secs(5)).await);
    store
}

fn endpoint(tenant: &str, url: String) -> EndpointConfig {
    let secret = hookline::delivery::sign::new_secret();
    EndpointConfig {
        max_in_flight: Some(1),
        ..EndpointConfig::new(hookline::ids::new_endpoint_id(), tenant.into(), url, secret, 1)
    }
}

async fn ingest(store: &RedisStore, tenant: &str) -> String {
    let id = hookline::ids::new_event_id(hookline_actors::now_ms());
    let body = format!(r#"{{"id":"{id}","type":"a.b","timestamp":"t","tenant":"{tenant}","data":{{}}}}"#);
    store.ingest(&stored_event(tenant, &id, &body)).await.unwrap();
    id
}

/// A node that starts while Redis is down must not read the stream before it has loaded the
/// endpoints: routing against an empty index would ack acknowledged events to nobody.
#[tokio::test]
async fn a_node_started_without_redis_routes_nothing_before_it_knows_the_endpoints() {
    let mut redis = RedisServer::start(true);
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let store = store_for(&redis.url(), "cold").await;
    let ep = endpoint("cold", sink.url("ok/cold"));
    store
        .put_endpoint(
            &ep,
            hookline_actors::shard::shard_of(&ep.id, SHARDS),
            &test_entry(&ep.tenant),
        )
        .await
        .unwrap();
    let mut ids = HashSet::new();
    for _ in 0..5 {
        ids.insert(ingest(&store, "cold").await);
    }
    store.shutdown().await;

    redis.kill9();
    let node = Node::start(&NodeOpts::new(&redis.url(), "cold")).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await; // its first resync and reads fail
    redis.start_again();
    wait_for(
        Duration::from_secs(20),
        "the events stored before the node started",
        || sink.delivered_ids("cold") == ids,
    )
    .await;
    drop(node);
}

/// Deliveries whose event has expired are dead-lettered without taking an attempt slot, so an
/// endpoint with `max_in_flight = 1` and expired work at the head of its queue goes on.
#[tokio::test]
async fn expired_deliveries_do_not_stall_an_endpoint() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("expired");
    let store = store_for(&redis, &prefix).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = endpoint("x", sink.url("ok/expired"));
    let shard = hookline_actors::shard::shard_of(&ep.id, SHARDS);
    store.put_endpoint(&ep, shard, &test_entry(&ep.tenant)).await.unwrap();
    // Three deliveries of events whose records are gone, queued ahead of a real one.
    let ghosts: Vec<RoutedEvent> = (0..3)
        .map(|i| RoutedEvent {
            event: StreamEvent {
                partition: 0,
                stream_id: format!("{}-0", 1_000 + i),
                event_id: hookline::ids::new_event_id(1_000 + i),
                tenant: "x".into(),
                event_type: "a.b".into(),
                only_endpoint: None,
                trace: None,
            },
            endpoints: vec![(ep.id.clone(), shard)],
        })
        .collect();
    store.route(&ghosts).await.unwrap();
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let real = node.api.post_event("x", "a.b", json!({})).await.unwrap();
    wait_for(
        Duration::from_secs(10),
        "the real event behind the expired ones",
        || sink.delivered_ids("expired").contains(&real),
    )
    .await;
    for ghost in &ghosts {
        let dlv = hookline::ids::delivery_id(&ep.id, &ghost.event.event_id);
        let (status, d) = node.api.get(&format!("/v1/tenants/x/deliveries/{dlv}")).await;
        assert_eq!(status, 200, "{d}");
        assert_eq!(
            (d["status"].as_str(), d["reason"].as_str()),
            (Some("dead"), Some("event_expired")),
            "{d}"
        );
    }
}

/// Work routed to an endpoint after it was deleted (by a node whose index was stale) is
/// dropped with its due entry, instead of restarting an actor for it forever.
#[tokio::test]
async fn work_routed_to_a_deleted_endpoint_is_purged() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("orphan");
    let store = store_for(&redis, &prefix).await;
    // The stale routing below goes straight to the store (no wake-up): the owner finds it at
    // its next look, at most `due_poll_max_ms` after the last.
    let opts = NodeOpts::new(&redis, &prefix).set("shards__due_poll_max_ms", "1000");
    let node = Node::start_ready(&opts).await;
    let ep = node
        .api
        .create_endpoint("o", json!({"url": "http://127.0.0.1:9/never"}))
        .await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    let (status, _) = node
        .api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/o/endpoints/{ep_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let shard = hookline_actors::shard::shard_of(&ep_id, SHARDS);
    let stale_event = ingest(&store, "o").await;
    let stale = RoutedEvent {
        event: StreamEvent {
            partition: 0,
            stream_id: "1-1".into(),
            event_id: stale_event.clone(),
            tenant: "o".into(),
            event_type: "a.b".into(),
            only_endpoint: None,
            trace: None,
        },
        endpoints: vec![(ep_id.clone(), shard)],
    };
    store.route(&[stale]).await.unwrap();
    let keys = store.keys().clone();
    let exists = |key: String| {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", &redis, "exists", &key])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    };
    let in_due = || {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", &redis, "zscore", &keys.due(shard), &ep_id])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    // The stale routing created the delivery: queued, then (purged) in the dropped set, then
    // marked dead by the janitor in a record that has a TTL.
    assert!(
        exists(keys.queue(shard, &ep_id))
            || exists(keys.dropped(shard, &ep_id))
            || exists(keys.delivery(shard, &ep_id, &stale_event)),
        "the stale routing created nothing"
    );
    wait_for(
        Duration::from_secs(10),
        "the orphaned queue and due entry to be purged",
        || !exists(keys.queue(shard, &ep_id)) && !in_due(),
    )
    .await;
}
