//! A table of bad inputs for every route: each gets the right 4xx and the JSON error shape,
//! and the node stays healthy and delivers afterwards.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const JSON: Option<&str> = Some("application/json");

/// method, path, body, content type, expected status, error code, text the message must contain
type Case<'a> = (Method, String, Option<String>, Option<&'a str>, u16, &'a str, &'a str);

#[tokio::test]
async fn bad_input_gets_a_clear_json_error_and_costs_nothing() {
    let redis = shared_redis_url();
    let node =
        Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("bad")).set("ingest__max_payload_bytes", "2048")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ep = api
        .create_endpoint("v", json!({"url": sink.url("ok/v"), "event_types": ["good.*"]}))
        .await;
    let ep_id = ep["id"].as_str().unwrap();
    let accepted = api.post_event("v", "good.before", json!({})).await.unwrap();

    let big = format!(r#"{{"type":"good.big","payload":"{}"}}"#, "x".repeat(5_000));
    let ep_path = format!("/v1/tenants/v/endpoints/{ep_id}");
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some("{".into()),
            JSON,
            400,
            "invalid_json",
            "",
        ),
        // An event written as an array of its fields (serde would take it as the struct).
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"["good.array", {}]"#.into()),
            JSON,
            400,
            "invalid_request",
            "JSON object",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events/batch".into(),
            Some(r#"[[{"type": "good.array", "payload": {}}]]"#.into()),
            JSON,
            400,
            "invalid_request",
            "JSON object",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"{"type":"a.b","payload":{}}"#.into()),
            Some("text/plain"),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            None,
            None,
            415,
            "unsupported_media_type",
            "",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"{"payload":{}}"#.into()),
            JSON,
            400,
            "invalid_request",
            "type",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"{"type":"a.b"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "payload",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"{"type":"has space","payload":{}}"#.into()),
            JSON,
            400,
            "invalid_request",
            "type",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"{"type":7,"payload":{}}"#.into()),
            JSON,
            400,
            "invalid_request",
            "type",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"{"type":"a.b","payload":{},"extra":1}"#.into()),
            JSON,
            400,
            "invalid_request",
            "extra",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"{"type":"a.b","payload":{},"idempotency_key":""}"#.into()),
            JSON,
            400,
            "invalid_request",
            "idempotency_key",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(r#"[1,2]"#.into()),
            JSON,
            400,
            "invalid_request",
            "",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events".into(),
            Some(big),
            JSON,
            413,
            "payload_too_large",
            "",
        ),
        (
            Method::POST,
            "/v1/tenants/bad%20tenant/events".into(),
            Some(r#"{"type":"a.b","payload":{}}"#.into()),
            JSON,
            400,
            "invalid_request",
            "tenant",
        ),
        (
            Method::GET,
            "/v1/tenants/v/events/evt_nope".into(),
            None,
            None,
            404,
            "not_found",
            "event",
        ),
        (
            Method::GET,
            "/v1/tenants/v/events/evt_00000000000000000000000000".into(),
            None,
            None,
            404,
            "not_found",
            "event",
        ),
        (
            Method::DELETE,
            "/v1/tenants/v/events".into(),
            None,
            None,
            405,
            "method_not_allowed",
            "",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some("{}".into()),
            JSON,
            400,
            "invalid_request",
            "url",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"ftp://x.example"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "url",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"not a url"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "url",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","event_types":[]}"#.into()),
            JSON,
            400,
            "invalid_request",
            "event_types",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","event_types":["a*"]}"#.into()),
            JSON,
            400,
            "invalid_request",
            "event_types",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","secret":"whsec_short"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "secret",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","rate_limit_per_s":0}"#.into()),
            JSON,
            400,
            "invalid_request",
            "rate_limit_per_s",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","max_in_flight":-1}"#.into()),
            JSON,
            400,
            "invalid_request",
            "max_in_flight",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","timeout_ms":1}"#.into()),
            JSON,
            400,
            "invalid_request",
            "timeout_ms",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","headers":{"webhook-id":"x"}}"#.into()),
            JSON,
            400,
            "invalid_request",
            "headers",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","headers":{"bad name":"x"}}"#.into()),
            JSON,
            400,
            "invalid_request",
            "headers",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","ordered":"yes"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "ordered",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints".into(),
            Some(r#"{"url":"https://x.example","colour":"red"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "colour",
        ),
        (
            Method::GET,
            "/v1/tenants/v/endpoints?limit=0".into(),
            None,
            None,
            400,
            "invalid_request",
            "limit",
        ),
        (
            Method::GET,
            "/v1/tenants/v/endpoints?limit=501".into(),
            None,
            None,
            400,
            "invalid_request",
            "limit",
        ),
        (
            Method::GET,
            "/v1/tenants/v/endpoints?cursor=zzz".into(),
            None,
            None,
            400,
            "invalid_request",
            "cursor",
        ),
        (
            Method::GET,
            "/v1/tenants/v/endpoints/ep_missing".into(),
            None,
            None,
            404,
            "not_found",
            "endpoint",
        ),
        (
            Method::PATCH,
            ep_path.clone(),
            Some(r#"{"url":"gopher://x"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "url",
        ),
        (
            Method::PATCH,
            ep_path.clone(),
            Some(r#"{"id":"ep_other"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "id",
        ),
        (
            Method::PATCH,
            ep_path.clone(),
            Some("nope".into()),
            JSON,
            400,
            "invalid_json",
            "",
        ),
        (
            Method::PUT,
            ep_path.clone(),
            Some("{}".into()),
            JSON,
            405,
            "method_not_allowed",
            "",
        ),
        (
            Method::DELETE,
            "/v1/tenants/v/endpoints/ep_missing".into(),
            None,
            None,
            404,
            "not_found",
            "endpoint",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints/ep_missing/enable".into(),
            None,
            None,
            404,
            "not_found",
            "endpoint",
        ),
        (
            Method::GET,
            format!("{ep_path}/dead-letters?limit=0"),
            None,
            None,
            400,
            "invalid_request",
            "limit",
        ),
        (
            Method::GET,
            "/v1/tenants/v/endpoints/ep_missing/dead-letters".into(),
            None,
            None,
            404,
            "not_found",
            "endpoint",
        ),
        (
            Method::POST,
            format!("{ep_path}/dead-letters/replay"),
            Some("{nope".into()),
            JSON,
            400,
            "invalid_json",
            "",
        ),
        (
            Method::POST,
            format!("{ep_path}/dead-letters/replay"),
            Some(r#"{"until":"x"}"#.into()),
            JSON,
            400,
            "invalid_json",
            "until",
        ),
        (
            Method::POST,
            format!("{ep_path}/dead-letters/replay"),
            Some(r#"{"since":"2026-13-45"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "since",
        ),
        (
            Method::POST,
            format!("{ep_path}/dead-letters/replay"),
            Some(format!(r#"{{"since":"{}"}}"#, " ".repeat(20_000))),
            JSON,
            413,
            "payload_too_large",
            "",
        ),
        (
            Method::POST,
            "/v1/tenants/v/deliveries/dlv_nope/replay".into(),
            None,
            None,
            404,
            "not_found",
            "delivery",
        ),
        (
            Method::GET,
            "/v1/tenants/v/deliveries/dlv_nope".into(),
            None,
            None,
            404,
            "not_found",
            "delivery",
        ),
        (
            Method::GET,
            "/v1/tenants/v/deliveries?status=lost".into(),
            None,
            None,
            400,
            "invalid_request",
            "status",
        ),
        (
            Method::GET,
            "/v1/tenants/v/deliveries?endpoint_id=ep_missing".into(),
            None,
            None,
            404,
            "not_found",
            "endpoint",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events/batch".into(),
            Some(r#"{"events":[]}"#.into()),
            JSON,
            400,
            "invalid_request",
            "events",
        ),
        (
            Method::POST,
            "/v1/tenants/v/events/batch".into(),
            Some(r#"{"events":"many"}"#.into()),
            JSON,
            400,
            "invalid_request",
            "events",
        ),
        (
            Method::POST,
            format!("{ep_path}/rotate-secret?overlap_s=-1"),
            None,
            None,
            400,
            "invalid_request",
            "overlap_s",
        ),
        (
            Method::POST,
            "/v1/tenants/v/endpoints/ep_missing/test".into(),
            None,
            None,
            404,
            "not_found",
            "endpoint",
        ),
        (
            Method::POST,
            "/v1/tenants/v/keys".into(),
            Some("{}".into()),
            JSON,
            201,
            "",
            "",
        ),
        (
            Method::POST,
            "/v1/tenants/bad!/keys".into(),
            None,
            None,
            400,
            "invalid_request",
            "tenant",
        ),
        (
            Method::GET,
            "/v2/nothing".into(),
            None,
            None,
            404,
            "not_found",
            "/v2/nothing",
        ),
        (
            Method::POST,
            "/healthz".into(),
            None,
            None,
            405,
            "method_not_allowed",
            "",
        ),
    ];
    for (method, path, body, ct, status, code, needle) in cases {
        let (got, answer, _) = api.raw(method.clone(), &path, body.as_deref(), ct).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {answer}");
        if status >= 400 {
            assert_eq!(answer["error"]["code"], code, "{method} {path} {body:?}: {answer}");
            let message = answer["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no message in {answer}"));
            assert!(
                message.contains(needle),
                "{method} {path}: message {message:?} should name {needle:?}"
            );
        }
    }

    // Whole numbers may be spelled as JSON floats (`12.0`): JSON Schema's `integer` admits both.
    let body =
        json!({"url": sink.url("ok/len"), "timeout_ms": 500.0, "retry_schedule_s": [1.0, 2], "rate_limit_per_s": 3.0});
    let (got, answer) = api.post("/v1/tenants/len/endpoints", body).await;
    assert_eq!(got, 201, "{answer}");
    assert_eq!(
        (
            &answer["timeout_ms"],
            &answer["retry_schedule_s"],
            &answer["rate_limit_per_s"]
        ),
        (&json!(500), &json!([1, 2]), &json!(3))
    );
    for bad in [json!(500.5), json!(-1), json!(1e300), json!(4294967296u64)] {
        let body = json!({"url": sink.url("ok/len"), "max_in_flight": bad});
        let (got, answer) = api.post("/v1/tenants/len/endpoints", body).await;
        assert_eq!(got, 400, "max_in_flight {bad}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("max_in_flight"),
            "{answer}"
        );
    }

    // The Idempotency-Key header is checked whenever it is sent, even beside the body's key.
    let http = reqwest::Client::new();
    for (header, body_key, status) in [
        ("", Some("k1"), 400),
        (&*"h".repeat(257), Some("k2"), 400),
        (&*"h".repeat(257), None, 400),
        ("h-ok", Some("k3"), 202),
        (&*"h".repeat(256), None, 202),
    ] {
        let mut body = json!({"type": "len.key", "payload": {}});
        if let Some(k) = body_key {
            body["idempotency_key"] = json!(k);
        }
        let resp = http
            .post(format!("{}/v1/tenants/len/events", api.base))
            .bearer_auth(ADMIN)
            .header("idempotency-key", header)
            .json(&body)
            .send()
            .await
            .unwrap();
        let got = resp.status().as_u16();
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(got, status, "header {header:?} with body key {body_key:?}: {answer}");
        if status == 400 {
            assert!(
                answer["error"]["message"].as_str().unwrap().contains("Idempotency-Key"),
                "{answer}"
            );
        }
    }

    // Length limits count characters (as the document's maxLength does), not UTF-8 bytes.
    let long = |n: usize| "é".repeat(n);
    for (n, status) in [(1024, 201), (1025, 400)] {
        let body = json!({"url": sink.url("ok/len"), "description": long(n)});
        let (got, answer) = api.post("/v1/tenants/len/endpoints", body).await;
        assert_eq!(got, status, "description of {n} characters: {answer}");
    }
    for (n, status) in [(4096, 201), (4097, 400)] {
        let body = json!({"url": sink.url("ok/len"), "headers": {"x-long": long(n)}});
        let (got, answer) = api.post("/v1/tenants/len/endpoints", body).await;
        assert_eq!(got, status, "header value of {n} characters: {answer}");
    }
    for (n, status) in [(256, 202), (257, 400)] {
        let body = json!({"type": "len.key", "payload": {}, "idempotency_key": long(n)});
        let (got, answer) = api.post("/v1/tenants/len/events", body).await;
        assert_eq!(got, status, "idempotency key of {n} characters: {answer}");
    }

    // SSRF default: a node without allow_private_networks refuses literal private addresses.
    let strict = Node::start_ready(
        &NodeOpts::new(&redis, &unique_prefix("ssrf")).set("delivery__allow_private_networks", "false"),
    )
    .await;
    for url in [
        "http://127.0.0.1/x",
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "http://localhost:8080/x",
        "http://192.168.1.1/x",
    ] {
        let (status, body) = strict.api.post("/v1/tenants/v/endpoints", json!({"url": url})).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("url"), "{body}");
    }
    let (status, _) = strict
        .api
        .post("/v1/tenants/v/endpoints", json!({"url": "https://hooks.example.com/x"}))
        .await;
    assert_eq!(status, 201);

    // Still healthy, and what was accepted before is delivered, and new events too.
    assert!(api.ready().await);
    let after = api.post_event("v", "good.after", json!({})).await.unwrap();
    wait_for(Duration::from_secs(10), "deliveries after the bad input", || {
        let ids = sink.delivered_ids("v");
        ids.contains(&accepted) && ids.contains(&after)
    })
    .await;
    assert!(
        node.logs().iter().all(|l| !l.contains("panicked")),
        "a request made the node panic"
    );
}

/// `delivery.require_https`: an `http://` URL is refused by name; `https://` is taken (the node
/// connects to nothing when an endpoint is created).
#[tokio::test]
async fn with_require_https_an_http_url_is_refused() {
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("https-only"))
        .set("delivery__require_https", "true")
        .set("delivery__allow_private_networks", "false");
    let node = Node::start_ready(&opts).await;
    let (status, answer) = node
        .api
        .post(
            "/v1/tenants/h/endpoints",
            json!({"url": "http://receiver.example/hook"}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with("url:"),
        "{answer}"
    );
    let ep = node
        .api
        .create_endpoint("h", json!({"url": "https://receiver.example/hook"}))
        .await;
    let path = format!("/v1/tenants/h/endpoints/{}", ep["id"].as_str().unwrap());
    let (status, _) = node
        .api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"url": "http://receiver.example/hook"})),
        )
        .await;
    assert_eq!(status, 400, "a PATCH may not bring http back either");
}

/// An endpoint stored with an `http://` URL before `require_https` was set keeps working and
/// can still be changed in every other field.
#[tokio::test]
async fn an_http_endpoint_from_before_require_https_can_still_be_changed() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("https-later"));
    let before = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let ep = before
        .api
        .create_endpoint("h", json!({"url": "http://receiver.example/hook"}))
        .await;
    drop(before);
    let opts = NodeOpts::new(&redis, &prefix)
        .set("delivery__require_https", "true")
        .set("delivery__allow_private_networks", "false");
    let after = Node::start_ready(&opts).await;
    let path = format!("/v1/tenants/h/endpoints/{}", ep["id"].as_str().unwrap());
    let (status, answer) = after
        .api
        .call(Method::PATCH, &path, Some(json!({"description": "kept"})))
        .await;
    assert_eq!(status, 200, "{answer}");
}
