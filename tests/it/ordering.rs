//! Ingest order, driven on the store: a batch is appended in its order, and an ordered
//! endpoint's head never passes an event ingested before it that is still being routed.

use crate::store::{connect, ordered_endpoint_on_an_empty_stream, read_by_two_routers, route_to};
use crate::support::*;

/// A batch is one run of appends in its order, across the chunks it is stored in (100 events
/// per INGEST call): concurrent calls could be reordered by a retry (a reconnect during a
/// failover), and two routers reading between them could queue the later event first.
#[tokio::test]
async fn a_batch_is_appended_in_its_order_across_chunks() {
    let (_, store, _) = connect(&unique_prefix("batch-order")).await;
    let partition = store.keys().partition_of("t");
    // The first read creates the router group, at the stream's end.
    assert!(store.read_events(partition, "a", false, 1, 0).await.unwrap().is_empty());
    let ids: Vec<String> = (0..250)
        .map(|_| hookline::ids::new_event_id(hookline_actors::now_ms()))
        .collect();
    let mut events: Vec<_> = ids.iter().map(|id| stored_event("t", id, "{}")).collect();
    // A key repeated within the batch is a duplicate of its first use, in a later chunk too.
    events[10].idempotency_key = Some("k".into());
    events[180].idempotency_key = Some("k".into());
    let results = store.ingest_batch(&events).await;
    assert_eq!(results.len(), 250);
    let stored: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert!(stored[180].duplicate && stored[180].event_id == ids[10]);
    assert_eq!(stored.iter().filter(|s| s.duplicate).count(), 1);

    let read = store.read_events(partition, "a", false, 1_000, 0).await.unwrap();
    let in_stream: Vec<&str> = read.iter().map(|e| e.event_id.as_str()).collect();
    let expected: Vec<&str> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 180)
        .map(|(_, id)| id.as_str())
        .collect();
    assert_eq!(in_stream, expected, "the stream holds the batch in its order");
}

/// The routing mark read while every event was routed must still hold back an event appended
/// after it. Between the mark's read and the head's, a fast router can queue a later event
/// while a slower one is still routing an earlier one; a mark that said "all routed" let the
/// later one go first (the 10-minute soak's one ordered swap).
#[tokio::test]
async fn a_routing_mark_read_before_new_events_holds_them_back() {
    // The stream is empty, so all is routed.
    let (cfg, store, endpoint, shard, partition) = ordered_endpoint_on_an_empty_stream("ord-mark-new").await;
    let mark = store.routing_mark(partition).await.unwrap();

    let ids: Vec<String> = (0..2)
        .map(|_| hookline::ids::new_event_id(hookline_actors::now_ms()))
        .collect();
    let events: Vec<_> = ids.iter().map(|id| stored_event("t", id, "{}")).collect();
    assert!(store.ingest_batch(&events).await.iter().all(Result::is_ok));
    // Router a has read the first event and not routed it yet; router b routes the second.
    let (first, second) = read_by_two_routers(&store, partition, &ids).await;
    route_to(&store, &endpoint, shard, &second).await;

    // The head, read after the mark (as `pull_window` reads them, the events arriving between).
    let max_hold = hookline::node_settings(&cfg).ordered_hold_max_ms();
    let now = hookline_actors::now_ms();
    let mut pulled = store.pull_window(&endpoint, shard, now, 10, &[]).await.unwrap();
    pulled.routing_mark = Some(mark.clone());
    let held = hookline_actors::endpoint::ordered::hold_head(pulled, now, max_hold, &endpoint.id);
    assert_eq!(held[0].event_id, ids[1]);
    assert!(
        held[0].not_before_ms > now,
        "an event appended after the mark {mark} was read passed for routed (stream id {})",
        second.stream_id
    );

    // Once the first is routed too, it is the head, and nothing holds it.
    route_to(&store, &endpoint, shard, &first).await;
    let now = hookline_actors::now_ms();
    let pulled = store.pull_window(&endpoint, shard, now, 10, &[]).await.unwrap();
    let pulled = hookline_actors::endpoint::ordered::hold_head(pulled, now, max_hold, &endpoint.id);
    assert_eq!(pulled[0].event_id, ids[0]);
    assert!(
        pulled[0].not_before_ms <= now,
        "all is routed: nothing holds the head back"
    );
    // And the mark now lies past both.
    let mark = store.routing_mark(partition).await.unwrap();
    let score = hookline_actors::model::order_score;
    assert!(score(&mark) > score(&second.stream_id), "mark {mark}");
}

/// An endpoint that stops being ordered notes when (`unordered_since_ms` in its stored config):
/// its pulls read whether deliveries have records again (`model::has_no_record`).
#[tokio::test]
async fn an_endpoint_that_stops_being_ordered_notes_when() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("unordered"));
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let created = node
        .api
        .create_endpoint("u", serde_json::json!({"url": "http://127.0.0.1:9/x", "ordered": true}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let stored = || {
        let raw = redis_cli(&redis, &["--raw", "hget", &format!("{prefix}:endpoints"), &id]);
        serde_json::from_str::<serde_json::Value>(raw.trim()).unwrap()
    };
    assert!(stored().get("unordered_since_ms").is_none(), "{}", stored());
    let before = hookline_actors::now_ms();
    let (status, body, _) = node
        .api
        .raw(
            reqwest::Method::PATCH,
            &format!("/v1/tenants/u/endpoints/{id}"),
            Some(r#"{"ordered": false}"#),
            Some("application/json"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let since = stored()["unordered_since_ms"].as_u64().expect("noted");
    assert!(since >= before && since <= hookline_actors::now_ms());
}
