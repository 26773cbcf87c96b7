//! Durability under faults: kill -9 of the node, Redis restarts (with and without data),
//! Redis down, and two nodes sharing one Redis.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Invariants 1 and 2: a kill -9 while thousands of events are being ingested and delivered
/// loses no acknowledged event; duplicates are only attempts in flight at the kill.
#[tokio::test]
async fn kill_9_mid_delivery_loses_no_acknowledged_event() {
    let redis = shared_redis_url();
    let opts = NodeOpts::new(&redis, &unique_prefix("kill9")).node_id("kill9-node");
    let mut node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    // 4 in flight × 20 ms: about 200 deliveries a second, so 3,000 take many seconds.
    node.api
        .create_endpoint("k", json!({"url": sink.url("sleep/20/k"), "max_in_flight": 4}))
        .await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    post_many(&node.api, "k", 3_000, 16, acked.clone()).await;
    assert_eq!(acked.lock().unwrap().len(), 3_000);
    // Keep ingesting while the node dies: whatever it acknowledged must survive too.
    let poster = {
        let (api, acked) = (node.api.clone(), acked.clone());
        tokio::spawn(async move { post_many(&api, "k", 1_000, 4, acked).await })
    };
    wait_for(Duration::from_secs(30), "ingest under way", || {
        acked.lock().unwrap().len() >= 3_100
    })
    .await;
    node.kill9().await;
    poster.await.unwrap();
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let delivered_at_kill = sink.delivered_ids("k").len();
    assert!(
        acked.len() - delivered_at_kill >= 2_000,
        "at least 2,000 events still to deliver at the kill ({delivered_at_kill} of {} done)",
        acked.len()
    );

    let node = Node::start_ready(&opts).await;
    wait_for(Duration::from_secs(60), "every acknowledged event to arrive", || {
        acked.is_subset(&sink.delivered_ids("k"))
    })
    .await;
    let requests = sink.received_by("k").len();
    let unique = sink.delivered_ids("k").len();
    println!(
        "kill -9: {} acknowledged, {delivered_at_kill} delivered before the kill, {} duplicates",
        acked.len(),
        requests - unique
    );
    // At most the attempts in flight at the kill (max_in_flight = 4) plus the window being
    // recorded can be repeated; allow a generous margin, but not a re-delivery of everything.
    assert!(requests - unique <= 50, "too many duplicates: {}", requests - unique);
    assert!(node.assert_delivery_states().await >= 3_000);
    drop(node);
}

/// Invariant 1 across a Redis crash: with AOF `appendfsync always`, a kill -9 of Redis between
/// ingest and delivery loses nothing, and the node reconnects without a restart.
#[tokio::test]
async fn redis_restart_with_aof_between_ingest_and_delivery_loses_nothing() {
    let mut redis = RedisServer::start(true);
    let node = Node::start_ready(&NodeOpts::new(&redis.url(), "aof")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    sink.set_switch("aof", 503);
    node.api.create_endpoint("a", json!({"url": sink.url("switch/aof"), "retry_schedule_s": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]})).await;
    let mut acked = HashSet::new();
    for i in 0..50 {
        acked.insert(
            node.api
                .post_event("a", "thing.happened", json!({"i": i}))
                .await
                .expect("ingest"),
        );
    }
    wait_for(Duration::from_secs(10), "first (failing) attempts", || {
        sink.arrivals("aof") >= 10
    })
    .await;
    redis.restart();
    sink.set_switch("aof", 200);
    wait_for(Duration::from_secs(60), "every event after the Redis restart", || {
        acked.is_subset(&sink.delivered_ids("aof"))
    })
    .await;
}

/// While Redis is down, ingest answers 503 (never a 2xx it cannot keep) and /readyz is 503;
/// when Redis is back, ingest and delivery resume without restarting the node.
#[tokio::test]
async fn redis_down_means_503_then_recovery() {
    let mut redis = RedisServer::start(true);
    let node = Node::start_ready(&NodeOpts::new(&redis.url(), "down")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api.create_endpoint("d", json!({"url": sink.url("ok/down")})).await;

    redis.kill9();
    let (status, body, headers) = node
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/tenants/d/events",
            Some(r#"{"type":"a.b","payload":{}}"#),
            Some("application/json"),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(headers.contains_key("retry-after"));
    let (status, _) = node.api.get("/readyz").await;
    assert_eq!(status, 503);
    let (status, _) = node.api.get("/healthz").await;
    assert_eq!(status, 200, "the process itself is healthy");

    redis.start_again();
    let id = eventually(
        Duration::from_secs(20),
        "ingest to recover after Redis came back",
        || node.api.post_event("d", "a.b", json!({})),
    )
    .await;
    wait_for(Duration::from_secs(20), "delivery after recovery", || {
        sink.delivered_ids("down").contains(&id)
    })
    .await;
    eventually(Duration::from_secs(10), "/readyz to recover", || async {
        node.api.ready().await.then_some(())
    })
    .await;
}

/// Redis restarted empty: the node recreates its consumer group and leases by itself and goes
/// on delivering new events (a consumer group made only at start-up would be dead now).
#[tokio::test]
async fn redis_restarted_empty_is_recovered_without_a_node_restart() {
    let mut redis = RedisServer::start(false);
    let node = Node::start_ready(&NodeOpts::new(&redis.url(), "empty")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api
        .create_endpoint("e", json!({"url": sink.url("ok/before")}))
        .await;
    let first = node.api.post_event("e", "a.b", json!({})).await.unwrap();
    wait_for(Duration::from_secs(10), "delivery before the restart", || {
        sink.delivered_ids("before").contains(&first)
    })
    .await;

    redis.restart(); // no persistence: everything is gone, the group included
    eventually(Duration::from_secs(10), "endpoint creation to recover", || async {
        let (status, _) = node
            .api
            .post("/v1/tenants/e/endpoints", json!({"url": sink.url("ok/after")}))
            .await;
        (status == 201).then_some(())
    })
    .await;
    let id = eventually(Duration::from_secs(10), "ingest to recover", || {
        node.api.post_event("e", "a.b", json!({}))
    })
    .await;
    wait_for(Duration::from_secs(20), "delivery after Redis came back empty", || {
        sink.delivered_ids("after").contains(&id)
    })
    .await;
}

/// Two nodes on one Redis and prefix, the second joining mid-load so shards move while
/// attempts are in flight: no endpoint ever has two attempts in flight at once (each endpoint
/// allows one), so no endpoint was worked by both nodes at the same time. Everything arrives.
#[tokio::test]
async fn two_nodes_never_work_one_endpoint_at_once() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("two");
    let a = Node::start_ready(&NodeOpts::new(&redis, &prefix).node_id("node-a")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let names = slow_endpoints(&a.api, &sink, "two", "ep", 12, 100, 1).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    post_many(&a.api, "two", 25, 4, acked.clone()).await;
    wait_for(Duration::from_secs(10), "deliveries under way", || sink.count() >= 24).await;

    let b = Node::start_ready(&NodeOpts::new(&redis, &prefix).node_id("node-b")).await;
    // Post through both nodes while shards rebalance.
    let (x, y) = (acked.clone(), acked.clone());
    let (api_a, api_b) = (a.api.clone(), b.api.clone());
    let t1 = tokio::spawn(async move { post_many(&api_a, "two", 15, 2, x).await });
    let t2 = tokio::spawn(async move { post_many(&api_b, "two", 15, 2, y).await });
    t1.await.unwrap();
    t2.await.unwrap();
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert_eq!(acked.len(), 55);
    wait_for(Duration::from_secs(60), "every event at every endpoint", || {
        names.iter().all(|n| acked.is_subset(&sink.delivered_ids(n)))
    })
    .await;
    for name in &names {
        assert_eq!(
            sink.max_in_flight(name),
            1,
            "{name} had attempts in flight from two places at once"
        );
    }
    // Both nodes did work: shards really were shared.
    let worked = |node: &Node| node.logs().iter().any(|l| l.contains("attempt finished"));
    assert!(
        worked(&a) && worked(&b),
        "both nodes should own shards after the rebalance"
    );
}

/// A node draining on SIGTERM keeps renewing its leases until its attempts finish, even when an
/// attempt outlasts the lease TTL (5 s here, an 8 s attempt): the other node does not take the
/// endpoint over and send what is still in flight.
#[tokio::test]
async fn a_draining_node_keeps_its_leases_until_attempts_finish() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("drain");
    // 5 s leases (a 3.75 s margin between renewals) rather than 3 s, so a starved machine does not let
    // one lapse between renewals, which is not what this test is about.
    let opts = |id: &str| {
        NodeOpts::new(&redis, &prefix)
            .node_id(id)
            .set("shards__lease_ttl_ms", "5000")
    };
    let mut a = Node::start_ready(&opts("drain-a")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    a.api
        .create_endpoint(
            "dr",
            json!({"url": sink.url("sleep/8000/drain"), "max_in_flight": 1, "timeout_ms": 20000}),
        )
        .await;
    let first = a.api.post_event("dr", "a.b", json!({})).await.unwrap();
    let second = a.api.post_event("dr", "a.b", json!({})).await.unwrap();
    wait_for(Duration::from_secs(10), "the first attempt to start", || {
        sink.arrivals("drain") == 1
    })
    .await;
    let b = Node::start_ready(&opts("drain-b")).await;
    a.sigterm();
    let status = a.wait_exit(Duration::from_secs(30)).await.expect("node a did not exit");
    assert!(status.success());
    wait_for(Duration::from_secs(30), "both events", || {
        let ids = sink.delivered_ids("drain");
        ids.contains(&first) && ids.contains(&second)
    })
    .await;
    assert_eq!(
        sink.max_in_flight("drain"),
        1,
        "two nodes had attempts in flight at once"
    );
    assert_eq!(
        sink.arrivals("drain"),
        2,
        "an attempt in flight during the drain was sent again"
    );
    drop(b);
}

/// Retry times live in Redis: after a kill -9 with retries scheduled, the restarted node fires
/// each retry near its stored time (not at once, not never), and nothing is lost.
#[tokio::test]
async fn retries_scheduled_before_a_kill_9_fire_on_time_after_restart() {
    let redis = shared_redis_url();
    let opts = NodeOpts::new(&redis, &unique_prefix("retrykill")).node_id("retrykill-node");
    let mut node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    sink.set_switch("rk", 503);
    node.api
        .create_endpoint("rk", json!({"url": sink.url("switch/rk"), "retry_schedule_s": [4]}))
        .await;
    // Eight: ten failures would (rightly) open the circuit breaker and delay the retries.
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(node.api.post_event("rk", "a.b", json!({})).await.unwrap());
    }
    // Every first attempt failed and its retry is scheduled.
    let read_due = || async {
        let mut due: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for id in &ids {
            let (_, evt) = node.api.get(&format!("/v1/tenants/rk/events/{id}")).await;
            let Some(dlv) = evt["deliveries"][0]["id"].as_str() else {
                continue;
            };
            let (_, d) = node.api.get(&format!("/v1/tenants/rk/deliveries/{dlv}")).await;
            if let Some(at) = d["next_attempt_at"].as_str() {
                let at = humantime::parse_rfc3339(at)
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                due.insert(id.clone(), at.as_millis() as u64);
            }
        }
        due
    };
    let due = last_reading(Duration::from_secs(10), read_due, |due| due.len() == ids.len()).await;
    assert_eq!(due.len(), ids.len(), "not every retry was scheduled");
    node.kill9().await;
    sink.set_switch("rk", 200);
    let node = Node::start_ready(&opts).await;
    let wanted: HashSet<String> = ids.iter().cloned().collect();
    wait_for(Duration::from_secs(30), "every retry after the restart", || {
        sink.delivered_ids("rk") == wanted
    })
    .await;
    for r in sink.received_by("rk").iter().filter(|r| r.status == 200) {
        let at = due[r.webhook_id()];
        assert!(r.arrived_ms + 50 >= at, "a retry fired {} ms early", at - r.arrived_ms);
        assert!(
            r.arrived_ms <= at + 3_000,
            "a retry fired {} ms late",
            r.arrived_ms - at
        );
    }
    drop(node);
}

/// A dead endpoint with a large backlog (20,000 here; 200,000 in the load tests): node memory
/// stays flat (the backlog is in Redis), its neighbours deliver normally, and after revival the
/// backlog drains.
#[tokio::test]
async fn a_dead_endpoint_backlog_lives_in_redis_not_in_the_node() {
    const BACKLOG: usize = 20_000;
    let redis = shared_redis_url();
    let opts = NodeOpts::new(&redis, &unique_prefix("backlog"))
        .set("health__probe_intervals_s", "[1]")
        .set("health__ramp_s", "2")
        .set("health__ramp_start_per_s", "100")
        .set("health__ramp_full_per_s", "10000");
    let node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    sink.set_switch("dead", 503);
    let dead = node
        .api
        .create_endpoint(
            "bl",
            json!({"url": sink.url("switch/dead"), "event_types": ["bulk.*"], "max_in_flight": 50}),
        )
        .await;
    node.api
        .create_endpoint("bl", json!({"url": sink.url("ok/alive"), "event_types": ["alive.*"]}))
        .await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    post_many_of(&node.api, "bl", "bulk.item", 1_000, 16, acked.clone()).await;
    let rss_before = node.rss_kib();
    post_many_of(&node.api, "bl", "bulk.item", BACKLOG - 1_000, 16, acked.clone()).await;
    assert_eq!(acked.lock().unwrap().len(), BACKLOG);
    let path = format!("/v1/tenants/bl/endpoints/{}", dead["id"].as_str().unwrap());
    let backlog = last_reading(
        Duration::from_secs(20),
        || async { node.api.get(&path).await.1["state"]["backlog"].as_u64().unwrap_or(0) },
        |backlog| *backlog as usize == BACKLOG,
    )
    .await;
    assert_eq!(backlog as usize, BACKLOG, "the whole backlog is queued in Redis");
    let rss_after = node.rss_kib();
    println!("node RSS: {rss_before} KiB with 1,000 queued, {rss_after} KiB with {BACKLOG} queued");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "node memory grew with the backlog: {rss_before} → {rss_after} KiB"
    );

    let mut alive = HashSet::new();
    for _ in 0..20 {
        let (_, r) = node
            .api
            .post("/v1/tenants/bl/events", json!({"type": "alive.ping", "payload": {}}))
            .await;
        alive.insert(r["id"].as_str().unwrap().to_string());
    }
    wait_for(Duration::from_secs(10), "the healthy neighbour", || {
        sink.delivered_ids("alive") == alive
    })
    .await;

    sink.set_switch("dead", 200);
    wait_for(Duration::from_secs(120), "the backlog to drain after revival", || {
        sink.delivered_ids("dead").len() == BACKLOG
    })
    .await;
}

/// A node started while Redis is unreachable serves (/healthz 200) but is not ready: /readyz
/// is 503 and says why (no Redis, not in the lease cycle yet). Once Redis answers, it joins the
/// lease cycle and becomes ready by itself.
#[tokio::test]
async fn not_ready_until_redis_answers_and_the_node_holds_its_lease_cycle() {
    let mut redis = RedisServer::start(false);
    redis.kill9();
    let node = Node::start(&NodeOpts::new(&redis.url(), "late")).await;
    let (status, _) = node.api.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = node.api.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "not_ready");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"redis\":false") && message.contains("\"leases\":false"),
        "{message}"
    );

    redis.start_again();
    eventually(Duration::from_secs(20), "ready after Redis came up", || async {
        node.api.ready().await.then_some(())
    })
    .await;
    let (_, body) = node.api.get("/readyz").await;
    assert_eq!(
        body,
        json!({"ready": true, "redis": true, "leases": true, "accepting": true})
    );
}

/// Fencing: a node paused past its lease TTL (SIGSTOP) loses its shards to another node; when
/// it resumes it starts no attempt on them (its local lease deadline has passed), and the
/// results of the attempts it had in flight are refused by Redis (RECORD_ATTEMPT checks the
/// lease holder) or dropped when its lease cycle finds the leases lost, so the new owner's
/// records stand. Duplicates: only those attempts in flight.
#[tokio::test]
async fn a_paused_node_resumes_without_touching_shards_it_lost() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("fence");
    let a = Node::start_ready(&NodeOpts::new(&redis, &prefix).node_id("fence-a")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    // Paced by a rate limit, so A holds due work in its window and a token timer when paused;
    // each answer takes 400 ms, so A is paused with an attempt in flight (waited for below).
    a.api
        .create_endpoint(
            "f",
            json!({"url": sink.url("sleep/400/fence"), "max_in_flight": 1, "rate_limit_per_s": 4}),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(a.api.post_event("f", "a.b", json!({"i": i})).await.unwrap());
    }
    wait_for(Duration::from_secs(10), "a few deliveries by A", || {
        sink.delivered_ids("fence").len() >= 3
    })
    .await;
    wait_for(Duration::from_secs(5), "an attempt of A in flight", || {
        sink.in_flight("fence") == 1
    })
    .await;

    a.signal("STOP");
    let paused_at = std::time::Instant::now();
    let b = Node::start_ready(&NodeOpts::new(&redis, &prefix).node_id("fence-b")).await;
    // A's leases run out (3 s TTL: they expire 2.25 s after the last renewal, `LeaseTiming`);
    // B takes the shards and works the queue.
    let before = sink.delivered_ids("fence").len();
    wait_for(Duration::from_secs(20), "B delivering", || {
        sink.delivered_ids("fence").len() >= before + 3
    })
    .await;
    assert!(paused_at.elapsed() > Duration::from_millis(2_250));
    a.signal("CONT");

    wait_for(Duration::from_secs(60), "every event delivered", || {
        let got = sink.delivered_ids("fence");
        ids.iter().all(|id| got.contains(id))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // let A act on what it had, if it would
    let requests = sink.received_by("fence").len();
    assert!(
        requests <= ids.len() + 1,
        "{requests} requests for {} events: more duplicates than the one attempt in flight at the pause",
        ids.len()
    );
    // A resumed knowing it had lost the shards: either Redis refused the results it had in
    // flight (the fence), or its lease cycle came first and stopped that work before the
    // results were written (its renewals, all at once, can beat the in-flight answer).
    assert!(
        a.logs()
            .iter()
            .any(|l| l.contains("not the lease holder") || l.contains("lost the lease of a shard")),
        "A's late results were neither refused nor dropped with the lost lease"
    );
    b.assert_delivery_states().await;
}

/// Three nodes share the shards evenly (most − fewest ≤ 1), every shard has exactly one
/// holder, and what each node says it owns is what Redis says it holds.
#[tokio::test]
async fn shards_spread_evenly_over_three_nodes() {
    let (redis, prefix, nodes) = start_nodes("spread", 3).await;
    let counts = await_even_spread(&nodes, Duration::from_secs(30))
        .await
        .unwrap_or_else(|c| c);
    let (most, fewest) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
    assert_eq!(counts.iter().sum::<u64>(), 16, "{counts:?}");
    assert!(most - fewest <= 1, "uneven: {counts:?}");
    // Redis agrees: each shard's lease names one of the nodes, in the same numbers.
    let mut held = std::collections::BTreeMap::<String, u64>::new();
    for shard in 0..16 {
        *held
            .entry(lease_holder(&redis, &prefix, shard).unwrap_or_default())
            .or_default() += 1;
    }
    let mut from_redis: Vec<u64> = (1..=3)
        .map(|i| held.get(&format!("spread-{i}")).copied().unwrap_or(0))
        .collect();
    let mut from_nodes = counts.clone();
    from_redis.sort_unstable();
    from_nodes.sort_unstable();
    assert_eq!(
        from_redis, from_nodes,
        "leases in Redis {held:?} vs nodes' own counts {counts:?}"
    );
}

/// Three nodes, events posted round-robin through all three, kill -9 of one mid-load:
/// everything acknowledged is delivered everywhere; duplicates only for attempts in flight on
/// the killed node; its shards are held again by the others within about one lease TTL.
#[tokio::test]
async fn three_nodes_survive_kill_9_of_one() {
    let (_redis, _prefix, nodes) = start_nodes("three", 3).await;
    kill_one_of_three(nodes, &["k3"]).await;
}

/// A rolling restart of three nodes with SIGTERM, under load: each node in turn stops
/// gracefully (finishes its attempts, gives its leases back) and a fresh one takes its place.
/// Nothing acknowledged is lost and nothing is delivered twice.
#[tokio::test]
async fn rolling_restart_loses_nothing_and_duplicates_nothing() {
    let (redis, prefix, mut nodes) = start_nodes("roll", 3).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let names = slow_endpoints(&nodes[0].api, &sink, "roll", "r", 4, 30, 2).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    for round in 0..3 {
        // Load through the nodes that stay up this round, while one of them is restarted.
        let posters: Vec<_> = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != round)
            .map(|(_, n)| {
                let (api, acked) = (n.api.clone(), acked.clone());
                tokio::spawn(async move { post_many(&api, "roll", 30, 2, acked).await })
            })
            .collect();
        let old = &mut nodes[round];
        old.sigterm();
        let status = old.wait_exit(Duration::from_secs(30)).await.expect("did not exit");
        assert!(status.success(), "round {round}: {status:?}");
        nodes[round] = Node::start_ready(&NodeOpts::new(&redis, &prefix).node_id(&format!("roll-{}", round + 1))).await;
        for p in posters {
            p.await.unwrap();
        }
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert_eq!(acked.len(), 180, "every post went to a node that stayed up");
    wait_for(Duration::from_secs(60), "every event at every endpoint", || {
        names.iter().all(|n| acked.is_subset(&sink.delivered_ids(n)))
    })
    .await;
    assert_no_duplicates(&sink, &names);
    nodes[0].assert_delivery_states().await;
}

/// A fourth node joins three under load. The shards rebalance to 4 each within two lease
/// periods, and no endpoint is ever worked by two nodes at once: every attempt's node,
/// endpoint, start and end (from the nodes' own logs) are checked for overlaps between nodes.
#[tokio::test]
async fn a_fourth_node_joins_without_double_ownership() {
    let (redis, prefix, mut nodes) = start_nodes("join", 3).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    // 24 endpoints cover most of the 16 shards, so the four the new node takes hold some.
    let names = slow_endpoints(&nodes[0].api, &sink, "join", "j", 24, 40, 1).await;
    await_even_spread(&nodes, Duration::from_secs(20))
        .await
        .expect("three nodes share the shards");
    // A first wave, in flight while the node joins: 45 events × 24 endpoints, one 40 ms
    // attempt at a time per endpoint.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let posters: Vec<_> = nodes
        .iter()
        .map(|n| {
            let (api, acked) = (n.api.clone(), acked.clone());
            tokio::spawn(async move { post_many(&api, "join", 15, 2, acked).await })
        })
        .collect();
    wait_for(Duration::from_secs(20), "deliveries under way", || sink.count() >= 80).await;

    nodes.push(Node::start_ready(&NodeOpts::new(&redis, &prefix).node_id("join-4")).await);
    let joined = std::time::Instant::now();
    let lease_ttl = Duration::from_millis(3_000);
    let counts = await_even_spread(&nodes, Duration::from_secs(30))
        .await
        .unwrap_or_else(|c| panic!("the shards never spread over four nodes: {c:?}"));
    let took = joined.elapsed();
    assert_eq!(counts, vec![4, 4, 4, 4]);
    assert!(
        took <= lease_ttl * 2,
        "the new node got its share only after {took:?} (two lease periods: {:?})",
        lease_ttl * 2
    );
    for p in posters {
        p.await.unwrap();
    }
    // A second wave through all four, so the new node surely has work of its own.
    for node in &nodes {
        post_many(&node.api, "join", 10, 2, acked.clone()).await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert_eq!(acked.len(), 85);
    wait_for(Duration::from_secs(60), "every event at every endpoint", || {
        names.iter().all(|n| acked.is_subset(&sink.delivered_ids(n)))
    })
    .await;

    // A node logs an attempt after its answer arrives, which is after the sink counted it.
    let ok_requests: usize = names.iter().map(|n| sink.received_by(n).len()).sum();
    let all_logged = || -> Vec<LoggedAttempt> {
        nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| logged_attempts(i, n))
            .collect()
    };
    wait_for(Duration::from_secs(10), "every attempt in a node's log", || {
        all_logged().len() >= ok_requests
    })
    .await;
    let mut attempts = all_logged();
    assert_eq!(
        attempts.len(),
        ok_requests,
        "every attempt the sink saw is in a node's log"
    );
    attempts.sort_by_key(|a| (a.endpoint_id.clone(), a.start_ms));
    let mut handovers = 0;
    for pair in attempts.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.endpoint_id != b.endpoint_id || a.node == b.node {
            continue;
        }
        handovers += 1;
        // Milliseconds are truncated on both ends: allow 1 ms of rounding.
        assert!(
            b.start_ms + 1 >= a.end_ms,
            "{} was worked by two nodes at once: {a:?} and {b:?}",
            a.endpoint_id
        );
    }
    assert!(
        attempts.iter().any(|a| a.node == 3),
        "the new node made no attempt: the rebalance moved no work"
    );
    assert!(handovers > 0, "no endpoint changed hands under load");
    for name in &names {
        assert_eq!(sink.max_in_flight(name), 1, "{name} had two attempts in flight");
    }
    assert_no_duplicates(&sink, &names);
    nodes[0].assert_delivery_states().await;
}

/// An endpoint with `rate_limit_per_s = 10` stays within rate + burst in every one-second
/// window, cluster-wide, while its shard is handed from node to node (SIGTERM of the owner,
/// twice) and events arrive through all three nodes.
#[tokio::test]
async fn rate_limit_holds_cluster_wide_while_the_endpoint_moves() {
    let (redis, prefix, mut nodes) = start_nodes("crate", 3).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = nodes[0]
        .api
        .create_endpoint(
            "cr",
            json!({"url": sink.url("ok/limited"), "rate_limit_per_s": 10, "max_in_flight": 20}),
        )
        .await;
    let shard = hookline_actors::shard::shard_of(ep["id"].as_str().unwrap(), 16);
    await_even_spread(&nodes, Duration::from_secs(20))
        .await
        .expect("three nodes share the shards");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut retired = Vec::new();
    for round in 0..3 {
        // A wave through every node, then the endpoint's owner hands it over.
        for node in &nodes {
            post_many(&node.api, "cr", 10, 2, acked.clone()).await;
        }
        let expected = acked.lock().unwrap().len();
        wait_for(Duration::from_secs(20), "the wave under way", || {
            sink.delivered_ids("limited").len() + 15 >= expected
        })
        .await;
        if round == 2 {
            break;
        }
        retired.push(hand_over(&mut nodes, &redis, &prefix, shard, "crate").await);
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert_eq!(acked.len(), 90);
    wait_for(Duration::from_secs(30), "every event delivered", || {
        acked.is_subset(&sink.delivered_ids("limited"))
    })
    .await;
    // Three owners worked the endpoint in turn: the two stopped ones, then a third process.
    for old in &retired {
        assert!(
            !logged_attempts(0, old).is_empty(),
            "a stopped owner had made no attempt"
        );
    }
    assert!(
        nodes.iter().any(|n| !logged_attempts(0, n).is_empty()),
        "no process after the handovers made an attempt"
    );
    let arrivals: Vec<u64> = sink.received_by("limited").iter().map(|r| r.arrived_ms).collect();
    let worst = max_in_window(arrivals, 1_000);
    assert!(
        worst <= 20,
        "{worst} deliveries in one second across owners; the limit is 10/s with a burst of 10"
    );
}

/// Ordered mode holds across owners: an ordered endpoint's shard is handed over twice (its
/// owner stopped with SIGTERM while its queue is long), and every event still arrives first
/// in ingest order, one attempt at a time: as the receiver counts them, and as the owners'
/// own logs of every attempt's start and end show.
#[tokio::test]
async fn ordered_delivery_holds_while_the_endpoint_moves() {
    let (redis, prefix, mut nodes) = start_nodes("ord", 3).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = nodes[0]
        .api
        .create_endpoint(
            "ord",
            json!({"url": sink.url("sleep/30/ordered"), "ordered": true, "retry_schedule_s": [1, 1, 1]}),
        )
        .await;
    let shard = hookline_actors::shard::shard_of(ep["id"].as_str().unwrap(), 16);
    await_even_spread(&nodes, Duration::from_secs(20))
        .await
        .expect("three nodes share the shards");
    // Posted one after another, so ingest order is the order of the answers.
    let mut ingested = Vec::new();
    for i in 0..60 {
        let node = &nodes[i % 3];
        ingested.push(node.api.post_event("ord", "a.b", json!({"i": i})).await.unwrap());
    }
    let mut retired = Vec::new();
    for handover in 1..=2 {
        wait_for(Duration::from_secs(30), "the queue under way", || {
            sink.delivered_ids("ordered").len() >= handover * 15
        })
        .await;
        retired.push(hand_over(&mut nodes, &redis, &prefix, shard, "ord").await);
    }
    wait_for(Duration::from_secs(60), "every event delivered", || {
        sink.delivered_ids("ordered").len() == ingested.len()
    })
    .await;
    let first_success = sink.first_successes("ordered");
    assert_eq!(first_success, ingested, "deliveries left ingest order across owners");
    assert_eq!(
        sink.max_in_flight("ordered"),
        1,
        "two attempts of an ordered endpoint at once"
    );
    let owners: Vec<&Node> = retired.iter().chain(nodes.iter()).collect();
    let all_logged = || -> Vec<LoggedAttempt> {
        owners
            .iter()
            .enumerate()
            .flat_map(|(i, n)| logged_attempts(i, n))
            .collect()
    };
    // A node logs an attempt after its answer arrives, which is after the sink counted it.
    wait_for(Duration::from_secs(10), "every attempt in a node's log", || {
        all_logged().len() >= sink.received_by("ordered").len()
    })
    .await;
    let mut attempts = all_logged();
    assert_eq!(
        attempts.len(),
        sink.received_by("ordered").len(),
        "an attempt missing from the logs"
    );
    attempts.sort_by_key(|a| a.start_ms);
    for pair in attempts.windows(2) {
        // Milliseconds are truncated on both ends: allow 1 ms of rounding.
        assert!(
            pair[1].start_ms + 1 >= pair[0].end_ms,
            "two attempts at once: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}
