//! Admin tokens and tenant keys: 401 without a known token, 403 outside the key's tenant.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn tenant_keys_are_confined_to_their_tenant() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("auth"))).await;
    let admin = &node.api;

    for token in [None, Some("wrong-token"), Some("hk_unknownkeyunknownkeyunknownkey")] {
        let (status, body) = admin.with_token(token).get("/v1/tenants/t1/endpoints").await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    let (status, key) = admin.post("/v1/tenants/t1/keys", json!({})).await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("hk_"));
    assert!(key["id"].as_str().unwrap().starts_with("key_"));

    let tenant = admin.with_token(Some(secret));
    let ep = tenant
        .create_endpoint("t1", json!({"url": "https://example.com/hook"}))
        .await;
    let (status, _) = tenant
        .get(&format!("/v1/tenants/t1/endpoints/{}", ep["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    let (status, body) = tenant.get("/v1/tenants/t2/endpoints").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = tenant
        .post("/v1/tenants/t2/events", json!({"type": "a", "payload": {}}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = tenant.post("/v1/tenants/t1/keys", json!({})).await;
    assert_eq!(status, 403, "a tenant key cannot mint keys");

    // Admins see every tenant; another tenant's endpoint id is simply not found there.
    let (status, _) = admin
        .get(&format!("/v1/tenants/t2/endpoints/{}", ep["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 404);
    // The key itself is not stored: nothing in Redis contains it.
    let stored = std::process::Command::new("redis-cli")
        .args(["-u", &redis, "--scan", "--pattern", "*"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(secret))
        .unwrap_or(false);
    assert!(!stored);
}
