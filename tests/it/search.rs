//! Finding events (issue 21): `GET /v1/tenants/{t}/events` by type, ingest time and source,
//! newest first, with pages that stay the same when events arrive meanwhile.

use crate::support::*;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of `path` (which has a `?`) from `cursor` on (empty: the newest), `limit` at a
/// time, in order.
async fn all_pages(api: &Api, path: &str, limit: usize, cursor: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = cursor.to_string();
    loop {
        let (status, page) = api.get(&format!("{path}&limit={limit}&cursor={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        out.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return out,
        }
    }
}

#[tokio::test]
async fn events_are_found_by_type_time_and_source_and_pages_hold_under_inserts() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("search"))).await;
    let api = &node.api;
    let mut posted: Vec<(String, &str)> = Vec::new();
    for i in 0..12 {
        let event_type = ["order.created", "order.paid", "user.created"][i % 3];
        let id = api.post_event("s", event_type, json!({"n": i})).await.unwrap();
        posted.push((id, event_type));
    }
    // Another tenant's events share the stream and never show.
    api.post_event("other", "order.created", json!({})).await.unwrap();
    let newest_first: Vec<String> = posted.iter().rev().map(|(id, _)| id.clone()).collect();

    let (status, page) = api.get("/v1/tenants/s/events").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), newest_first);
    assert_eq!(page["next_cursor"], Value::Null);
    let first = &page["data"][0];
    assert_eq!(first["payload"], json!({"n": 11}));
    assert_eq!(first["type"], posted[11].1);

    let of = |wanted: &dyn Fn(&str) -> bool| -> Vec<String> {
        posted
            .iter()
            .rev()
            .filter(|(_, t)| wanted(t))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (_, paid) = api.get("/v1/tenants/s/events?type=order.paid").await;
    assert_eq!(ids(&paid), of(&|t| t == "order.paid"));
    let (_, orders) = api.get("/v1/tenants/s/events?type=order.*").await;
    assert_eq!(ids(&orders), of(&|t| t.starts_with("order.")));

    // Time range: from the 5th event's time to the 8th's, inclusive (events of one
    // millisecond share it, so compare by time, not by position).
    let (_, all) = api.get("/v1/tenants/s/events").await;
    let times: Vec<(String, String)> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().into(),
                e["timestamp"].as_str().unwrap().into(),
            )
        })
        .collect();
    let (from, to) = (&times[7].1, &times[4].1);
    let expected: Vec<String> = times
        .iter()
        .filter(|(_, t)| t >= from && t <= to)
        .map(|(id, _)| id.clone())
        .collect();
    let (status, ranged) = api.get(&format!("/v1/tenants/s/events?from={from}&to={to}")).await;
    assert_eq!(status, 200, "{ranged}");
    assert_eq!(ids(&ranged), expected);

    // Pages of 5 cover everything once, in order, though events arrive between the pages.
    let (_, page1) = api.get("/v1/tenants/s/events?limit=5").await;
    assert_eq!(ids(&page1), newest_first[..5]);
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let late = api
        .post_event("s", "order.created", json!({"late": true}))
        .await
        .unwrap();
    let rest = all_pages(api, "/v1/tenants/s/events?type=*", 5, &cursor).await;
    assert_eq!(rest, newest_first[5..], "later pages do not shift");
    assert!(!rest.contains(&late));
    let everything = all_pages(api, "/v1/tenants/s/events?type=*", 4, "").await;
    assert_eq!(everything[0], late, "a new first page starts with it");
    assert_eq!(everything[1..], newest_first[..]);

    // Received on a source: found by its id.
    let (status, source) = api
        .post("/v1/tenants/s/sources", hookline_loadtest::inbound::source())
        .await;
    assert_eq!(status, 201, "{source}");
    let source_id = source["id"].as_str().unwrap();
    let body = br#"{"ref":"refs/heads/main"}"#;
    let mut request = reqwest::Client::new().post(format!("{}/in/{source_id}", api.base));
    for (name, value) in hookline_loadtest::inbound::headers(body, "d-1") {
        request = request.header(name, value);
    }
    let answer = request.body(body.to_vec()).send().await.unwrap();
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    let (_, from_source) = api.get(&format!("/v1/tenants/s/events?source_id={source_id}")).await;
    assert_eq!(ids(&from_source).len(), 1, "{from_source}");
    assert_eq!(from_source["data"][0]["source"]["id"], source_id);
    assert_eq!(from_source["data"][0]["payload"], json!({"ref": "refs/heads/main"}));

    // Bad parameters are named.
    for (query, named) in [
        ("type=order.**", "type"),
        ("from=yesterday", "from"),
        ("source_id=nope", "source_id"),
        ("cursor=abc", "cursor"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
        ("type=a&type=b", "type"),
    ] {
        let (status, answer) = api.get(&format!("/v1/tenants/s/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(named),
            "{query}: {answer}"
        );
    }
}

/// One request reads at most 10,000 events of the partition: a tenant whose events lie behind
/// another's many gets an empty page with a cursor, and the next page finds them.
#[tokio::test]
async fn a_search_reads_a_bounded_part_of_the_stream_per_request() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("search-budget"))).await;
    let api = &node.api;
    let quiet = api.post_event("quiet", "a.b", json!({})).await.unwrap();
    for _ in 0..11 {
        let events: Vec<Value> = (0..1_000).map(|i| json!({"type": "noise", "payload": i})).collect();
        let (status, answer) = api
            .post("/v1/tenants/noisy/events/batch", json!({"events": events}))
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    let (status, first) = api.get("/v1/tenants/quiet/events").await;
    assert_eq!(status, 200, "{first}");
    assert!(ids(&first).is_empty(), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a cursor to go on from");
    let (_, second) = api.get(&format!("/v1/tenants/quiet/events?cursor={cursor}")).await;
    assert_eq!(ids(&second), [quiet]);
    assert_eq!(second["next_cursor"], Value::Null);
    // The cursor before the first possible id: an empty last page, not an error.
    let (status, none) = api.get("/v1/tenants/quiet/events?cursor=0-0").await;
    assert_eq!(
        (status, none["data"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{none}"
    );
    assert_eq!(none["next_cursor"], Value::Null);
}
