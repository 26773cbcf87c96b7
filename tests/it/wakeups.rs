//! An idle node is quiet: a shard owner looks at its due set when something tells it to, not on
//! a fixed beat. Each test sets the safety-net poll (`shards.due_poll_max_ms`) to two minutes,
//! far past its bounds, so only the wake-ups under test can make the deliveries happen in time:
//! work routed to a shard another node holds (announced on the work channel), a retry due after
//! its actor stopped (the owner looks after the stop, then at the entry's due time), a replay.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

/// Node options whose due poll is two minutes apart at most, and `min_gap_ms` at least.
fn quiet(redis: &str, prefix: &str, node_id: &str, min_gap_ms: u64) -> NodeOpts {
    NodeOpts::new(redis, prefix)
        .node_id(node_id)
        .set("shards__due_poll_ms", &min_gap_ms.to_string())
        .set("shards__due_poll_max_ms", "120000")
        // No lease may lapse on a starved machine: a shard taken again is looked at afresh,
        // which would hide a missing wake-up (and these tests never fail a node over).
        .set("shards__lease_ttl_ms", "10000")
}

/// A quiet node (looks at least 100 ms apart) and a sink whose switch `name` answers `status`.
async fn quiet_node_and_switch(prefix: &str, node_id: &str, name: &str, status: u16) -> (Node, Sink) {
    let node = Node::start_ready(&quiet(&shared_redis_url(), &unique_prefix(prefix), node_id, 100)).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    sink.set_switch(name, status);
    (node, sink)
}

#[tokio::test]
async fn work_routed_for_a_shard_held_elsewhere_wakes_its_owner_at_once() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("wake-remote");
    // Polls a minute apart at least: after the first look at each shard, only announced work
    // (or the node's own router) starts an endpoint.
    let a = Node::start_ready(&quiet(&redis, &prefix, "wake-a", 60_000)).await;
    let b = Node::start_ready(&quiet(&redis, &prefix, "wake-b", 60_000)).await;
    let holders = last_reading(
        Duration::from_secs(30),
        || {
            std::future::ready(
                (0..16)
                    .map(|shard| lease_holder(&redis, &prefix, shard))
                    .collect::<Vec<_>>(),
            )
        },
        |holders| {
            let held: HashSet<&str> = holders.iter().flatten().map(String::as_str).collect();
            holders.iter().all(Option::is_some) && held.len() == 2
        },
    )
    .await;
    let held: HashSet<&str> = holders.iter().flatten().map(String::as_str).collect();
    assert_eq!(held.len(), 2, "both nodes hold shards: {holders:?}");
    assert!(holders.iter().all(Option::is_some), "every shard is held: {holders:?}");
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("wr{i}")).collect();
    for name in &names {
        a.api
            .create_endpoint("wr", json!({"url": sink.url(&format!("ok/{name}"))}))
            .await;
    }
    let mut posted = HashSet::new();
    for i in 0..5 {
        posted.insert(a.api.post_event("wr", "a.b", json!({"i": i})).await.expect("ingest"));
    }
    wait_for(Duration::from_secs(20), "every event at every endpoint", || {
        names.iter().all(|n| posted.is_subset(&sink.delivered_ids(n)))
    })
    .await;
    let worked = |node: &Node| node.logs().iter().any(|l| l.contains("attempt finished"));
    assert!(
        worked(&a) && worked(&b),
        "both nodes delivered: the endpoints were spread"
    );
}

#[tokio::test]
async fn a_retry_due_after_its_actor_stopped_comes_on_time() {
    let (node, sink) = quiet_node_and_switch("wake-retry", "wake-r", "wk-retry", 503).await;
    // A retry 12 s on: past the actor's 10 s keep-alive, so the actor stops at once and the
    // owner must come back for it.
    node.api
        .create_endpoint(
            "wk",
            json!({"url": sink.url("switch/wk-retry"), "retry_schedule_s": [12]}),
        )
        .await;
    let id = node.api.post_event("wk", "a.b", json!({})).await.expect("ingest");
    wait_for(Duration::from_secs(10), "the first attempt", || {
        sink.arrivals("wk-retry") == 1
    })
    .await;
    sink.set_switch("wk-retry", 200);
    wait_for(Duration::from_secs(30), "the retry", || {
        sink.delivered_ids("wk-retry").contains(&id)
    })
    .await;
    assert_eq!(sink.arrivals("wk-retry"), 2);
}

#[tokio::test]
async fn a_replayed_dead_letter_is_sent_at_once() {
    let (node, sink) = quiet_node_and_switch("wake-replay", "wake-p", "wk-replay", 400).await;
    let ep = node
        .api
        .create_endpoint("wp", json!({"url": sink.url("switch/wk-replay")}))
        .await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    let id = node.api.post_event("wp", "a.b", json!({})).await.expect("ingest");
    let letters = format!("/v1/tenants/wp/endpoints/{ep_id}/dead-letters");
    wait_for(Duration::from_secs(10), "the dead letter", || {
        sink.arrivals("wk-replay") == 1
    })
    .await;
    let api = node.api.clone();
    eventually(Duration::from_secs(10), "the dead letter listed", || {
        let (api, letters) = (api.clone(), letters.clone());
        async move {
            let listed = api.get(&letters).await.1["data"]
                .as_array()
                .is_some_and(|d| d.len() == 1);
            listed.then_some(())
        }
    })
    .await;
    sink.set_switch("wk-replay", 200);
    let (status, answer) = node.api.post(&format!("{letters}/replay"), json!({})).await;
    assert_eq!((status, answer["replayed"].as_u64()), (202, Some(1)), "{answer}");
    wait_for(Duration::from_secs(10), "the replayed delivery", || {
        sink.delivered_ids("wk-replay").contains(&id)
    })
    .await;
}
