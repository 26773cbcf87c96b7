//! Thin events (issue 21): an endpoint with `payload_mode: thin` receives the event's id, type
//! and time only, signed as any delivery, and fetches the event with a tenant key.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn a_thin_receiver_fetches_the_event_it_was_told_of_and_both_agree() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("thin"))).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let thin = api
        .create_endpoint("th", json!({"url": sink.url("ok/thin"), "payload_mode": "thin"}))
        .await;
    assert_eq!(thin["payload_mode"], "thin");
    let full = api.create_endpoint("th", json!({"url": sink.url("ok/full")})).await;
    assert_eq!(full["payload_mode"], "full", "the default");
    sink.set_secret("thin", thin["secret"].as_str().unwrap());
    let (status, refused) = api
        .post(
            "/v1/tenants/th/endpoints",
            json!({"url": sink.url("ok/x"), "payload_mode": "slim"}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");

    let payload = json!({"order": {"id": "ord_1", "total": 1250}, "note": "gift \u{1F381}"});
    let id = api.post_event("th", "order.created", payload.clone()).await.unwrap();
    let arrived = |name: &str| {
        sink.received_by(name)
            .into_iter()
            .find(|r| r.webhook_id() == id)
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
    };
    wait_for(Duration::from_secs(15), "both deliveries", || {
        arrived("thin").is_some() && arrived("full").is_some()
    })
    .await;
    let (told, whole) = (arrived("thin").unwrap(), arrived("full").unwrap());
    assert_eq!(
        told,
        json!({"type": "order.created", "timestamp": whole["timestamp"], "data": {"id": id, "thin": true}})
    );
    let signed = sink.received_by("thin").iter().all(|r| r.signature_ok == Some(true));
    assert!(signed, "thin deliveries are signed like full ones");

    // The receiver follows up with a key that may only read events.
    let (status, key) = api
        .post("/v1/tenants/th/keys", json!({"scopes": ["events:read"]}))
        .await;
    assert_eq!(status, 201, "{key}");
    let reader = api.with_token(key["key"].as_str());
    let (status, fetched) = reader.get(&format!("/v1/tenants/th/events/{id}")).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["payload"], whole["data"]);
    assert_eq!(fetched["payload"], payload);
    assert_eq!(
        (&fetched["type"], &fetched["timestamp"]),
        (&told["type"], &told["timestamp"])
    );

    // Back to full: the next event arrives whole.
    let path = format!("/v1/tenants/th/endpoints/{}", thin["id"].as_str().unwrap());
    let (status, changed) = api
        .call(Method::PATCH, &path, Some(json!({"payload_mode": "full"})))
        .await;
    assert_eq!((status, &changed["payload_mode"]), (200, &json!("full")), "{changed}");
    let next = api.post_event("th", "order.created", json!({"n": 2})).await.unwrap();
    wait_for(Duration::from_secs(15), "the next delivery, whole", || {
        sink.received_by("thin")
            .iter()
            .any(|r| r.webhook_id() == next && r.body.contains(r#""n":2"#))
    })
    .await;
}
