//! Ingest beyond one event: idempotency keys under concurrency, batch ingest.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// The idempotency check and the append are one step: 50 concurrent posts of one key (as body
/// field or `Idempotency-Key` header) make exactly one event, delivered once.
#[tokio::test]
async fn concurrent_posts_of_one_idempotency_key_make_one_event() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("idem"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api.create_endpoint("i", json!({"url": sink.url("ok/idem")})).await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let api = node.api.clone();
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let body = json!({"type": "a.b", "payload": {"n": n}, "idempotency_key": "order-42"});
                api.post("/v1/tenants/i/events", body).await
            } else {
                let body = json!({"type": "a.b", "payload": {"n": n}}).to_string();
                let http = reqwest::Client::new();
                let resp = http
                    .post(format!("{}/v1/tenants/i/events", api.base))
                    .bearer_auth(ADMIN)
                    .header("content-type", "application/json")
                    .header("idempotency-key", "order-42")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            }
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let accepted: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 202).map(|(_, v)| v).collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let id = accepted[0]["id"].as_str().unwrap().to_string();
    for (status, v) in answers.iter().filter(|(s, _)| *s != 202) {
        assert_eq!(*status, 200, "{v}");
        assert_eq!(
            (v["id"].as_str(), v["duplicate"].as_bool()),
            (Some(id.as_str()), Some(true))
        );
    }
    wait_for(Duration::from_secs(10), "the one delivery", || {
        sink.delivered_ids("idem").contains(&id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.received_by("idem").len(),
        1,
        "an idempotent event was delivered more than once"
    );
    // Another key is another event; keys are per tenant.
    let (status, _) = node
        .api
        .post(
            "/v1/tenants/i/events",
            json!({"type": "a.b", "payload": {}, "idempotency_key": "order-43"}),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = node
        .api
        .post(
            "/v1/tenants/j/events",
            json!({"type": "a.b", "payload": {}, "idempotency_key": "order-42"}),
        )
        .await;
    assert_eq!(status, 202, "the same key in another tenant is another event");
}

/// A batch answers one result per item, in order: good items are stored and delivered, bad
/// items get their own error, a key repeated within the batch is a duplicate of its first use.
#[tokio::test]
async fn batch_ingest_answers_per_item_in_order() {
    let redis = shared_redis_url();
    let node =
        Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("batch")).set("ingest__max_payload_bytes", "2048"))
            .await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api
        .create_endpoint("b", json!({"url": sink.url("ok/batch"), "event_types": ["order.*"]}))
        .await;
    let batch = json!({"events": [
        {"type": "order.created", "payload": {"n": 0}},
        {"type": "not valid", "payload": {}},
        {"type": "order.paid", "payload": {"n": 2}, "idempotency_key": "k1"},
        {"type": "order.paid"},
        {"type": "order.paid", "payload": {"n": 4}, "idempotency_key": "k1"},
        {"type": "user.created", "payload": "x".repeat(3000)},
        7,
    ]});
    let (status, answer) = node.api.post("/v1/tenants/b/events/batch", batch).await;
    assert_eq!(status, 202, "{answer}");
    let r = answer["results"].as_array().unwrap();
    assert_eq!(r.len(), 7);
    assert!(r[0]["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(r[0]["deliveries"], 1);
    assert_eq!(r[1]["error"]["code"], "invalid_request");
    assert!(
        r[1]["error"]["message"].as_str().unwrap().contains("events[1]: type"),
        "{}",
        r[1]
    );
    assert!(r[2]["id"].as_str().is_some());
    assert!(
        r[3]["error"]["message"].as_str().unwrap().contains("payload"),
        "{}",
        r[3]
    );
    assert_eq!(
        (r[4]["id"].clone(), r[4]["duplicate"].clone()),
        (r[2]["id"].clone(), json!(true)),
        "{}",
        r[4]
    );
    assert_eq!(r[5]["error"]["code"], "payload_too_large");
    assert_eq!(r[6]["error"]["code"], "invalid_request");
    let want: HashSet<String> = [&r[0], &r[2]]
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    wait_for(Duration::from_secs(10), "the batch's deliveries", || {
        sink.delivered_ids("batch") == want
    })
    .await;
    let (status, evt) = node
        .api
        .get(&format!("/v1/tenants/b/events/{}", r[2]["id"].as_str().unwrap()))
        .await;
    assert_eq!((status, evt["payload"]["n"].clone()), (200, json!(2)));

    // Limits: 1 to 1,000 events.
    let (status, v) = node.api.post("/v1/tenants/b/events/batch", json!({"events": []})).await;
    assert_eq!((status, v["error"]["code"].clone()), (400, json!("invalid_request")));
    let many: Vec<Value> = (0..1001).map(|_| json!({"type": "a.b", "payload": {}})).collect();
    let (status, v) = node
        .api
        .post("/v1/tenants/b/events/batch", json!({"events": many}))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("events"));
    // A full batch goes through.
    let full: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "order.bulk", "payload": {"i": i}}))
        .collect();
    let (status, v) = node
        .api
        .post("/v1/tenants/b/events/batch", json!({"events": full}))
        .await;
    assert_eq!(status, 202);
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["id"].is_string()));
    wait_for(Duration::from_secs(30), "the full batch", || {
        sink.delivered_ids("batch").len() == 1002
    })
    .await;
}

/// `ingest.tenant_rate_limit_per_s`: past the limit, 429 with `Retry-After` and nothing stored;
/// other tenants are not affected; batch items past the limit get the error in place.
#[tokio::test]
async fn the_tenant_ingest_limit_refuses_without_storing() {
    let redis = shared_redis_url();
    let node = Node::start_ready(
        &NodeOpts::new(&redis, &unique_prefix("tenantrate")).set("ingest__tenant_rate_limit_per_s", "5"),
    )
    .await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let busy = node
        .api
        .create_endpoint("busy", json!({"url": sink.url("ok/busy")}))
        .await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let api = node.api.clone();
        tasks.push(tokio::spawn(async move {
            api.raw(
                reqwest::Method::POST,
                "/v1/tenants/busy/events",
                Some(r#"{"type":"a.b","payload":{}}"#),
                Some("application/json"),
            )
            .await
        }));
    }
    let mut accepted = HashSet::new();
    let mut refused = 0;
    for t in tasks {
        let (status, body, headers) = t.await.unwrap();
        match status {
            202 => {
                accepted.insert(body["id"].as_str().unwrap().to_string());
            }
            429 => {
                refused += 1;
                assert_eq!(body["error"]["code"], "rate_limited");
                assert_eq!(headers["retry-after"], "1");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused >= 10, "only {refused} of 20 refused at 5/s");
    assert!((5..=10).contains(&accepted.len()), "{} accepted", accepted.len());
    wait_for(Duration::from_secs(10), "the accepted events", || {
        sink.delivered_ids("busy") == accepted
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.received_by("busy").len(),
        accepted.len(),
        "a refused event was stored and delivered"
    );

    // Another tenant has its own budget.
    for _ in 0..3 {
        let (status, _) = node
            .api
            .post("/v1/tenants/calm/events", json!({"type": "a.b", "payload": {}}))
            .await;
        assert_eq!(status, 202);
    }
    // In a batch, items past the limit are refused one by one.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let items: Vec<Value> = (0..12).map(|_| json!({"type": "a.b", "payload": {}})).collect();
    let (status, r) = node
        .api
        .post("/v1/tenants/busy/events/batch", json!({"events": items}))
        .await;
    assert_eq!(status, 202, "{r}");
    let limited = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["error"]["code"] == "rate_limited")
        .count();
    assert!(limited >= 2, "{r}");

    // A test send past the limit is refused too: its 202 would claim a send that never happens.
    // (The limit is per second: if a new second began between the two requests, spend it again.)
    let test_path = format!("/v1/tenants/busy/endpoints/{}/test", busy["id"].as_str().unwrap());
    let mut refused_test = None;
    for _ in 0..5 {
        let items: Vec<Value> = (0..6).map(|_| json!({"type": "a.b", "payload": {}})).collect();
        node.api
            .post("/v1/tenants/busy/events/batch", json!({"events": items}))
            .await;
        let (status, body, headers) = node.api.raw(reqwest::Method::POST, &test_path, None, None).await;
        if status == 429 {
            refused_test = Some((body, headers));
            break;
        }
        assert_eq!(status, 202, "{body}");
    }
    let (body, headers) = refused_test.expect("a test send past the limit was accepted five times");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(headers["retry-after"], "1");
}

/// JSON that a JSON value cannot hold (a lone surrogate escape) is stored as sent and shown as
/// sent; an event written as an array of its fields is refused, in a batch in its place.
#[tokio::test]
async fn odd_json_is_kept_as_sent_and_arrays_are_not_events() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("oddjson"))).await;
    let (status, answer, _) = node
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/tenants/o/events",
            Some(r#"{"type": "a.b", "payload": {"s": "\ud800"}}"#),
            Some("application/json"),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let (status, event, _) = node
        .api
        .raw(
            reqwest::Method::GET,
            &format!("/v1/tenants/o/events/{}", answer["id"].as_str().unwrap()),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{event}");
    let (status, batch) = node
        .api
        .post(
            "/v1/tenants/o/events/batch",
            serde_json::json!({"events": [["a.b", {}], {"type": "a.b", "payload": {}}]}),
        )
        .await;
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["results"][0]["error"]["code"], "invalid_request", "{batch}");
    assert!(batch["results"][1]["id"].is_string(), "{batch}");
}

/// An event's record is one string written with its expiry (`event_record.rs`), and an event
/// stored as a hash by an older version (`body`, `se`, `md`, `eps`) is still delivered and
/// shown after an upgrade: the pull and `GET …/events/{id}` read it as a hash.
#[tokio::test]
async fn events_are_stored_as_one_string_and_older_hash_records_still_read() {
    let prefix = unique_prefix("evrec");
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let endpoint = node.api.create_endpoint("r", json!({"url": sink.url("ok/rec")})).await;
    let (status, posted) = node
        .api
        .post("/v1/tenants/r/events", json!({"type": "a.b", "payload": {"n": 1}}))
        .await;
    assert_eq!(status, 202, "{posted}");
    let keys = hookline::store::keys::Keys::new(&prefix);
    let key = keys.event("r", posted["id"].as_str().unwrap());
    assert_eq!(redis_cli(&redis, &["type", &key]).trim(), "string");
    let ttl: i64 = redis_cli(&redis, &["ttl", &key]).trim().parse().unwrap();
    assert!(ttl > 0, "the record expires with retention: {ttl}");
    let stored = redis_cli(&redis, &["--raw", "get", &key]);
    assert!(
        stored.starts_with(r#"{"id":""#),
        "a plain event's record is its body: {stored}"
    );

    // An older version's record: a hash, and its stream entry as that version appended it.
    let old = hookline::ids::new_event_id(hookline_actors::now_ms());
    let body = format!(
        r#"{{"id":"{old}","type":"a.b","timestamp":"2026-12-05T00:00:00Z","tenant":"r","data":{{"old":true}}}}"#
    );
    let old_key = keys.event("r", &old);
    let errors = r#"[{"path":"/old","problem":"flagged"}]"#;
    let ep = endpoint["id"].as_str().unwrap();
    redis_cli(
        &redis,
        &[
            "hset",
            &old_key,
            "body",
            &body,
            "se",
            errors,
            "md",
            r#"{"k":"v"}"#,
            "eps",
            ep,
        ],
    );
    redis_cli(&redis, &["expire", &old_key, "3600"]);
    redis_cli(
        &redis,
        &["xadd", &keys.events_stream(0), "*", "e", &old, "t", "r", "y", "a.b"],
    );
    wait_for(Duration::from_secs(20), "both events delivered", || sink.count() == 2).await;
    let bodies: Vec<String> = sink.received().iter().map(|r| r.body.clone()).collect();
    assert!(
        bodies.contains(&body),
        "the older record's body, byte for byte: {bodies:?}"
    );
    let (status, event) = node.api.get(&format!("/v1/tenants/r/events/{old}")).await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["payload"], json!({"old": true}), "{event}");
    assert_eq!(event["metadata"], json!({"k": "v"}), "{event}");
    assert_eq!(event["schema_errors"][0]["path"], "/old", "{event}");
    assert_eq!(
        event["deliveries"][0]["endpoint_id"], ep,
        "the older record's endpoint list: {event}"
    );
}

/// A store on `redis` (a Redis of the test's own) as a user `name` who may do everything but
/// what `rules` take away (ACL rules after `+@all`); with its key prefix.
async fn store_as(
    redis: &RedisServer,
    name: &str,
    rules: &[&str],
) -> (String, std::sync::Arc<hookline::store::RedisStore>) {
    let mut acl = vec!["acl", "setuser", name, "on", ">pw", "~*", "&*", "+@all"];
    acl.extend_from_slice(rules);
    redis_cli(&redis.url(), &acl);
    let prefix = unique_prefix(name);
    let mut cfg = crate::store::config(&prefix);
    cfg.redis.url = format!("redis://{name}:pw@{}", redis.hostport());
    let (_, store, _) = crate::store::connect_with(cfg).await;
    (prefix, store)
}

/// A lone event is stored by SET and XADD pipelined (no script): if its record is refused, the
/// call fails and its stream entry is taken back, so the router never meets an entry without
/// its record. Provoked on a Redis of its own, with a user who may not SET.
#[tokio::test]
async fn a_lone_event_whose_record_is_refused_leaves_no_stream_entry() {
    let redis = RedisServer::start(false);
    let (prefix, store) = store_as(&redis, "noset", &["-set"]).await;
    let event = stored_event("t", &hookline::ids::new_event_id(hookline_actors::now_ms()), "{}");
    let refused = store.ingest(&event).await.expect_err("the record was refused");
    assert!(refused.to_string().contains("NOPERM"), "{refused}");
    let entries = redis_cli(&redis.url(), &["xlen", &format!("{prefix}:{{ev0}}:events")]);
    assert_eq!(entries.trim(), "0", "the entry was taken back");
}

/// In one round trip, a lone event whose record is refused fails alone: the events written
/// with it are stored and answered as such, and only its entry is taken back. The three are
/// handed to the committer before it runs (this test's runtime has one thread), so they go
/// together. A Redis of its own, with a user who may SET only the records of `evt_ok…` events.
#[tokio::test]
async fn in_one_round_trip_a_refused_record_fails_only_its_own_event() {
    let redis = RedisServer::start(false);
    let (prefix, store) = store_as(&redis, "someset", &["-set", "(~*:evt:evt_ok* +set)"]).await;
    let events = ["evt_ok1", "evt_refused", "evt_ok2"].map(|id| stored_event("t", id, "{}"));
    let (first, refused, last) = tokio::join!(
        store.ingest(&events[0]),
        store.ingest(&events[1]),
        store.ingest(&events[2])
    );
    assert_eq!(first.expect("stored").event_id, "evt_ok1");
    let refused = refused.expect_err("its record was refused");
    assert!(refused.to_string().contains("NOPERM"), "{refused}");
    assert_eq!(last.expect("stored").event_id, "evt_ok2");
    let entries = redis_cli(&redis.url(), &["xrange", &format!("{prefix}:{{ev0}}:events"), "-", "+"]);
    assert!(
        entries.contains("evt_ok1") && entries.contains("evt_ok2") && !entries.contains("evt_refused"),
        "{entries}"
    );
}

/// Redis holds writes (`CLIENT PAUSE … WRITE`, up to 20 s) while `count` lone events are posted
/// to tenant `g` at once: their answers, to come.
fn post_while_writes_wait(redis: &RedisServer, api: &Api, count: u32) -> Vec<tokio::task::JoinHandle<(u16, Value)>> {
    redis_cli(&redis.url(), &["client", "pause", "20000", "write"]);
    (0..count)
        .map(|n| {
            let api = api.clone();
            tokio::spawn(async move {
                api.post("/v1/tenants/g/events", json!({"type": "a.b", "payload": {"n": n}}))
                    .await
            })
        })
        .collect()
}

/// Lone events that come while one is being written go together in the next round trip
/// (`store/ingest_commit.rs`), each with its own answer and each delivered. Redis holds writes
/// until all 40 requests have had 2 s to reach the node (its command timeout raised above
/// that), so the first event's round trip waits and the others queue behind it: a few round
/// trips for 40 events (one each without the group commit).
#[tokio::test]
async fn lone_events_that_wait_for_a_write_are_written_together() {
    let redis = RedisServer::start(false);
    let opts = NodeOpts::new(&redis.url(), &unique_prefix("group")).set("redis__command_timeout_ms", "6000");
    let node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api
        .create_endpoint("g", json!({"url": sink.url("ok/group")}))
        .await;
    let round_trips = r#"hookline_redis_command_seconds_count{op="ingest""#;
    let before = node.api.metric(round_trips).await;
    let posts = post_while_writes_wait(&redis, &node.api, 40);
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis_cli(&redis.url(), &["client", "unpause"]);
    let mut ids = HashSet::new();
    for post in posts {
        let (status, body) = post.await.unwrap();
        assert_eq!(status, 202, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 40, "one event each");
    let trips = node.api.metric(round_trips).await - before;
    assert!(
        (1.0..=4.0).contains(&trips),
        "40 waiting events took {trips} round trips"
    );
    wait_for(Duration::from_secs(20), "every event delivered", || {
        sink.delivered_ids("group") == ids
    })
    .await;
}

/// When Redis goes away under lone events waiting to be written together, every one of them is
/// answered 503 `store_unavailable` (a round trip that fails as a whole is one error for all of
/// its events), none a 500.
#[tokio::test]
async fn lone_events_written_together_when_redis_goes_away_each_get_a_503() {
    let mut redis = RedisServer::start(false);
    let node = Node::start_ready(&NodeOpts::new(&redis.url(), &unique_prefix("groupdown"))).await;
    let posts = post_while_writes_wait(&redis, &node.api, 20);
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill9();
    for post in posts {
        let (status, body) = post.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    }
}
