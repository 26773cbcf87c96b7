//! Content filters (issue 21) through the API: checked when saved, tried with `filter/test`,
//! and applied by the router, so an event a filter refuses creates no delivery at all.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test]
async fn a_filter_is_checked_when_saved_tried_on_events_and_removed_with_null() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("filter-api"))).await;
    let url = "https://example.com/hook";
    for (filter, place) in [
        (json!({"payload.total": {"$gt": true}}), "filter.payload.total.$gt"),
        (json!({"order.total": 1}), "filter.order.total"),
        (
            json!({"$or": [{"type": "a"}, {"payload.x": {"$regex": "("}}]}),
            "filter.$or[1].payload.x.$regex",
        ),
    ] {
        let (status, body) = node
            .api
            .post("/v1/tenants/t/endpoints", json!({"url": url, "filter": filter}))
            .await;
        assert_eq!(status, 400, "{filter}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{place}: ")), "{filter}: {message}");
    }
    let (status, body) = node
        .api
        .post("/v1/tenants/t/endpoints", json!({"url": url, "filter": [1]}))
        .await;
    assert_eq!(status, 400, "a filter that is not an object: {body}");

    let filter = json!({"payload.total": {"$gte": 100}, "payload.currency": {"$in": ["EUR", "USD"]}});
    let ep = node
        .api
        .create_endpoint("t", json!({"url": url, "filter": filter}))
        .await;
    assert_eq!(ep["filter"], filter);
    let id = ep["id"].as_str().unwrap();
    let test = |total: u32, currency: &str| {
        let api = node.api.clone();
        let path = format!("/v1/tenants/t/endpoints/{id}/filter/test");
        let event = json!({"event": {"type": "order.created", "payload": {"total": total, "currency": currency}}});
        async move {
            let (status, body) = api.post(&path, event).await;
            assert_eq!(status, 200, "{body}");
            body["matches"].as_bool().unwrap()
        }
    };
    assert!(test(150, "EUR").await);
    assert!(!test(50, "EUR").await);
    assert!(!test(150, "GBP").await);
    let path = format!("/v1/tenants/t/endpoints/{id}/filter/test");
    let (status, _) = node.api.post(&path, json!({"event": {"typ": "x"}})).await;
    assert_eq!(status, 400, "an unknown field of the test event");
    let (status, _) = node
        .api
        .post(
            "/v1/tenants/other/endpoints/ep_00000000000000000000000000/filter/test",
            json!({"event": {}}),
        )
        .await;
    assert_eq!(status, 404);

    // A bad filter in a PATCH leaves the stored one as it was; null removes it.
    let endpoint = format!("/v1/tenants/t/endpoints/{id}");
    let (status, _) = node
        .api
        .call(
            Method::PATCH,
            &endpoint,
            Some(json!({"filter": {"payload": {"$near": 1}}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(node.api.get(&endpoint).await.1["filter"], filter);
    let (status, body) = node
        .api
        .call(Method::PATCH, &endpoint, Some(json!({"filter": null})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["filter"], Value::Null);
    assert!(test(50, "GBP").await, "without a filter every event matches");
}

/// Two endpoints with different filters and one without: each receives exactly the events its
/// filter matches, the ingest answer counts those deliveries, and the delivery log of an
/// endpoint holds no entry for the events its filter refused.
#[tokio::test]
async fn endpoints_receive_exactly_the_events_their_filters_match() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("filter-e2e"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let big = node
        .api
        .create_endpoint(
            "f",
            json!({"url": sink.url("ok/big"), "filter": {"payload.total": {"$gte": 100}}}),
        )
        .await;
    let eu = node
        .api
        .create_endpoint(
            "f",
            json!({"url": sink.url("ok/eu"), "event_types": ["order.*"],
                   "filter": {"$or": [{"payload.region": "eu"}, {"payload.items.sku": {"$startsWith": "eu-"}}]}}),
        )
        .await;
    node.api.create_endpoint("f", json!({"url": sink.url("ok/all")})).await;

    let events = [
        (
            "order.created",
            json!({"total": 50, "region": "eu"}),
            ["eu", "all"].as_slice(),
        ),
        ("order.created", json!({"total": 150, "region": "us"}), &["big", "all"]),
        (
            "order.created",
            json!({"total": 250, "region": "us", "items": [{"sku": "eu-1"}]}),
            &["big", "eu", "all"],
        ),
        ("refund.created", json!({"total": 500, "region": "eu"}), &["big", "all"]),
        ("order.created", json!({"total": 10, "region": "us"}), &["all"]),
    ];
    let mut expected: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for (event_type, payload, to) in &events {
        let (status, answer) = node
            .api
            .post("/v1/tenants/f/events", json!({"type": event_type, "payload": payload}))
            .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(
            answer["deliveries"],
            to.len(),
            "the ingest answer counts {payload}'s deliveries"
        );
        for name in *to {
            expected
                .entry(name)
                .or_default()
                .insert(answer["id"].as_str().unwrap().to_string());
        }
    }
    let received = |name: &str| -> BTreeSet<String> {
        sink.received_by(name)
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    wait_for(Duration::from_secs(15), "every matching delivery", || {
        expected.iter().all(|(name, ids)| received(name) == *ids)
    })
    .await;
    // Nothing else arrives later: the refused events were never queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, ids) in &expected {
        assert_eq!(&received(name), ids, "{name} received exactly what its filter matches");
    }
    for (ep, name) in [(&big, "big"), (&eu, "eu")] {
        let path = format!("/v1/tenants/f/deliveries?endpoint_id={}", ep["id"].as_str().unwrap());
        let (status, page) = node.api.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let logged: BTreeSet<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["event_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(&logged, &expected[name], "{name}'s delivery log");
    }
}
