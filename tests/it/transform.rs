//! Transformations (issue 21): an endpoint's jq program reshapes each delivery before it is
//! signed and sent, redirects it or cancels it; a failing program dead-letters its delivery
//! (`transform_failed`), and one that loops or crashes harms only its worker process.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const PROGRAM: &str = r#"
if .payload.skip then {cancel: true}
elif .payload.fail then error("refused: \(.payload.fail)")
elif .payload.route then {url: .payload.route, payload: {routed: .id}}
else {
  payload: {text: "\(.type) for \(.payload.customer)", region: .metadata.region,
            team: .endpoint.metadata.team, id: .id},
  headers: {"X-Hook-Region": (.metadata.region // "none")}
} end"#;

/// The delivery of `event` to `endpoint`, once it has ended (`delivered` or `dead`).
async fn settled(api: &Api, tenant: &str, endpoint: &str, event: &str) -> Value {
    let path = format!("/v1/tenants/{tenant}/deliveries/{}", delivery_id(endpoint, event));
    api.get_until(&path, Duration::from_secs(20), |d| {
        matches!(d["status"].as_str(), Some("delivered" | "dead"))
    })
    .await
}

fn delivery_id(endpoint: &str, event: &str) -> String {
    hookline_actors::model::delivery_id(endpoint, event)
}

async fn post(api: &Api, tenant: &str, payload: Value, metadata: Value) -> String {
    let (status, ack) = api
        .post(
            &format!("/v1/tenants/{tenant}/events"),
            json!({"type": "order.paid", "payload": payload, "metadata": metadata}),
        )
        .await;
    assert!(status == 200 || status == 202, "{status} {ack}");
    ack["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_transform_reshapes_signs_redirects_and_cancels_deliveries() {
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("tf")).set("transform__timeout_ms", "1000");
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();

    // A program that does not compile is refused when saved, naming where.
    let (status, refused) = api
        .post(
            "/v1/tenants/tf/endpoints",
            json!({"url": sink.url("ok/main"), "transform": "{payload: .payload"}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("transform: syntax error") && message.contains("line 1"),
        "{message}"
    );
    let (status, refused) = api
        .post(
            "/v1/tenants/tf/endpoints",
            json!({"url": sink.url("ok/main"), "transform": "{payload: $ENV}"}),
        )
        .await;
    assert_eq!(status, 400, "the node's environment is out of reach: {refused}");

    let endpoint = api
        .create_endpoint(
            "tf",
            json!({"url": sink.url("ok/main"), "transform": PROGRAM, "metadata": {"team": "ops"}}),
        )
        .await;
    assert_eq!(endpoint["transform"], PROGRAM);
    let ep = endpoint["id"].as_str().unwrap().to_string();
    let secret = endpoint["secret"].as_str().unwrap();
    sink.set_secret("main", secret);
    sink.set_secret("other", secret);

    let shaped = post(api, "tf", json!({"customer": "acme"}), json!({"region": "eu"})).await;
    let cancelled = post(api, "tf", json!({"skip": true}), json!({})).await;
    let failed = post(api, "tf", json!({"fail": "no stock"}), json!({})).await;
    let routed = post(api, "tf", json!({"route": sink.url("ok/other")}), json!({})).await;

    // Reshaped: the body is the program's payload, signed as sent, with the added header.
    let d = settled(api, "tf", &ep, &shaped).await;
    assert_eq!(d["status"], "delivered", "{d}");
    let got = sink.received_by("main");
    let got = got
        .iter()
        .find(|r| r.webhook_id() == shaped)
        .expect("the reshaped delivery");
    assert_eq!(
        serde_json::from_str::<Value>(&got.body).unwrap(),
        json!({"text": "order.paid for acme", "region": "eu", "team": "ops", "id": shaped})
    );
    assert_eq!(
        got.signature_ok,
        Some(true),
        "the signature covers the transformed body"
    );
    assert_eq!(got.headers.get("x-hook-region").map(String::as_str), Some("eu"));

    // Cancelled: dead at once, nothing sent.
    let d = settled(api, "tf", &ep, &cancelled).await;
    assert_eq!(
        (&d["status"], &d["reason"]),
        (&json!("dead"), &json!("cancelled")),
        "{d}"
    );
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(1), "{d}");

    // The program failed on this event: dead, with its error, never retried.
    let d = settled(api, "tf", &ep, &failed).await;
    assert_eq!(
        (&d["status"], &d["reason"]),
        (&json!("dead"), &json!("transform_failed")),
        "{d}"
    );
    let error = d["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("transform_failed: the program failed") && error.contains("no stock"),
        "{error}"
    );
    let (_, dead) = api.get(&format!("/v1/tenants/tf/endpoints/{ep}/dead-letters")).await;
    let reasons: Vec<&str> = dead["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"transform_failed") && reasons.contains(&"cancelled"),
        "{dead}"
    );

    // Redirected to another URL, signed alike.
    let d = settled(api, "tf", &ep, &routed).await;
    assert_eq!(d["status"], "delivered", "{d}");
    let other = sink.received_by("other");
    assert_eq!(other.len(), 1, "only the routed event went elsewhere");
    assert_eq!(
        serde_json::from_str::<Value>(&other[0].body).unwrap(),
        json!({"routed": routed})
    );
    assert_eq!(other[0].signature_ok, Some(true));
    let main_ids: Vec<String> = sink
        .received_by("main")
        .iter()
        .map(|r| r.webhook_id().to_string())
        .collect();
    assert_eq!(
        main_ids,
        vec![shaped.clone()],
        "cancelled, failed and routed events never reached the endpoint's url"
    );

    // A URL that is not http(s) fails the run (the SSRF guard's part is
    // `a_transform_url_is_checked_by_the_ssrf_guard`).
    let (status, tried) = api
        .post(
            &format!("/v1/tenants/tf/endpoints/{ep}/transform/test"),
            json!({"event": {"type": "order.paid", "payload": {"route": "ftp://example.com/x"}}}),
        )
        .await;
    assert_eq!(status, 200, "{tried}");
    assert!(
        tried["error"]
            .as_str()
            .unwrap()
            .contains("ftp:// is not http:// or https://"),
        "{tried}"
    );

    // The test route runs the stored program, or one given, on an event; nothing is sent.
    let path = format!("/v1/tenants/tf/endpoints/{ep}/transform/test");
    let (status, tried) = api
        .post(
            &path,
            json!({"event": {"id": "evt_x", "type": "order.paid", "payload": {"customer": "zed"}, "metadata": {"region": "us"}}}),
        )
        .await;
    assert_eq!(status, 200, "{tried}");
    assert_eq!(
        tried,
        json!({"output": {
            "payload": {"text": "order.paid for zed", "region": "us", "team": "ops", "id": "evt_x"},
            "headers": {"X-Hook-Region": "us"}}, "cancelled": false, "error": null})
    );
    let (_, tried) = api.post(&path, json!({"event": {"payload": {"skip": true}}})).await;
    assert_eq!(
        (&tried["cancelled"], &tried["error"]),
        (&json!(true), &Value::Null),
        "{tried}"
    );
    let (_, tried) = api
        .post(
            &path,
            json!({"event": {"payload": 1}, "transform": "{payload: (.payload + 1)}"}),
        )
        .await;
    assert_eq!(tried["output"], json!({"payload": 2}), "{tried}");
    let (_, tried) = api.post(&path, json!({"event": {}, "transform": "{header: 1}"})).await;
    assert!(
        tried["error"]
            .as_str()
            .unwrap()
            .contains("may set only payload, headers, url and cancel"),
        "{tried}"
    );
    let (status, tried) = api.post(&path, json!({"event": {}, "transform": "{"})).await;
    assert_eq!(status, 400, "{tried}");
    assert_eq!(sink.received_by("main").len(), 1, "testing sends nothing");

    // Removing it: the next event is the plain Standard Webhooks body again.
    let (status, changed) = api
        .call(
            Method::PATCH,
            &format!("/v1/tenants/tf/endpoints/{ep}"),
            Some(json!({"transform": null})),
        )
        .await;
    assert_eq!((status, &changed["transform"]), (200, &Value::Null), "{changed}");
    let plain = post(api, "tf", json!({"customer": "acme"}), json!({})).await;
    assert_eq!(settled(api, "tf", &ep, &plain).await["status"], "delivered");
    let got = sink.received_by("main");
    let body: Value = serde_json::from_str(&got.iter().find(|r| r.webhook_id() == plain).unwrap().body).unwrap();
    assert_eq!(body["data"], json!({"customer": "acme"}), "{body}");
    let (status, tried) = api.post(&path, json!({"event": {}})).await;
    assert_eq!(
        (status, &tried["error"]["code"]),
        (409, &json!("no_transform")),
        "{tried}"
    );
}

/// The node's transform workers: the PIDs of its children running `transform-worker`.
fn workers_of(node_pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) state ppid …: the parent is the fourth field, after the parenthesised name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(node_pid) && cmdline.contains("transform-worker") {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn a_program_that_loops_recurses_or_explodes_fails_alone_and_the_workers_end_with_the_node() {
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("tfl")).set("transform__timeout_ms", "1000");
    let mut node = Node::start_ready(&opts).await;
    assert!(
        workers_of(node.pid()).is_empty(),
        "no worker until a transform is needed"
    );
    let api = node.api.clone();
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let create = |name: &str, program: &str| {
        api.create_endpoint(
            "tfl",
            json!({"url": sink.url(&format!("ok/{name}")), "transform": program}),
        )
    };
    let looping = create("loop", "until(false; .) | {}").await;
    let recursing = create("deep", "def f: [f]; f").await;
    // Past the 1 MiB output bound (12,000 × 99 bytes) in few elements, so a slow machine
    // reaches the bound well within the time bound (200,000 short strings took over 1 s there).
    let exploding = create(
        "big",
        r#"{payload: [range(12000) | "abcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefgh"]}"#,
    )
    .await;
    // A gibibyte string asked for at once: the worker's memory limit (512 MiB) refuses the
    // allocation and ends it, without touching memory first (building it by doubling took longer
    // than the time bound on a busy machine).
    let hogging = create("hog", r#"{payload: ("x" * 1073741824 | length)}"#).await;
    let fine = create("fine", "{payload: {n: .payload.n}}").await;
    assert!(workers_of(node.pid()).len() <= 2, "at most transform.workers");
    let first = post(&api, "tfl", json!({"n": 1}), json!({})).await;
    let id = |e: &Value| e["id"].as_str().unwrap().to_string();

    let d = settled(&api, "tfl", &id(&looping), &first).await;
    assert_eq!(d["reason"], "transform_failed", "{d}");
    let error = d["attempts"][0]["error"].as_str().unwrap();
    assert_eq!(error, "transform_failed: the program ran longer than 1000 ms");
    let d = settled(&api, "tfl", &id(&recursing), &first).await;
    assert_eq!(d["reason"], "transform_failed", "{d}");
    let error = d["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("crashed its worker") || error.contains("ran longer than"),
        "{error}"
    );
    let d = settled(&api, "tfl", &id(&exploding), &first).await;
    let error = d["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("more than 1048576"), "the output bound: {error}");
    let d = settled(&api, "tfl", &id(&hogging), &first).await;
    assert_eq!(
        d["attempts"][0]["error"],
        "transform_failed: the program crashed its worker (recursion too deep or out of memory)",
        "the memory bound: {d}"
    );
    assert_eq!(settled(&api, "tfl", &id(&fine), &first).await["status"], "delivered");

    // The node lives on, and so do transforms: the next event runs on fresh workers.
    let second = post(&api, "tfl", json!({"n": 2}), json!({})).await;
    assert_eq!(settled(&api, "tfl", &id(&fine), &second).await["status"], "delivered");
    let bodies: Vec<Value> = sink
        .received_by("fine")
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies.contains(&json!({"n": 1})) && bodies.contains(&json!({"n": 2})),
        "{bodies:?}"
    );
    assert!(["loop", "deep", "big", "hog"]
        .iter()
        .all(|name| sink.received_by(name).is_empty()));
    assert!(api.ready().await);
    // Five runs of the first event and the fine endpoint's of the second, at least.
    assert!(api.metric("hookline_transforms_total").await >= 6.0);

    // Workers never outlive their node, even one killed without a chance to clean up.
    let workers = workers_of(node.pid());
    assert!(!workers.is_empty(), "the fine endpoint's worker is alive");
    node.kill9().await;
    wait_for(Duration::from_secs(10), "the workers to end with the node", || {
        workers
            .iter()
            .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(*pid))
    })
    .await;
}

/// An ended process not yet reaped (its parent, killed, leaves it to init).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

#[tokio::test]
async fn a_transform_url_is_checked_by_the_ssrf_guard() {
    // A node that reaches only public addresses; the endpoint's own URL is a name never looked
    // up, since the transform sends the delivery elsewhere.
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("tfssrf"))
        .set("delivery__allow_private_networks", "false")
        .set("transform__timeout_ms", "1000");
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    let endpoint = api
        .create_endpoint(
            "ts",
            json!({"url": "https://receiver.invalid/hook", "transform": r#"{url: "http://127.0.0.1:9/x"}"#}),
        )
        .await;
    let ep = endpoint["id"].as_str().unwrap();
    let event = post(api, "ts", json!({}), json!({})).await;
    let d = settled(api, "ts", ep, &event).await;
    assert_eq!(
        (&d["status"], &d["reason"]),
        (&json!("dead"), &json!("destination_blocked")),
        "{d}"
    );
    // A reading key may run the stored program, not one of its own.
    let (status, key) = api
        .post("/v1/tenants/ts/keys", json!({"scopes": ["endpoints:read"]}))
        .await;
    assert_eq!(status, 201, "{key}");
    let reader = api.with_token(key["key"].as_str());
    let path = format!("/v1/tenants/ts/endpoints/{ep}/transform/test");
    let (status, tried) = reader.post(&path, json!({"event": {}})).await;
    assert_eq!(
        (status, &tried["output"]),
        (200, &json!({"url": "http://127.0.0.1:9/x"})),
        "{tried}"
    );
    let (status, _) = reader.post(&path, json!({"event": {}, "transform": "{}"})).await;
    assert_eq!(status, 403);
}
