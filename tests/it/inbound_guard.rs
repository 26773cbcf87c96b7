//! The inbound gateway's guards: who may post (allowlist, trusted proxies), how fast (rate
//! limit), with which secret (rotation), what the sources API refuses, and bad input on `/in/`.

use crate::inbound::*;
use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};

fn github_headers(secret: &str, body: &[u8]) -> Headers {
    vec![
        ("X-Hub-Signature-256".into(), github_signature(secret, body)),
        ("X-GitHub-Event".into(), "push".into()),
        ("X-GitHub-Delivery".into(), format!("d-{}", unix_now_nanos())),
    ]
}

#[tokio::test]
async fn the_allowlist_holds_with_and_without_a_trusted_proxy() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("inbound-ips");
    let direct = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let proxied =
        Node::start_ready(&NodeOpts::new(&redis, &prefix).set("server__trusted_proxies", "[\"127.0.0.0/8\"]")).await;
    let source = create_source(
        &direct,
        "ips",
        json!({"name": "partner", "kind": "none", "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]}),
    )
    .await;
    let id = source["id"].as_str().unwrap();
    let xff = |ip: &str| vec![("X-Forwarded-For".to_string(), ip.to_string())];
    let before = stored_event_count(&direct);

    // Straight from loopback: not in the list; a forwarded header proves nothing here.
    let (status, answer, _) = post_in(&direct, id, &vec![], b"{}").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("ip_not_allowed")),
        "{answer}"
    );
    assert_eq!(
        post_in(&direct, id, &xff("203.0.113.9"), b"{}").await.0,
        403,
        "a spoofed X-Forwarded-For passed"
    );

    // Behind a trusted proxy: the hop it added is the caller.
    let (status, answer, _) = post_in(&proxied, id, &xff("203.0.113.9"), b"{\"n\":1}").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(post_in(&proxied, id, &xff("2001:db8::7"), b"{\"n\":2}").await.0, 200);
    assert_eq!(post_in(&proxied, id, &xff("198.51.100.1"), b"{}").await.0, 403);
    // A hop the caller wrote left of the proxy's is not believed.
    assert_eq!(
        post_in(&proxied, id, &xff("203.0.113.9, 198.51.100.1"), b"{}").await.0,
        403
    );
    assert_eq!(stored_event_count(&direct), before + 2);

    let logged = rejections(&direct, "ips", id).await;
    let ips: Vec<&str> = logged.iter().map(|r| r["ip"].as_str().unwrap()).collect();
    assert_eq!(ips, ["198.51.100.1", "198.51.100.1", "127.0.0.1", "127.0.0.1"]);
    assert!(logged
        .iter()
        .all(|r| r["reason"] == "ip_not_allowed" && r["status"] == 403));
}

#[tokio::test]
async fn over_its_rate_a_source_answers_429_and_stores_nothing() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-rate"))).await;
    let source = create_source(
        &node,
        "rate",
        json!({"name": "r", "kind": "none", "rate_limit_per_s": 5}),
    )
    .await;
    let id = source["id"].as_str().unwrap().to_string();
    let before = stored_event_count(&node);
    let posts = (0..40).map(|i| {
        let (base, id) = (node.api.base.clone(), id.clone());
        async move { post_to(&base, &id, &vec![], format!("{{\"n\":{i}}}").as_bytes()).await }
    });
    let started = std::time::Instant::now();
    let answers = futures_join_all(posts).await;
    // The wall-clock seconds the burst can have touched: at most 5 accepted in each.
    let seconds = started.elapsed().as_secs() as usize + 2;
    let accepted = answers.iter().filter(|(s, _, _)| *s == 200).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(accepted + limited.len(), 40, "only 200 or 429");
    assert!(
        accepted >= 5 && accepted <= 5 * seconds,
        "{accepted} accepted over at most {seconds} s"
    );
    for (_, answer, headers) in &limited {
        assert_eq!(answer["error"]["code"], "rate_limited");
        assert_eq!(headers["retry-after"], "1");
    }
    assert_eq!(stored_event_count(&node), before + accepted as u64);
    // The first refusal of each second is logged, not all of them.
    let logged = rejections(&node, "rate", &id).await;
    assert!((1..=seconds).contains(&logged.len()), "{logged:?}");
    assert_eq!(logged[0]["reason"], "rate_limited");
    assert_eq!(logged[0]["status"], 429);
}

#[tokio::test]
async fn during_a_rotation_both_secrets_verify_then_only_the_new_one() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-rotate"))).await;
    let source = create_source(
        &node,
        "rot",
        json!({"name": "gh", "kind": "github", "secret": "old-secret"}),
    )
    .await;
    let id = source["id"].as_str().unwrap();
    let path = format!("/v1/tenants/rot/sources/{id}/rotate-secret");
    let body = br#"{"ref":"main"}"#;

    // The node mints a new secret; the old one keeps verifying for the overlap.
    let (status, rotated) = node
        .api
        .call(Method::POST, &format!("{path}?overlap_s=600"), None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let minted = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(minted, "old-secret");
    assert_eq!(
        post_in(&node, id, &github_headers("old-secret", body), body).await.0,
        200
    );
    assert_eq!(post_in(&node, id, &github_headers(&minted, body), body).await.0, 200);

    // The provider's own new secret, with no overlap: only it verifies now.
    let (status, rotated) = node
        .api
        .call(
            Method::POST,
            &format!("{path}?overlap_s=0"),
            Some(json!({"secret": "provider-new"})),
        )
        .await;
    assert_eq!((status, rotated["secret"].as_str()), (200, Some("provider-new")));
    assert_eq!(
        post_in(&node, id, &github_headers("provider-new", body), body).await.0,
        200
    );
    // The minted one was rotated out with no overlap; the first one's overlap still runs.
    assert_eq!(post_in(&node, id, &github_headers(&minted, body), body).await.0, 401);
    assert_eq!(
        post_in(&node, id, &github_headers("old-secret", body), body).await.0,
        200
    );
    let (_, shown) = node.api.get(&format!("/v1/tenants/rot/sources/{id}")).await;
    assert_eq!(shown["secret"], "provider-new");

    // Stripe issues its own secrets: the node cannot mint one; a kind without a secret has none.
    let stripe = create_source(
        &node,
        "rot",
        json!({"name": "s", "kind": "stripe", "secret": "whsec_x"}),
    )
    .await;
    let (status, answer) = node
        .api
        .call(
            Method::POST,
            &format!(
                "/v1/tenants/rot/sources/{}/rotate-secret",
                stripe["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("secret: required"),
        "{answer}"
    );
    let open = create_source(&node, "rot", json!({"name": "o", "kind": "none"})).await;
    let (status, _) = node
        .api
        .call(
            Method::POST,
            &format!("/v1/tenants/rot/sources/{}/rotate-secret", open["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn the_sources_api_refuses_wrong_combinations_naming_the_field() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-api"))).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "x"}), "kind"),
        (json!({"kind": "none"}), "name"),
        (json!({"name": "x", "kind": "stripe"}), "secret"),
        (
            json!({"name": "x", "kind": "basic", "basic": {"username": "u", "password": "p"}, "secret": "s"}),
            "secret",
        ),
        (json!({"name": "x", "kind": "none", "secret": null}), "secret"),
        (json!({"name": "x", "kind": "hmac", "secret": "s"}), "hmac"),
        (
            json!({"name": "x", "kind": "github", "secret": "s", "hmac": {"header": "X-S"}}),
            "hmac",
        ),
        (json!({"name": "x", "kind": "basic"}), "basic"),
        (json!({"name": "x", "kind": "api_key"}), "api_key"),
        (
            json!({"name": "x", "kind": "standard_webhooks", "secret": "plain"}),
            "secret",
        ),
        (
            json!({"name": "x", "kind": "stripe", "secret": "s", "dedup_header": "X-Id"}),
            "dedup_header",
        ),
        (
            json!({"name": "x", "kind": "none", "allowed_ips": ["10.0.0.0/33"]}),
            "allowed_ips",
        ),
        (json!({"name": "x", "kind": "none", "tolerance_s": 0}), "tolerance_s"),
        (
            json!({"name": "x", "kind": "none", "type_prefix": "a b"}),
            "type_prefix",
        ),
        (
            json!({"name": "x", "kind": "none", "rate_limit_per_s": 0}),
            "rate_limit_per_s",
        ),
        (
            json!({"name": "x", "kind": "none", "dedup_window_s": 0}),
            "dedup_window_s",
        ),
        (json!({"name": "x", "kind": "none", "colour": "red"}), "colour"),
        (json!({"name": "x", "kind": "carrier-pigeon"}), "kind"),
        (
            json!({"name": "x", "kind": "basic", "basic": {"username": "u", "password": "p"}, "dedup_header": "Authorization"}),
            "dedup_header",
        ),
        (
            json!({"name": "x", "kind": "api_key", "api_key": {"value": " padded"}}),
            "api_key.value",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = node.api.post("/v1/tenants/api/sources", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message:?} does not name {field}");
    }

    // Listing pages oldest first; PATCH re-checks the whole; another tenant sees nothing.
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(create_source(&node, "api", json!({"name": format!("s{n}"), "kind": "none"})).await["id"].clone());
    }
    let (_, page) = node.api.get("/v1/tenants/api/sources?limit=2").await;
    assert_eq!(
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].clone())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    let (_, rest) = node
        .api
        .get(&format!(
            "/v1/tenants/api/sources?cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest["data"][0]["id"], ids[2]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let one = format!("/v1/tenants/api/sources/{}", ids[0].as_str().unwrap());
    // Against the stored source: 409 (the new kind needs a secret; a none source takes no scheme).
    let (status, answer) = node
        .api
        .call(Method::PATCH, &one, Some(json!({"kind": "github"})))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with("secret"),
        "{answer}"
    );
    let (status, answer) = node
        .api
        .call(Method::PATCH, &one, Some(json!({"hmac": {"header": "X-S"}})))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with("hmac"),
        "{answer}"
    );
    // On its own: 400 (a value wrong in itself; a field the named kind does not use; a struct
    // written as an array).
    let (status, answer) = node
        .api
        .call(Method::PATCH, &one, Some(json!({"tolerance_s": 0})))
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = node
        .api
        .call(Method::PATCH, &one, Some(json!({"kind": "none", "secret": "s"})))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with("secret"),
        "{answer}"
    );
    assert_eq!(
        node.api.call(Method::PATCH, &one, Some(json!([null, null]))).await.0,
        400
    );
    let (status, patched) = node
        .api
        .call(
            Method::PATCH,
            &one,
            Some(json!({"kind": "github", "secret": "s", "type_prefix": "gh."})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["kind"].as_str(), patched["type_prefix"].as_str()),
        (Some("github"), Some("gh."))
    );
    // Back to basic: the GitHub secret is dropped with the kind.
    let (status, patched) = node
        .api
        .call(
            Method::PATCH,
            &one,
            Some(json!({"kind": "basic", "basic": {"username": "u", "password": "p"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["secret"], Value::Null);
    assert_eq!(node.api.get(&one.replace("/api/", "/other/")).await.0, 404);
}

#[tokio::test]
async fn bad_input_on_the_public_door_gets_a_json_error_and_costs_nothing() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("inbound-bad"))).await;
    let stripe = create_source(&node, "bad", json!({"name": "s", "kind": "stripe", "secret": "sk"})).await;
    let github = create_source(&node, "bad", json!({"name": "g", "kind": "github", "secret": "gk"})).await;
    let (stripe, github) = (stripe["id"].as_str().unwrap(), github["id"].as_str().unwrap());
    let huge = "x".repeat(100 * 1024);
    let big_body = vec![b'{'; 262_144 + 1];
    let h = |pairs: &[(&str, &str)]| -> Headers { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    let cases: Vec<(&str, &str, Headers, Vec<u8>, u16)> = vec![
        (
            "malformed stripe header",
            stripe,
            h(&[("Stripe-Signature", "t=abc,v1=zz")]),
            b"{}".to_vec(),
            401,
        ),
        (
            "stripe header without v1",
            stripe,
            h(&[("Stripe-Signature", "t=1")]),
            b"{}".to_vec(),
            401,
        ),
        (
            "stripe header of commas",
            stripe,
            h(&[("Stripe-Signature", ",,,=,")]),
            b"{}".to_vec(),
            401,
        ),
        (
            "github header not hex",
            github,
            h(&[("X-Hub-Signature-256", "sha256=xyz")]),
            b"{}".to_vec(),
            401,
        ),
        (
            "github header without prefix",
            github,
            h(&[("X-Hub-Signature-256", "00ff")]),
            b"{}".to_vec(),
            401,
        ),
        (
            "a huge signature header",
            github,
            h(&[("X-Hub-Signature-256", &huge)]),
            b"{}".to_vec(),
            401,
        ),
        (
            "a non-UTF-8 body",
            github,
            h(&[("X-Hub-Signature-256", "sha256=00")]),
            vec![0xff, 0xfe, 0x80],
            401,
        ),
        ("an empty body", stripe, h(&[]), Vec::new(), 401),
        ("a body over max_payload_bytes", github, h(&[]), big_body, 413),
        (
            "an unknown source",
            "src_00000000000000000000",
            h(&[]),
            b"{}".to_vec(),
            404,
        ),
        ("a malformed source id", "not-a-source", h(&[]), b"{}".to_vec(), 404),
    ];
    let before = stored_event_count(&node);
    for (what, source, headers, body, expected) in &cases {
        let (status, answer, _) = post_in(&node, source, headers, body).await;
        assert_eq!(status, *expected, "{what}: {answer}");
        assert!(
            answer["error"]["code"].is_string(),
            "{what}: not the JSON error shape: {answer}"
        );
    }
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let (status, answer, _) = node
            .api
            .with_token(None)
            .raw(method.clone(), &format!("/in/{stripe}"), None, None)
            .await;
        assert_eq!(status, 405, "{method}: {answer}");
        assert_eq!(answer["error"]["code"], "method_not_allowed");
    }
    assert_eq!(stored_event_count(&node), before, "bad input stored something");
    let reasons: Vec<String> = rejections(&node, "bad", github)
        .await
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(reasons.contains(&"payload_too_large".to_string()), "{reasons:?}");
    assert!(reasons.contains(&"malformed_header".to_string()), "{reasons:?}");
    // The node is still fine.
    assert!(node.api.ready().await);
}
