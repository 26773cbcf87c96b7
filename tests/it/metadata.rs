//! Metadata on events and endpoints (issue 21): stored and shown, seen by content filters and
//! by the events search, never sent to receivers.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn event_metadata_is_shown_filtered_on_and_searched_but_never_delivered() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("metadata"))).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    api.create_endpoint("m", json!({"url": sink.url("ok/all")})).await;
    api.create_endpoint(
        "m",
        json!({"url": sink.url("ok/eu"), "filter": {"metadata.region": "eu"}}),
    )
    .await;
    let post = |metadata: Value| {
        let api = api.clone();
        async move {
            let (status, answer) = api
                .post(
                    "/v1/tenants/m/events",
                    json!({"type": "order.created", "payload": {"n": 1}, "metadata": metadata}),
                )
                .await;
            (status, answer)
        }
    };
    let (status, eu) = post(json!({"region": "eu", "tier": "gold"})).await;
    assert_eq!(status, 202, "{eu}");
    assert_eq!(eu["deliveries"], 2, "the ingest answer counts the filter on metadata");
    let (_, us) = post(json!({"region": "us"})).await;
    assert_eq!(us["deliveries"], 1);
    let (_, none) = post(Value::Null).await;
    let (eu, us, none) = (
        eu["id"].as_str().unwrap().to_string(),
        us["id"].as_str().unwrap().to_string(),
        none["id"].as_str().unwrap().to_string(),
    );

    let (_, event) = api.get(&format!("/v1/tenants/m/events/{eu}")).await;
    assert_eq!(event["metadata"], json!({"region": "eu", "tier": "gold"}));
    let (_, plain) = api.get(&format!("/v1/tenants/m/events/{none}")).await;
    assert_eq!(plain["metadata"], json!({}));

    let got = |name: &str| -> Vec<String> {
        sink.received_by(name)
            .iter()
            .map(|r| r.webhook_id().to_string())
            .collect()
    };
    wait_for(Duration::from_secs(15), "every delivery", || {
        got("all").len() == 3 && got("eu").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        got("eu"),
        std::slice::from_ref(&eu),
        "only the event whose metadata matches"
    );
    for r in sink.received_by("all") {
        assert!(!r.body.contains("metadata") && !r.body.contains("gold"), "{}", r.body);
    }

    let (_, found) = api.get("/v1/tenants/m/events?metadata.region=eu").await;
    let ids: Vec<&str> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [eu.as_str()]);
    assert_eq!(found["data"][0]["metadata"]["tier"], "gold");
    let (_, both) = api
        .get("/v1/tenants/m/events?metadata.region=eu&metadata.tier=silver")
        .await;
    assert!(both["data"].as_array().unwrap().is_empty(), "every pair must hold");
    let (_, us_found) = api.get("/v1/tenants/m/events?metadata.region=us").await;
    assert_eq!(us_found["data"][0]["id"], us.as_str());

    for (metadata, named) in [
        (json!({"a.b": "x"}), "metadata"),
        (json!({"k": "x".repeat(513)}), "metadata.k"),
        (json!({"k": 1}), "metadata"),
    ] {
        let (status, answer) = post(metadata.clone()).await;
        assert_eq!(status, 400, "{metadata}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(named), "{answer}");
    }
    let (status, _) = api.get("/v1/tenants/m/events?metadata.a.b=x").await;
    assert_eq!(status, 400, "a metadata key has no dot");
}

#[tokio::test]
async fn endpoint_metadata_is_stored_shown_and_cleared() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("ep-metadata"))).await;
    let api = &node.api;
    let ep = api
        .create_endpoint(
            "e",
            json!({"url": "https://example.com/hook", "metadata": {"team": "billing"}}),
        )
        .await;
    assert_eq!(ep["metadata"], json!({"team": "billing"}));
    let path = format!("/v1/tenants/e/endpoints/{}", ep["id"].as_str().unwrap());
    assert_eq!(api.get(&path).await.1["metadata"], json!({"team": "billing"}));
    let (status, refused) = api
        .call(Method::PATCH, &path, Some(json!({"metadata": {"bad key": "x"}})))
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(api.get(&path).await.1["metadata"], json!({"team": "billing"}));
    let (status, cleared) = api.call(Method::PATCH, &path, Some(json!({"metadata": null}))).await;
    assert_eq!((status, &cleared["metadata"]), (200, &json!({})), "{cleared}");
}

#[tokio::test]
async fn endpoints_are_listed_by_their_metadata_page_by_page() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("ep-by-metadata"))).await;
    let api = &node.api;
    let mut billing = Vec::new();
    for i in 0..7 {
        let metadata = match i % 3 {
            0 => json!({"team": "ops"}),
            1 => json!({"team": "billing", "tier": "gold"}),
            _ => json!({"team": "billing"}),
        };
        let ep = api
            .create_endpoint(
                "lm",
                json!({"url": format!("https://example.com/{i}"), "metadata": metadata}),
            )
            .await;
        if i % 3 != 0 {
            billing.push(ep["id"].as_str().unwrap().to_string());
        }
    }
    // Two at a time, oldest first, every billing endpoint once and nothing else.
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api
            .get(&format!(
                "/v1/tenants/lm/endpoints?metadata.team=billing&limit=2&cursor={cursor}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        listed.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(listed, billing);
    let (_, gold) = api
        .get("/v1/tenants/lm/endpoints?metadata.team=billing&metadata.tier=gold")
        .await;
    assert_eq!(gold["data"].as_array().unwrap().len(), 2, "{gold}");
    let (_, none) = api.get("/v1/tenants/lm/endpoints?metadata.team=sales").await;
    assert_eq!(
        (none["data"].as_array().unwrap().len(), &none["next_cursor"]),
        (0, &Value::Null)
    );
    let (_, all) = api.get("/v1/tenants/lm/endpoints").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 7, "no filter: every endpoint");
    for bad in ["metadata.a.b=x", "team=billing", "limit=2&limit=3"] {
        let (status, answer) = api.get(&format!("/v1/tenants/lm/endpoints?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
}
