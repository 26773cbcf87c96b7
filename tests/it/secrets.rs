//! Secrets at rest: with `security.encryption_keys`, no endpoint or source secret is in Redis in
//! clear text, deliveries and inbound verification still work, a node with the wrong key
//! refuses to start, and secrets written in clear before keep working.

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::time::Duration;

fn key(id: &str, byte: u8) -> String {
    format!("{id}:{}", STANDARD.encode([byte; 32]))
}

fn keys(list: &[String]) -> String {
    serde_json::to_string(list).unwrap()
}

/// Every value under `prefix` in Redis, as text (strings, hashes, lists, sets, sorted sets,
/// streams).
fn everything_stored(redis: &str, prefix: &str) -> String {
    let names = redis_cli(redis, &["--raw", "--scan", "--pattern", &format!("{prefix}:*")]);
    let mut all = String::new();
    for name in names.lines().filter(|n| !n.is_empty()) {
        let kind = redis_cli(redis, &["type", name]);
        let dump = match kind.trim() {
            "string" => redis_cli(redis, &["--raw", "get", name]),
            "hash" => redis_cli(redis, &["--raw", "hgetall", name]),
            "list" => redis_cli(redis, &["--raw", "lrange", name, "0", "-1"]),
            "set" => redis_cli(redis, &["--raw", "smembers", name]),
            "zset" => redis_cli(redis, &["--raw", "zrange", name, "0", "-1"]),
            "stream" => redis_cli(redis, &["--raw", "xrange", name, "-", "+"]),
            // Expired since the scan (a lease, a rate counter): nothing stored any more.
            "none" => continue,
            other => panic!("{name}: a {other} this test cannot read"),
        };
        all.push_str(name);
        all.push('\n');
        all.push_str(&dump);
    }
    all
}

#[tokio::test]
async fn with_a_key_no_secret_is_stored_in_clear_and_everything_still_works() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("sealed"));
    let node =
        Node::start_ready(&NodeOpts::new(&redis, &prefix).set("security__encryption_keys", &keys(&[key("k1", 1)])))
            .await;
    assert_eq!(node.api.metric("hookline_secrets_encrypted").await, 1.0);
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let ep = node
        .api
        .create_endpoint("s", json!({"url": sink.url("ok/sealed")}))
        .await;
    let first = ep["secret"].as_str().unwrap().to_string();
    let (status, rotated) = node
        .api
        .post(
            &format!("/v1/tenants/s/endpoints/{}/rotate-secret", ep["id"].as_str().unwrap()),
            json!(null),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["secret"].as_str().unwrap().to_string();
    sink.set_secret("sealed", &second);
    // The write-only parts of `tls` and `oauth2` are secrets too.
    let oauth_secret = "oauth-clear-secret-31337";
    let client = hookline_loadtest::tls::TestCa::new("c").client("hookline");
    let key_body = key_material(&client.key_pem);
    node.api
        .create_endpoint(
            "s",
            json!({"url": sink.url("ok/sealed-oauth"),
                   "tls": {"client_cert_pem": client.cert_pem, "client_key_pem": client.key_pem},
                   "oauth2": {"token_url": sink.url("oauth/token"), "client_id": "c", "client_secret": oauth_secret}}),
        )
        .await;
    let github = "gh-clear-secret-1234567";
    let password = "pw-clear-secret-7654321";
    let api_key = "key-clear-secret-99999";
    let gh = node
        .api
        .post(
            "/v1/tenants/s/sources",
            json!({"name": "g", "kind": "github", "secret": github}),
        )
        .await
        .1;
    node.api
        .post(
            "/v1/tenants/s/sources",
            json!({"name": "b", "kind": "basic", "basic": {"username": "u", "password": password}}),
        )
        .await;
    node.api
        .post(
            "/v1/tenants/s/sources",
            json!({"name": "k", "kind": "api_key", "api_key": {"value": api_key}}),
        )
        .await;

    // Deliveries are signed with the secrets as they were given; inbound requests verify.
    node.api.post_event("s", "a.b", json!({"n": 1})).await.expect("ingest");
    wait_for(Duration::from_secs(10), "the delivery", || {
        !sink.received_by("sealed").is_empty()
    })
    .await;
    assert_eq!(sink.received_by("sealed")[0].signature_ok, Some(true));
    wait_for(Duration::from_secs(10), "the delivery with a token", || {
        !sink.received_by("sealed-oauth").is_empty()
    })
    .await;
    assert_eq!(
        sink.received_by("sealed-oauth")[0].headers["authorization"],
        "Bearer sink-token"
    );
    let body = br#"{"zen":"sealed"}"#;
    let headers = vec![
        (
            "X-Hub-Signature-256".to_string(),
            crate::inbound::github_signature(github, body),
        ),
        ("X-GitHub-Event".to_string(), "ping".to_string()),
    ];
    let (status, answer, _) = crate::inbound::post_in(&node, gh["id"].as_str().unwrap(), &headers, body).await;
    assert_eq!(status, 200, "{answer}");
    let (_, shown) = node
        .api
        .get(&format!("/v1/tenants/s/endpoints/{}", ep["id"].as_str().unwrap()))
        .await;
    assert_eq!(shown["secret"], second.as_str(), "the API shows the secret in clear");

    let stored = everything_stored(&redis, &prefix);
    assert!(stored.contains("enc:v1:k1:"), "nothing sealed under k1?");
    for secret in [
        first.as_str(),
        second.as_str(),
        github,
        password,
        api_key,
        oauth_secret,
        &key_body,
    ] {
        assert!(!stored.contains(secret), "{secret} is stored in clear");
    }
}

/// The base64 of a PEM block, on one line (what a stored key would contain in clear, however
/// its line breaks were escaped).
fn key_material(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()[..40].to_string()
}

#[tokio::test]
async fn a_node_with_the_wrong_key_refuses_to_start_and_clear_secrets_keep_working() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("keycheck"));
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    // Written in clear, before there was a key.
    let clear = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    assert_eq!(clear.api.metric("hookline_secrets_encrypted").await, 0.0);
    assert!(clear.logs().iter().any(|l| l.contains("secrets are stored in clear")));
    let ep = clear
        .api
        .create_endpoint("c", json!({"url": sink.url("ok/clear")}))
        .await;
    let secret = ep["secret"].as_str().unwrap().to_string();
    drop(clear);

    // A key arrives: the clear secret still signs; the key check is written.
    let keyed =
        Node::start_ready(&NodeOpts::new(&redis, &prefix).set("security__encryption_keys", &keys(&[key("k1", 1)])))
            .await;
    sink.set_secret("clear", &secret);
    keyed.api.post_event("c", "a.b", json!({})).await.expect("ingest");
    wait_for(Duration::from_secs(10), "the delivery", || {
        !sink.received_by("clear").is_empty()
    })
    .await;
    assert_eq!(sink.received_by("clear")[0].signature_ok, Some(true));
    drop(keyed);

    // The wrong key, the same id with other bytes, and no key at all: each refused, clearly.
    for wrong in [keys(&[key("k9", 9)]), keys(&[key("k1", 2)]), keys(&[])] {
        let text = refused_start(&redis, &prefix, &[("HOOKLINE__SECURITY__ENCRYPTION_KEYS", &wrong)]).await;
        assert!(text.contains("security.encryption_keys cannot open"), "{wrong}: {text}");
    }
    // A new key first and the old one beside it: starts (what a key rotation needs).
    let rotated = Node::start_ready(
        &NodeOpts::new(&redis, &prefix).set("security__encryption_keys", &keys(&[key("k2", 2), key("k1", 1)])),
    )
    .await;
    assert!(rotated.api.ready().await);
}

/// Run `hookline secrets rotate` with `encryption_keys`; its output.
fn rotate(redis: &str, prefix: &str, encryption_keys: &str) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["secrets", "rotate"])
        .current_dir(cwd.path())
        .env("HOOKLINE__REDIS__URL", redis)
        .env("HOOKLINE__REDIS__PREFIX", prefix)
        .env("HOOKLINE__AUTH__INSECURE_NO_AUTH", "true")
        .env("HOOKLINE__SECURITY__ENCRYPTION_KEYS", encryption_keys)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "secrets rotate failed: {text}");
    text
}

/// A store written in clear is sealed by the pass; then a new key replaces the old one under
/// load: every event is delivered signed, the old key can be dropped, and a node with the new
/// key alone starts and verifies inbound requests.
#[tokio::test]
async fn the_rotation_pass_seals_a_clear_store_and_moves_it_to_a_new_key_under_load() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("reseal"));
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let clear = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let ep = clear
        .api
        .create_endpoint("r", json!({"url": sink.url("ok/reseal")}))
        .await;
    let secret = ep["secret"].as_str().unwrap().to_string();
    sink.set_secret("reseal", &secret);
    let client = hookline_loadtest::tls::TestCa::new("c").client("hookline");
    let key_body = key_material(&client.key_pem);
    clear
        .api
        .create_endpoint(
            "r",
            json!({"url": sink.url("ok/reseal-oauth"), "event_types": ["none.*"],
                   "tls": {"client_cert_pem": client.cert_pem, "client_key_pem": client.key_pem},
                   "oauth2": {"token_url": sink.url("oauth/token"), "client_id": "c", "client_secret": "oauth-reseal-77"}}),
        )
        .await;
    let gh = clear
        .api
        .post(
            "/v1/tenants/r/sources",
            json!({"name": "g", "kind": "github", "secret": "gh-reseal-secret-42"}),
        )
        .await
        .1;
    drop(clear);
    let stored = everything_stored(&redis, &prefix);
    assert!(stored.contains(&secret) && stored.contains("oauth-reseal-77") && stored.contains(&key_body));

    // Clear → k1.
    let out = rotate(&redis, &prefix, &keys(&[key("k1", 1)]));
    assert!(out.contains("secrets resealed"), "{out}");
    let stored = everything_stored(&redis, &prefix);
    assert!(
        !stored.contains(&secret)
            && !stored.contains("gh-reseal-secret-42")
            && !stored.contains("oauth-reseal-77")
            && !stored.contains(&key_body),
        "still in clear"
    );

    // k1 → k2, while a node with both keys delivers events.
    let both = keys(&[key("k2", 2), key("k1", 1)]);
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix).set("security__encryption_keys", &both)).await;
    let poster = {
        let api = node.api.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..200 {
                ids.push(api.post_event("r", "a.b", json!({"n": n})).await.expect("ingest"));
            }
            ids
        })
    };
    let out = rotate(&redis, &prefix, &both);
    assert!(out.contains("secrets resealed"), "{out}");
    let ids = poster.await.unwrap();
    wait_for(Duration::from_secs(20), "every event delivered", || {
        sink.delivered_ids("reseal").len() >= ids.len()
    })
    .await;
    assert!(
        sink.received_by("reseal").iter().all(|r| r.signature_ok == Some(true)),
        "a delivery was signed wrongly during the rotation"
    );
    let stored = everything_stored(&redis, &prefix);
    assert!(!stored.contains("enc:v1:k1:"), "something is still sealed under k1");
    drop(node);

    // The old key dropped: a node with k2 alone starts, delivers and verifies.
    let new_only =
        Node::start_ready(&NodeOpts::new(&redis, &prefix).set("security__encryption_keys", &keys(&[key("k2", 2)])))
            .await;
    let before = sink.delivered_ids("reseal").len();
    new_only
        .api
        .post_event("r", "a.b", json!({"last": true}))
        .await
        .expect("ingest");
    wait_for(Duration::from_secs(10), "a delivery under k2 alone", || {
        sink.delivered_ids("reseal").len() > before
    })
    .await;
    assert!(sink.received_by("reseal").iter().all(|r| r.signature_ok == Some(true)));
    let body = br#"{"zen":"k2"}"#;
    let headers = vec![
        (
            "X-Hub-Signature-256".to_string(),
            crate::inbound::github_signature("gh-reseal-secret-42", body),
        ),
        ("X-GitHub-Event".to_string(), "ping".to_string()),
    ];
    let (status, answer, _) = crate::inbound::post_in(&new_only, gh["id"].as_str().unwrap(), &headers, body).await;
    assert_eq!(status, 200, "{answer}");
}
