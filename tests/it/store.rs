//! The Redis store driven directly (no node process): what its operations leave in Redis.

use crate::support::*;
use fred::prelude::*;
use hookline::config::Config;
use hookline::store::RedisStore;

fn config(prefix: &str) -> Config {
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
    let cfg = config(&prefix);
    let store = RedisStore::connect(&cfg).await.unwrap();
    assert!(store.wait_connected(std::time::Duration::from_secs(5)).await);
    let client = Builder::from_config(hookline::store::redis_config(&cfg.redis.url).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let stream = store.keys().events_stream();
    for seq in 1..=300u64 {
        // Entries from 1970: far older than any retention.
        let _: String = client
            .xadd(&stream, false, None, format!("1-{seq}"), ("e", "old"))
            .await
            .unwrap();
    }
    store
        .ingest("t", "evt_01m836wn1rffceqfsye7d7wbvb", "a.b", "{}", None)
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
        .del(vec![stream, store.keys().event("evt_01m836wn1rffceqfsye7d7wbvb")])
        .await
        .unwrap();
}

/// The janitor removes router consumers idle past the threshold, but never one still holding
/// pending entries (deleting a consumer drops its pending entries: they would never be routed).
#[tokio::test]
async fn janitor_keeps_consumers_holding_entries() {
    let prefix = unique_prefix("consumers");
    let cfg = config(&prefix);
    let store = RedisStore::connect(&cfg).await.unwrap();
    assert!(store.wait_connected(std::time::Duration::from_secs(5)).await);
    let url = cfg.redis.url.clone();
    let stream = store.keys().events_stream();
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
