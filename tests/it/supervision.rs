//! A crashed endpoint actor is restarted by its shard owner from Redis state, and no other
//! actor notices. The node runs in-process on the real Redis store and HTTP transport; the
//! only addition is a store wrapper that panics once inside one endpoint actor's handler.

use crate::support::*;
use hookline::config::Config;
use hookline::delivery::HttpTransport;
use hookline::store::RedisStore;
use hookline_actors::limiter::BucketRecord;
use hookline_actors::matching::SubscriptionIndex;
use hookline_actors::model::{FinishedAttempt, HealthRecord};
use hookline_actors::store::{PulledWindow, StoreResult};
use hookline_actors::{EndpointConfig, EndpointStore, Node, NodeSettings, Stores, SystemClock};
use hookline_loadtest::sink::Sink;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The real store, plus one injected panic in `record_attempts` for one endpoint.
struct PanicOnce {
    inner: Arc<RedisStore>,
    target: std::sync::Mutex<String>,
    armed: AtomicBool,
    records_after_panic: AtomicUsize,
}

/// Only the endpoint actors' store is wrapped; the router and lease manager use the real one.
#[async_trait::async_trait]
impl EndpointStore for PanicOnce {
    async fn get_endpoint(&self, id: &str) -> StoreResult<Option<EndpointConfig>> {
        EndpointStore::get_endpoint(&*self.inner, id).await
    }
    async fn pull_window(
        &self,
        e: &EndpointConfig,
        s: u32,
        now: u64,
        l: usize,
        x: &[String],
    ) -> StoreResult<PulledWindow> {
        EndpointStore::pull_window(&*self.inner, e, s, now, l, x).await
    }
    async fn record_attempts(
        &self,
        owner: &str,
        e: &EndpointConfig,
        s: u32,
        f: &[FinishedAttempt],
    ) -> Vec<StoreResult<hookline_actors::store::Recorded>> {
        if *self.target.lock().unwrap() == e.id {
            if self.armed.swap(false, Ordering::SeqCst) {
                panic!("injected crash of the endpoint actor");
            }
            self.records_after_panic.fetch_add(f.len(), Ordering::SeqCst);
        }
        EndpointStore::record_attempts(&*self.inner, owner, e, s, f).await
    }
    async fn settle_idle(
        &self,
        o: &str,
        id: &str,
        s: u32,
        p: bool,
        nb: u64,
        h: Option<&str>,
    ) -> StoreResult<Option<u64>> {
        EndpointStore::settle_idle(&*self.inner, o, id, s, p, nb, h).await
    }
    async fn load_health(&self, id: &str, s: u32) -> StoreResult<HealthRecord> {
        EndpointStore::load_health(&*self.inner, id, s).await
    }
    async fn save_health(&self, o: Option<&str>, id: &str, s: u32, h: &HealthRecord) -> StoreResult<()> {
        EndpointStore::save_health(&*self.inner, o, id, s, h).await
    }
    async fn load_saved(&self, id: &str, s: u32) -> StoreResult<(HealthRecord, Option<BucketRecord>)> {
        EndpointStore::load_saved(&*self.inner, id, s).await
    }
    async fn save_bucket(&self, o: &str, id: &str, s: u32, b: &BucketRecord, ttl: u64) -> StoreResult<()> {
        EndpointStore::save_bucket(&*self.inner, o, id, s, b, ttl).await
    }
    async fn emit_event(&self, t: &str, ty: &str, data: serde_json::Value, key: Option<&str>) -> StoreResult<String> {
        EndpointStore::emit_event(&*self.inner, t, ty, data, key).await
    }
    async fn note_dead_letters(
        &self,
        id: &str,
        s: u32,
        reasons: &[(String, u64)],
        interval_s: u64,
    ) -> StoreResult<Option<Vec<(String, u64)>>> {
        EndpointStore::note_dead_letters(&*self.inner, id, s, reasons, interval_s).await
    }
    async fn forget_endpoint(&self, id: &str, s: u32) -> StoreResult<u64> {
        EndpointStore::forget_endpoint(&*self.inner, id, s).await
    }
    async fn disable_endpoint(&self, id: &str, seen: u64, reason: &str) -> StoreResult<Option<EndpointConfig>> {
        EndpointStore::disable_endpoint(&*self.inner, id, seen, reason).await
    }
}

fn endpoint(id: &str, url: String) -> EndpointConfig {
    let secret = hookline::delivery::sign::new_secret();
    EndpointConfig {
        max_in_flight: Some(1),
        ..EndpointConfig::new(id.into(), "sup".into(), url, secret, 0)
    }
}

#[tokio::test]
async fn a_crashed_endpoint_actor_is_restarted_and_others_do_not_notice() {
    let mut cfg = Config::default();
    cfg.redis.url = shared_redis_url();
    cfg.redis.prefix = unique_prefix("sup");
    cfg.auth.insecure_no_auth = true;
    let redis = RedisStore::connect(&cfg.store_settings()).await.unwrap();
    assert!(redis.wait_connected(Duration::from_secs(5)).await);
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let (crashy, steady) = (hookline::ids::new_endpoint_id(), hookline::ids::new_endpoint_id());
    redis
        .put_endpoint(
            &endpoint(&crashy, sink.url("sleep/5/crashy")),
            hookline_actors::shard::shard_of(&crashy, 4),
            &test_entry("t"),
        )
        .await
        .unwrap();
    redis
        .put_endpoint(
            &endpoint(&steady, sink.url("sleep/5/steady")),
            hookline_actors::shard::shard_of(&steady, 4),
            &test_entry("t"),
        )
        .await
        .unwrap();

    let store = Arc::new(PanicOnce {
        inner: redis.clone(),
        target: std::sync::Mutex::new(crashy.clone()),
        armed: AtomicBool::new(true),
        records_after_panic: AtomicUsize::new(0),
    });
    let settings = NodeSettings {
        node_id: "sup-node".into(),
        shard_count: 4,
        lease_ttl_ms: 3_000,
        due_poll_ms: 100,
        due_poll_max_ms: 10_000,
        router_batch: 64,
        router_block_ms: 100,
        router_claim_idle_ms: 3_000,
        stream_partitions: 1,
        resync_interval_ms: 60_000,
        default_timeout_ms: 5_000,
        default_retry_schedule_s: vec![1],
        default_max_in_flight: 1,
        window: 10,
        idle_keepalive_ms: 5_000,
        idle_linger_ms: 0,
        drain_timeout_ms: 3_000,
        breaker: Default::default(),
        disable_after_ms: 3_600_000,
        dead_letter_notice_interval_s: 3_600,
        metric_labels: Default::default(),
    };
    let index = Arc::new(SubscriptionIndex::new());
    let transport = Arc::new(HttpTransport::direct(true).unwrap());
    let stores = Stores {
        endpoints: store.clone(),
        ..Stores::all(redis.clone())
    };
    let (node, _join) = Node::start(stores, transport, settings, index, Arc::new(SystemClock))
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "the node to be ready", || node.is_ready()).await;
    // The router resyncs the index at start; give it the endpoints explicitly too.
    node.endpoint_changed(&crashy);
    node.endpoint_changed(&steady);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut ids = HashSet::new();
    for i in 0..20 {
        let id = hookline::ids::new_event_id(hookline_actors::now_ms());
        let body = format!(r#"{{"id":"{id}","type":"a.b","timestamp":"x","tenant":"sup","data":{i}}}"#);
        assert!(!redis.ingest(&stored_event("sup", &id, &body)).await.unwrap().duplicate);
        ids.insert(id);
    }
    wait_for(Duration::from_secs(30), "both endpoints to get every event", || {
        sink.delivered_ids("crashy") == ids && sink.delivered_ids("steady") == ids
    })
    .await;
    assert!(!store.armed.load(Ordering::SeqCst), "the injected crash never happened");
    assert!(
        store.records_after_panic.load(Ordering::SeqCst) >= 19,
        "the restarted actor went on recording attempts"
    );
    // The attempt whose recording crashed is made again (at least once); nothing else repeats.
    let crashy_requests = sink.received_by("crashy").len();
    assert!(
        (20..=21).contains(&crashy_requests),
        "crashy got {crashy_requests} requests"
    );
    assert_eq!(
        sink.received_by("steady").len(),
        20,
        "the neighbour endpoint was disturbed"
    );
    node.shutdown().await;
    redis.shutdown().await;
}
