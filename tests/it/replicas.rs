//! `redis.wait_replicas`: ingest answers 2xx only once a replica holds the event (WAIT), and
//! 503 "not confirmed" when no replica confirms in time.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn with_wait_replicas_ingest_is_acknowledged_only_once_a_replica_holds_it() {
    let master = RedisServer::start(false);
    let mut replica = RedisServer::start_replica_of(&master);
    let node = Node::start_ready(
        &NodeOpts::new(&master.url(), "waitrep")
            .set("redis__wait_replicas", "1")
            .set("redis__wait_timeout_ms", "300"),
    )
    .await;
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.push(
            node.api
                .post_event("w", "a.b", json!({"n": n}))
                .await
                .expect("ingest with a replica up"),
        );
    }
    let (status, batch) = node
        .api
        .post(
            "/v1/tenants/w/events/batch",
            json!({"events": [{"type": "a.b", "payload": {}}, {"type": "a.b", "payload": {}}]}),
        )
        .await;
    assert_eq!(status, 202, "{batch}");
    // Every acknowledged event is on the replica already (no waiting here).
    let on_replica = redis_cli(&replica.url(), &["xlen", "waitrep:{ev0}:events"]);
    assert_eq!(
        on_replica.trim().parse::<usize>().unwrap(),
        22,
        "the replica lacks acknowledged events"
    );

    // No replica: nothing is acknowledged.
    replica.kill9();
    let (status, answer) = node
        .api
        .post("/v1/tenants/w/events", json!({"type": "a.b", "payload": {}}))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "store_unavailable");
    let (status, answer) = node
        .api
        .post(
            "/v1/tenants/w/events/batch",
            json!({"events": [{"type": "a.b", "payload": {}}]}),
        )
        .await;
    assert_eq!(status, 503, "{answer}");
    assert!(node.api.metric("hookline_replica_waits_failed_total").await >= 2.0);
}
