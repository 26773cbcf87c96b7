//! The inbound gateway end to end: sources over the API, provider-signed requests on
//! `/in/{id}` (signed here by code independent of the node's, and for Standard Webhooks by the
//! `standardwebhooks` reference library), storage, dedup, delivery to the tenant's endpoints.

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Sha256, Sha512};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn hmac256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub type Headers = Vec<(String, String)>;

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `Stripe-Signature` as Stripe writes it.
pub fn stripe_signature(secret: &str, t: u64, body: &[u8]) -> String {
    let signed = [format!("{t}.").as_bytes(), body].concat();
    format!("t={t},v1={}", hex(&hmac256(secret.as_bytes(), &signed)))
}

/// `X-Hub-Signature-256` as GitHub writes it.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac256(secret.as_bytes(), body)))
}

/// The Standard Webhooks signature, from the reference library (`standardwebhooks` on PyPI).
pub fn standard_webhooks_signature(secret: &str, id: &str, t: u64, body: &str) -> String {
    use std::io::Write;
    const SIGN: &str = "import sys\nfrom datetime import datetime, timezone\nfrom standardwebhooks import Webhook\n\
        secret, msg_id, ts = sys.argv[1:4]\n\
        print(Webhook(secret).sign(msg_id, datetime.fromtimestamp(int(ts), tz=timezone.utc), sys.stdin.read()))";
    let mut child = std::process::Command::new(python_tools().join("python"))
        .args(["-c", SIGN, secret, id, &t.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the standardwebhooks library");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "standardwebhooks failed to sign");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// POST raw bytes to `/in/{source}`; status, JSON answer, headers.
pub async fn post_in(
    node: &Node,
    source: &str,
    headers: &Headers,
    body: &[u8],
) -> (u16, Value, reqwest::header::HeaderMap) {
    post_to(&node.api.base, source, headers, body).await
}

pub async fn post_to(
    base: &str,
    source: &str,
    headers: &Headers,
    body: &[u8],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().post(format!("{base}/in/{source}"));
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.body(body.to_vec()).send().await.unwrap();
    let (status, head) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), head)
}

pub async fn create_source(node: &Node, tenant: &str, body: Value) -> Value {
    let (status, source) = node.api.post(&format!("/v1/tenants/{tenant}/sources"), body).await;
    assert_eq!(status, 201, "{source}");
    source
}

pub async fn rejections(node: &Node, tenant: &str, source: &str) -> Vec<Value> {
    let (status, list) = node
        .api
        .get(&format!("/v1/tenants/{tenant}/sources/{source}/rejections"))
        .await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().unwrap().clone()
}

/// Headers of a request signed with a secret (or credential), for a body, at a Unix time.
type Signer = Box<dyn Fn(&str, &[u8], u64) -> Headers>;

/// One kind: its source, a correctly signed request, and the type the event must get.
struct Kind {
    source: Value,
    sign: Signer,
    body: &'static str,
    event_type: &'static str,
}

const STRIPE_BODY: &str = r#"{"id":"evt_1Nabc","type":"invoice.paid","data":{"object":{"amount":1200}}}"#;
const GITHUB_BODY: &str = r#"{"action":"opened","issue":{"number":7}}"#;
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Every kind, with the secret it signs with.
fn kinds() -> Vec<(Kind, &'static str)> {
    vec![
        (
            Kind {
                source: json!({"name": "stripe-live", "kind": "stripe", "secret": "whsec_stripe_test", "type_prefix": "stripe."}),
                sign: Box::new(|secret, body, t| h(&[("Stripe-Signature", &stripe_signature(secret, t, body))])),
                body: STRIPE_BODY,
                event_type: "stripe.invoice.paid",
            },
            "whsec_stripe_test",
        ),
        (
            Kind {
                source: json!({"name": "gh", "kind": "github", "secret": "gh-secret", "type_prefix": "github."}),
                sign: Box::new(|secret, body, _| {
                    h(&[
                        ("X-Hub-Signature-256", &github_signature(secret, body)),
                        ("X-GitHub-Event", "issues"),
                        ("X-GitHub-Delivery", &format!("d-{}", unix_now_nanos())),
                    ])
                }),
                body: GITHUB_BODY,
                event_type: "github.issues.opened",
            },
            "gh-secret",
        ),
        (
            Kind {
                source: json!({"name": "shop", "kind": "shopify", "secret": "shpss_1", "type_prefix": "shopify."}),
                sign: Box::new(|secret, body, _| {
                    h(&[
                        (
                            "X-Shopify-Hmac-Sha256",
                            &STANDARD.encode(hmac256(secret.as_bytes(), body)),
                        ),
                        ("X-Shopify-Topic", "orders/create"),
                        ("X-Shopify-Webhook-Id", &format!("w-{}", unix_now_nanos())),
                    ])
                }),
                body: r#"{"id":820982911946154500,"total_price":"9.99"}"#,
                event_type: "shopify.orders.create",
            },
            "shpss_1",
        ),
        (
            Kind {
                source: json!({"name": "partner-sw", "kind": "standard_webhooks", "secret": SW_SECRET, "type_prefix": "sw."}),
                sign: Box::new(|secret, body, t| {
                    let id = format!("msg_{}", unix_now_nanos());
                    let body = std::str::from_utf8(body).unwrap_or("\u{fffd}");
                    let signature = standard_webhooks_signature(secret, &id, t, body);
                    h(&[
                        ("webhook-id", &id),
                        ("webhook-timestamp", &t.to_string()),
                        ("webhook-signature", &signature),
                    ])
                }),
                body: r#"{"type":"user.created","data":{"id":1}}"#,
                event_type: "sw.user.created",
            },
            SW_SECRET,
        ),
        (
            Kind {
                source: json!({"name": "partner-hmac", "kind": "hmac", "secret": "p-secret", "type_prefix": "partner.",
                    "hmac": {"header": "X-Partner-Signature", "algorithm": "sha512", "encoding": "base64", "prefix": "sha512="}}),
                sign: Box::new(|secret, body, _| {
                    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).unwrap();
                    mac.update(body);
                    let signature = format!("sha512={}", STANDARD.encode(mac.finalize().into_bytes()));
                    h(&[("X-Partner-Signature", &signature)])
                }),
                body: r#"{"hello":"partner"}"#,
                event_type: "partner.inbound",
            },
            "p-secret",
        ),
        (
            Kind {
                source: json!({"name": "basic", "kind": "basic", "basic": {"username": "acme", "password": "pw-1"}}),
                sign: Box::new(|password, _, _| {
                    h(&[(
                        "Authorization",
                        &format!("Basic {}", STANDARD.encode(format!("acme:{password}"))),
                    )])
                }),
                body: r#"{"via":"basic"}"#,
                event_type: "inbound",
            },
            "pw-1",
        ),
        (
            Kind {
                source: json!({"name": "keyed", "kind": "api_key", "api_key": {"header": "X-Api-Key", "value": "k-1"}}),
                sign: Box::new(|key, _, _| h(&[("X-Api-Key", key)])),
                body: r#"{"via":"api_key"}"#,
                event_type: "inbound",
            },
            "k-1",
        ),
    ]
}

pub fn unix_now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test]
async fn each_kind_verifies_stores_and_delivers_with_its_type() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-kinds"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let tenant = "receiver";
    node.api
        .create_endpoint(tenant, json!({"url": sink.url("ok/in")}))
        .await;
    let mut expected = Vec::new();
    let mut all = kinds();
    all.push((
        Kind {
            source: json!({"name": "open", "kind": "none"}),
            sign: Box::new(|_, _, _| h(&[("Content-Type", "application/x-www-form-urlencoded")])),
            body: "a=1&b=2",
            event_type: "inbound",
        },
        "",
    ));
    for (kind, secret) in &all {
        let source = create_source(&node, tenant, kind.source.clone()).await;
        let id = source["id"].as_str().unwrap();
        assert_eq!(source["ingest_url"], format!("/in/{id}"));
        let headers = (kind.sign)(secret, kind.body.as_bytes(), unix_now());
        let (status, answer, _) = post_in(&node, id, &headers, kind.body.as_bytes()).await;
        assert_eq!(status, 200, "{}: {answer}", kind.source["kind"]);
        assert_eq!(answer["status"], "success");
        expected.push((answer["id"].as_str().unwrap().to_string(), kind, source["kind"].clone()));
    }
    wait_for(Duration::from_secs(15), "every inbound event delivered", || {
        sink.received_by("in").len() >= expected.len()
    })
    .await;
    for (event_id, kind, source_kind) in &expected {
        let got = sink
            .received_by("in")
            .into_iter()
            .find(|r| r.webhook_id() == event_id)
            .unwrap_or_else(|| panic!("{source_kind} event {event_id} not delivered"));
        let body: Value = serde_json::from_str(&got.body).unwrap();
        assert_eq!(body["type"], kind.event_type, "{source_kind}");
        assert_eq!(body["source"]["kind"], *source_kind);
        let (status, event) = node.api.get(&format!("/v1/tenants/{tenant}/events/{event_id}")).await;
        assert_eq!(status, 200);
        assert_eq!(event["source"]["kind"], *source_kind);
        if *source_kind == "none" {
            // Not JSON: kept as base64 with its content type.
            assert_eq!(event["payload"]["raw"], STANDARD.encode("a=1&b=2"));
            assert_eq!(event["payload"]["content_type"], "application/x-www-form-urlencoded");
        } else {
            let sent: Value = serde_json::from_str(kind.body).unwrap();
            assert_eq!(event["payload"], sent, "{source_kind}");
        }
        let kept = event["source"]["headers"].as_object().unwrap();
        for secret_header in [
            "stripe-signature",
            "x-hub-signature-256",
            "x-shopify-hmac-sha256",
            "webhook-signature",
            "x-partner-signature",
            "authorization",
            "x-api-key",
        ] {
            assert!(!kept.contains_key(secret_header), "{source_kind} kept {secret_header}");
        }
    }
    let github = expected.iter().find(|(_, _, k)| *k == "github").unwrap();
    let (_, event) = node.api.get(&format!("/v1/tenants/{tenant}/events/{}", github.0)).await;
    assert_eq!(event["source"]["headers"]["x-github-event"], "issues");
    assert!(event["source"]["provider_id"].as_str().unwrap().starts_with("d-"));
}

#[tokio::test]
async fn refused_requests_are_401_with_their_reason_and_store_nothing() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-refused"))).await;
    let tenant = "refusing";
    for (kind, secret) in kinds() {
        let name = kind.source["kind"].as_str().unwrap().to_string();
        let source = create_source(&node, tenant, kind.source.clone()).await;
        let id = source["id"].as_str().unwrap();
        let body = kind.body.as_bytes();
        let now = unix_now();
        let mut cases: Vec<(&str, Headers, Vec<u8>, &str)> = Vec::new();
        // One changed byte of the body, under a signature of the original.
        let mut tampered = body.to_vec();
        tampered[2] ^= 0x01;
        let signs_body = !matches!(name.as_str(), "basic" | "api_key");
        if signs_body {
            cases.push((
                "one changed byte",
                (kind.sign)(secret, body, now),
                tampered,
                "signature_mismatch",
            ));
        }
        let wrong = if name == "standard_webhooks" {
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        } else {
            "wrong-secret"
        };
        let wrong_reason = if signs_body {
            "signature_mismatch"
        } else {
            "bad_credentials"
        };
        cases.push((
            "a wrong secret",
            (kind.sign)(wrong, body, now),
            body.to_vec(),
            wrong_reason,
        ));
        // The header that carries the signature or credential, left out.
        let mut missing = (kind.sign)(secret, body, now);
        let carrier = match name.as_str() {
            "standard_webhooks" => "webhook-signature",
            _ => missing[0].0.as_str(),
        }
        .to_string();
        missing.retain(|(k, _)| !k.eq_ignore_ascii_case(&carrier));
        cases.push(("a missing header", missing, body.to_vec(), "missing_header"));
        if matches!(name.as_str(), "stripe" | "standard_webhooks") {
            cases.push((
                "a timestamp 301 s old",
                (kind.sign)(secret, body, now - 301),
                body.to_vec(),
                "timestamp_outside_tolerance",
            ));
        }
        let before = stored_event_count(&node);
        for (what, headers, body, reason) in &cases {
            let (status, answer, _) = post_in(&node, id, headers, body).await;
            assert_eq!(status, 401, "{name}, {what}: {answer}");
            assert_eq!(answer["error"]["code"], *reason, "{name}, {what}: {answer}");
        }
        assert_eq!(
            stored_event_count(&node),
            before,
            "{name}: a refused request stored something"
        );
        let logged = rejections(&node, tenant, id).await;
        assert_eq!(logged.len(), cases.len(), "{name}: {logged:?}");
        // Newest first.
        for ((what, _, _, reason), entry) in cases.iter().rev().zip(&logged) {
            assert_eq!(entry["reason"], *reason, "{name}, {what}");
            assert_eq!(entry["status"], 401);
            assert_eq!(entry["ip"], "127.0.0.1");
            assert!(!entry.to_string().contains(secret), "{name}: the log shows the secret");
        }
        // And the right request still passes.
        let (status, answer, _) = post_in(&node, id, &(kind.sign)(secret, body, now), body).await;
        assert_eq!(status, 200, "{name}: {answer}");
    }
    // Counted by kind and outcome.
    let scrape = reqwest::get(format!("{}/metrics", node.api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |labels: &str| -> f64 {
        let name = format!("hookline_inbound_requests_total{{{labels}}} ");
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(name.as_str()))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    assert_eq!(
        series(r#"kind="stripe",outcome="rejected_timestamp_outside_tolerance""#),
        1.0,
        "{scrape}"
    );
    assert_eq!(series(r#"kind="basic",outcome="rejected_bad_credentials""#), 1.0);
    assert_eq!(series(r#"kind="github",outcome="rejected_signature_mismatch""#), 2.0);
    assert_eq!(series(r#"kind="shopify",outcome="accepted""#), 1.0);
}

#[tokio::test]
async fn fifty_concurrent_posts_of_one_provider_id_store_and_deliver_once() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-dedup"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let tenant = "dedup";
    node.api
        .create_endpoint(
            tenant,
            json!({"url": sink.url("ok/dedup"), "event_types": ["stripe.*"]}),
        )
        .await;
    let source = create_source(
        &node,
        tenant,
        json!({"name": "s", "kind": "stripe", "secret": "sk", "type_prefix": "stripe."}),
    )
    .await;
    let id = source["id"].as_str().unwrap().to_string();
    let body = STRIPE_BODY.as_bytes();
    let headers = h(&[("Stripe-Signature", &stripe_signature("sk", unix_now(), body))]);
    let before = stored_event_count(&node);
    let posts = (0..50).map(|_| {
        let (base, id, headers) = (node.api.base.clone(), id.clone(), headers.clone());
        async move { post_to(&base, &id, &headers, body).await }
    });
    let answers = futures_join_all(posts).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut successes = 0;
    for (status, answer, _) in &answers {
        assert_eq!(*status, 200, "{answer}");
        ids.insert(answer["id"].as_str().unwrap().to_string());
        successes += usize::from(answer["status"] == "success");
    }
    assert_eq!(successes, 1, "exactly one of the 50 is stored");
    assert_eq!(ids.len(), 1, "every duplicate names the first event: {ids:?}");
    assert_eq!(stored_event_count(&node), before + 1);
    wait_for(Duration::from_secs(10), "the delivery", || {
        !sink.received_by("dedup").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.received_by("dedup").len(), 1, "delivered once");
}

/// Run futures at once (the test crate has no `futures`).
pub async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_deleted_source_answers_404_and_stores_nothing() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-deleted"))).await;
    let source = create_source(&node, "t", json!({"name": "gone", "kind": "none"})).await;
    let id = source["id"].as_str().unwrap();
    assert_eq!(post_in(&node, id, &vec![], b"{}").await.0, 200);
    let (status, _) = node
        .api
        .call(Method::DELETE, &format!("/v1/tenants/t/sources/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let before = stored_event_count(&node);
    let (status, answer, _) = post_in(&node, id, &vec![], b"{}").await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "not_found");
    assert_eq!(stored_event_count(&node), before);
    assert_eq!(node.api.get(&format!("/v1/tenants/t/sources/{id}")).await.0, 404);
}
