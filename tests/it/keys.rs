//! Tenant keys with a lifecycle: scopes on every route (as the OpenAPI document lists them),
//! revocation seen by every node within a second, expiry, allowed addresses, listing.

use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn mint(node: &Node, tenant: &str, fields: Value) -> (String, Value) {
    let (status, key) = node.api.post(&format!("/v1/tenants/{tenant}/keys"), fields).await;
    assert_eq!(status, 201, "{key}");
    (key["key"].as_str().unwrap().to_string(), key)
}

/// A value of an id parameter that matches its pattern (names nothing: the answer is 404).
fn id_for(pattern: &str) -> String {
    for (prefix, len) in [("ep_", 20), ("evt_", 26), ("dlv_", 46), ("src_", 20), ("key_", 16)] {
        if pattern.starts_with(&format!("^{prefix}")) {
            return format!("{prefix}{}", "0".repeat(len));
        }
    }
    panic!("no id for the pattern {pattern}")
}

/// A body each operation can parse, so the scope is what decides.
fn body_for(operation: &str) -> Option<Value> {
    match operation {
        "ingest_event" => Some(json!({"type": "a.b", "payload": {}})),
        "ingest_event_batch" => Some(json!({"events": [{"type": "a.b", "payload": {}}]})),
        "test_endpoint_filter" => Some(json!({"event": {}})),
        "test_endpoint_transform" => Some(json!({"event": {}})),
        "create_endpoint"
        | "update_endpoint"
        | "create_source"
        | "update_source"
        | "create_tenant_key"
        | "put_event_type"
        | "put_tenant_settings" => Some(json!({})),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_needs_the_scope_the_document_gives_it() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("scopes"))).await;
    let (_, doc) = node.api.with_token(None).get("/openapi.json").await;
    // Every scope a key can hold (API.md).
    let all: Vec<String> = [
        "events:write",
        "events:read",
        "endpoints:read",
        "endpoints:write",
        "endpoints:secrets",
        "deliveries:read",
        "deliveries:replay",
        "sources:read",
        "sources:write",
        "audit:read",
        "portal:create",
        "event_types:read",
        "event_types:write",
        "settings:read",
        "settings:write",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let operation = op["operationId"].as_str().unwrap();
            let scopes = op["security"][0]["bearer"]
                .as_array()
                .expect("every /v1/ route lists its bearer scopes");
            let mut url = path.replace("{tenant}", "t").replace("{name}", "a.b");
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["in"] == "path" && param["name"] == "id" {
                    url = url.replace("{id}", &id_for(param["schema"]["pattern"].as_str().unwrap()));
                }
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let call = |token: String| {
                let (node, url, method) = (&node, url.clone(), method.clone());
                async move {
                    node.api
                        .with_token(Some(&token))
                        .call(method, &url, body_for(operation))
                        .await
                }
            };
            match scopes.as_slice() {
                [] => {
                    // Admin only: even a key with every scope is refused.
                    let (every, _) = mint(&node, "t", json!({"scopes": all})).await;
                    let (status, answer) = call(every).await;
                    assert_eq!(status, 403, "{operation}: {answer}");
                }
                [scope] => {
                    let scope = scope.as_str().unwrap();
                    let others: Vec<&String> = all.iter().filter(|s| *s != scope).collect();
                    let (without, _) = mint(&node, "t", json!({"scopes": others})).await;
                    let (status, answer) = call(without).await;
                    assert_eq!(status, 403, "{operation} without {scope}: {answer}");
                    assert_eq!(answer["error"]["code"], "missing_scope", "{operation}");
                    assert!(answer["error"]["message"].as_str().unwrap().contains(scope));
                    let (only, _) = mint(&node, "t", json!({"scopes": [scope]})).await;
                    let (status, answer) = call(only).await;
                    assert_ne!(status, 403, "{operation} with only {scope}: {answer}");
                    assert_ne!(status, 401, "{operation} with only {scope}: {answer}");
                }
                more => panic!("{operation} lists {more:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 27, "only {checked} routes checked");
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_another_node_within_a_second() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("revoke"));
    let a = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let b = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let (key, minted) = mint(&a, "r", json!({"name": "ci"})).await;
    let on_b = b.api.with_token(Some(&key));
    assert_eq!(on_b.get("/v1/tenants/r/endpoints").await.0, 200, "node b knows the key");
    let (status, _) = a
        .api
        .call(
            Method::DELETE,
            &format!("/v1/tenants/r/keys/{}", minted["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let revoked = Instant::now();
    let refused = poll_until(Duration::from_secs(5), || async {
        (on_b.get("/v1/tenants/r/endpoints").await.0 == 401).then_some(revoked.elapsed())
    })
    .await
    .expect("node b still takes a revoked key after 5 s");
    println!("revoked key refused by the other node after {refused:?}");
    assert!(
        refused <= Duration::from_millis(1_500),
        "took {refused:?} (promised: within 1 s)"
    );
    let (status, _) = a
        .api
        .call(
            Method::DELETE,
            &format!("/v1/tenants/r/keys/{}", minted["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 404, "revoked twice");
}

#[tokio::test]
async fn keys_expire_hold_to_their_addresses_and_are_listed_without_their_secret() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("keylife");
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let soon = hookline::event::rfc3339(hookline_actors::now_ms() + 1_500);
    let (expiring, _) = mint(&node, "k", json!({"expires_at": soon})).await;
    let (expired, _) = mint(&node, "k", json!({"expires_at": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(
        node.api
            .with_token(Some(&expiring))
            .get("/v1/tenants/k/endpoints")
            .await
            .0,
        200
    );
    let (status, answer) = node.api.with_token(Some(&expired)).get("/v1/tenants/k/endpoints").await;
    assert_eq!(
        (status, answer["error"]["message"].as_str()),
        (401, Some("this key has expired"))
    );
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        node.api
            .with_token(Some(&expiring))
            .get("/v1/tenants/k/endpoints")
            .await
            .0,
        401
    );

    // Addresses: straight from loopback, and behind a trusted proxy.
    let (fenced, _) = mint(&node, "k", json!({"allowed_ips": ["203.0.113.0/24"]})).await;
    let (status, answer) = node.api.with_token(Some(&fenced)).get("/v1/tenants/k/endpoints").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("ip_not_allowed")),
        "{answer}"
    );
    let proxied =
        Node::start_ready(&NodeOpts::new(&redis, &prefix).set("server__trusted_proxies", "[\"127.0.0.1\"]")).await;
    let via = |ip: &str| {
        let (base, key, ip) = (proxied.api.base.clone(), fenced.clone(), ip.to_string());
        async move {
            reqwest::Client::new()
                .get(format!("{base}/v1/tenants/k/endpoints"))
                .bearer_auth(key)
                .header("X-Forwarded-For", ip)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(via("203.0.113.8").await, 200);
    assert_eq!(via("198.51.100.8").await, 403);

    // Listing: names, scopes, prefixes and last use; never a key.
    let (scoped, minted) = mint(
        &node,
        "k",
        json!({"name": "reader", "scopes": ["events:read", "endpoints:read"]}),
    )
    .await;
    assert_eq!(minted["prefix"], scoped[..8]);
    node.api.with_token(Some(&scoped)).get("/v1/tenants/k/endpoints").await;
    let (status, list) = node.api.get("/v1/tenants/k/keys").await;
    assert_eq!(status, 200, "{list}");
    let keys = list["data"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    let reader = keys.iter().find(|k| k["name"] == "reader").unwrap();
    assert_eq!(reader["scopes"], json!(["endpoints:read", "events:read"]));
    assert!(reader["last_used_at"].is_string(), "{reader}");
    for secret in [&expiring, &expired, &fenced, &scoped] {
        assert!(!list.to_string().contains(secret.as_str()), "a key is listed in full");
    }
    assert_eq!(
        node.api.with_token(Some(&scoped)).get("/v1/tenants/k/keys").await.0,
        403,
        "keys are admin business"
    );
}

#[tokio::test]
async fn an_endpoint_secret_is_shown_only_to_keys_that_may_read_secrets() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("secrets"))).await;
    let (writer, _) = mint(&node, "s", json!({"scopes": ["endpoints:write", "endpoints:read"]})).await;
    let (reader, _) = mint(&node, "s", json!({"scopes": ["endpoints:read", "endpoints:secrets"]})).await;
    let (status, created) = node
        .api
        .with_token(Some(&writer))
        .post("/v1/tenants/s/endpoints", json!({"url": "https://example.com/hook"}))
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created["secret"].is_string(),
        "whoever creates an endpoint gets its secret once"
    );
    let path = format!("/v1/tenants/s/endpoints/{}", created["id"].as_str().unwrap());
    let (_, seen) = node.api.with_token(Some(&writer)).get(&path).await;
    assert!(seen.get("secret").is_none(), "{seen}");
    let (_, seen) = node.api.with_token(Some(&reader)).get(&path).await;
    assert_eq!(seen["secret"], created["secret"]);
    let (_, seen) = node.api.get(&path).await;
    assert_eq!(seen["secret"], created["secret"], "the admin sees it");
    let (status, answer) = node.api.with_token(Some(&writer)).get(&format!("{path}/secret")).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("missing_scope")));
    let (status, answer) = node.api.with_token(Some(&reader)).get(&format!("{path}/secret")).await;
    assert_eq!((status, &answer["secret"]), (200, &created["secret"]));
    // A key minted with no body, as before scopes existed, may still do everything.
    let (old_style, _) = mint(&node, "s", Value::Null).await;
    let (_, seen) = node.api.with_token(Some(&old_style)).get(&path).await;
    assert_eq!(seen["secret"], created["secret"]);
}
