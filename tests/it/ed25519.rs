//! Ed25519 endpoint signatures (Standard Webhooks `v1a`): every delivery verifies with the
//! endpoint's public key in Python's `cryptography` (not the node's code); a rotation signs
//! with both keys during the overlap; the key itself never leaves the node.

use crate::support::*;
use hookline_loadtest::sink::{Received, Sink};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// Verifies each `v1a,` signature of each request against the public keys given: prints, per
/// request, which keys verified one of its signatures (their indexes).
const VERIFY: &str = r#"
import base64, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
cases = json.load(sys.stdin)
for case in cases:
    keys = [Ed25519PublicKey.from_public_bytes(base64.b64decode(k[len("whpk_"):])) for k in case["keys"]]
    content = f'{case["id"]}.{case["timestamp"]}.{case["body"]}'.encode()
    verified = set()
    for sig in case["signature"].split(" "):
        version, _, value = sig.partition(",")
        if version != "v1a":
            continue
        for i, key in enumerate(keys):
            try:
                key.verify(base64.b64decode(value), content)
                verified.add(i)
            except InvalidSignature:
                pass
    print(json.dumps(sorted(verified)))
"#;

/// For each request, the indexes of `keys` that verified one of its `v1a` signatures.
fn verified_by(requests: &[Received], keys: &[&str]) -> Vec<Vec<usize>> {
    let cases: Vec<Value> = requests
        .iter()
        .map(|r| {
            json!({
                "id": r.headers["webhook-id"],
                "timestamp": r.headers["webhook-timestamp"],
                "signature": r.headers["webhook-signature"],
                "body": r.body,
                "keys": keys,
            })
        })
        .collect();
    let mut child = std::process::Command::new(python_tools().join("python"))
        .args(["-c", VERIFY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!(cases).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the verifier failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn ed25519_deliveries_verify_with_the_public_key_and_rotate_with_an_overlap() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("ed25519"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ep = api
        .create_endpoint(
            "e",
            json!({"url": sink.url("ok/ed"), "signature": {"scheme": "ed25519"}}),
        )
        .await;
    assert_eq!(ep["signature"], json!({"scheme": "ed25519"}));
    assert!(ep.get("secret").is_none(), "the key never leaves the node: {ep}");
    let first_key = ep["public_key"].as_str().unwrap().to_string();
    assert!(first_key.starts_with("whpk_"));
    let path = format!("/v1/tenants/e/endpoints/{}", ep["id"].as_str().unwrap());

    for i in 0..3 {
        api.post_event("e", "a.b", json!({"n": i, "text": "héllo"}))
            .await
            .unwrap();
    }
    wait_for(Duration::from_secs(10), "three deliveries", || {
        sink.received_by("ed").len() == 3
    })
    .await;
    let first = sink.received_by("ed");
    assert!(first.iter().all(|r| r.headers["webhook-signature"].starts_with("v1a,")));
    assert_eq!(verified_by(&first, &[&first_key]), vec![vec![0]; 3]);
    // A key that is not the endpoint's verifies nothing (the check can fail).
    let other = api
        .create_endpoint(
            "e",
            json!({"url": sink.url("ok/other"), "event_types": ["none.*"], "signature": {"scheme": "ed25519"}}),
        )
        .await;
    assert_eq!(
        verified_by(&first, &[other["public_key"].as_str().unwrap()]),
        vec![Vec::<usize>::new(); 3]
    );

    // Rotation: both keys sign during the overlap.
    let (status, rotated) = api.post(&format!("{path}/rotate-secret?overlap_s=60"), json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    assert!(rotated.get("secret").is_none(), "{rotated}");
    let second_key = rotated["public_key"].as_str().unwrap().to_string();
    assert_ne!(second_key, first_key);
    api.post_event("e", "a.b", json!({"n": 3})).await.unwrap();
    wait_for(Duration::from_secs(10), "the fourth delivery", || {
        sink.received_by("ed").len() == 4
    })
    .await;
    let fourth = &sink.received_by("ed")[3..];
    assert_eq!(fourth[0].headers["webhook-signature"].matches("v1a,").count(), 2);
    assert_eq!(verified_by(fourth, &[&first_key, &second_key]), vec![vec![0, 1]]);

    // There is no shared secret to read; a secret does not go with ed25519.
    let (status, answer) = api.get(&format!("{path}/secret")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{answer}"
    );
    let (status, answer) = api
        .post("/v1/tenants/e/endpoints", json!({"url": sink.url("ok/x"), "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "signature": {"scheme": "ed25519"}}))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{answer}"
    );

    // Back to HMAC: a shared secret again, and the ed25519 key signs beside it for a day.
    let (status, back) = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"signature": {"scheme": "hmac_sha256"}})),
        )
        .await;
    assert_eq!(status, 200, "{back}");
    assert!(back["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(back["public_key"], Value::Null);
    api.post_event("e", "a.b", json!({"n": 4})).await.unwrap();
    wait_for(Duration::from_secs(10), "the fifth delivery", || {
        sink.received_by("ed").len() == 5
    })
    .await;
    let fifth = &sink.received_by("ed")[4..];
    let signature = &fifth[0].headers["webhook-signature"];
    assert!(signature.split(' ').any(|s| s.starts_with("v1,")), "{signature}");
    assert_eq!(verified_by(fifth, &[&second_key]), vec![vec![0]]);
}
