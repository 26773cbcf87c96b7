//! The `pages` benchmark: how fast the console's pages answer in a big tenant (issue 18: under 200 ms with
//! 1,000 endpoints and 100,000 deliveries). Seeds a tenant with `--endpoints` endpoints (default
//! 1,000) all subscribed to one type, posts `--events` events of it (default 100, in batches) so
//! that every endpoint gets every event, and waits until the in-process sink has them all: the
//! last endpoint answers 410, so its first delivery is a dead letter and the rest stay queued
//! behind it, disabled. Then it signs in to the console and asks each main page `--times`
//! times (default 20) in turn. Prints one JSON line: per page, the median,
//! p95 and slowest answer in ms. An error if a page answers anything but 200. Bounded: the
//! seeding by `timeout` (default 600 s). `src/bin/pages.rs` runs it (`loadtest/bench pages`).

use crate::sink::Sink;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TENANT: &str = "pages";

/// What to seed and how often to ask each page.
#[derive(Debug, Clone)]
pub struct Options {
    pub node: String,
    pub token: String,
    /// At least 2 (one answers 410).
    pub endpoints: usize,
    pub events: usize,
    pub times: usize,
    pub timeout: Duration,
}

impl Options {
    pub fn new(node: &str, token: &str) -> Options {
        Options {
            node: node.to_string(),
            token: token.to_string(),
            endpoints: 1_000,
            events: 100,
            times: 20,
            timeout: Duration::from_secs(600),
        }
    }
}

/// Seed, then time every page: the JSON summary.
pub async fn run(o: &Options) -> anyhow::Result<Value> {
    let (node, token) = (&o.node, &o.token);
    let (endpoints, events, times, timeout) = (o.endpoints.max(2), o.events, o.times.max(1), o.timeout);

    let sink = Sink::start_lean("127.0.0.1:0").await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let api = |method: reqwest::Method, path: &str| client.request(method, format!("{node}{path}")).bearer_auth(token);

    // Endpoints: the last one answers 410 (a dead letter to list, and a backlog).
    let mut ids = Vec::with_capacity(endpoints);
    for i in 0..endpoints {
        let url = if i + 1 == endpoints {
            sink.url(&format!("status/410/gone-{i}"))
        } else {
            sink.url(&format!("ok/ep-{i}"))
        };
        let created: Value = api(reqwest::Method::POST, &format!("/v1/tenants/{TENANT}/endpoints"))
            .json(&json!({"url": url, "event_types": ["page.test"], "description": format!("endpoint {i}")}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.push(created["id"].as_str().unwrap_or_default().to_string());
    }
    let started = Instant::now();
    for chunk in (0..events).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|n| json!({"type": "page.test", "payload": {"n": n}}))
            .collect();
        api(reqwest::Method::POST, &format!("/v1/tenants/{TENANT}/events/batch"))
            .json(&json!({"events": batch}))
            .send()
            .await?
            .error_for_status()?;
    }
    // Every delivery reached the sink but the gone endpoint's, which got its first only.
    let want = (endpoints - 1) * events + 1;
    while sink.count() < want {
        anyhow::ensure!(
            started.elapsed() < timeout,
            "only {} of {want} deliveries within {timeout:?}",
            sink.count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seeded_s = started.elapsed().as_secs_f64();
    // Let the last records and stats land.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let signed = client
        .post(format!("{node}/console/sign-in"))
        .header("origin", node.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await?;
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no console session"))?
        .to_string();
    let portal: Value = api(reqwest::Method::POST, &format!("/v1/tenants/{TENANT}/portal-sessions"))
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let portal_cookie = format!("hookline_portal={}", portal["token"].as_str().unwrap_or_default());

    let (ok, gone) = (&ids[0], &ids[ids.len() - 1]);
    let log: Value = api(
        reqwest::Method::GET,
        &format!("/v1/tenants/{TENANT}/deliveries?endpoint_id={ok}&limit=1"),
    )
    .send()
    .await?
    .json()
    .await?;
    let delivery = log["data"][0]["id"].as_str().unwrap_or_default().to_string();
    let event = log["data"][0]["event_id"].as_str().unwrap_or_default().to_string();
    let t = format!("/console/t/{TENANT}");
    let pages: Vec<(&str, String, &String)> = vec![
        ("endpoints", t.clone(), &cookie),
        ("endpoint_1h", format!("{t}/e/{ok}"), &cookie),
        ("endpoint_7d", format!("{t}/e/{ok}?range=7d"), &cookie),
        ("deliveries", format!("{t}/deliveries"), &cookie),
        (
            "deliveries_of_endpoint",
            format!("{t}/deliveries?endpoint_id={ok}"),
            &cookie,
        ),
        ("deliveries_dead", format!("{t}/deliveries?status=dead"), &cookie),
        ("delivery", format!("{t}/d/{delivery}"), &cookie),
        ("event", format!("{t}/events?id={event}"), &cookie),
        ("dead_letters", format!("{t}/e/{gone}/dead-letters"), &cookie),
        ("sources", format!("{t}/sources"), &cookie),
        ("nodes", "/console/nodes".to_string(), &cookie),
        ("portal_endpoints", format!("/portal/t/{TENANT}"), &portal_cookie),
    ];
    let mut report = serde_json::Map::new();
    for (name, path, cookie) in pages {
        let mut ms = Vec::with_capacity(times);
        for _ in 0..times {
            let asked = Instant::now();
            let answer = client
                .get(format!("{node}{path}"))
                .header("cookie", cookie.as_str())
                .send()
                .await?;
            let status = answer.status();
            let body = answer.bytes().await?;
            ms.push(asked.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status == 200, "{path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        report.insert(
            name.to_string(),
            json!({"median_ms": round(at(0.5)), "p95_ms": round(at(0.95)), "max_ms": round(at(1.0))}),
        );
    }
    Ok(json!({
        "endpoints": endpoints,
        "deliveries": endpoints * events,
        "seeded_s": round(seeded_s),
        "times": times,
        "pages": report,
    }))
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
