//! The Redis store driven directly (no node process): what its operations leave in Redis.

use crate::support::*;
use fred::prelude::*;
use hookline::config::Config;
use hookline::store::RedisStore;
use hookline_actors::store::Recorded;

/// A store on the shared Redis under `prefix`, its config, and a plain client beside it.
pub(crate) async fn connect(prefix: &str) -> (Config, std::sync::Arc<RedisStore>, fred::clients::Client) {
    connect_with(config(prefix)).await
}

/// `connect` with a config of the test's own.
pub(crate) async fn connect_with(cfg: Config) -> (Config, std::sync::Arc<RedisStore>, fred::clients::Client) {
    let store = RedisStore::connect(&cfg.store_settings()).await.unwrap();
    assert!(store.wait_connected(std::time::Duration::from_secs(5)).await);
    let client = Builder::from_config(hookline::store::redis_config(&cfg.redis.url).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    (cfg, store, client)
}

/// Record one finished attempt (`record_attempts` with one record).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    store: &RedisStore,
    owner: &str,
    endpoint: &hookline_actors::EndpointConfig,
    shard: u32,
    event_id: &str,
    number: u32,
    attempt: &hookline_actors::model::AttemptRecord,
    next: &hookline_actors::model::Next,
) -> Result<Recorded, hookline::store::Error> {
    let finished = hookline_actors::model::FinishedAttempt {
        event_id: event_id.to_string(),
        number,
        record: attempt.clone(),
        next: next.clone(),
        new_record: None,
    };
    let mut results = store.record_attempts(owner, endpoint, shard, &[finished]).await;
    assert_eq!(results.len(), 1);
    results.pop().unwrap()
}

/// A store under a fresh prefix (`router.claim_idle_ms` 1 s), an ordered endpoint of tenant
/// `t` stored in it, and its partition, whose router group exists over an empty stream.
pub(crate) async fn ordered_endpoint_on_an_empty_stream(
    name: &str,
) -> (
    Config,
    std::sync::Arc<RedisStore>,
    hookline_actors::EndpointConfig,
    u32,
    u32,
) {
    let mut cfg = config(&unique_prefix(name));
    cfg.router.claim_idle_ms = 1_000;
    let (cfg, store, _) = connect_with(cfg).await;
    let (mut endpoint, shard) = stored_endpoint(&store, &cfg).await;
    endpoint.ordered = true;
    store
        .put_endpoint(&endpoint, shard, &test_entry(&endpoint.tenant))
        .await
        .unwrap();
    let partition = store.keys().partition_of("t");
    // The first read creates the router group; the stream is empty.
    assert!(store.read_events(partition, "a", false, 1, 0).await.unwrap().is_empty());
    (cfg, store, endpoint, shard, partition)
}

/// Router `a` reads the first of `ids` (just appended, in order) and router `b` the second.
pub(crate) async fn read_by_two_routers(
    store: &RedisStore,
    partition: u32,
    ids: &[String],
) -> (hookline_actors::StreamEvent, hookline_actors::StreamEvent) {
    let first = store.read_events(partition, "a", false, 1, 0).await.unwrap().remove(0);
    let second = store.read_events(partition, "b", false, 1, 0).await.unwrap().remove(0);
    assert_eq!(
        (first.event_id.as_str(), second.event_id.as_str()),
        (ids[0].as_str(), ids[1].as_str())
    );
    (first, second)
}

/// Route `event` (as read from the stream) to `endpoint`.
pub(crate) async fn route_to(
    store: &RedisStore,
    endpoint: &hookline_actors::EndpointConfig,
    shard: u32,
    event: &hookline_actors::StreamEvent,
) {
    let routed = hookline_actors::RoutedEvent {
        event: event.clone(),
        endpoints: vec![(endpoint.id.clone(), shard)],
    };
    store.route(&[routed]).await.unwrap();
}

/// A receiver's answer `status_code` at `at_ms`, after `latency_ms`.
pub(crate) fn answered(status_code: u16, latency_ms: u64, at_ms: u64) -> hookline_actors::model::AttemptRecord {
    hookline_actors::model::AttemptRecord {
        at_ms,
        status_code: Some(status_code),
        latency_ms,
        response_excerpt: String::new(),
        error: None,
    }
}

/// A new endpoint of tenant `t`, saved; with its shard.
pub(crate) async fn stored_endpoint(store: &RedisStore, cfg: &Config) -> (hookline_actors::EndpointConfig, u32) {
    let endpoint = hookline_actors::EndpointConfig::new(
        hookline::ids::new_endpoint_id(),
        "t".into(),
        "http://127.0.0.1:9/x".into(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        hookline_actors::now_ms(),
    );
    let shard = hookline_actors::shard::shard_of(&endpoint.id, cfg.shards.count);
    store
        .put_endpoint(&endpoint, shard, &test_entry(&endpoint.tenant))
        .await
        .unwrap();
    (endpoint, shard)
}

/// Events routed to one endpoint, as the router hands them to the store.
pub(crate) fn routed_to(endpoint_id: &str, shard: u32, event_ids: &[String]) -> Vec<hookline_actors::RoutedEvent> {
    let now = hookline_actors::now_ms();
    event_ids
        .iter()
        .enumerate()
        .map(|(i, id)| hookline_actors::RoutedEvent {
            event: hookline_actors::StreamEvent {
                partition: 0,
                stream_id: format!("{now}-{i}"),
                event_id: id.clone(),
                tenant: "t".into(),
                event_type: "a.b".into(),
                only_endpoint: None,
                trace: None,
            },
            endpoints: vec![(endpoint_id.to_string(), shard)],
        })
        .collect()
}

/// Set an endpoint's entry in its shard's due set, as a test's starting point.
async fn put_due(client: &fred::clients::Client, store: &RedisStore, shard: u32, endpoint_id: &str, score: f64) {
    let _: () = client
        .zadd(store.keys().due(shard), None, None, false, false, (score, endpoint_id))
        .await
        .unwrap();
}

pub(crate) fn config(prefix: &str) -> Config {
    let mut cfg = Config::default();
    cfg.redis.url = shared_redis_url();
    cfg.redis.prefix = prefix.to_string();
    cfg.auth.insecure_no_auth = true;
    cfg
}

/// Invariant 4 for the stream: appending trims entries older than retention.
#[tokio::test]
async fn ingest_trims_stream_entries_older_than_retention() {
    let prefix = unique_prefix("trim");
    let (_cfg, store, client) = connect(&prefix).await;
    let stream = store.keys().events_stream(store.keys().partition_of("t"));
    for seq in 1..=300u64 {
        // Entries from 1970: far older than any retention.
        let _: String = client
            .xadd(&stream, false, None, format!("1-{seq}"), ("e", "old"))
            .await
            .unwrap();
    }
    store
        .ingest(&stored_event("t", "evt_01m836wn1rffceqfsye7d7wbvb", "{}"))
        .await
        .unwrap();
    let len: u64 = client.xlen(&stream).await.unwrap();
    // Approximate trimming drops whole stream nodes (100 entries each by default).
    assert!(len <= 101, "stale entries were not trimmed: {len} left");
    let newest: Vec<(String, Vec<(String, String)>)> = client.xrevrange(&stream, "+", "-", Some(1)).await.unwrap();
    assert_eq!(
        newest[0].1[0],
        ("e".to_string(), "evt_01m836wn1rffceqfsye7d7wbvb".to_string())
    );
    let _: () = client
        .del(vec![stream, store.keys().event("t", "evt_01m836wn1rffceqfsye7d7wbvb")])
        .await
        .unwrap();
}

/// The janitor removes router consumers idle past the threshold, but never one still holding
/// pending entries (deleting a consumer drops its pending entries: they would never be routed).
#[tokio::test]
async fn janitor_keeps_consumers_holding_entries() {
    let prefix = unique_prefix("consumers");
    let (cfg, store, _client) = connect(&prefix).await;
    let url = cfg.redis.url.clone();
    let stream = store.keys().events_stream(0);
    redis_cli(&url, &["XGROUP", "CREATE", &stream, "router", "0", "MKSTREAM"]);
    redis_cli(&url, &["XGROUP", "CREATECONSUMER", &stream, "router", "gone-node"]);
    redis_cli(&url, &["XGROUP", "CREATECONSUMER", &stream, "router", "this-node"]);
    redis_cli(&url, &["XADD", &stream, "*", "e", "evt_x"]);
    redis_cli(
        &url,
        &[
            "XREADGROUP",
            "GROUP",
            "router",
            "holding-node",
            "COUNT",
            "1",
            "STREAMS",
            &stream,
            ">",
        ],
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let report = store.janitor_pass("this-node", 10, 5).await.unwrap();
    assert_eq!(report.consumers, 1, "{report:?}");
    let listed = redis_cli(&url, &["XINFO", "CONSUMERS", &stream, "router"]);
    assert!(!listed.contains("gone-node"), "{listed}");
    assert!(
        listed.contains("holding-node"),
        "a consumer holding an entry was removed: {listed}"
    );
    assert!(
        listed.contains("this-node"),
        "the janitor's own consumer was removed: {listed}"
    );
    redis_cli(&url, &["DEL", &stream]);
}

/// A deleted endpoint's attempt that finishes after the janitor marked its delivery dead
/// (`endpoint_deleted`) cannot turn it back into a retry that would never run; a success may.
#[tokio::test]
async fn an_attempt_finishing_after_deletion_cannot_revive_a_dropped_delivery() {
    use hookline_actors::model::Next;

    let prefix = unique_prefix("dropped");
    let (cfg, store, _client) = connect(&prefix).await;
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let events: Vec<String> = (0..2)
        .map(|_| hookline::ids::new_event_id(hookline_actors::now_ms()))
        .collect();
    store.route(&routed_to(&endpoint.id, shard, &events)).await.unwrap();
    let epoch = store.hold_lease(shard, "n", 60_000).await.unwrap().expect("held");
    let token = format!("n#{epoch}");
    assert_eq!(
        store
            .delete_endpoint(&endpoint, shard, &test_entry(&endpoint.tenant))
            .await
            .unwrap(),
        Ok(2)
    );
    let report = store.janitor_pass("n", 10, 3_600_000).await.unwrap();
    assert_eq!(report.dropped_marked_dead, 2, "{report:?}");

    let attempt = answered(503, 5, hookline_actors::now_ms());
    let retry = Next::RetryAt(hookline_actors::now_ms() + 60_000);
    record(&store, &token, &endpoint, shard, &events[0], 1, &attempt, &retry)
        .await
        .unwrap();
    record(
        &store,
        &token,
        &endpoint,
        shard,
        &events[1],
        1,
        &attempt,
        &Next::Delivered,
    )
    .await
    .unwrap();
    let first = store
        .get_delivery(shard, &endpoint.id, &events[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.status.as_str(), first.reason.as_deref()),
        ("dead", Some("endpoint_deleted"))
    );
    assert_eq!(first.attempts.len(), 1, "the attempt is still logged");
    let second = store
        .get_delivery(shard, &endpoint.id, &events[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status, "delivered");
}

/// Routing trims a busy endpoint's delivery log as it writes it, so the log stays bounded even
/// when the janitor visits rarely: one call in eight (by the ingest ms of its earliest new
/// delivery) trims up to sixteen times what it adds, the others trim nothing.
#[tokio::test]
async fn routing_trims_the_delivery_log_as_it_grows() {
    let prefix = unique_prefix("logtrim");
    let (cfg, store, client) = connect(&prefix).await;
    let endpoint_id = hookline::ids::new_endpoint_id();
    let shard = hookline_actors::shard::shard_of(&endpoint_id, cfg.shards.count);
    let log = store.keys().delivery_log(shard, &endpoint_id);
    for i in 0..40 {
        // Entries from 1970: far past retention.
        let _: () = client
            .zadd(&log, None, None, false, false, (i as f64, format!("evt_old{i}")))
            .await
            .unwrap();
    }
    let at_ms = |remainder: u64| hookline_actors::now_ms() / 8 * 8 + remainder;
    let route_two_at = |ms: u64| {
        let events: Vec<String> = (0..2).map(|_| hookline::ids::new_event_id(ms)).collect();
        let mut routed = routed_to(&endpoint_id, shard, &events);
        for (i, r) in routed.iter_mut().enumerate() {
            r.event.stream_id = format!("{ms}-{i}");
        }
        routed
    };
    let log_now = || async {
        client
            .zrange::<Vec<String>, _, _, _>(&log, 0, -1, None, false, None, false)
            .await
            .unwrap()
    };

    store.route(&route_two_at(at_ms(1))).await.unwrap();
    assert_eq!(log_now().await.len(), 42, "a call off the one-in-eight trims nothing");
    store.route(&route_two_at(at_ms(8))).await.unwrap();
    let left = log_now().await;
    assert_eq!(
        left.len(),
        12,
        "4 new + 8 of the 40 old (32, sixteen times the 2 added, trimmed): {left:?}"
    );
    assert_eq!(left[0], "evt_old32");
}

/// A batch is routed with one call per shard: each endpoint of the shard gets its deliveries,
/// in its queue and its log, and its due entry at its earliest new delivery (lowered only).
#[tokio::test]
async fn one_route_call_serves_every_endpoint_of_a_shard() {
    let (cfg, store, client) = connect(&unique_prefix("routeshard")).await;
    let first = hookline::ids::new_endpoint_id();
    let shard = hookline_actors::shard::shard_of(&first, cfg.shards.count);
    let second = std::iter::repeat_with(hookline::ids::new_endpoint_id)
        .find(|id| hookline_actors::shard::shard_of(id, cfg.shards.count) == shard)
        .unwrap();
    let ms = hookline_actors::now_ms();
    let event = |i: u64, endpoint: &str| hookline_actors::RoutedEvent {
        event: hookline_actors::StreamEvent {
            partition: 0,
            stream_id: format!("{}-{i}", ms + i),
            event_id: hookline::ids::new_event_id(ms + i),
            tenant: "t".into(),
            event_type: "a.b".into(),
            only_endpoint: None,
            trace: None,
        },
        endpoints: vec![(endpoint.to_string(), shard)],
    };
    // Interleaved: the second endpoint's earliest is the batch's second event (scores with
    // fractions of a ms, which the due entry keeps).
    let batch = vec![event(3, &first), event(1, &second), event(2, &first), event(4, &second)];
    let due_of = |id: String| {
        let (client, due) = (client.clone(), store.keys().due(shard));
        async move { client.zscore::<Option<f64>, _, _>(due, id).await.unwrap() }
    };
    // A due entry already earlier than the new work stays where it is.
    put_due(&client, &store, shard, &second, 1.0).await;
    store.route(&batch).await.unwrap();
    for (endpoint, mine) in [(&first, [0, 2]), (&second, [1, 3])] {
        let mut want: Vec<String> = mine.iter().map(|&i| batch[i].event.event_id.clone()).collect();
        want.sort();
        for key in [
            store.keys().queue(shard, endpoint),
            store.keys().delivery_log(shard, endpoint),
        ] {
            let mut got: Vec<String> = client.zrange(&key, 0, -1, None, false, None, false).await.unwrap();
            got.sort();
            assert_eq!(got, want, "{key}");
        }
    }
    assert_eq!(due_of(first.clone()).await, Some(batch[2].event.order_score()));
    assert_eq!(due_of(second.clone()).await, Some(1.0), "lowered only");
    // Routed again: nothing new, nothing moved.
    store.route(&batch).await.unwrap();
    let queued: u64 = client.zcard(store.keys().queue(shard, &first)).await.unwrap();
    assert_eq!(queued, 2);
}

/// A starting actor reads what the last one saved, health and rate-limiter bucket, in one
/// read; an unreadable bucket reads as none (a full bucket), and nothing saved as healthy.
#[tokio::test]
async fn a_starting_actor_reads_the_saved_health_and_bucket_at_once() {
    let (cfg, store, client) = connect(&unique_prefix("saved")).await;
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    assert_eq!(
        store.load_saved(&endpoint.id, shard).await.unwrap(),
        (Default::default(), None)
    );
    let epoch = store.hold_lease(shard, "n", 60_000).await.unwrap().expect("held");
    let token = format!("n#{epoch}");
    let health = hookline_actors::model::HealthRecord {
        failing_since_ms: Some(1_234),
        ..Default::default()
    };
    store
        .save_health(Some(&token), &endpoint.id, shard, &health)
        .await
        .unwrap();
    let bucket = hookline_actors::limiter::BucketRecord { tokens: 2.5, at_ms: 99 };
    store
        .save_bucket(&token, &endpoint.id, shard, &bucket, 60_000)
        .await
        .unwrap();
    assert_eq!(
        store.load_saved(&endpoint.id, shard).await.unwrap(),
        (health.clone(), Some(bucket))
    );
    let _: () = client
        .set(store.keys().bucket(shard, &endpoint.id), "not json", None, None, false)
        .await
        .unwrap();
    assert_eq!(store.load_saved(&endpoint.id, shard).await.unwrap(), (health, None));
}

/// Settling reads the head's score exactly (`ms + (seq + 1)/4096`): the due entry keeps it, and the
/// actor is told the first ms at which it is due, not one before (Lua prints a number with 14
/// digits only: the fraction was lost, and the actor woke to pull nothing).
#[tokio::test]
async fn settling_keeps_the_head_score_exactly_and_answers_its_first_due_ms() {
    let (cfg, store, client) = connect(&unique_prefix("settlescore")).await;
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let ms = hookline_actors::now_ms() + 60_000;
    let mut routed = routed_to(&endpoint.id, shard, &[hookline::ids::new_event_id(ms)]);
    routed[0].event.stream_id = format!("{ms}-5");
    store.route(&routed).await.unwrap();
    let epoch = store.hold_lease(shard, "n", 60_000).await.unwrap().expect("held");
    let due = store
        .settle_idle(&format!("n#{epoch}"), &endpoint.id, shard, false, 0, None)
        .await
        .unwrap();
    assert_eq!(due, Some(ms + 1));
    let entry: Option<f64> = client.zscore(store.keys().due(shard), &endpoint.id).await.unwrap();
    assert_eq!(entry, Some(routed[0].event.order_score()));
}

/// A store on a fresh prefix with `n` deliveries routed to one endpoint, and the shard's lease
/// held: (store, a plain client, the endpoint, its shard, the event ids, the fencing token).
async fn leased_deliveries(
    name: &str,
    n: usize,
) -> (
    std::sync::Arc<RedisStore>,
    fred::clients::Client,
    hookline_actors::EndpointConfig,
    u32,
    Vec<String>,
    String,
) {
    let (cfg, store, client) = connect(&unique_prefix(name)).await;
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let events: Vec<String> = (0..n)
        .map(|_| hookline::ids::new_event_id(hookline_actors::now_ms()))
        .collect();
    store.route(&routed_to(&endpoint.id, shard, &events)).await.unwrap();
    let epoch = store.hold_lease(shard, "n", 60_000).await.unwrap().expect("held");
    (store, client, endpoint, shard, events, format!("n#{epoch}"))
}

/// Routing an event again (a router that crashed before its ack, or a claimed stale entry)
/// creates nothing new: a delivery already attempted keeps its state and is not queued again,
/// one still queued is queued once, and the delivery log lists each once.
#[tokio::test]
async fn routing_an_event_again_creates_nothing_new() {
    use hookline_actors::model::Next;

    let (store, client, endpoint, shard, events, token) = leased_deliveries("reroute", 2).await;
    let attempt = answered(200, 1, hookline_actors::now_ms());
    record(
        &store,
        &token,
        &endpoint,
        shard,
        &events[0],
        1,
        &attempt,
        &Next::Delivered,
    )
    .await
    .unwrap();

    store.route(&routed_to(&endpoint.id, shard, &events)).await.unwrap();
    let delivered = store
        .get_delivery(shard, &endpoint.id, &events[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((delivered.status.as_str(), delivered.attempts.len()), ("delivered", 1));
    let queued: Vec<String> = client
        .zrange(store.keys().queue(shard, &endpoint.id), 0, -1, None, false, None, false)
        .await
        .unwrap();
    assert_eq!(queued, vec![events[1].clone()]);
    let logged: u64 = client
        .zcard(store.keys().delivery_log(shard, &endpoint.id))
        .await
        .unwrap();
    assert_eq!(logged, 2);
}

/// An endpoint actor's group commit: one RECORD_ATTEMPT call records a batch with mixed
/// outcomes, each as its own call would. A success leaves the queue, a retry moves to its due
/// time, a dead letter moves to the dead letters; a delivery replayed while its attempt ran is
/// queued again. Routing writes no record: the pull says so (`new_record`, the queue score),
/// and the first recorded attempt creates the record, with an expiry, its place in line and
/// its creation time. A retry's expiry is renewed; a record that expired while queued is
/// created again with an expiry.
#[tokio::test]
async fn a_batch_of_attempts_is_recorded_in_one_call_as_each_alone_would_be() {
    use hookline_actors::model::{FinishedAttempt, Next};

    let (store, client, endpoint, shard, events, token) = leased_deliveries("batchrec", 5).await;
    let record_key = |i: usize| store.keys().delivery(shard, &endpoint.id, &events[i]);
    let exists: u64 = client.exists((0..5).map(record_key).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(exists, 0, "routing writes no record");
    let now = hookline_actors::now_ms();
    let window = store.pull_window(&endpoint, shard, now + 1_000, 10, &[]).await.unwrap();
    assert_eq!(window.deliveries.len(), 5);
    let pulled: std::collections::HashMap<String, Option<f64>> = window
        .deliveries
        .iter()
        .map(|d| (d.event_id.clone(), d.new_record))
        .collect();
    assert!(pulled.values().all(Option::is_some), "{pulled:?}");
    let pending = store
        .get_delivery(shard, &endpoint.id, &events[0])
        .await
        .unwrap()
        .expect("listed");
    assert_eq!((pending.status.as_str(), pending.attempts.len()), ("pending", 0));
    // events[3] is replayed while its attempt runs; events[4] had a record (a replay made it,
    // say) that expired while queued.
    assert_eq!(store.replay(shard, &endpoint, &events[3..5]).await.unwrap(), 2);
    let _: () = client.del(record_key(4)).await.unwrap();
    let new_record = |i: usize| if i == 4 { None } else { pulled[&events[i]] };

    let attempt = |code| answered(code, 1, now);
    let retry_at = now + 60_000;
    let batch: Vec<FinishedAttempt> = [
        (200, Next::Delivered),
        (503, Next::RetryAt(retry_at)),
        (400, Next::Dead(hookline_actors::model::DeadReason::Refused(400))),
        (503, Next::RetryAt(retry_at)),
        (200, Next::Delivered),
    ]
    .into_iter()
    .zip(&events)
    .enumerate()
    .map(|(i, ((code, next), id))| FinishedAttempt {
        event_id: id.clone(),
        number: 1,
        record: attempt(code),
        next,
        new_record: new_record(i),
    })
    .collect();
    let results = store.record_attempts(&token, &endpoint, shard, &batch).await;
    let outcomes: Vec<Recorded> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        outcomes,
        [
            Recorded::AsDecided,
            Recorded::AsDecided,
            Recorded::AsDecided,
            Recorded::Requeued,
            Recorded::AsDecided
        ],
        "the replay that won is told to the actor (it pulls again)"
    );

    let status = |i: usize| {
        let store = store.clone();
        let (id, ep) = (events[i].clone(), endpoint.id.clone());
        async move { store.get_delivery(shard, &ep, &id).await.unwrap().expect("record") }
    };
    let queue = store.keys().queue(shard, &endpoint.id);
    let queued = |i: usize| {
        let (client, queue, id) = (client.clone(), queue.clone(), events[i].clone());
        async move { client.zscore::<Option<f64>, _, _>(queue, id).await.unwrap() }
    };
    let ttl = |i: usize| {
        let (client, key) = (client.clone(), record_key(i));
        async move { client.ttl::<i64, _>(key).await.unwrap() }
    };
    let delivered = status(0).await;
    assert_eq!(delivered.status, "delivered");
    assert_eq!(delivered.created_ms, pulled[&events[0]].unwrap() as u64);
    assert_eq!(queued(0).await, None);
    assert!(
        ttl(0).await > 1_000,
        "the record its first attempt creates has an expiry"
    );
    let order: Option<f64> = client.hget(record_key(0), "order").await.unwrap();
    assert_eq!(order, pulled[&events[0]], "its place in line is the queue score");
    let retried = status(1).await;
    assert_eq!((retried.status.as_str(), retried.next_ms), ("failed", Some(retry_at)));
    assert_eq!(queued(1).await, Some(retry_at as f64));
    assert!(ttl(1).await > 1_000, "a retry renews the expiry to retention");
    assert_eq!(status(2).await.status, "dead");
    assert_eq!(queued(2).await, None);
    let dead: Vec<String> = client
        .zrange(
            store.keys().dead_letters(shard, &endpoint.id),
            0,
            -1,
            None,
            false,
            None,
            false,
        )
        .await
        .unwrap();
    assert_eq!(dead, vec![events[2].clone()]);
    let replayed = status(3).await;
    assert_eq!((replayed.status.as_str(), replayed.attempts.len()), ("pending", 1));
    assert!(queued(3).await.is_some(), "the replay wins over the attempt's retry");
    assert_eq!(status(4).await.status, "delivered");
    let recreated_ttl = ttl(4).await;
    assert!(
        recreated_ttl > 1_000,
        "a record created again by its attempt gets an expiry: {recreated_ttl}"
    );

    // A stale owner's batch is refused as a whole: every result says so, nothing is written.
    let again: Vec<FinishedAttempt> = batch
        .iter()
        .map(|f| FinishedAttempt { number: 2, ..f.clone() })
        .collect();
    let refused = store.record_attempts("n#0", &endpoint, shard, &again).await;
    assert_eq!(refused.len(), 5);
    assert!(
        refused
            .iter()
            .all(|r| matches!(r, Err(hookline::store::Error::Fenced(s)) if *s == shard)),
        "{refused:?}"
    );
    assert_eq!(status(1).await.attempts.len(), 1);
}

/// A record written by the layout before the `k` field (ROUTE wrote no `k`, `updated_ms`,
/// `next_ms` or `reason`) takes the checked path: each attempt is recorded as before, a
/// replay between two attempts is not taken for one during the second, and the janitor's
/// dead-marking still holds against a late retry.
#[tokio::test]
async fn records_of_the_previous_layout_are_recorded_as_before() {
    use hookline_actors::model::Next;

    let (store, client, endpoint, shard, events, token) = leased_deliveries("oldlayout", 2).await;
    let key = |i: usize| store.keys().delivery(shard, &endpoint.id, &events[i]);
    // What the previous ROUTE wrote for each delivery.
    for i in 0..2 {
        let now = hookline_actors::now_ms().to_string();
        let fields = vec![
            ("status", "pending"),
            ("attempts", "0"),
            ("created_ms", &now),
            ("order", &now),
        ];
        let _: () = client.hset(key(i), fields).await.unwrap();
        let _: () = client.expire(key(i), 3_600, None).await.unwrap();
    }
    let delivery = |i: usize| {
        let (store, endpoint_id, event_id) = (store.clone(), endpoint.id.clone(), events[i].clone());
        async move {
            store
                .get_delivery(shard, &endpoint_id, &event_id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let now = hookline_actors::now_ms();
    let retry_at = now + 60_000;
    let failed = answered(503, 1, now);
    let attempt = |i: usize, number: u32, made: hookline_actors::model::AttemptRecord, next: Next| {
        let (store, token, endpoint, event_id) = (store.clone(), token.clone(), endpoint.clone(), events[i].clone());
        async move {
            record(&store, &token, &endpoint, shard, &event_id, number, &made, &next)
                .await
                .unwrap()
        }
    };
    attempt(0, 1, failed.clone(), Next::RetryAt(retry_at)).await;
    let first = delivery(0).await;
    assert_eq!(
        (first.status.as_str(), first.next_ms, first.attempts.len()),
        ("failed", Some(retry_at), 1)
    );
    assert_eq!(first.reason, None);
    // Replayed between the attempts: the second attempt (started after the replay) counts.
    assert_eq!(store.replay(shard, &endpoint, &events[0..1]).await.unwrap(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = answered(200, 1, hookline_actors::now_ms());
    attempt(0, 2, second.clone(), Next::Delivered).await;
    let done = delivery(0).await;
    assert_eq!((done.status.as_str(), done.attempts.len()), ("delivered", 2));
    let queued: Option<f64> = client
        .zscore(store.keys().queue(shard, &endpoint.id), &events[0])
        .await
        .unwrap();
    assert_eq!(queued, None, "a replay before the attempt is not one during it");
    let ttl: i64 = client.ttl(key(0)).await.unwrap();
    assert!(ttl > 0, "the record keeps an expiry: {ttl}");

    // Dead-marked by the previous janitor (its `k` never existed): it stays dead.
    let _: () = client
        .hset(
            key(1),
            vec![
                ("status", "dead"),
                ("reason", "endpoint_deleted"),
                ("next_ms", "0"),
                ("updated_ms", "1"),
            ],
        )
        .await
        .unwrap();
    attempt(1, 1, failed.clone(), Next::RetryAt(retry_at)).await;
    let kept = delivery(1).await;
    assert_eq!(
        (
            kept.status.as_str(),
            kept.reason.as_deref(),
            kept.next_ms,
            kept.attempts.len()
        ),
        ("dead", Some("endpoint_deleted"), None, 1)
    );
}

/// A store on a fresh prefix with one endpoint and one delivery routed to it: (store, a plain
/// client, the endpoint, its shard, the event id).
async fn one_routed_delivery(
    name: &str,
) -> (
    std::sync::Arc<RedisStore>,
    fred::clients::Client,
    hookline_actors::EndpointConfig,
    u32,
    String,
) {
    let (cfg, store, client) = connect(&unique_prefix(name)).await;
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let event = hookline::ids::new_event_id(hookline_actors::now_ms());
    store
        .route(&routed_to(&endpoint.id, shard, std::slice::from_ref(&event)))
        .await
        .unwrap();
    (store, client, endpoint, shard, event)
}

/// Fencing: only the holder of a shard's lease may record an attempt there. A node that lost
/// the lease (paused, cut off) has its late result refused, and the new owner's record stands.
#[tokio::test]
async fn only_the_lease_holder_records_attempts() {
    use hookline_actors::model::Next;
    let (store, _client, endpoint, shard, event) = one_routed_delivery("fence").await;
    let attempt = |code| answered(code, 1, hookline_actors::now_ms());

    // Nobody holds the lease yet, then another node does: both refused, nothing written.
    let mut epoch = 0;
    for holder in [None, Some("new-owner")] {
        if let Some(h) = holder {
            epoch = store.hold_lease(shard, h, 60_000).await.unwrap().expect("held");
        }
        let refused = record(
            &store,
            "old-owner#0",
            &endpoint,
            shard,
            &event,
            1,
            &attempt(200),
            &Next::Delivered,
        )
        .await;
        assert!(
            matches!(refused, Err(hookline::store::Error::Fenced(s)) if s == shard),
            "{refused:?}"
        );
        let record = store.get_delivery(shard, &endpoint.id, &event).await.unwrap().unwrap();
        assert_eq!((record.status.as_str(), record.attempts.len()), ("pending", 0));
    }
    // The same node, after its lease lapsed and it took the shard again: its old token (the
    // actors of the old lease) is refused; the new one is the holder's.
    let stale = format!("new-owner#{epoch}");
    redis_cli(&shared_redis_url(), &["DEL", &store.keys().lease(shard)]);
    let again = store
        .hold_lease(shard, "new-owner", 60_000)
        .await
        .unwrap()
        .expect("held");
    assert_eq!(again, epoch + 1, "a fresh acquisition is a new epoch");
    assert_eq!(
        store.hold_lease(shard, "new-owner", 60_000).await.unwrap(),
        Some(again),
        "renewing keeps the epoch"
    );
    let refused = record(
        &store,
        &stale,
        &endpoint,
        shard,
        &event,
        1,
        &attempt(200),
        &Next::Delivered,
    )
    .await;
    assert!(matches!(refused, Err(hookline::store::Error::Fenced(_))), "{refused:?}");
    // The holder's record is written.
    record(
        &store,
        &format!("new-owner#{again}"),
        &endpoint,
        shard,
        &event,
        1,
        &attempt(200),
        &Next::Delivered,
    )
    .await
    .unwrap();
    let record = store.get_delivery(shard, &endpoint.id, &event).await.unwrap().unwrap();
    assert_eq!(record.status, "delivered");
    // The stats count what was recorded: the holder's attempt, none of the three refused.
    let now_s = hookline_actors::now_ms() / 1000;
    let buckets = store
        .endpoint_stats(&endpoint.id, 3_600, now_s - 3_600, now_s + 1)
        .await
        .unwrap();
    let counted: u64 = buckets.iter().map(|b| b.counts.iter().sum::<u64>()).sum();
    assert_eq!(counted, 1, "{buckets:?}");
}

/// Health (breaker state, failure run, rate-limit bucket) and the due entry an idle actor
/// leaves are fenced like attempt records: a stale owner's writes are refused and change
/// nothing; an operator's reset (no token) and the holder's writes go through.
#[tokio::test]
async fn only_the_lease_holder_saves_health_and_settles() {
    use hookline_actors::model::HealthRecord;
    let (store, client, endpoint, shard, _event) = one_routed_delivery("fence-health").await;
    let epoch = store.hold_lease(shard, "owner", 60_000).await.unwrap().expect("held");
    let holder = format!("owner#{epoch}");
    let failing = HealthRecord {
        failing_since_ms: Some(1_234),
        ..Default::default()
    };
    store
        .save_health(Some(&holder), &endpoint.id, shard, &failing)
        .await
        .unwrap();

    // A stale owner (another node, or this one's actors of an earlier lease) is refused.
    for stale in ["other#1".to_string(), format!("owner#{}", epoch + 7)] {
        let refused = store
            .save_health(Some(&stale), &endpoint.id, shard, &HealthRecord::default())
            .await;
        assert!(
            matches!(refused, Err(hookline::store::Error::Fenced(s)) if s == shard),
            "{refused:?}"
        );
        assert_eq!(store.load_health(&endpoint.id, shard).await.unwrap(), failing);
        // Settling as if paused would remove the endpoint's due entry: refused too.
        let refused = store.settle_idle(&stale, &endpoint.id, shard, true, 0, None).await;
        assert!(matches!(refused, Err(hookline::store::Error::Fenced(_))), "{refused:?}");
        let due: Option<f64> = client.zscore(store.keys().due(shard), &endpoint.id).await.unwrap();
        assert!(due.is_some(), "a stale owner removed the due entry");
    }
    // The holder settles; an operator resets health without a token.
    assert!(store
        .settle_idle(&holder, &endpoint.id, shard, false, 0, None)
        .await
        .unwrap()
        .is_some());
    store
        .save_health(None, &endpoint.id, shard, &HealthRecord::default())
        .await
        .unwrap();
    assert_eq!(
        store.load_health(&endpoint.id, shard).await.unwrap(),
        HealthRecord::default()
    );
}

/// The endpoint actor's side of a refused settle. Its node still believes it holds the shard
/// (as after a pause) while Redis says another node does: the actor finds its queue empty,
/// settles, is refused, and then gives the shard up locally and stops, leaving the due entry
/// to the holder. The holder's own actor, in the same state, settles: the entry goes and its
/// lease stands.
#[tokio::test]
async fn an_endpoint_actor_whose_settle_is_refused_gives_up_the_shard() {
    use hookline_actors::ctx::Ctx;
    use hookline_actors::endpoint::{EndpointActor, EndpointArgs};
    use hookline_actors::{Stores, SystemClock};
    use std::sync::Arc;
    let (mut cfg, store, client) = connect(&unique_prefix("fence-actor")).await;
    cfg.node.id = "this-node".into();
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let due = || async {
        let score: Option<f64> = client.zscore(store.keys().due(shard), &endpoint.id).await.unwrap();
        score
    };
    for (holder, refused) in [("other-node", true), ("this-node", false)] {
        // A due entry with nothing queued, as a crashed owner may leave it.
        put_due(&client, &store, shard, &endpoint.id, 1.0).await;
        redis_cli(&shared_redis_url(), &["DEL", &store.keys().lease(shard)]);
        let epoch = store.hold_lease(shard, holder, 60_000).await.unwrap().expect("held");
        let ctx = Arc::new(Ctx::new(
            Stores::all(store.clone()),
            Arc::new(hookline::delivery::HttpTransport::direct(true).unwrap()),
            hookline::node_settings(&cfg),
            Arc::new(hookline_actors::matching::SubscriptionIndex::new()),
            Arc::new(SystemClock),
        ));
        ctx.leases.set_epoch(shard, epoch);
        ctx.leases.renewed(shard, hookline_actors::now_ms());
        let args = EndpointArgs {
            ctx: ctx.clone(),
            endpoint_id: endpoint.id.clone(),
            shard,
            epoch,
        };
        let (_actor, stopped) = ractor::Actor::spawn(None, EndpointActor, args).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), stopped)
            .await
            .unwrap_or_else(|_| panic!("the actor kept running (lease held by {holder})"))
            .unwrap();
        assert_eq!(
            ctx.leases.valid(shard, hookline_actors::now_ms()),
            !refused,
            "lease held by {holder}: the node's own view of its lease afterwards"
        );
        assert_eq!(
            due().await.is_some(),
            refused,
            "lease held by {holder}: the due entry afterwards"
        );
    }
}

/// A lease that lapsed is not silently taken back by a renewal: the renewal fails, so the
/// node stops the work it did under the old lease (and may take the shard afresh).
#[tokio::test]
async fn a_lapsed_lease_is_not_renewed() {
    let prefix = unique_prefix("renew");
    let (_cfg, store, _client) = connect(&prefix).await;
    assert!(store.hold_lease(3, "a", 60_000).await.unwrap().is_some());
    assert!(store.renew_lease(3, "a", 60_000).await.unwrap());
    redis_cli(&shared_redis_url(), &["DEL", &store.keys().lease(3)]);
    assert!(
        !store.renew_lease(3, "a", 60_000).await.unwrap(),
        "renewed a lapsed lease"
    );
    assert!(store.hold_lease(3, "b", 60_000).await.unwrap().is_some());
    assert!(
        !store.renew_lease(3, "a", 60_000).await.unwrap(),
        "renewed another node's lease"
    );
    assert!(
        store.hold_lease(3, "b", 60_000).await.unwrap().is_some(),
        "the holder keeps it"
    );
}

/// Ordered delivery across routers: the routers of several nodes share a partition, so a later
/// event can reach an ordered endpoint's queue while an earlier one is still being routed
/// elsewhere. The ordered pull holds that later head back (`not_before_ms` ahead) until the
/// earlier event is in the queue, and then hands out the earlier one first. A router stuck on
/// the earlier event holds the head no longer than three times `router.claim_idle_ms`.
#[tokio::test]
async fn an_ordered_head_waits_while_an_earlier_event_is_being_routed() {
    let (cfg, store, endpoint, shard, partition) = ordered_endpoint_on_an_empty_stream("ord-mark").await;
    let ids: Vec<String> = (0..2)
        .map(|_| hookline::ids::new_event_id(hookline_actors::now_ms()))
        .collect();
    for id in &ids {
        store.ingest(&stored_event("t", id, "{}")).await.unwrap();
    }
    // The routing mark is also the router-lag gauge: an event never read counts.
    let later = hookline_actors::now_ms() + 60_000;
    assert!(store.router_lag_ms(later).await.unwrap() >= 60_000);
    // Router a has read the first event and not routed it yet; router b routes the second.
    let (first, second) = read_by_two_routers(&store, partition, &ids).await;
    route_to(&store, &endpoint, shard, &second).await;
    assert!(
        store.router_lag_ms(later).await.unwrap() >= 60_000,
        "an unacked event counts"
    );

    // The store reads the mark and the head; the actors' policy decides how long it waits.
    let max_hold = hookline::node_settings(&cfg).ordered_hold_max_ms();
    let pull = |now: u64| {
        let (store, endpoint) = (store.clone(), endpoint.clone());
        async move {
            let pulled = store.pull_window(&endpoint, shard, now, 10, &[]).await.unwrap();
            hookline_actors::endpoint::ordered::hold_head(pulled, now, max_hold, &endpoint.id)
        }
    };
    let now = hookline_actors::now_ms();
    let pulled = pull(now).await;
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].event_id, ids[1]);
    assert!(
        pulled[0].not_before_ms > now,
        "the later event was offered while an earlier one was still being routed"
    );
    // Held for as long as the earlier event is younger than 3 × claim_idle_ms.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let now = hookline_actors::now_ms();
    let pulled = pull(now).await;
    assert_eq!(pulled[0].event_id, ids[1]);
    assert!(
        pulled[0].not_before_ms <= now,
        "a stuck router held the ordered head for ever"
    );

    route_to(&store, &endpoint, shard, &first).await;
    let now = hookline_actors::now_ms();
    let pulled = pull(now).await;
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].event_id, ids[0], "the earlier event is the head once routed");
    assert!(
        pulled[0].not_before_ms <= now,
        "every event is routed: nothing holds the head back"
    );
    assert_eq!(store.router_lag_ms(later).await.unwrap(), 0);
}

/// A PATCH or rotation of a source writes only over the version it read: one racing another
/// is refused (409), and one racing a DELETE cannot bring the source back (404).
#[tokio::test]
async fn a_source_changed_or_deleted_meanwhile_is_not_overwritten() {
    use hookline::inbound::source::{Kind, Source};
    use hookline::store::Written as Replaced;
    let (_, store, _) = connect(&unique_prefix("source-cas")).await;
    let mut source = Source::new(
        hookline::ids::new_source_id(),
        "t".into(),
        "s".into(),
        Kind::None,
        1_000,
    );
    store.put_source(&source, &test_entry("t")).await.unwrap();
    let read = source.updated_at_ms;

    source.name = "first".into();
    source.updated_at_ms = 2_000;
    assert_eq!(
        store.replace_source(&source, read, &test_entry("t")).await.unwrap(),
        Replaced::Done
    );
    // A second writer that read the same version loses.
    let mut stale = source.clone();
    stale.name = "second".into();
    stale.updated_at_ms = 2_001;
    assert_eq!(
        store.replace_source(&stale, read, &test_entry("t")).await.unwrap(),
        Replaced::Changed
    );
    assert_eq!(store.get_source(&source.id).await.unwrap().unwrap().name, "first");

    assert_eq!(
        store.delete_source(&source, &test_entry("t")).await.unwrap(),
        Replaced::Done
    );
    assert_eq!(
        store.replace_source(&source, 2_000, &test_entry("t")).await.unwrap(),
        Replaced::Gone
    );
    assert!(
        store.get_source(&source.id).await.unwrap().is_none(),
        "a deleted source came back"
    );
}

#[tokio::test]
async fn a_search_of_endpoints_stops_at_its_budget_and_goes_on_from_there() {
    let (cfg, store, _) = connect_with(config(&unique_prefix("find-endpoints"))).await;
    for _ in 0..250 {
        stored_endpoint(&store, &cfg).await;
    }
    let (listed, _) = store.list_endpoints("t", 0, 500).await.unwrap();
    let ids: Vec<String> = listed.into_iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 250);
    let wanted: std::collections::HashSet<&String> = [&ids[3], &ids[180], &ids[249]].into_iter().collect();
    let keep = |e: &hookline_actors::EndpointConfig| wanted.contains(&e.id);
    let found_ids = |found: Vec<hookline_actors::EndpointConfig>| found.into_iter().map(|e| e.id).collect::<Vec<_>>();
    // A budget of 50 ends the search after its first batch (100 looked at), with where to go on.
    let (found, next) = store.find_endpoints("t", 0, 10, 50, keep).await.unwrap();
    assert_eq!((found_ids(found), next), (vec![ids[3].clone()], Some(100)));
    let (found, next) = store.find_endpoints("t", 100, 10, 50, keep).await.unwrap();
    assert_eq!((found_ids(found), next), (vec![ids[180].clone()], Some(200)));
    let (found, next) = store.find_endpoints("t", 200, 10, 50, keep).await.unwrap();
    assert_eq!(
        (found_ids(found), next),
        (vec![ids[249].clone()], None),
        "the end of the list"
    );
    // A full page stops right after its last match.
    let (found, next) = store.find_endpoints("t", 0, 2, 1_000, keep).await.unwrap();
    assert_eq!(
        (found_ids(found), next),
        (vec![ids[3].clone(), ids[180].clone()], Some(181))
    );
    let (found, next) = store.find_endpoints("t", 181, 2, 1_000, keep).await.unwrap();
    assert_eq!((found_ids(found), next), (vec![ids[249].clone()], None));
}

/// Where an event went is kept in its partition's routed lists for the minute of its id (one
/// HSET per minute of a routed batch); an event stored before those lists keeps its own `eps`.
#[tokio::test]
async fn an_events_endpoint_list_is_read_from_the_routed_lists_or_its_own_record() {
    let prefix = unique_prefix("routedlists");
    let (cfg, store, client) = connect(&prefix).await;
    let now = hookline_actors::now_ms();
    let events: Vec<String> = (0..3).map(|_| hookline::ids::new_event_id(now)).collect();
    for id in &events {
        store.ingest(&stored_event("t", id, "{}")).await.unwrap();
    }
    let (a, b) = (hookline::ids::new_endpoint_id(), hookline::ids::new_endpoint_id());
    let mut routed = routed_to(&a, 0, &events[..2]);
    routed[0].endpoints.push((b.clone(), 1));
    store.route(&routed).await.unwrap();
    let listed = |id: String| {
        let store = store.clone();
        async move { store.get_event("t", &id).await.unwrap().expect("stored").endpoint_ids }
    };
    assert_eq!(listed(events[0].clone()).await, vec![a.clone(), b.clone()]);
    assert_eq!(listed(events[1].clone()).await, vec![a.clone()]);
    assert!(listed(events[2].clone()).await.is_empty(), "not routed yet");
    let key = store.keys().routed(0, now / 60_000);
    let ttl: i64 = client.ttl(&key).await.unwrap();
    assert!(ttl > cfg.retention_s() as i64, "kept past retention: {ttl}");
    let fields: u64 = client.hlen(&key).await.unwrap();
    assert_eq!(fields, 2, "one field per routed event, in one hash");
    // Stored by the layout before the routed lists (a hash record then): the event's own `eps`.
    let record = store.keys().event("t", &events[2]);
    let _: () = client.del(&record).await.unwrap();
    let _: () = client
        .hset(&record, [("body", "{}"), ("eps", b.as_str())])
        .await
        .unwrap();
    assert_eq!(listed(events[2].clone()).await, vec![b]);
}

/// A node keeps the bodies of the events it stored lately (`delivery.body_cache_mb`), and its
/// pulls take them from there: here the stored copies are changed behind its back, so the node
/// that stored an event delivers what it stored while a node that did not (its cache off)
/// reads Redis. A duplicate stored nothing, so nothing is kept under its id.
#[tokio::test]
async fn a_pull_takes_the_body_of_an_event_its_node_stored_from_memory() {
    let prefix = unique_prefix("bodies");
    let (cfg, store, client) = connect(&prefix).await;
    let mut off = config(&prefix);
    off.delivery.body_cache_mb = 0;
    let (_, reader, _) = connect_with(off).await;
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let now = hookline_actors::now_ms();
    let events: Vec<String> = (0..3).map(|_| hookline::ids::new_event_id(now)).collect();
    let keyed = |id: &str, body: &str| hookline::event::NewEvent {
        idempotency_key: Some("k".into()),
        ..stored_event("t", id, body)
    };
    store.ingest(&keyed(&events[0], r#"{"n":0}"#)).await.unwrap();
    reader
        .ingest(&stored_event("t", &events[1], r#"{"n":1}"#))
        .await
        .unwrap();
    assert!(store.ingest(&keyed(&events[2], r#"{"n":2}"#)).await.unwrap().duplicate);
    store.route(&routed_to(&endpoint.id, shard, &events)).await.unwrap();
    for id in &events[..2] {
        let _: () = client
            .set(store.keys().event("t", id), "changed", None, None, false)
            .await
            .unwrap();
    }
    let bodies = |store: std::sync::Arc<RedisStore>| {
        let (endpoint, events) = (endpoint.clone(), events.clone());
        async move {
            let window = store.pull_window(&endpoint, shard, now + 1_000, 10, &[]).await.unwrap();
            let by_id: std::collections::HashMap<String, Option<String>> = window
                .deliveries
                .into_iter()
                .map(|d| (d.event_id, d.body.as_deref().map(String::from)))
                .collect();
            events.iter().map(|id| by_id[id].clone()).collect::<Vec<_>>()
        }
    };
    let changed = Some("changed".to_string());
    assert_eq!(
        bodies(store.clone()).await,
        [Some(r#"{"n":0}"#.to_string()), changed.clone(), None],
        "the storing node's copy"
    );
    assert_eq!(
        bodies(reader.clone()).await,
        [changed.clone(), changed, None],
        "read from Redis"
    );
}

/// A new delivery's queue score is never a whole number, and a record only comes with a whole
/// one (a retry's due time, a replay's time), so a pull of new deliveries reads nothing of
/// their records (no EXISTS: counted on a Redis of its own) while a retried one is read. An
/// ordered endpoint's failed head keeps its fractional score with its record: once the
/// endpoint stops being ordered (`unordered_since_ms`), its pulls read records again.
#[tokio::test]
async fn a_pull_reads_records_only_where_a_queue_score_says_one_may_exist() {
    use hookline_actors::model::Next;

    let redis = RedisServer::start(false);
    let mut cfg = config(&unique_prefix("noexists"));
    cfg.redis.url = redis.url();
    let (cfg, store, _) = connect_with(cfg).await;
    let (mut endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let now = hookline_actors::now_ms();
    let events: Vec<String> = (0..3).map(|_| hookline::ids::new_event_id(now)).collect();
    store.route(&routed_to(&endpoint.id, shard, &events)).await.unwrap();
    let token = format!(
        "n#{}",
        store.hold_lease(shard, "n", 60_000).await.unwrap().expect("held")
    );
    let exists_calls = || command_calls(&redis.url()).get("exists").copied().unwrap_or(0);
    let pull = |endpoint: hookline_actors::EndpointConfig, exclude: Vec<String>| {
        let store = store.clone();
        async move {
            let window = store
                .pull_window(&endpoint, shard, now + 1_000, 10, &exclude)
                .await
                .unwrap();
            window
                .deliveries
                .into_iter()
                .map(|d| (d.event_id, (d.attempts, d.new_record.is_some())))
                .collect::<std::collections::HashMap<_, _>>()
        }
    };
    let before = exists_calls();
    let pulled = pull(endpoint.clone(), Vec::new()).await;
    assert!(events.iter().all(|id| pulled[id] == (0, true)), "{pulled:?}");
    assert_eq!(exists_calls(), before, "new deliveries: nothing read of their records");

    // One failed attempt recorded, its retry at a whole ms.
    let fail_once = |endpoint: hookline_actors::EndpointConfig, event: String| {
        let (store, token) = (store.clone(), token.clone());
        async move {
            let failed = answered(503, 1, now);
            record(
                &store,
                &token,
                &endpoint,
                shard,
                &event,
                1,
                &failed,
                &Next::RetryAt(now + 10),
            )
            .await
            .unwrap();
        }
    };
    fail_once(endpoint.clone(), events[0].clone()).await;
    let pulled = pull(endpoint.clone(), Vec::new()).await;
    assert_eq!(pulled[&events[0]], (1, false), "a retried delivery's record is read");
    assert_eq!(exists_calls(), before + 1);

    // An ordered endpoint's head fails: it keeps its place and its fractional score.
    endpoint.ordered = true;
    fail_once(endpoint.clone(), events[1].clone()).await;
    endpoint.ordered = false;
    endpoint.unordered_since_ms = Some(now);
    // (The retried events[0] left out: a window of fractional scores alone.)
    let pulled = pull(endpoint.clone(), vec![events[0].clone()]).await;
    assert_eq!(
        pulled[&events[1]],
        (1, false),
        "the once-ordered head's record is read: {pulled:?}"
    );
    assert_eq!(pulled[&events[2]], (0, true));
}
