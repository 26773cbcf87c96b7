//! The pipeline end to end: ingest → Redis → router → endpoint actor → signed POST.

use crate::support::*;
use base64::Engine;
use hmac::{Hmac, Mac};
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashSet;
use std::time::Duration;

/// The Standard Webhooks rule, written here independently of the node's own signer.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn delivers_the_exact_signed_body() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("e2e"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = node
        .api
        .create_endpoint(
            "acme",
            json!({"url": sink.url("ok/e2e"), "headers": {"x-custom": "yes"}}),
        )
        .await;
    let secret = ep["secret"].as_str().unwrap();

    // Payload bytes are kept exactly as sent (key order, spacing inside strings, unicode).
    let payload_text = r#"{"z":1,"a":[true,null,"é ✓"],"n":{"deep":1.5}}"#;
    let (status, answer, _) = node
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/tenants/acme/events",
            Some(&format!(r#"{{"type":"order.created","payload":{payload_text}}}"#)),
            Some("application/json"),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["deliveries"], 1);
    let event_id = answer["id"].as_str().unwrap().to_string();

    wait_for(Duration::from_secs(10), "the delivery", || {
        !sink.received_by("e2e").is_empty()
    })
    .await;
    let got = sink.received_by("e2e").remove(0);
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["tenant"], "acme");
    assert!(
        humantime::parse_rfc3339(body["timestamp"].as_str().unwrap()).is_ok(),
        "{body}"
    );
    assert!(
        got.body.ends_with(&format!(r#","data":{payload_text}}}"#)),
        "payload bytes changed: {}",
        got.body
    );
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys.len(),
        5,
        "body has exactly id, type, timestamp, tenant, data: {keys:?}"
    );

    assert_eq!(got.headers["content-type"], "application/json");
    assert!(got.headers["user-agent"].starts_with("hookline/"));
    assert_eq!(got.headers["webhook-id"], event_id);
    assert_eq!(got.headers["x-custom"], "yes");
    let ts = &got.headers["webhook-timestamp"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts.parse::<u64>().unwrap()) < 60);
    assert_eq!(
        got.headers["webhook-signature"],
        expected_signature(secret, &event_id, ts, &got.body)
    );

    // The event and its delivery are queryable, with the attempt logged.
    let (status, evt) = node.api.get(&format!("/v1/tenants/acme/events/{event_id}")).await;
    assert_eq!(status, 200, "{evt}");
    assert_eq!(evt["payload"]["n"]["deep"], 1.5);
    let evt_path = format!("/v1/tenants/acme/events/{event_id}");
    let evt = node
        .api
        .get_until(&evt_path, Duration::from_secs(5), |e| {
            e["deliveries"][0]["status"] == "delivered"
        })
        .await;
    let delivery = evt["deliveries"][0].clone();
    assert_eq!(delivery["endpoint_id"], ep["id"]);
    assert_eq!(delivery["attempts"], 1);
    let (status, d) = node
        .api
        .get(&format!(
            "/v1/tenants/acme/deliveries/{}",
            delivery["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["attempts"][0]["response_excerpt"], "ok");
}

#[tokio::test]
async fn event_types_select_endpoints() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("match"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    api.create_endpoint(
        "shop",
        json!({"url": sink.url("ok/orders"), "event_types": ["order.*"]}),
    )
    .await;
    api.create_endpoint("shop", json!({"url": sink.url("ok/all"), "event_types": ["*"]}))
        .await;
    api.create_endpoint("shop", json!({"url": sink.url("ok/default")}))
        .await;
    api.create_endpoint(
        "shop",
        json!({"url": sink.url("ok/paid"), "event_types": ["payment.succeeded", "refund.created"]}),
    )
    .await;
    api.create_endpoint("other", json!({"url": sink.url("ok/other")})).await;

    let mut ids = std::collections::HashMap::new();
    for (ty, expected) in [
        ("order.created", 3),
        ("order.item.added", 3),
        ("payment.succeeded", 3),
        ("user.created", 2),
        ("orders", 2),
    ] {
        let (status, r) = api
            .post("/v1/tenants/shop/events", json!({"type": ty, "payload": {}}))
            .await;
        assert_eq!(status, 202);
        assert_eq!(r["deliveries"], expected, "{ty}");
        ids.insert(ty, r["id"].as_str().unwrap().to_string());
    }
    let set = |types: &[&str]| types.iter().map(|t| ids[t].clone()).collect::<HashSet<_>>();
    let expect = [
        ("orders", set(&["order.created", "order.item.added"])),
        (
            "all",
            set(&[
                "order.created",
                "order.item.added",
                "payment.succeeded",
                "user.created",
                "orders",
            ]),
        ),
        (
            "default",
            set(&[
                "order.created",
                "order.item.added",
                "payment.succeeded",
                "user.created",
                "orders",
            ]),
        ),
        ("paid", set(&["payment.succeeded"])),
    ];
    wait_for(Duration::from_secs(10), "all deliveries", || {
        expect.iter().all(|(n, want)| sink.delivered_ids(n) == *want)
    })
    .await;
    // Nothing else arrives afterwards, and the other tenant saw nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, want) in &expect {
        assert_eq!(sink.received_by(name).len(), want.len(), "{name}");
    }
    assert!(sink.received_by("other").is_empty());
}

#[tokio::test]
async fn failed_attempts_are_retried_then_dead_lettered() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("retry"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    api.create_endpoint(
        "r",
        json!({"url": sink.url("status/503/flaky"), "retry_schedule_s": [1, 1]}),
    )
    .await;
    api.create_endpoint("r", json!({"url": sink.url("status/400/bad")}))
        .await;
    let event_id = api.post_event("r", "x.y", json!({})).await.unwrap();

    // 503: first attempt + 2 retries, then dead. 400: dead at once.
    wait_for(Duration::from_secs(15), "three attempts at the 503 endpoint", || {
        sink.received_by("flaky").len() == 3
    })
    .await;
    wait_for(Duration::from_secs(5), "one attempt at the 400 endpoint", || {
        sink.received_by("bad").len() == 1
    })
    .await;
    let evt = api
        .get_until(
            &format!("/v1/tenants/r/events/{event_id}"),
            Duration::from_secs(5),
            |evt| {
                evt["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d["status"] == "dead")
            },
        )
        .await;
    let mut statuses: Vec<(Value, Value)> = evt["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["status"].clone(), d["attempts"].clone()))
        .collect();
    statuses.sort_by_key(|(_, a)| a.as_u64());
    assert_eq!(statuses, vec![(json!("dead"), json!(1)), (json!("dead"), json!(3))]);
    let flaky = sink.received_by("flaky");
    let gaps: Vec<u64> = flaky.windows(2).map(|w| w[1].arrived_ms - w[0].arrived_ms).collect();
    assert!(
        gaps.iter().all(|g| (700..5_000).contains(g)),
        "retries follow the 1 s schedule with jitter: {gaps:?}"
    );
    assert!(
        flaky.iter().all(|r| r.webhook_id() == event_id),
        "webhook-id is the same on every retry"
    );
    // Nothing more arrives once dead.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(sink.received_by("flaky").len(), 3);
    assert_eq!(node.assert_delivery_states().await, 2);
}

/// An attempt slower than every internal redelivery timer (lease TTL 3 s, stale-claim 3 s) is
/// made once: nothing hands in-flight work out again while it runs.
#[tokio::test]
async fn a_slow_attempt_is_made_once() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("slow"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api
        .create_endpoint("s", json!({"url": sink.url("sleep/12000/slow"), "timeout_ms": 15000}))
        .await;
    let id = node.api.post_event("s", "slow.thing", json!({})).await.unwrap();
    wait_for(Duration::from_secs(25), "the slow delivery to finish", || {
        sink.delivered_ids("slow").contains(&id)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.arrivals("slow"), 1, "the slow attempt was made more than once");
}

/// A disabled endpoint keeps its queue; enabling it delivers what was held.
#[tokio::test]
async fn disabled_endpoints_hold_work_until_enabled() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("disable"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ep = api
        .create_endpoint("d", json!({"url": sink.url("ok/held"), "disabled": true}))
        .await;
    assert_eq!(ep["state"]["disabled_reason"], "manual");
    let path = format!("/v1/tenants/d/endpoints/{}", ep["id"].as_str().unwrap());
    let mut ids = HashSet::new();
    for _ in 0..5 {
        ids.insert(api.post_event("d", "a.b", json!({})).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.count(), 0, "a disabled endpoint received deliveries");
    let (_, state) = api.get(&path).await;
    assert_eq!(state["state"]["backlog"], 5);

    let (status, patched) = api
        .call(reqwest::Method::PATCH, &path, Some(json!({"disabled": false})))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["state"]["disabled_reason"], Value::Null);
    wait_for(Duration::from_secs(10), "the held deliveries", || {
        sink.delivered_ids("held") == ids
    })
    .await;
}

/// PATCH takes effect on the next attempt; DELETE drops pending deliveries, says how many, and
/// the janitor then marks their records dead (`endpoint_deleted`) instead of leaving them pending.
#[tokio::test]
async fn patch_and_delete_take_effect() {
    let redis = shared_redis_url();
    let opts = NodeOpts::new(&redis, &unique_prefix("patch")).set("retention__janitor_interval_s", "1");
    let node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ep = api
        .create_endpoint("p", json!({"url": sink.url("ok/first"), "event_types": ["a.*"]}))
        .await;
    let path = format!("/v1/tenants/p/endpoints/{}", ep["id"].as_str().unwrap());
    let first = api.post_event("p", "a.one", json!({})).await.unwrap();
    wait_for(Duration::from_secs(10), "first delivery", || {
        sink.delivered_ids("first").contains(&first)
    })
    .await;

    let (status, _) = api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"url": sink.url("ok/second"), "event_types": ["b.*"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, r) = api
        .post("/v1/tenants/p/events", json!({"type": "a.two", "payload": {}}))
        .await;
    assert_eq!(
        (status, r["deliveries"].clone()),
        (202, json!(0)),
        "old subscription still matched"
    );
    let second = api.post_event("p", "b.one", json!({})).await.unwrap();
    wait_for(Duration::from_secs(10), "delivery at the new URL", || {
        sink.delivered_ids("second").contains(&second)
    })
    .await;
    assert_eq!(sink.received_by("first").len(), 1);

    // Hold work on the disabled endpoint, then delete it: the held work is dropped and counted.
    api.call(reqwest::Method::PATCH, &path, Some(json!({"disabled": true})))
        .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(api.post_event("p", "b.two", json!({})).await.unwrap());
    }
    for id in &held {
        let event = api
            .get_until(&format!("/v1/tenants/p/events/{id}"), Duration::from_secs(10), |e| {
                e["deliveries"][0]["status"] == "pending"
            })
            .await;
        assert_eq!(event["deliveries"][0]["status"], "pending", "{event}");
    }
    let (status, _, headers) = api.raw(reqwest::Method::DELETE, &path, None, None).await;
    assert_eq!(status, 204);
    assert_eq!(headers["hookline-dropped-deliveries"], "3");
    let (status, _) = api.get(&path).await;
    assert_eq!(status, 404);
    let (_, list) = api.get("/v1/tenants/p/endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert!(
        node.logs()
            .iter()
            .any(|l| l.contains("endpoint deleted") && l.contains("\"dropped\":3")),
        "3 pending deliveries dropped"
    );
    for id in &held {
        let event = api
            .get_until(&format!("/v1/tenants/p/events/{id}"), Duration::from_secs(10), |e| {
                e["deliveries"][0]["status"] == "dead"
            })
            .await;
        assert_eq!(
            event["deliveries"][0]["status"], "dead",
            "not marked by the janitor: {event}"
        );
    }
    node.assert_delivery_states().await;
}

/// 410 Gone: the receiver asks to stop. The delivery is dead-lettered and the endpoint is
/// disabled with `disabled_reason: "gone"`; later events wait in its queue.
#[tokio::test]
async fn gone_disables_the_endpoint() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("gone"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ep = api
        .create_endpoint("g", json!({"url": sink.url("status/410/gone")}))
        .await;
    let path = format!("/v1/tenants/g/endpoints/{}", ep["id"].as_str().unwrap());
    let first = api.post_event("g", "a.b", json!({})).await.unwrap();
    let state = api
        .get_until(&path, Duration::from_secs(10), |e| e["disabled"] == true)
        .await;
    assert_eq!(state["state"]["disabled_reason"], "gone", "{state}");
    let (_, evt) = api.get(&format!("/v1/tenants/g/events/{first}")).await;
    assert_eq!(evt["deliveries"][0]["status"], "dead");
    api.post_event("g", "a.b", json!({})).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.arrivals("gone"), 1, "a gone endpoint kept receiving");
    let (_, e) = api.get(&path).await;
    assert_eq!(e["state"]["backlog"], 1);
}

/// Wait until the sink has delivered `event_id` under `name`; that request.
async fn delivered_request(sink: &Sink, name: &str, event_id: &str) -> hookline_loadtest::sink::Received {
    wait_for(Duration::from_secs(10), "the delivery", || {
        sink.delivered_ids(name).contains(event_id)
    })
    .await;
    sink.received_by(name)
        .into_iter()
        .find(|r| r.webhook_id() == event_id)
        .expect("delivered above")
}

/// Rotation: the old secret keeps signing beside the new one for the overlap, then only the new
/// one signs. Both signatures are checked by the independent implementation above.
#[tokio::test]
async fn rotated_secrets_sign_side_by_side_during_the_overlap() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("rotate"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = node
        .api
        .create_endpoint("rot", json!({"url": sink.url("ok/rot")}))
        .await;
    let old = ep["secret"].as_str().unwrap().to_string();
    let path = format!("/v1/tenants/rot/endpoints/{}", ep["id"].as_str().unwrap());
    let (status, rotated) = node
        .api
        .post(&format!("{path}/rotate-secret?overlap_s=2"), json!({}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(node.api.get(&path).await.1["secret"], new.as_str());

    let during = node.api.post_event("rot", "a.b", json!({})).await.unwrap();
    let got = delivered_request(&sink, "rot", &during).await;
    let ts = &got.headers["webhook-timestamp"];
    let expected = format!(
        "{} {}",
        expected_signature(&new, &during, ts, &got.body),
        expected_signature(&old, &during, ts, &got.body)
    );
    assert_eq!(got.headers["webhook-signature"], expected, "new first, then old");

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let after = node.api.post_event("rot", "a.b", json!({})).await.unwrap();
    let got = delivered_request(&sink, "rot", &after).await;
    let ts = &got.headers["webhook-timestamp"];
    assert_eq!(
        got.headers["webhook-signature"],
        expected_signature(&new, &after, ts, &got.body)
    );

    let (status, _) = node
        .api
        .post(&format!("{path}/rotate-secret?overlap_s=99999999"), json!({}))
        .await;
    assert_eq!(status, 400);
}

/// A test send reaches that endpoint alone, whatever it subscribes to.
#[tokio::test]
async fn test_sends_reach_only_their_endpoint() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("testsend"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = node
        .api
        .create_endpoint("ts", json!({"url": sink.url("ok/target"), "event_types": ["order.*"]}))
        .await;
    node.api
        .create_endpoint("ts", json!({"url": sink.url("ok/bystander")}))
        .await;
    let (status, r) = node
        .api
        .post(
            &format!("/v1/tenants/ts/endpoints/{}/test", ep["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    wait_for(Duration::from_secs(10), "the test event", || {
        sink.delivered_ids("target").contains(&id)
    })
    .await;
    let body: Value = serde_json::from_str(&sink.received_by("target")[0].body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["data"]["endpoint_id"], ep["id"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sink.received_by("bystander").is_empty(),
        "a test send reached another endpoint"
    );
    let (status, _) = node
        .api
        .post("/v1/tenants/ts/endpoints/ep_missing/test", json!({}))
        .await;
    assert_eq!(status, 404);
}
