//! The audit log: a scripted session leaves exactly its entries, in order, with who, from
//! where, the request id and the fields before and after, never a secret; the node's own
//! changes (a 410) are there too; and a node killed in a burst of changes leaves no change in
//! Redis that its entries do not explain.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every entry of a log (tenant path or `/v1/audit`), newest first, read in pages of `limit`.
async fn whole_log(api: &Api, path: &str, limit: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, page) = api.get(&format!("{path}{sep}limit={limit}&cursor={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        entries.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return entries,
        }
    }
}

/// Call and keep the request id the answer names.
async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> (u16, Value, String) {
    let text = body.map(|b| b.to_string());
    let ct = text.as_ref().map(|_| "application/json");
    let (status, value, headers) = api.raw(method, path, text.as_deref(), ct).await;
    let id = headers["hookline-request-id"].to_str().unwrap().to_string();
    (status, value, id)
}

#[tokio::test]
async fn a_scripted_session_leaves_exactly_its_entries_in_order_without_a_secret() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("audit"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let admin = &node.api;
    let t = "/v1/tenants/aud";
    let scopes = json!([
        "endpoints:read",
        "endpoints:write",
        "endpoints:secrets",
        "sources:write",
        "audit:read"
    ]);
    let (status, minted, minted_req) = call(
        admin,
        Method::POST,
        &format!("{t}/keys"),
        Some(json!({"name": "ci", "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let (key, key_id) = (minted["key"].as_str().unwrap(), minted["id"].as_str().unwrap());
    let api = admin.with_token(Some(key));

    let mut requests = vec![minted_req];
    let mut secrets = vec![key.to_string()];
    let mut step = async |method: Method, path: String, body: Option<Value>, want: u16| {
        let (status, answer, id) = call(&api, method, &path, body).await;
        assert_eq!(status, want, "{path}: {answer}");
        requests.push(id);
        answer
    };
    let body = json!({"url": sink.url("ok"), "headers": {"x-api-key": "hdr-s3cr3t"}});
    let ep = step(Method::POST, format!("{t}/endpoints"), Some(body), 201).await;
    secrets.push("hdr-s3cr3t".into());
    let ep_id = ep["id"].as_str().unwrap().to_string();
    secrets.push(ep["secret"].as_str().unwrap().to_string());
    let e = format!("{t}/endpoints/{ep_id}");
    step(Method::PATCH, e.clone(), Some(json!({"description": "orders"})), 200).await;
    step(Method::PATCH, e.clone(), Some(json!({"disabled": true})), 200).await;
    step(Method::POST, format!("{e}/enable"), None, 200).await;
    let rotated = step(Method::POST, format!("{e}/rotate-secret?overlap_s=60"), None, 200).await;
    secrets.push(rotated["secret"].as_str().unwrap().to_string());
    step(Method::GET, format!("{e}/secret"), None, 200).await;
    let src = step(
        Method::POST,
        format!("{t}/sources"),
        Some(json!({"name": "gh", "kind": "github", "secret": "s3cr3t-gh"})),
        201,
    )
    .await;
    secrets.push("s3cr3t-gh".into());
    let src_id = src["id"].as_str().unwrap().to_string();
    step(
        Method::PATCH,
        format!("{t}/sources/{src_id}"),
        Some(json!({"name": "github"})),
        200,
    )
    .await;
    step(Method::DELETE, format!("{t}/sources/{src_id}"), None, 204).await;
    step(Method::DELETE, e.clone(), None, 204).await;
    let (status, _, revoked_req) = call(admin, Method::DELETE, &format!("{t}/keys/{key_id}"), None).await;
    assert_eq!(status, 204);
    requests.push(revoked_req);

    let mut log = whole_log(admin, &format!("{t}/audit"), 4).await;
    log.reverse();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "key.created",
            "endpoint.created",
            "endpoint.updated",
            "endpoint.disabled",
            "endpoint.enabled",
            "endpoint.secret_rotated",
            "endpoint.secret_read",
            "source.created",
            "source.updated",
            "source.deleted",
            "endpoint.deleted",
            "key.revoked",
        ]
    );
    let logged: Vec<&str> = log.iter().map(|e| e["request_id"].as_str().unwrap()).collect();
    assert_eq!(
        logged,
        requests.iter().map(String::as_str).collect::<Vec<_>>(),
        "one entry per request, its id"
    );
    for (i, entry) in log.iter().enumerate() {
        assert_eq!(entry["tenant"], "aud");
        assert_eq!(entry["ip"], "127.0.0.1");
        let by_admin = i == 0 || i == log.len() - 1;
        assert_eq!(
            entry["actor"]["kind"],
            if by_admin { "admin" } else { "key" },
            "{entry}"
        );
        if !by_admin {
            assert_eq!(entry["actor"]["id"], key_id);
        }
        assert!(entry["id"].as_str().unwrap().starts_with("aud_"));
    }
    let changes = |i: usize| log[i]["changes"].clone();
    assert_eq!(changes(0)["name"], json!({"from": null, "to": "ci"}));
    assert_eq!(changes(1)["url"], json!({"from": null, "to": sink.url("ok")}));
    assert_eq!(changes(1)["secret"], json!({"from": null, "to": "***"}));
    assert_eq!(changes(1)["headers"], json!({"from": null, "to": {"x-api-key": "***"}}));
    assert_eq!(changes(2), json!({"description": {"from": null, "to": "orders"}}));
    assert_eq!(
        changes(3),
        json!({"disabled": {"from": false, "to": true}, "disabled_reason": {"from": null, "to": "manual"}})
    );
    assert_eq!(
        changes(4),
        json!({"disabled": {"from": true, "to": false}, "disabled_reason": {"from": "manual", "to": null}})
    );
    assert_eq!(changes(5)["secret"], json!({"from": "***", "to": "***"}));
    assert_eq!(changes(5)["previous_secrets"], json!({"from": [], "to": "***"}));
    assert_eq!(changes(6), json!({}));
    assert_eq!(changes(8), json!({"name": {"from": "gh", "to": "github"}}));
    assert_eq!(changes(10)["description"], json!({"from": "orders", "to": null}));
    assert_eq!(log[10]["target"], json!({"kind": "endpoint", "id": ep_id}));
    let text = serde_json::to_string(&log).unwrap();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "the log shows a secret: {secret}");
    }

    // Filters, the time bounds, the log of every tenant, and who may read which.
    let (_, only) = admin.get(&format!("{t}/audit?action=endpoint.updated")).await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1, "{only}");
    let about = whole_log(admin, &format!("{t}/audit?target_id={ep_id}"), 50).await;
    assert_eq!(about.len(), 7);
    let first = log[0]["time"].as_str().unwrap();
    let (_, before) = admin.get(&format!("{t}/audit?to=1970-01-02T00:00:00Z")).await;
    assert_eq!(before["data"], json!([]));
    let since_first = whole_log(admin, &format!("{t}/audit?from={first}"), 50).await;
    assert_eq!(since_first.len(), log.len());
    let mut everyone = whole_log(admin, "/v1/audit", 5).await;
    everyone.reverse();
    assert_eq!(everyone, log, "/v1/audit holds the tenant's entries, the same ones");
    let (_, reader, _) = call(
        admin,
        Method::POST,
        &format!("{t}/keys"),
        Some(json!({"scopes": ["audit:read"]})),
    )
    .await;
    let reader = admin.with_token(reader["key"].as_str());
    assert_eq!(reader.get(&format!("{t}/audit")).await.0, 200);
    assert_eq!(reader.get("/v1/audit").await.0, 403);
    assert_eq!(reader.get("/v1/tenants/other/audit").await.0, 403);
    let (status, oldest) = admin.get(&format!("{t}/audit?cursor=aud_0-0-k")).await;
    assert_eq!(
        (status, &oldest["data"]),
        (200, &json!([])),
        "nothing is older than the first id"
    );
    let (status, bad) = admin.get(&format!("{t}/audit?cursor=aud_1-2")).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{bad}"
    );
}

#[tokio::test]
async fn the_node_records_what_it_does_by_itself() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("audit-sys"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = node
        .api
        .create_endpoint("g", json!({"url": sink.url("status/410/gone")}))
        .await;
    let path = format!("/v1/tenants/g/endpoints/{}", ep["id"].as_str().unwrap());
    node.api.post_event("g", "a.b", json!({})).await.unwrap();
    node.api
        .get_until(&path, Duration::from_secs(10), |e| e["disabled"] == true)
        .await;
    let (_, log) = node.api.get("/v1/tenants/g/audit?action=endpoint.disabled").await;
    let entry = &log["data"][0];
    assert_eq!(
        entry["actor"],
        json!({"kind": "system", "id": "endpoint_actor"}),
        "{log}"
    );
    assert_eq!(entry["changes"]["disabled_reason"], json!({"from": null, "to": "gone"}));
    assert_eq!(
        (entry["request_id"].clone(), entry["ip"].clone()),
        (Value::Null, Value::Null)
    );
}

/// An endpoint as its entries describe it: each field's last `to`, nulls left out.
type Described = BTreeMap<String, Map<String, Value>>;

fn replay_log(oldest_first: &[Value]) -> Described {
    let mut endpoints = Described::new();
    for entry in oldest_first {
        let id = entry["target"]["id"].as_str().unwrap().to_string();
        match entry["action"].as_str().unwrap() {
            "endpoint.deleted" => {
                endpoints.remove(&id);
            }
            action if action.starts_with("endpoint.") => {
                let fields = endpoints.entry(id).or_default();
                for (name, change) in entry["changes"].as_object().unwrap() {
                    match &change["to"] {
                        Value::Null => fields.remove(name),
                        to => fields.insert(name.clone(), to.clone()),
                    };
                }
            }
            _ => {}
        }
    }
    endpoints
}

/// What Redis holds, shown as the log shows it (secrets `***`, nulls and empty lists left out).
fn as_logged(stored: &Value) -> Map<String, Value> {
    let mut fields = stored.as_object().unwrap().clone();
    for bookkeeping in ["id", "tenant", "created_at_ms", "updated_at_ms"] {
        fields.remove(bookkeeping);
    }
    fields.retain(|_, v| !v.is_null());
    for secret in ["secret", "previous_secrets"] {
        if fields
            .get(secret)
            .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()))
        {
            fields.insert(secret.into(), json!("***"));
        }
    }
    fields
}

#[tokio::test]
async fn kill_9_in_a_burst_of_changes_leaves_no_change_without_its_entry() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("audit-kill"));
    let mut node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let api = node.api.clone();
    let mut shared = Vec::new();
    for _ in 0..3 {
        let ep = api.create_endpoint("k", json!({"url": "http://127.0.0.1:9/x"})).await;
        shared.push(ep["id"].as_str().unwrap().to_string());
    }
    let shared = Arc::new(shared);
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let (api, shared) = (api.clone(), shared.clone());
        writers.push(tokio::spawn(async move {
            let mut own: Vec<String> = Vec::new();
            let mut done = 0;
            for i in 0u64.. {
                // Every writer patches the shared endpoints (racing each other), creates, edits
                // and deletes its own; errors once the node is gone end the writer.
                let path = match (i + w) % 4 {
                    0 => format!("/v1/tenants/k/endpoints/{}", shared[(i as usize) % shared.len()]),
                    1 => "/v1/tenants/k/endpoints".to_string(),
                    _ if own.is_empty() => continue,
                    2 => format!("/v1/tenants/k/endpoints/{}", own[own.len() - 1]),
                    _ => format!("/v1/tenants/k/endpoints/{}", own.remove(0)),
                };
                let (method, body) = match (i + w) % 4 {
                    // Writers change different fields: a write over a stale read would undo
                    // another's change without an entry saying so.
                    0 | 2 if w % 2 == 0 => (Method::PATCH, Some(json!({"description": format!("w{w} i{i}")}))),
                    0 | 2 => (Method::PATCH, Some(json!({"timeout_ms": 1000 + i}))),
                    1 => (
                        Method::POST,
                        Some(json!({"url": "http://127.0.0.1:9/y", "event_types": [format!("w{w}.*")]})),
                    ),
                    _ => (Method::DELETE, None),
                };
                let text = body.map(|b| b.to_string());
                let sent = reqwest::Client::new()
                    .request(method, format!("{}{}", api.base, path))
                    .bearer_auth(api.token.as_deref().unwrap())
                    .header("content-type", "application/json")
                    .body(text.unwrap_or_default())
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == 201 => {
                        let ep: Value = resp.json().await.unwrap_or_default();
                        own.push(ep["id"].as_str().unwrap_or_default().to_string());
                    }
                    Ok(_) => {}
                    Err(_) => return done,
                }
                done += 1;
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    node.kill9().await;
    let mut changes = 0;
    for writer in writers {
        changes += tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .unwrap()
            .unwrap();
    }
    println!("{changes} requests in {:?} before the kill", started.elapsed());
    assert!(changes > 50, "the burst was too small to mean anything: {changes}");

    // Redis as it is now, against the log as a new node reads it.
    let stored: BTreeMap<String, Value> = redis_cli(&redis, &["--raw", "hgetall", &format!("{prefix}:endpoints")])
        .lines()
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].to_string(), serde_json::from_str(pair[1]).unwrap()))
        .collect();
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let mut log = whole_log(&node.api, "/v1/tenants/k/audit", 500).await;
    log.reverse();
    let described = replay_log(&log);
    assert_eq!(
        described.keys().collect::<Vec<_>>(),
        stored.keys().collect::<Vec<_>>(),
        "endpoints in Redis and the endpoints the log says exist differ"
    );
    for (id, value) in &stored {
        assert_eq!(
            &described[id],
            &as_logged(value),
            "endpoint {id}: Redis holds what no entry says"
        );
    }
    println!("{} entries explain {} endpoints", log.len(), stored.len());
}

/// Invariant 4 for the audit log: entries past `retention.audit_days` go, in every stream
/// (the node's own trimming as it writes is approximate; the janitor's is exact).
#[tokio::test]
async fn the_janitor_trims_audit_entries_past_their_retention() {
    let mut cfg = hookline::config::Config::default();
    cfg.redis.url = shared_redis_url();
    cfg.redis.prefix = unique_prefix("audit-trim");
    let mut settings = cfg.store_settings();
    settings.audit_retention_s = 1;
    let store = hookline::store::RedisStore::connect(&settings).await.unwrap();
    assert!(store.wait_connected(Duration::from_secs(5)).await);
    for tenant in ["a", "b"] {
        store
            .audit_only(hookline::store::audit::Kind::Endpoints, &test_entry(tenant))
            .await
            .unwrap();
    }
    let everyone = hookline::store::audit::AuditQuery {
        limit: 50,
        ..Default::default()
    };
    assert_eq!(store.audit_page(None, &everyone).await.unwrap().0.len(), 2);
    assert_eq!(
        store.janitor_pass("n", 10, 3_600_000).await.unwrap().audit_entries,
        0,
        "nothing is old yet"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Two entries, each in the every-tenant stream and its tenant's.
    assert_eq!(store.janitor_pass("n", 10, 3_600_000).await.unwrap().audit_entries, 4);
    assert!(store.audit_page(None, &everyone).await.unwrap().0.is_empty());
    assert!(store.audit_page(Some("a"), &everyone).await.unwrap().0.is_empty());
}

/// The node disables an endpoint only as the endpoint actor saw it: a change made meanwhile (a
/// fixed URL, a manual disable) is neither overridden nor recorded as the node's.
#[tokio::test]
async fn the_node_does_not_disable_an_endpoint_changed_since_it_judged_it() {
    let mut cfg = hookline::config::Config::default();
    cfg.redis.url = shared_redis_url();
    cfg.redis.prefix = unique_prefix("audit-disable");
    let store = hookline::store::RedisStore::connect(&cfg.store_settings())
        .await
        .unwrap();
    assert!(store.wait_connected(Duration::from_secs(5)).await);
    let id = hookline::ids::new_endpoint_id();
    let ep =
        hookline_actors::EndpointConfig::new(id.clone(), "d".into(), "https://x.test".into(), "whsec_x".into(), 1_000);
    store.put_endpoint(&ep, 0, &test_entry("d")).await.unwrap();
    let everyone = hookline::store::audit::AuditQuery {
        limit: 50,
        action: Some("endpoint.disabled".into()),
        ..Default::default()
    };

    let stale = store.disable_endpoint(&id, 999, "gone").await.unwrap().unwrap();
    assert!(!stale.disabled, "changed since the actor judged it: left alone");
    let done = store.disable_endpoint(&id, 1_000, "gone").await.unwrap().unwrap();
    assert_eq!((done.disabled, done.disabled_reason.as_deref()), (true, Some("gone")));
    let again = store
        .disable_endpoint(&id, done.updated_at_ms, "failing")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.disabled_reason.as_deref(),
        Some("gone"),
        "already disabled: left alone"
    );
    let (entries, _) = store.audit_page(Some("d"), &everyone).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].actor.kind, "system");
}
