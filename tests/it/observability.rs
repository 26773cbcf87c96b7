//! What SREs see: after a known workload the scraped counters and histogram counts are exactly
//! that workload; no label carries an endpoint or event id by default; the log lines of one
//! delivery are found by its `delivery_id` and carry the fields to follow it; nothing secret.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// One sample of a Prometheus text scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse the Prometheus text format (what `/metrics` serves).
pub fn parse_scrape(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap();
                    let mut labels = BTreeMap::new();
                    // Label values here never hold `",`; split on it.
                    for pair in body.split("\",").filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once("=\"").unwrap();
                        labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                    }
                    (name.to_string(), labels)
                }
            };
            Sample { name, labels, value }
        })
        .collect()
}

pub async fn scrape(api: &Api) -> Vec<Sample> {
    let resp = reqwest::get(format!("{}/metrics", api.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    parse_scrape(&resp.text().await.unwrap())
}

/// A metric, the labels its samples must have, and their expected sum.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// The sum of `name` over samples whose labels include all of `with`; panics if there is no
/// such series at all (a missing metric is not a zero).
fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let matching = series(samples, name, with);
    assert!(!matching.is_empty(), "no series {name}{with:?} in the scrape");
    matching.iter().sum()
}

/// The values of `name` in samples whose labels include all of `with`.
fn series(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect()
}

#[tokio::test]
async fn counters_equal_a_known_workload_and_logs_follow_a_delivery() {
    let redis = shared_redis_url();
    let opts = NodeOpts::new(&redis, &unique_prefix("obs")).set("metrics__sample_interval_s", "1");
    let node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ok = api
        .create_endpoint("m", json!({"url": sink.url("ok/ok"), "event_types": ["ok.*"]}))
        .await;
    let flaky = api
        .create_endpoint(
            "m",
            json!({"url": sink.url("status/503/flaky"), "event_types": ["flaky.*"], "retry_schedule_s": [1, 1]}),
        )
        .await;
    let refuse = api
        .create_endpoint(
            "m",
            json!({"url": sink.url("status/400/refuse"), "event_types": ["bad.*"]}),
        )
        .await;

    // 5 successes (one posted twice with a key: 1 duplicate), 2 events that retry twice and
    // die of exhaustion, 3 refused for good, 1 event refused at ingest.
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            api.post_event("m", "ok.x", json!({"secret_payload_marker": i}))
                .await
                .unwrap(),
        );
    }
    for expect in [202, 200] {
        let (status, body) = api
            .post(
                "/v1/tenants/m/events",
                json!({"type": "ok.keyed", "payload": {}, "idempotency_key": "once"}),
            )
            .await;
        assert_eq!(status, expect, "{body}");
    }
    let mut flaky_events = Vec::new();
    for _ in 0..2 {
        flaky_events.push(api.post_event("m", "flaky.x", json!({})).await.unwrap());
    }
    for _ in 0..3 {
        ids.push(api.post_event("m", "bad.x", json!({})).await.unwrap());
    }
    let (status, _) = api
        .post(
            "/v1/tenants/m/events",
            json!({"type": "no spaces allowed", "payload": {}}),
        )
        .await;
    assert_eq!(status, 400);

    let expected: &[Expected] = &[
        (
            "hookline_events_ingested_total",
            &[("outcome", "accepted"), ("tenant", "m")],
            10.0,
        ),
        (
            "hookline_events_ingested_total",
            &[("outcome", "duplicate"), ("tenant", "m")],
            1.0,
        ),
        (
            "hookline_events_ingested_total",
            &[("outcome", "rejected"), ("tenant", "m")],
            1.0,
        ),
        ("hookline_ingest_latency_seconds_count", &[], 12.0),
        (
            "hookline_delivery_attempts_total",
            &[("outcome", "success"), ("tenant", "m")],
            5.0,
        ),
        (
            "hookline_delivery_attempts_total",
            &[("outcome", "retry"), ("tenant", "m")],
            4.0,
        ),
        (
            "hookline_delivery_attempts_total",
            &[("outcome", "dead"), ("tenant", "m")],
            2.0,
        ),
        (
            "hookline_delivery_attempts_total",
            &[("outcome", "failed"), ("tenant", "m")],
            3.0,
        ),
        ("hookline_attempt_latency_seconds_count", &[], 14.0),
        ("hookline_delivery_e2e_seconds_count", &[], 5.0),
        ("hookline_retries_scheduled_total", &[("attempt", "1")], 2.0),
        ("hookline_retries_scheduled_total", &[("attempt", "2")], 2.0),
        (
            "hookline_dead_letters_total",
            &[("cause", "exhausted"), ("tenant", "m")],
            2.0,
        ),
        (
            "hookline_dead_letters_total",
            &[("cause", "permanent"), ("tenant", "m")],
            3.0,
        ),
        // The ten events, and the `hookline.endpoint.dead_letters` notice of each of the two
        // endpoints that dead-lettered (the node's own events are routed, not ingested by API).
        ("hookline_events_routed_total", &[], 12.0),
    ];
    // Counters move at different moments of an attempt (the attempt's outcome before its dead
    // letter is written): read until every one has reached its value, or the time is up.
    let samples = last_reading(
        Duration::from_secs(20),
        || scrape(api),
        |samples| {
            expected
                .iter()
                .all(|(name, labels, want)| series(samples, name, labels).iter().sum::<f64>() >= *want)
        },
    )
    .await;
    for (name, labels, want) in expected {
        assert_eq!(total(&samples, name, labels), *want, "{name}{labels:?}");
    }
    // The histogram's +Inf bucket is its count.
    let inf = total(&samples, "hookline_delivery_e2e_seconds_bucket", &[("le", "+Inf")]);
    assert_eq!(inf, 5.0);

    // The sampled gauges settle: nothing queued, every breaker closed, the router caught up.
    let settled = last_reading(
        Duration::from_secs(10),
        || scrape(api),
        |settled| {
            total(settled, "hookline_deliveries_queued", &[]) == 0.0
                && total(settled, "hookline_breakers", &[("state", "closed")]) == 3.0
        },
    )
    .await;
    assert_eq!(total(&settled, "hookline_deliveries_queued", &[]), 0.0);
    assert_eq!(total(&settled, "hookline_breakers", &[("state", "closed")]), 3.0);
    assert_eq!(total(&settled, "hookline_router_lag_seconds", &[]), 0.0);
    assert_eq!(total(&settled, "hookline_drain_time_estimate_seconds", &[]), 0.0);

    // Work held for a disabled endpoint is counted as paused backlog, not as work we owe.
    api.create_endpoint(
        "m",
        json!({"url": sink.url("ok/held"), "event_types": ["held.*"], "disabled": true}),
    )
    .await;
    for _ in 0..3 {
        api.post_event("m", "held.x", json!({})).await.unwrap();
    }
    let held = last_reading(
        Duration::from_secs(10),
        || scrape(api),
        |held| total(held, "hookline_deliveries_queued", &[("state", "paused")]) == 3.0,
    )
    .await;
    assert_eq!(
        total(
            &held,
            "hookline_deliveries_queued",
            &[("state", "paused"), ("tenant", "m")]
        ),
        3.0
    );
    assert_eq!(total(&held, "hookline_deliveries_queued", &[("state", "active")]), 0.0);
    assert_eq!(total(&held, "hookline_endpoints_disabled", &[]), 1.0);
    assert_eq!(
        total(&held, "hookline_drain_time_estimate_seconds", &[]),
        0.0,
        "paused work is not ours to drain"
    );

    // Work due at an active endpoint that drains slowly (1/s) shows as due, overdue and draining.
    api.create_endpoint(
        "m",
        json!({"url": sink.url("ok/slowly"), "event_types": ["slowly.*"], "rate_limit_per_s": 1}),
    )
    .await;
    for _ in 0..8 {
        api.post_event("m", "slowly.x", json!({})).await.unwrap();
    }
    let slow = last_reading(
        Duration::from_secs(10),
        || scrape(api),
        |slow| {
            total(slow, "hookline_oldest_queued_delivery_age_seconds", &[]) > 0.0
                && total(slow, "hookline_drain_time_estimate_seconds", &[]) > 0.0
        },
    )
    .await;
    assert!(total(&slow, "hookline_deliveries_queued", &[("state", "active")]) > 0.0);
    assert!(total(&slow, "hookline_oldest_queued_delivery_age_seconds", &[]) > 0.0);
    assert!(total(&slow, "hookline_drain_time_estimate_seconds", &[]) > 0.0);

    // No label value is an endpoint id or an event id (default config).
    let mut forbidden: Vec<String> = ids.clone();
    forbidden.extend(flaky_events.iter().cloned());
    for ep in [&ok, &flaky, &refuse] {
        forbidden.push(ep["id"].as_str().unwrap().to_string());
    }
    for s in &settled {
        for v in s.labels.values() {
            assert!(
                !forbidden.contains(v) && !v.starts_with("ep_") && !v.starts_with("evt_"),
                "{s:?}"
            );
        }
    }

    // The log lines of one delivery, found by its delivery id, carry what follows it.
    let delivery_id = format!("dlv_{}{}", &flaky["id"].as_str().unwrap()[3..], &flaky_events[0][4..]);
    let lines: Vec<Value> = node
        .logs()
        .iter()
        .filter(|l| l.contains(&delivery_id))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let attempts: Vec<u64> = lines
        .iter()
        .filter(|l| l["msg"] == "attempt finished")
        .map(|l| l["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2, 3], "{lines:#?}");
    assert!(lines.iter().any(|l| l["msg"] == "delivery dead-lettered"), "{lines:#?}");
    for line in &lines {
        for field in ["tenant", "event_id", "endpoint_id", "delivery_id", "attempt"] {
            assert!(!line[field].is_null(), "`{field}` missing: {line}");
        }
        assert_eq!(line["tenant"], "m");
        assert_eq!(line["event_id"], flaky_events[0].as_str());
    }
    // Every metric the dashboard and the alert rules use is one this node exports.
    let exported: std::collections::BTreeSet<&str> = samples.iter().chain(&settled).map(|s| s.name.as_str()).collect();
    for (source, expr) in dashboard_and_alert_queries() {
        let used = metric_names(&expr);
        assert!(!used.is_empty(), "{source}: no hookline metric in {expr}");
        for name in used {
            assert!(
                exported.contains(name.as_str()),
                "{source} uses {name}, which the node does not export"
            );
        }
    }

    // No secret and no payload ever reaches the logs.
    for line in node.logs() {
        for ep in [&ok, &flaky, &refuse] {
            let secret = ep["secret"].as_str().unwrap();
            assert!(!line.contains(&secret[6..]), "a secret in the logs: {line}");
        }
        assert!(!line.contains("secret_payload_marker"), "a payload in the logs: {line}");
    }
}

/// `hookline_…` metric names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("hookline_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Every PromQL expression of `config/grafana/hookline.json` and `config/prometheus/alerts.yml`,
/// with where it comes from; the files' structure is checked on the way.
fn dashboard_and_alert_queries() -> Vec<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut queries = Vec::new();
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/config/grafana/hookline.json")).unwrap())
            .unwrap();
    let tenant_var = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "tenant");
    assert!(tenant_var, "the dashboard has a tenant view");
    for panel in dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
    {
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel without targets: {panel}"));
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for t in targets {
            queries.push((
                format!("dashboard panel {}", panel["title"]),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{root}/config/prometheus/alerts.yml")).unwrap())
            .unwrap();
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_string();
            assert!(rule["labels"]["severity"].is_string(), "{name}: no severity");
            assert!(rule["annotations"]["summary"].is_string(), "{name}: no summary");
            assert!(rule["for"].is_string(), "{name}: no `for`");
            queries.push((format!("alert {name}"), rule["expr"].as_str().unwrap().to_string()));
            alerts.push(name);
        }
    }
    for wanted in [
        "HooklineDrainTimeHigh",
        "HooklineDeadLettersGrowingFast",
        "HooklineManyBreakersOpening",
        "HooklineSuccessRateLow",
        "HooklineRouterLagging",
        "HooklineRedisErrors",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "alert {wanted} missing: {alerts:?}");
    }
    queries
}

/// Every answer carries `Hookline-Request-Id` (successes, errors, unknown routes, wrong methods),
/// each one different, and the log lines a request causes carry the same `request_id`.
#[tokio::test]
async fn every_answer_names_its_request_and_its_log_lines_carry_the_id() {
    let node = Node::start_ready(
        &NodeOpts::new(&shared_redis_url(), &unique_prefix("request-id")).set("log__level", "info,hookline=debug"),
    )
    .await;
    let id_of = |headers: &reqwest::header::HeaderMap| -> String {
        let id = headers
            .get("hookline-request-id")
            .expect("an answer without Hookline-Request-Id")
            .to_str()
            .unwrap()
            .to_string();
        assert!(id.starts_with("req_") && id.len() == 24, "{id}");
        id
    };
    let mut seen = std::collections::HashSet::new();
    for (method, path, body) in [
        (reqwest::Method::GET, "/healthz", None),
        (reqwest::Method::GET, "/no/such/route", None),
        (reqwest::Method::DELETE, "/healthz", None),
        (reqwest::Method::GET, "/v1/tenants/t/endpoints/ep_nope", None),
        (reqwest::Method::POST, "/v1/tenants/t/events", Some("{not json")),
    ] {
        let (_, _, headers) = node.api.raw(method, path, body, Some("application/json")).await;
        assert!(seen.insert(id_of(&headers)), "an id was used twice");
    }
    let (status, answer, headers) = node
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/tenants/t/events",
            Some(r#"{"type": "a.b", "payload": {}}"#),
            Some("application/json"),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = id_of(&headers);
    let line = eventually(Duration::from_secs(5), "the ingest's log line", || {
        let logs = node.logs();
        let id = id.clone();
        async move {
            logs.into_iter()
                .find(|l| l.contains("event accepted") && l.contains(&id))
        }
    })
    .await;
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["request_id"], id.as_str(), "{line}");
    assert_eq!(line["event_id"], answer["id"]);
}

#[tokio::test]
async fn the_cluster_view_lists_nodes_shard_holders_and_the_backlog_by_tenant() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("cluster-view"));
    let opts = |id: &str| NodeOpts::new(&redis, &prefix).node_id(id).set("shards__count", "4");
    let a = Node::start_ready(&opts("view-a")).await;
    let b = Node::start_ready(&opts("view-b")).await;
    // Disabled endpoints keep what is routed to them queued: 3 for one tenant's endpoint, and
    // 1 + 2 for the other's two endpoints.
    let paused = |url: &str| json!({"url": url, "disabled": true});
    a.api.create_endpoint("cv-busy", paused("http://127.0.0.1:9/a")).await;
    a.api.create_endpoint("cv-calm", paused("http://127.0.0.1:9/b")).await;
    let calm2 = a.api.create_endpoint("cv-calm", paused("http://127.0.0.1:9/c")).await;
    for _ in 0..3 {
        a.api.post_event("cv-busy", "order.created", json!({})).await.unwrap();
    }
    a.api.post_event("cv-calm", "order.created", json!({})).await.unwrap();
    // One more for one endpoint of cv-calm only (a test send targets it alone).
    let calm2_id = calm2["id"].as_str().unwrap();
    let (status, _) = a
        .api
        .post(&format!("/v1/tenants/cv-calm/endpoints/{calm2_id}/test"), json!({}))
        .await;
    assert_eq!(status, 202);

    let view = poll_until(Duration::from_secs(15), || async {
        let (status, view) = b.api.get("/v1/cluster").await;
        assert_eq!(status, 200, "{view}");
        let held = view["shards"].as_array().unwrap().iter().all(|s| !s["node"].is_null());
        let total: u64 = view["backlog"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["queued"].as_u64().unwrap())
            .sum();
        let queued = total == 6;
        (held && queued && view["nodes"].as_array().unwrap().len() == 2).then_some(view)
    })
    .await
    .expect("both nodes, every shard held and the backlog within 15 s");
    assert_eq!(
        view["backlog"],
        json!([
            {"tenant": "cv-busy", "queued": 3, "endpoints": 1},
            {"tenant": "cv-calm", "queued": 3, "endpoints": 2},
        ]),
        "{view}"
    );
    assert_eq!(texts(&view["nodes"], "id"), ["view-a", "view-b"], "{view}");
    // Each node's shards are the shards it holds, and every shard is held by one of them.
    let shards = view["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4);
    for node in view["nodes"].as_array().unwrap() {
        for shard in node["shards"].as_array().unwrap() {
            assert_eq!(shards[shard.as_u64().unwrap() as usize]["node"], node["id"], "{view}");
        }
    }
    let counted: usize = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["shards"].as_array().unwrap().len())
        .sum();
    assert_eq!(counted, 4, "{view}");
    assert!(view["router_lag_ms"].is_u64(), "{view}");

    // Admins only.
    let (_, key) = a.api.post("/v1/tenants/cv-busy/keys", json!({})).await;
    let (status, refused) = a.api.with_token(key["key"].as_str()).get("/v1/cluster").await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("forbidden")));

    // The console's node view shows the same, to a signed-in operator.
    let base = &a.api.base;
    let cookie = console_sign_in(base).await;
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{base}/console/nodes"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    for wanted in [
        "view-a",
        "view-b",
        "Router lag",
        "href=\"/console/t/cv-busy\"",
        "<td class=\"number\">3</td>",
    ] {
        assert!(page.contains(wanted), "{wanted} is missing from {page}");
    }
}

/// The metrics sampler reads every endpoint's due entry and health with two commands per shard,
/// and the queue only of an endpoint that can hold work (a due entry, or disabled: a paused
/// endpoint's settle removes its entry): here 200 idle endpoints cost nothing more, and the
/// three that matter read as they are. Counted on a Redis of its own.
#[tokio::test]
async fn the_sampler_reads_the_queues_of_endpoints_with_work_only() {
    use fred::prelude::*;
    let redis = RedisServer::start(false);
    let mut cfg = crate::store::config(&unique_prefix("sample"));
    cfg.redis.url = redis.url();
    let (_, store, client) = crate::store::connect_with(cfg).await;
    let keys = store.keys();
    let now = hookline_actors::now_ms();
    // a: two queued (one due), its due entry; b: disabled, one queued, no due entry; c: an open
    // breaker, nothing queued.
    let _: () = client
        .zadd(
            keys.queue(1, "ep_a"),
            None,
            None,
            false,
            false,
            vec![(now as f64 - 5.0, "evt_1"), (now as f64 + 60_000.0, "evt_2")],
        )
        .await
        .unwrap();
    let _: () = client
        .zadd(keys.due(1), None, None, false, false, (now as f64 - 5.0, "ep_a"))
        .await
        .unwrap();
    let _: () = client
        .zadd(
            keys.queue(1, "ep_b"),
            None,
            None,
            false,
            false,
            (now as f64 - 7.0, "evt_3"),
        )
        .await
        .unwrap();
    let open = hookline_actors::model::HealthRecord {
        breaker: hookline_actors::breaker::BreakerRecord {
            state: hookline_actors::breaker::BreakerState::Open {
                next_probe_ms: now + 1_000,
                failed_probes: 0,
            },
            closed_at_ms: None,
        },
        failing_since_ms: Some(now),
    };
    let _: () = client
        .set(
            keys.health(2, "ep_c"),
            serde_json::to_string(&open).unwrap(),
            None,
            None,
            false,
        )
        .await
        .unwrap();
    let idle: Vec<String> = (0..200).map(|n| format!("ep_idle{n}")).collect();
    let mut endpoints: Vec<(u32, &str, bool)> = vec![(1, "ep_a", false), (1, "ep_b", true), (2, "ep_c", false)];
    endpoints.extend(
        idle.iter()
            .enumerate()
            .map(|(n, id)| ((n % 8) as u32, id.as_str(), false)),
    );

    // The commands a sample may use (the store's own background pings are not the sampler's).
    let calls = || {
        let calls = command_calls(&redis.url());
        [
            "zmscore",
            "mget",
            "zcard",
            "zcount",
            "zrange",
            "zscore",
            "get",
            "zrangebyscore",
        ]
        .iter()
        .map(|name| calls.get(*name).copied().unwrap_or(0))
        .sum::<u64>()
    };
    let before = calls();
    let samples = store.endpoint_samples(&endpoints, now).await.unwrap();
    let used = calls() - before;
    assert_eq!(
        used,
        2 * 8 + 3 * 2,
        "two per shard (8 shards), three per endpoint with work (a, b)"
    );
    let a = &samples[0];
    assert_eq!(
        (a.queued, a.due_now, a.head_due_ms, a.due_entry_ms, a.breaker),
        (2, 1, Some(now - 5), Some(now - 5), "closed")
    );
    let b = &samples[1];
    assert_eq!(
        (b.queued, b.due_now, b.head_due_ms, b.due_entry_ms),
        (1, 1, Some(now - 7), None),
        "a disabled endpoint's queue"
    );
    let c = &samples[2];
    assert_eq!((c.queued, c.breaker), (0, "open"));
    assert!(samples[3..].iter().all(|s| *s
        == hookline::store::EndpointSample {
            breaker: "closed",
            ..Default::default()
        }));
    assert_eq!(samples.len(), 203);
}
