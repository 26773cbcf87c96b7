//! `GET …/deliveries`: filters, newest-first cursor paging, stable pages while new work
//! arrives, and clear errors for bad filters.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Every page of `GET /v1/tenants/q/deliveries?<query>` with `limit`, in order.
async fn all_pages(api: &Api, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/tenants/q/deliveries?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit, "{path}: page longer than limit");
        items.extend(data.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
    panic!("more than 100 pages");
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|d| d["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn deliveries_list_filters_and_pages_newest_first() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("list"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ok = api.create_endpoint("q", json!({"url": sink.url("ok/ok")})).await;
    let refused = api
        .create_endpoint(
            "q",
            json!({"url": sink.url("status/400/refused"), "event_types": ["a.*"]}),
        )
        .await;
    let other_tenant = api.create_endpoint("other", json!({"url": sink.url("ok/other")})).await;
    let (ok_id, refused_id) = (ok["id"].as_str().unwrap(), refused["id"].as_str().unwrap());

    // 7 events to both endpoints, 2 to `ok` only: 16 deliveries, 9 delivered and 7 dead.
    let mut events = Vec::new();
    for i in 0..9 {
        let t = if i % 4 == 3 { "x.y" } else { "a.b" };
        events.push(api.post_event("q", t, json!({"i": i})).await.unwrap());
    }
    api.post_event("other", "a.b", json!({})).await.unwrap();
    let mut expected: HashMap<String, &str> = HashMap::new();
    for id in &events {
        let e = api
            .get_until(&format!("/v1/tenants/q/events/{id}"), Duration::from_secs(10), |e| {
                let d = e["deliveries"].as_array();
                d.is_some_and(|d| {
                    !d.is_empty() && d.iter().all(|d| d["status"] == "delivered" || d["status"] == "dead")
                })
            })
            .await;
        for d in e["deliveries"].as_array().unwrap() {
            let status = d["status"].as_str().unwrap();
            assert!(status == "delivered" || status == "dead", "{e}");
            expected.insert(
                d["id"].as_str().unwrap().to_string(),
                if status == "dead" { "dead" } else { "delivered" },
            );
        }
    }
    assert_eq!(expected.len(), 16);

    // Everything, three at a time: each delivery exactly once, newest event first.
    let all = all_pages(api, "", 3).await;
    let listed = ids(&all);
    assert_eq!(listed.len(), 16, "{listed:?}");
    assert_eq!(
        listed.iter().collect::<HashSet<_>>().len(),
        16,
        "a delivery listed twice"
    );
    assert_eq!(
        listed.iter().cloned().collect::<HashSet<_>>(),
        expected.keys().cloned().collect()
    );
    let event_rank: HashMap<&str, usize> = events.iter().enumerate().map(|(i, e)| (e.as_str(), i)).collect();
    let ranks: Vec<usize> = all
        .iter()
        .map(|d| event_rank[d["event_id"].as_str().unwrap()])
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "not newest first: {ranks:?}");
    for d in &all {
        assert_eq!(d["status"], expected[d["id"].as_str().unwrap()], "{d}");
        assert!(d["attempts"].as_u64().unwrap() >= 1, "{d}");
        assert!(d["created_at"].as_str().unwrap().ends_with('Z'), "{d}");
    }

    // Filters, alone and together.
    let dead = all_pages(api, "status=dead", 2).await;
    assert_eq!(dead.len(), 7);
    assert!(
        dead.iter()
            .all(|d| d["endpoint_id"] == refused_id && d["reason"] == "http_400"),
        "{dead:?}"
    );
    let by_endpoint = all_pages(api, &format!("endpoint_id={ok_id}"), 4).await;
    assert_eq!(by_endpoint.len(), 9);
    assert!(by_endpoint.iter().all(|d| d["endpoint_id"] == ok_id));
    let both = all_pages(api, &format!("endpoint_id={ok_id}&status=delivered"), 2).await;
    assert_eq!(both.len(), 9);
    assert!(all_pages(api, &format!("endpoint_id={refused_id}&status=delivered"), 5)
        .await
        .is_empty());
    let one_event = all_pages(api, &format!("event_id={}", events[0]), 1).await;
    assert_eq!(one_event.len(), 2);
    assert!(one_event.iter().all(|d| d["event_id"] == events[0].as_str()));
    let x_event = all_pages(api, &format!("event_id={}&status=dead", events[3]), 5).await;
    assert!(x_event.is_empty(), "x.y went to `ok` only: {x_event:?}");

    // A page taken before new deliveries arrive continues where it stopped: no repeats, and
    // the new ones (newer than the cursor) do not appear on later pages.
    let (_, first) = api.get("/v1/tenants/q/deliveries?limit=5").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let newer = api.post_event("q", "x.y", json!({})).await.unwrap();
    let first_ids = ids(first["data"].as_array().unwrap());
    api.get_until(&format!("/v1/tenants/q/events/{newer}"), Duration::from_secs(10), |e| {
        e["deliveries"][0]["status"] == "delivered"
    })
    .await;
    let (_, second) = api
        .get(&format!("/v1/tenants/q/deliveries?limit=50&cursor={cursor}"))
        .await;
    let second_ids = ids(second["data"].as_array().unwrap());
    assert_eq!(first_ids.len() + second_ids.len(), 16);
    assert!(second_ids.iter().all(|id| !first_ids.contains(id)));
    assert!(second.get("next_cursor").is_some_and(Value::is_null), "{second}");
    let (_, head) = api.get("/v1/tenants/q/deliveries?limit=1").await;
    assert_eq!(
        head["data"][0]["event_id"],
        newer.as_str(),
        "the newest delivery comes first"
    );

    // Bad filters: 400 naming the parameter; other tenants' endpoints are not found.
    let bad = [
        ("status=lost", 400, "status"),
        ("cursor=garbage", 400, "cursor"),
        ("limit=0", 400, "limit"),
        ("event_id=nope", 400, "event_id"),
        ("colour=red", 400, "colour"),
    ];
    for (query, code, word) in bad {
        let (status, body) = api.get(&format!("/v1/tenants/q/deliveries?{query}")).await;
        assert_eq!(status, code, "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(word),
            "{query}: {body}"
        );
    }
    let (status, body) = api
        .get(&format!(
            "/v1/tenants/q/deliveries?endpoint_id={}",
            other_tenant["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

#[tokio::test]
async fn deliveries_list_takes_a_time_range_of_ingest() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("list-range"))).await;
    let api = &node.api;
    // Disabled: its deliveries stay put, five of them, ingested in two bursts 50 ms apart.
    api.create_endpoint("q", json!({"url": "http://127.0.0.1:9/x", "disabled": true}))
        .await;
    let mut events = Vec::new();
    for i in 0..5 {
        if i == 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        events.push(api.post_event("q", "a.b", json!({"i": i})).await.unwrap());
    }
    wait_for_count(api, 5).await;
    // The node stamps the fourth event when its request arrives, before Redis stores it and
    // 50 ms after the third was stored: a time between the bursts.
    let (_, fourth) = api.get(&format!("/v1/tenants/q/events/{}", events[3])).await;
    let between = fourth["timestamp"].as_str().unwrap().to_string();
    let event_ids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|d| d["event_id"].as_str().unwrap().to_string())
            .collect()
    };
    let newer: Vec<String> = events[3..].iter().rev().cloned().collect();
    let older: Vec<String> = events[..3].iter().rev().cloned().collect();
    for limit in [1, 2, 50] {
        let got = all_pages(api, &format!("from={between}"), limit).await;
        assert_eq!(event_ids(&got), newer, "from, limit {limit}");
        let got = all_pages(api, &format!("to={between}"), limit).await;
        assert_eq!(event_ids(&got), older, "to, limit {limit}");
    }
    // Both bounds, and a range with nothing in it.
    let got = all_pages(api, &format!("from={between}&to=2100-01-01T00:00:00Z"), 2).await;
    assert_eq!(event_ids(&got), newer);
    assert!(all_pages(api, &format!("from={between}&to={between}"), 10)
        .await
        .is_empty());
    assert!(all_pages(api, "to=1970-01-02T00:00:00Z", 10).await.is_empty());
    // A time that is not one: 400 naming it.
    let (status, body) = api.get("/v1/tenants/q/deliveries?from=yesterday").await;
    assert_eq!(
        (status, body["error"]["message"].as_str().unwrap().starts_with("from:")),
        (400, true)
    );
}

/// Waits until the tenant `q` lists `n` deliveries.
async fn wait_for_count(api: &Api, n: usize) {
    api.get_until("/v1/tenants/q/deliveries?limit=50", Duration::from_secs(10), |page| {
        page["data"].as_array().is_some_and(|d| d.len() == n)
    })
    .await;
}
