//! The event catalogue (issue 21): event types with versioned JSON Schemas, the tenant's
//! `validation` setting, and ingest checking payloads against them (`warn` flags, `enforce`
//! refuses), on every node without a restart.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Version 1: `{"total": number}`; version 2: `{"order": {"total": integer ≥ 0, "currency"}}`.
fn order_schemas() -> Value {
    json!({
        "1": {"type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}},
        "2": {
            "type": "object",
            "required": ["order"],
            "properties": {"order": {
                "type": "object",
                "required": ["total", "currency"],
                "properties": {
                    "total": {"type": "integer", "minimum": 0},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}
                }
            }}
        }
    })
}

async fn put(api: &Api, path: &str, body: Value) -> (u16, Value) {
    api.call(Method::PUT, path, Some(body)).await
}

async fn set_validation(api: &Api, tenant: &str, mode: &str) {
    let (status, body) = put(
        api,
        &format!("/v1/tenants/{tenant}/settings"),
        json!({"validation": mode}),
    )
    .await;
    assert_eq!((status, &body["validation"]), (200, &json!(mode)), "{body}");
}

async fn ingest(api: &Api, tenant: &str, event: Value) -> (u16, Value) {
    api.post(&format!("/v1/tenants/{tenant}/events"), event).await
}

#[tokio::test]
async fn event_types_are_saved_listed_archived_and_restored() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("catalogue-api"))).await;
    let api = &node.api;
    let path = "/v1/tenants/c/event-types/order.created";
    let (status, created) = put(
        api,
        path,
        json!({"description": "An order was placed", "schemas": order_schemas(),
               "example": {"order": {"total": 5, "currency": "EUR"}}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "order.created");
    assert_eq!(created["schemas"], order_schemas());
    assert_eq!(created["archived"], false);
    // Creations at once: one creates, the others replace it (never two "created").
    let racing = "/v1/tenants/c-race/event-types/raced.type";
    let puts = (0..8).map(|_| put(api, racing, json!({})));
    let statuses: Vec<u16> = hookline::store::join_all(puts)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    // The others replaced it, or (written over again and again meanwhile) gave up with a 503.
    assert!(statuses.iter().all(|s| [200, 201, 503].contains(s)), "{statuses:?}");
    let (status, replaced) = put(api, path, json!({"schemas": order_schemas(), "deprecated": true})).await;

    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_eq!(replaced["description"], "", "a PUT replaces the whole type");
    assert_eq!(replaced["deprecated"], true);
    put(api, "/v1/tenants/c/event-types/order.refunded", json!({})).await;
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = api.get("/v1/tenants/c/event-types").await;
    assert_eq!(names(&page), ["order.created", "order.refunded"]);
    let (_, first) = api.get("/v1/tenants/c/event-types?limit=1").await;
    assert_eq!(names(&first), ["order.created"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api
        .get(&format!("/v1/tenants/c/event-types?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(names(&second), ["order.refunded"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // DELETE archives: out of the list, still readable, restored by a PUT.
    let (status, _) = api.call(Method::DELETE, path, None).await;
    assert_eq!(status, 204);
    assert_eq!(api.call(Method::DELETE, path, None).await.0, 204, "archiving twice");
    let (_, page) = api.get("/v1/tenants/c/event-types").await;
    assert_eq!(names(&page), ["order.refunded"]);
    let (_, page) = api.get("/v1/tenants/c/event-types?include_archived=true").await;
    assert_eq!(
        names(&page),
        ["order.refunded", "order.created"],
        "archived ones come last"
    );
    let (status, archived) = api.get(path).await;
    assert_eq!((status, &archived["archived"]), (200, &json!(true)));
    let (status, restored) = put(api, path, json!({"schemas": order_schemas()})).await;
    assert_eq!((status, &restored["archived"]), (200, &json!(false)), "{restored}");

    // Refusals name what is wrong.
    for (body, field) in [
        (
            json!({"schemas": {"1": {"type": "nonsense"}}}),
            "schemas.1: not a valid JSON Schema",
        ),
        (json!({"schemas": {"01": {}}}), "schemas.01:"),
        (json!({"schemas": {"1": {"pattern": "(?<=a)b"}}}), "schemas.1:"),
        (
            json!({"schemas": {"1": {"type": "string"}}, "example": 3}),
            "example: does not match schema version 1",
        ),
        (json!({"schema": {}}), "unknown field `schema`"),
    ] {
        let (status, answer) = put(api, "/v1/tenants/c/event-types/bad.type", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let (status, _) = put(api, "/v1/tenants/c/event-types/order.*", json!({})).await;
    assert_eq!(status, 400, "a wildcard is no event type");
    assert_eq!(api.get("/v1/tenants/c/event-types/bad.type").await.0, 404);
    assert_eq!(
        api.call(Method::DELETE, "/v1/tenants/c/event-types/bad.type", None)
            .await
            .0,
        404
    );
    assert_eq!(api.get("/v1/tenants/c/event-types?include_archived=maybe").await.0, 400);

    // Each change is in the audit log.
    let (_, log) = api.get("/v1/tenants/c/audit?target_id=order.created").await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "event_type.updated",
            "event_type.archived",
            "event_type.updated",
            "event_type.created"
        ]
    );
}

/// `off` lets everything in; `warn` stores and delivers a bad payload, flags it on the event
/// and counts it; `enforce` refuses it with 422 and the problems (an archived type and an
/// unknown version too), per item in a batch.
#[tokio::test]
async fn warn_flags_and_enforce_refuses_what_does_not_match() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("catalogue-ingest"))).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    api.create_endpoint("v", json!({"url": sink.url("ok/v")})).await;
    put(
        api,
        "/v1/tenants/v/event-types/order.created",
        json!({"schemas": order_schemas()}),
    )
    .await;
    let good = json!({"type": "order.created", "payload": {"order": {"total": 12, "currency": "EUR"}}});
    let bad = json!({"type": "order.created", "payload": {"order": {"total": -1, "currency": "euro"}}});
    let v1 = json!({"type": "order.created", "schema_version": "1", "payload": {"total": 1.5}});

    let (_, settings) = api.get("/v1/tenants/v/settings").await;
    assert_eq!(settings, json!({"validation": "off"}), "the default");
    assert_eq!(ingest(api, "v", bad.clone()).await.0, 202, "off: nothing is checked");

    set_validation(api, "v", "warn").await;
    let flagged_before = api.metric("hookline_schema_violations_total").await;
    let (status, answer) = ingest(api, "v", bad.clone()).await;
    assert_eq!(status, 202, "warn stores it: {answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    let (_, event) = api.get(&format!("/v1/tenants/v/events/{id}")).await;
    let mut paths: Vec<&str> = event["schema_errors"]
        .as_array()
        .unwrap_or_else(|| panic!("flagged: {event}"))
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/order/currency", "/order/total"]);
    assert_eq!(
        api.metric("hookline_schema_violations_total").await,
        flagged_before + 1.0
    );
    let (_, good_answer) = ingest(api, "v", good.clone()).await;
    let good_id = good_answer["id"].as_str().unwrap().to_string();
    let (_, event) = api.get(&format!("/v1/tenants/v/events/{good_id}")).await;
    assert!(event.get("schema_errors").is_none(), "{event}");
    let sent = |r: &hookline_loadtest::sink::Received| serde_json::from_str::<Value>(&r.body).unwrap()["id"] == id;
    wait_for(Duration::from_secs(15), "the flagged event is delivered", || {
        sink.received_by("v").iter().any(sent)
    })
    .await;
    let delivered = sink.received_by("v");
    let body = &delivered.iter().find(|r| sent(r)).unwrap().body;
    assert!(
        !body.contains("schema_errors"),
        "receivers get the event as sent: {body}"
    );

    set_validation(api, "v", "enforce").await;
    let (status, refused) = ingest(api, "v", bad.clone()).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "schema_violation");
    let details = refused["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2, "{refused}");
    assert!(details.iter().any(|d| d["path"] == "/order/total"));
    assert_eq!(ingest(api, "v", good.clone()).await.0, 202);
    assert_eq!(ingest(api, "v", v1.clone()).await.0, 202, "an older version, named");
    let (status, refused) = ingest(
        api,
        "v",
        json!({"type": "order.created", "schema_version": "3", "payload": {}}),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("unknown_schema_version"))
    );
    let (status, _) = ingest(
        api,
        "v",
        json!({"type": "order.created", "schema_version": "v2", "payload": {}}),
    )
    .await;
    assert_eq!(status, 400, "a malformed version");
    assert_eq!(
        ingest(api, "v", json!({"type": "other.type", "payload": 1})).await.0,
        202,
        "a type the catalogue does not know is let in"
    );

    // A batch: each item on its own.
    let (status, batch) = api
        .post("/v1/tenants/v/events/batch", json!({"events": [good, bad, v1]}))
        .await;
    assert_eq!(status, 202, "{batch}");
    let results = batch["results"].as_array().unwrap();
    assert!(results[0]["id"].is_string(), "{batch}");
    assert_eq!(results[1]["error"]["code"], "schema_violation");
    assert_eq!(results[1]["error"]["details"].as_array().unwrap().len(), 2);
    assert!(results[2]["id"].is_string(), "{batch}");
    let refused_id = results[1]["id"].clone();
    assert_eq!(refused_id, Value::Null, "nothing stored for the refused item");

    // A retry of an event stored before the schema tightened is its duplicate, not a 422.
    let keyed = json!({"type": "order.created", "payload": {"order": {"total": 5, "currency": "USD"}},
                       "idempotency_key": "retry-1"});
    let (status, first) = ingest(api, "v", keyed.clone()).await;
    assert_eq!(status, 202, "{first}");
    let stricter = json!({"1": {"type": "object", "required": ["never"]}});
    put(
        api,
        "/v1/tenants/v/event-types/order.created",
        json!({"schemas": stricter}),
    )
    .await;
    let (status, again) = ingest(api, "v", keyed.clone()).await;
    assert_eq!((status, &again["duplicate"]), (200, &json!(true)), "{again}");
    assert_eq!(again["id"], first["id"]);
    let (_, batch) = api
        .post("/v1/tenants/v/events/batch", json!({"events": [keyed, good]}))
        .await;
    assert_eq!(batch["results"][0]["id"], first["id"], "{batch}");
    assert_eq!(batch["results"][0]["duplicate"], true);
    assert_eq!(batch["results"][1]["error"]["code"], "schema_violation", "{batch}");

    // An archived type is refused under enforce.
    api.call(Method::DELETE, "/v1/tenants/v/event-types/order.created", None)
        .await;
    let (status, refused) = ingest(
        api,
        "v",
        json!({"type": "order.created", "payload": {"order": {"total": 1, "currency": "EUR"}}}),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("event_type_archived"))
    );
}

/// A change saved on one node is applied by another node's next ingest, without a restart.
#[tokio::test]
async fn a_schema_change_reaches_another_node_without_restart() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("catalogue-nodes"));
    let a = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let b = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    set_validation(&a.api, "n", "enforce").await;
    let loose = json!({"1": {"type": "object"}});
    put(
        &a.api,
        "/v1/tenants/n/event-types/user.created",
        json!({"schemas": loose}),
    )
    .await;
    let event = json!({"type": "user.created", "payload": {"name": "ada"}});
    // Node b reads the catalogue once and holds it.
    assert_eq!(ingest(&b.api, "n", event.clone()).await.0, 202);
    let strict = json!({"1": {"type": "object"}, "2": {"type": "object", "required": ["email"]}});
    put(
        &a.api,
        "/v1/tenants/n/event-types/user.created",
        json!({"schemas": strict}),
    )
    .await;
    // Within 2 s: the change notification, not the 5-second version poll under it.
    eventually(Duration::from_secs(2), "node b applying the new version", || async {
        (ingest(&b.api, "n", event.clone()).await.0 == 422).then_some(())
    })
    .await;
    set_validation(&a.api, "n", "off").await;
    eventually(Duration::from_secs(2), "node b applying the setting", || async {
        (ingest(&b.api, "n", event.clone()).await.0 == 202).then_some(())
    })
    .await;
}

/// The validation benchmark's order (`drive --catalogue`) matches the schema it registers, so
/// an `enforce` run measures checks that pass, as a healthy producer's would.
#[tokio::test]
async fn the_benchmark_order_matches_its_schema() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("catalogue-order"))).await;
    let api = &node.api;
    let (status, body) = put(
        api,
        "/v1/tenants/o/event-types/load.test",
        json!({"schemas": {"1": hookline_loadtest::order::schema()}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    set_validation(api, "o", "enforce").await;
    let order = hookline_loadtest::order::payload(7, 1);
    let (status, answer) = ingest(api, "o", json!({"type": "load.test", "payload": order})).await;
    assert_eq!(status, 202, "{answer}");
    let mut broken = order.clone();
    broken["order"]["items"][3]["sku"] = json!("nope");
    let (status, answer) = ingest(api, "o", json!({"type": "load.test", "payload": broken})).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["details"][0]["path"], "/order/items/3/sku");
}

/// A change whose notification a node missed (written here straight into Redis, announced to
/// nobody) reaches it through the versions it reads every 5 s.
#[tokio::test]
async fn a_change_whose_notification_was_missed_is_picked_up_from_the_versions() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("catalogue-poll"));
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let api = &node.api;
    put(
        api,
        "/v1/tenants/p/event-types/a.b",
        json!({"schemas": {"1": {"type": "object", "required": ["x"]}}}),
    )
    .await;
    set_validation(api, "p", "enforce").await;
    let event = json!({"type": "a.b", "payload": {}});
    assert_eq!(ingest(api, "p", event.clone()).await.0, 422);
    redis_cli(
        &redis,
        &[
            "hset",
            &format!("{prefix}:tenant_settings"),
            "p",
            r#"{"validation":"off","updated_at_ms":1}"#,
        ],
    );
    redis_cli(&redis, &["hincrby", &format!("{prefix}:catalogue:versions"), "p", "1"]);
    redis_cli(&redis, &["incr", &format!("{prefix}:catalogue:version")]);
    eventually(
        Duration::from_secs(15),
        "the node reading the changed version",
        || async { (ingest(api, "p", event.clone()).await.0 == 202).then_some(()) },
    )
    .await;
}
