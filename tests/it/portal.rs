//! Portal sessions: a token for one tenant, read-only when asked (the API refuses changes, not
//! just a UI), that expires, can be revoked everywhere within a second, and names itself in the
//! audit log; a tampered or foreign token gets the JSON error shape.

use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn session(api: &Api, tenant: &str, body: Value) -> Value {
    let (status, s) = api.post(&format!("/v1/tenants/{tenant}/portal-sessions"), body).await;
    assert_eq!(status, 201, "{s}");
    s
}

fn error_code(answer: &Value) -> &str {
    answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not the error shape: {answer}"))
}

#[tokio::test]
async fn a_portal_token_works_for_its_tenant_only_and_a_read_only_one_changes_nothing() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("portal"))).await;
    let admin = &node.api;
    let ep = admin.create_endpoint("p", json!({"url": "http://127.0.0.1:9/p"})).await;
    let ep_path = format!("/v1/tenants/p/endpoints/{}", ep["id"].as_str().unwrap());

    let full = session(admin, "p", json!({"ttl_s": 600})).await;
    let token = full["token"].as_str().unwrap();
    assert!(token.starts_with("hkp_"));
    assert_eq!(full["url"], format!("/portal/#{token}"));
    assert_eq!(full["read_only"], false);
    let portal = admin.with_token(Some(token));
    assert_eq!(portal.get("/v1/tenants/p/endpoints").await.0, 200);
    let (status, changed) = portal
        .call(Method::PATCH, &ep_path, Some(json!({"description": "via portal"})))
        .await;
    assert_eq!(status, 200, "{changed}");
    for (method, path) in [
        (Method::GET, "/v1/tenants/other/endpoints"),
        (Method::POST, "/v1/tenants/p/portal-sessions"),
        (Method::GET, "/v1/audit"),
        (Method::GET, "/v1/tenants/p/keys"),
    ] {
        let (status, answer) = portal.call(method.clone(), path, None).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        error_code(&answer);
    }

    let viewer = session(admin, "p", json!({"read_only": true})).await;
    assert_eq!(viewer["read_only"], true);
    let viewer = admin.with_token(viewer["token"].as_str());
    for path in [
        "/v1/tenants/p/endpoints",
        ep_path.as_str(),
        "/v1/tenants/p/deliveries",
        "/v1/tenants/p/audit",
    ] {
        assert_eq!(viewer.get(path).await.0, 200, "{path}");
    }
    let writes = [
        (Method::PATCH, ep_path.clone(), Some(json!({"description": "no"}))),
        (Method::DELETE, ep_path.clone(), None),
        (Method::POST, format!("{ep_path}/rotate-secret"), None),
        (
            Method::POST,
            "/v1/tenants/p/endpoints".into(),
            Some(json!({"url": "http://127.0.0.1:9/q"})),
        ),
        (
            Method::POST,
            "/v1/tenants/p/events".into(),
            Some(json!({"type": "a.b", "payload": {}})),
        ),
        (Method::DELETE, "/v1/tenants/p/portal-sessions".into(), None),
    ];
    for (method, path, body) in writes {
        let (status, answer) = viewer.call(method.clone(), &path, body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (403, "missing_scope"),
            "{method} {path}: {answer}"
        );
    }
    let (_, now) = admin.get(&ep_path).await;
    assert_eq!(
        now["description"], "via portal",
        "the read-only session changed nothing"
    );

    // A key may open sessions for its own tenant only with `portal:create`, and a session can
    // do no more than the key that opened it, for no longer.
    let expiry = "2099-01-01T00:00:00Z";
    let (_, key) = admin
        .post(
            "/v1/tenants/p/keys",
            json!({"scopes": ["portal:create", "endpoints:read"], "expires_at": expiry}),
        )
        .await;
    let key = admin.with_token(key["key"].as_str());
    session(&key, "p", Value::Null).await;
    let narrow = session(&key, "p", json!({"ttl_s": 604800})).await;
    assert!(narrow["expires_at"].as_str().unwrap() < expiry);
    let narrow = admin.with_token(narrow["token"].as_str());
    assert_eq!(narrow.get("/v1/tenants/p/endpoints").await.0, 200);
    let (status, answer) = narrow
        .call(Method::PATCH, &ep_path, Some(json!({"description": "no"})))
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (403, "missing_scope"),
        "a session beyond its key: {answer}"
    );
    assert_eq!(narrow.get("/v1/tenants/p/deliveries").await.0, 403);
    assert_eq!(key.post("/v1/tenants/q/portal-sessions", json!({})).await.0, 403);
    let (_, limited) = admin
        .post("/v1/tenants/p/keys", json!({"scopes": ["endpoints:read"]}))
        .await;
    let (status, answer) = admin
        .with_token(limited["key"].as_str())
        .post("/v1/tenants/p/portal-sessions", json!({}))
        .await;
    assert_eq!((status, error_code(&answer)), (403, "missing_scope"));
    for bad in [
        json!({"ttl_s": 0}),
        json!({"ttl_s": 604801}),
        json!({"read_only": "yes"}),
        json!({"extra": 1}),
        json!([]),
    ] {
        let (status, answer) = admin.post("/v1/tenants/p/portal-sessions", bad.clone()).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "invalid_request"),
            "{bad}: {answer}"
        );
    }

    // The log names the sessions and what a session changed.
    let (_, log) = admin.get("/v1/tenants/p/audit").await;
    let entries = log["data"].as_array().unwrap();
    let patch = entries.iter().find(|e| e["action"] == "endpoint.updated").unwrap();
    assert_eq!(patch["actor"], json!({"kind": "portal", "id": full["id"]}));
    let created: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "portal.session_created")
        .collect();
    assert_eq!(created.len(), 4);
    assert!(!log.to_string().contains(token), "the log shows a session's token");
    // Sessions are not keys: the key list does not show them.
    let (_, keys) = admin.get("/v1/tenants/p/keys").await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2, "{keys}");
}

#[tokio::test]
async fn expired_revoked_and_tampered_portal_tokens_are_refused() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("portal-end"));
    let a = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let b = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let short = session(&a.api, "e", json!({"ttl_s": 1})).await;
    session(&a.api, "j", json!({"ttl_s": 1})).await;
    let short = b.api.with_token(short["token"].as_str());
    assert_eq!(short.get("/v1/tenants/e/endpoints").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, answer) = short.get("/v1/tenants/e/endpoints").await;
    assert_eq!((status, error_code(&answer)), (401, "unauthorized"), "{answer}");

    let long = session(&a.api, "e", json!({"ttl_s": 3600})).await;
    let token = long["token"].as_str().unwrap().to_string();
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    let (status, answer) = b.api.with_token(Some(&tampered)).get("/v1/tenants/e/endpoints").await;
    assert_eq!((status, error_code(&answer)), (401, "unauthorized"));
    let on_b = b.api.with_token(Some(&token));
    assert_eq!(
        on_b.get("/v1/tenants/e/endpoints").await.0,
        200,
        "node b knows the session"
    );
    assert_eq!(
        a.api
            .call(Method::DELETE, "/v1/tenants/e/portal-sessions", None)
            .await
            .0,
        204
    );
    let revoked = Instant::now();
    let refused = poll_until(Duration::from_secs(5), || async {
        (on_b.get("/v1/tenants/e/endpoints").await.0 == 401).then_some(revoked.elapsed())
    })
    .await
    .expect("node b still takes a revoked session after 5 s");
    assert!(
        refused <= Duration::from_millis(1_500),
        "took {refused:?} (promised: within 1 s)"
    );
    let (_, log) = a.api.get("/v1/tenants/e/audit?action=portal.session_revoked").await;
    assert_eq!(
        log["data"].as_array().unwrap().len(),
        2,
        "one entry per session revoked: {log}"
    );

    // The janitor removes sessions past their expiry (tenant j's; e's went with the revocation).
    let mut cfg = hookline::config::Config::default();
    cfg.redis.url = redis.clone();
    cfg.redis.prefix = prefix.clone();
    let store = hookline::store::RedisStore::connect(&cfg.store_settings())
        .await
        .unwrap();
    assert!(store.wait_connected(Duration::from_secs(5)).await);
    let report = store.janitor_pass("n", 10, 3_600_000).await.unwrap();
    assert_eq!(report.portal_sessions_expired, 1);
    let left = redis_cli(&redis, &["hlen", &format!("{prefix}:apikeys")]);
    assert_eq!(left.trim(), "0", "no session record is left");
}
