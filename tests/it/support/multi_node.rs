//! Helpers for tests that run several nodes on one Redis (`faults`, `cluster`): starting them,
//! loading them, handing shards over, reading what they logged, and the kill -9 scenario both
//! the single-Redis and the cluster tests run.

use super::*;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Post `count` events from `concurrency` tasks; returns the ids the node acknowledged.
pub async fn post_many(api: &Api, tenant: &str, count: usize, concurrency: usize, acked: Arc<Mutex<Vec<String>>>) {
    post_many_of(api, tenant, "load.item", count, concurrency, acked).await
}

/// `count` endpoints of `tenant`, sink names `{name}0…`, each answering after `sleep_ms` and
/// allowing `max_in_flight` attempts at once. Returns the sink names.
pub async fn slow_endpoints(
    api: &Api,
    sink: &Sink,
    tenant: &str,
    name: &str,
    count: usize,
    sleep_ms: u64,
    max_in_flight: u32,
) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{name}{i}")).collect();
    for name in &names {
        api.create_endpoint(
            tenant,
            json!({"url": sink.url(&format!("sleep/{sleep_ms}/{name}")), "max_in_flight": max_in_flight}),
        )
        .await;
    }
    names
}

/// `count` nodes named `<name>-1…` on one prefix of the shared Redis, each ready.
pub async fn start_nodes(name: &str, count: usize) -> (String, String, Vec<Node>) {
    let redis = shared_redis_url();
    let prefix = unique_prefix(name);
    let mut nodes = Vec::new();
    for i in 1..=count {
        nodes.push(Node::start_ready(&NodeOpts::new(&redis, &prefix).node_id(&format!("{name}-{i}"))).await);
    }
    (redis, prefix, nodes)
}

/// `hookline_shards_owned` as the node reports it.
pub async fn shards_owned(node: &Node) -> u64 {
    node.api.metric("hookline_shards_owned").await as u64
}

/// `post_many` with an event type of choice.
pub async fn post_many_of(
    api: &Api,
    tenant: &str,
    event_type: &str,
    count: usize,
    concurrency: usize,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (api, next, acked, tenant) = (api.clone(), next.clone(), acked.clone(), tenant.to_string());
        let event_type = event_type.to_string();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                if let Some(id) = api.post_event(&tenant, &event_type, json!({"n": 1})).await {
                    acked.lock().unwrap().push(id);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// No event reached any of `names` twice (one 200 per distinct event).
pub fn assert_no_duplicates(sink: &Sink, names: &[String]) {
    for name in names {
        let ok = sink.received_by(name).iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok,
            sink.delivered_ids(name).len(),
            "{name}: an event was delivered twice"
        );
    }
}

/// The node holding a shard's lease, as Redis has it (`None`: free). The lease holds its
/// holder's fencing token, `node#epoch`.
pub fn lease_holder(redis: &str, prefix: &str, shard: u32) -> Option<String> {
    let token = redis_cli(redis, &["GET", &format!("{prefix}:{{sh{shard}}}:lease")]);
    let (node, _epoch) = token.trim().rsplit_once('#')?;
    Some(node.to_string())
}

/// Hand a shard over: SIGTERM the node holding its lease (`nodes[i]` runs as `{name}-{i + 1}`),
/// and start a fresh node of the same name in its place. Returns the stopped node (its logs).
pub async fn hand_over(nodes: &mut [Node], redis: &str, prefix: &str, shard: u32, name: &str) -> Node {
    let i = lease_holder(redis, prefix, shard)
        .as_deref()
        .and_then(|owner| owner.strip_prefix(&format!("{name}-")))
        .and_then(|n| n.parse::<usize>().ok())
        .expect("a node holds the lease")
        - 1;
    nodes[i].sigterm();
    nodes[i]
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the owner did not stop");
    let fresh = Node::start_ready(&NodeOpts::new(redis, prefix).node_id(&format!("{name}-{}", i + 1))).await;
    std::mem::replace(&mut nodes[i], fresh)
}

/// Wait until the nodes hold all 16 shards with most − fewest ≤ 1; returns the counts.
pub async fn await_even_spread(nodes: &[Node], within: Duration) -> Result<Vec<u64>, Vec<u64>> {
    let counts = || async {
        let mut counts = Vec::new();
        for node in nodes {
            counts.push(shards_owned(node).await);
        }
        counts
    };
    let even = poll_until(within, || async {
        let counts = counts().await;
        let (most, fewest) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
        (counts.iter().sum::<u64>() == 16 && most - fewest <= 1).then_some(counts)
    })
    .await;
    match even {
        Some(counts) => Ok(counts),
        None => Err(counts().await),
    }
}

/// One attempt as a node logged it: the endpoint, and when it started and ended (ms).
#[derive(Debug, Clone)]
pub struct LoggedAttempt {
    pub node: usize,
    pub endpoint_id: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

pub fn logged_attempts(node_index: usize, node: &Node) -> Vec<LoggedAttempt> {
    node.logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["msg"] == "attempt finished")
        .map(|l| {
            let start_ms = l["started_ms"].as_u64().expect("started_ms in the attempt log");
            LoggedAttempt {
                node: node_index,
                endpoint_id: l["endpoint_id"].as_str().unwrap().to_string(),
                start_ms,
                end_ms: start_ms + l["latency_ms"].as_u64().unwrap(),
            }
        })
        .collect()
}

/// The kill -9 scenario on three running nodes (also run on Redis Cluster). Six endpoints,
/// spread over `tenants`; node i posts 80 events for tenant i (mod the count) while one node
/// is killed.
pub async fn kill_one_of_three(mut nodes: Vec<Node>, tenants: &[&str]) {
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let names: Vec<(String, String)> = (0..6)
        .map(|i| (format!("t{i}"), tenants[i % tenants.len()].to_string()))
        .collect();
    for (name, tenant) in &names {
        nodes[0]
            .api
            .create_endpoint(
                tenant,
                json!({"url": sink.url(&format!("sleep/20/{name}")), "max_in_flight": 2}),
            )
            .await;
    }
    let acked: Vec<Arc<Mutex<Vec<String>>>> = (0..nodes.len()).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let posters: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (api, acked, tenant) = (n.api.clone(), acked[i].clone(), tenants[i % tenants.len()].to_string());
            tokio::spawn(async move { post_many(&api, &tenant, 80, 2, acked).await })
        })
        .collect();
    wait_for(Duration::from_secs(20), "deliveries under way", || sink.count() >= 150).await;
    let mut victim = nodes.pop().unwrap();
    victim.kill9().await;
    let killed_at = std::time::Instant::now();

    // The survivors hold every shard again (measured while the posters go on).
    let retaken = eventually(
        Duration::from_secs(20),
        "the killed node's shards taken over",
        || async {
            let mut total = 0;
            for node in &nodes {
                total += shards_owned(node).await;
            }
            (total == 16).then(|| killed_at.elapsed())
        },
    )
    .await;
    eprintln!("shards held again {retaken:?} after the kill");
    // Within the lease TTL (3 s in tests: `lease::LeaseTiming`), plus half a second for this
    // loop's own polling and a loaded two-core machine.
    assert!(
        retaken < Duration::from_millis(3_500),
        "shards held again only after {retaken:?}"
    );
    for p in posters {
        p.await.unwrap();
    }

    // What each endpoint must get: every acknowledged event of its tenant.
    let mut by_tenant: std::collections::HashMap<String, HashSet<String>> = Default::default();
    for (i, a) in acked.iter().enumerate() {
        by_tenant
            .entry(tenants[i % tenants.len()].to_string())
            .or_default()
            .extend(a.lock().unwrap().iter().cloned());
    }
    let total: usize = by_tenant.values().map(HashSet::len).sum();
    assert!(total >= 160, "most posts should be acknowledged: {total}");
    let all_delivered = || {
        let done = names
            .iter()
            .all(|(n, t)| by_tenant[t].is_subset(&sink.delivered_ids(n)));
        std::future::ready(done.then_some(()))
    };
    if poll_until(Duration::from_secs(60), all_delivered).await.is_none() {
        let missing: Vec<(String, String, String)> = names
            .iter()
            .flat_map(|(n, t)| {
                let got = sink.delivered_ids(n);
                by_tenant[t]
                    .iter()
                    .filter(move |id| !got.contains(*id))
                    .map(move |id| (n.clone(), t.clone(), id.clone()))
            })
            .collect();
        let (_, t, id) = &missing[0];
        let (_, event) = nodes[0].api.get(&format!("/v1/tenants/{t}/events/{id}")).await;
        let notes: Vec<String> = nodes
            .iter()
            .flat_map(|n| n.logs())
            .filter(|l| l.contains("claim") || l.contains("dead consumer") || l.contains("routing"))
            .collect();
        panic!(
            "{} deliveries missing, e.g. {:?}: {event}\n{notes:#?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
    }
    let ok_requests: usize = names
        .iter()
        .map(|(n, _)| sink.received_by(n).iter().filter(|r| r.status == 200).count())
        .sum();
    let unique: usize = names.iter().map(|(n, _)| sink.delivered_ids(n).len()).sum();
    // At most max_in_flight (2) per endpoint could have been in flight on the killed node.
    assert!(
        ok_requests - unique <= names.len() * 2,
        "{} duplicates: more than the attempts that could be in flight at the kill",
        ok_requests - unique
    );
    nodes[0].assert_delivery_states().await;
}
