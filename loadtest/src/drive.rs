//! The load driver behind the `drive` binary (and the tiny W1 in CI). It starts a lean sink
//! in-process, sets up a tenant's endpoints on the node through the API, posts events (single
//! or batch, at a fixed concurrency or a fixed rate), waits until every acknowledged event
//! reached every endpoint it should, and returns one JSON summary. Every run is bounded by
//! `timeout_s` and deletes its endpoints at the end (so nothing keeps retrying into a sink that
//! is gone).
//!
//! Scenarios (BENCHMARKS.md):
//! - `w1` throughput: 1 endpoint.
//! - `w2` fan-out: 10 endpoints, every event to each.
//! - `w3` noisy neighbour: W2 plus one endpoint that sleeps 10 s per request.
//! - `w4` flaky: 1 endpoint failing 50% with 503, retries every second.
//! - `w5` backlog: 1 dead endpoint (503) while the events queue up, then revived.
//! - `w6` many endpoints: `endpoints` endpoints, each subscribed to its own type, events
//!   spread evenly (actor start and idle cost: RSS per idle endpoint).
//! - `w7` steady latency: events at a fixed `rate` for the run, e2e percentiles.
//! - `w8` inbound: GitHub-signed requests to a source's `/in/{id}` at a fixed `rate` (1,000/s),
//!   accept latency (`ingest_request_p99_ms`) and e2e to one endpoint.
//!
//! Cost figures, when the node's pid and its Redis are given: Redis commands per delivered
//! event (`INFO commandstats` before and after; `redis_commands_by_name` says which), node and
//! Redis CPU seconds per 10,000 deliveries, node peak RSS; always, how busy the whole machine
//! was during the run (`machine_busy`, 0–1). The raw ceiling (optional) is the same driver
//! posting straight to a sink.

use crate::sink::{percentile, Sink};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    W1,
    W2,
    W3,
    W4,
    W5,
    W6,
    W7,
    W8,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Scenario> {
        Some(match s {
            "w1" | "throughput" => Scenario::W1,
            "w2" => Scenario::W2,
            "w3" => Scenario::W3,
            "w4" => Scenario::W4,
            "w5" | "backlog" => Scenario::W5,
            "w6" => Scenario::W6,
            "w7" => Scenario::W7,
            "w8" | "inbound" => Scenario::W8,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"][self as usize]
    }

    /// The scenario's standard size (BENCHMARKS.md): (events, endpoints, rate per second).
    pub fn defaults(self) -> (usize, usize, Option<u32>) {
        match self {
            Scenario::W1 => (20_000, 1, None),
            Scenario::W2 | Scenario::W3 => (5_000, 10, None),
            Scenario::W4 => (2_000, 1, None),
            Scenario::W5 => (200_000, 1, None),
            Scenario::W6 => (50_000, 10_000, None),
            Scenario::W7 => (120_000, 1, Some(2_000)),
            Scenario::W8 => (30_000, 1, Some(1_000)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub node: String,
    pub token: String,
    pub scenario: Scenario,
    pub events: usize,
    /// Healthy endpoints (W2, W3: 10; W6: 10,000).
    pub endpoints: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Events per second (W7); `None`: as fast as `concurrency` allows.
    pub rate: Option<u32>,
    /// Events per request: 1 = `POST …/events`, more = `POST …/events/batch`.
    pub batch: usize,
    pub timeout_s: u64,
    pub node_pid: Option<u32>,
    /// The node's Redis, for `INFO commandstats` (via `redis-cli -u`).
    pub redis_url: Option<String>,
    /// Also measure the raw ceiling: the same load posted straight to a sink.
    pub ceiling: bool,
    /// Ingest with a tenant key (scope `events:write`) minted for the run, not the admin token.
    pub tenant_key: bool,
    /// Deliver over HTTPS (the sink's certificate from a CA made for the run, given to the
    /// endpoints as `tls.ca_pem`); with `client_cert`, the sink also requires a client
    /// certificate, which the endpoints present.
    pub tls: bool,
    pub client_cert: bool,
    /// Endpoints fetch an OAuth2 token (from the sink) and send it with every attempt.
    pub oauth: bool,
    /// Endpoints transform every delivery (`TRANSFORM`): what a transform costs.
    pub transform: bool,
    /// The validation benchmark: post 2 KB orders (`order::payload`) of types registered with
    /// `order::schema`, under this `validation` (off, warn or enforce).
    pub catalogue: Option<String>,
}

/// `--transform`: a program that rebuilds the usual body (so the sink still finds `sent_ms`)
/// with one field and one header more, as a receiver's adapter would.
pub const TRANSFORM: &str = r#"{payload: {type: .type, timestamp: .timestamp, data: .payload, endpoint: .endpoint.id},
  headers: {"x-event-type": .type}}"#;

impl Options {
    pub fn new(node: &str, token: &str, scenario: Scenario) -> Options {
        let (events, endpoints, rate) = scenario.defaults();
        Options {
            node: node.trim_end_matches('/').to_string(),
            token: token.to_string(),
            scenario,
            events,
            endpoints,
            concurrency: 64,
            rate,
            batch: 1,
            timeout_s: 900,
            node_pid: None,
            redis_url: None,
            ceiling: false,
            tenant_key: false,
            tls: false,
            client_cert: false,
            oauth: false,
            transform: false,
            catalogue: None,
        }
    }
}

/// One endpoint the scenario sets up: sink name, sink path, extra endpoint fields, and whether
/// the run waits for it (the slow W3 endpoint is not waited for).
struct Target {
    name: String,
    path: String,
    fields: Value,
    awaited: bool,
    event_type: String,
}

fn targets(opts: &Options) -> Vec<Target> {
    let plain = |name: String, path: String, fields: Value| Target {
        name,
        path,
        fields,
        awaited: true,
        event_type: "load.test".into(),
    };
    match opts.scenario {
        Scenario::W1 | Scenario::W7 => vec![plain("w".into(), "ok/w".into(), json!({"max_in_flight": 32}))],
        Scenario::W8 => vec![Target {
            event_type: crate::inbound::EVENT_TYPE.into(),
            ..plain("w".into(), "ok/w".into(), json!({"max_in_flight": 32}))
        }],
        Scenario::W2 | Scenario::W3 => {
            let mut t: Vec<Target> = (0..opts.endpoints)
                .map(|i| plain(format!("h{i}"), format!("ok/h{i}"), json!({"max_in_flight": 32})))
                .collect();
            if opts.scenario == Scenario::W3 {
                t.push(Target {
                    name: "slow".into(),
                    path: "sleep/10000/slow".into(),
                    fields: json!({"timeout_ms": 15_000, "max_in_flight": 10}),
                    awaited: false,
                    event_type: "load.test".into(),
                });
            }
            t
        }
        Scenario::W4 => vec![plain(
            "flaky".into(),
            "fail/50/flaky".into(),
            json!({"max_in_flight": 32, "retry_schedule_s": vec![1; 20]}),
        )],
        Scenario::W5 => vec![plain("dead".into(), "switch/dead".into(), json!({"max_in_flight": 32}))],
        Scenario::W6 => (0..opts.endpoints)
            .map(|i| Target {
                name: format!("e{i}"),
                path: format!("ok/e{i}"),
                fields: json!({"event_types": [format!("w6.e{i}")]}),
                awaited: true,
                event_type: format!("w6.e{i}"),
            })
            .collect(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The text of `INFO <section>` of the Redis at `url` (via `redis-cli -u`).
fn redis_info(url: &str, section: &str) -> Option<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", url, "INFO", section])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `calls` of each command in `INFO commandstats` (calls inside scripts counted one by one).
fn redis_calls(url: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    let text = redis_info(url, "commandstats")?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.strip_prefix("calls=")?.split(',').next()?.parse::<u64>().ok()?;
                Some((name.to_owned(), calls))
            })
            .collect(),
    )
}

/// Redis's user plus system CPU time (`INFO cpu`), in seconds.
fn redis_cpu_seconds(url: &str) -> Option<f64> {
    let text = redis_info(url, "cpu")?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':')?.parse::<f64>().ok())
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

/// The whole machine's busy and total CPU time so far, in ticks (`/proc/stat`: idle and iowait
/// are not busy; steal is, as a share the machine could not use).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// User plus system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`; utime and stime are the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Post `opts.events` events of `types` (round-robin) to `url` (a node's ingest route, or a
/// sink path for the raw ceiling). Returns the acknowledged ids (empty for a sink) and the
/// request latencies (µs).
async fn post_all(
    client: &reqwest::Client,
    opts: &Options,
    url: &str,
    types: &[String],
    deadline: Instant,
) -> (HashSet<String>, Vec<u64>) {
    let requests = opts.events.div_ceil(opts.batch.max(1));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let types = Arc::new(types.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, next, types) = (client.clone(), next.clone(), types.clone());
        let (url, token, batch, total, rate) =
            (url.to_string(), opts.token.clone(), opts.batch, opts.events, opts.rate);
        let orders = opts.catalogue.is_some();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut latencies = Vec::new();
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests || Instant::now() >= deadline {
                    break;
                }
                if let Some(rate) = rate {
                    // Request r (of `batch` events) is due at r·batch/rate seconds.
                    let due = started + Duration::from_secs_f64((r * batch) as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let event = |i: usize| {
                    let payload = match orders {
                        true => crate::order::payload(i, now_ms()),
                        false => json!({"sent_ms": now_ms(), "n": i}),
                    };
                    json!({"type": types[i % types.len()], "payload": payload})
                };
                let first = r * batch;
                let body = if batch <= 1 {
                    event(first)
                } else {
                    json!({"events": (first..(first + batch).min(total)).map(event).collect::<Vec<_>>()})
                };
                let t = Instant::now();
                let request = if url.contains("/in/src_") {
                    // W8: the payload itself, signed as a provider signs it; no bearer token.
                    let body = body["payload"].to_string();
                    let mut request = client.post(&url);
                    for (name, value) in crate::inbound::headers(body.as_bytes(), &format!("{r}-{}", now_ms())) {
                        request = request.header(name, value);
                    }
                    request.body(body)
                } else {
                    client.post(&url).bearer_auth(&token).json(&body)
                };
                let Ok(resp) = request.send().await else {
                    continue;
                };
                if !resp.status().is_success() {
                    continue;
                }
                latencies.push(t.elapsed().as_micros() as u64);
                let Ok(answer) = resp.json::<Value>().await else {
                    continue;
                };
                if let Some(id) = answer["id"].as_str() {
                    acked.push(id.to_string());
                }
                for result in answer["results"].as_array().into_iter().flatten() {
                    if let Some(id) = result["id"].as_str() {
                        acked.push(id.to_string());
                    }
                }
            }
            (acked, latencies)
        }));
    }
    let mut acked = HashSet::new();
    let mut latencies = Vec::new();
    for task in tasks {
        if let Ok((a, l)) = task.await {
            acked.extend(a);
            latencies.extend(l);
        }
    }
    latencies.sort_unstable();
    (acked, latencies)
}

/// Run one scenario; the summary's `missing` is 0 when every acknowledged event reached every
/// awaited endpoint it was meant for.
pub async fn run(opts: &Options) -> anyhow::Result<Value> {
    anyhow::ensure!(
        opts.events <= 1_000_000
            && (1..=1_000).contains(&opts.concurrency)
            && (1..=1_000).contains(&opts.batch)
            && (1..=3_600).contains(&opts.timeout_s)
            && (1..=20_000).contains(&opts.endpoints),
        "events ≤ 1e6, concurrency 1..1000, batch 1..1000, timeout-s 1..3600, endpoints 1..20000"
    );
    anyhow::ensure!(
        opts.scenario != Scenario::W8 || opts.batch == 1,
        "w8 posts one request per event (batch 1)"
    );
    let deadline = Instant::now() + Duration::from_secs(opts.timeout_s);
    // HTTPS: a CA for the run signs the sink's certificate (and the endpoints' client
    // certificate); the endpoints trust it through `tls.ca_pem`.
    let ca = crate::tls::TestCa::new("hookline drive");
    let mut receiver_auth = json!({});
    let sink = if opts.tls || opts.client_cert {
        let client = ca.client("hookline");
        receiver_auth["tls"] = match opts.client_cert {
            true => json!({"ca_pem": ca.pem(), "client_cert_pem": client.cert_pem, "client_key_pem": client.key_pem}),
            false => json!({"ca_pem": ca.pem()}),
        };
        Sink::start_lean_tls(
            "127.0.0.1:0",
            &ca.server(&["127.0.0.1"]),
            opts.client_cert.then_some(&ca),
        )
        .await?
    } else {
        Sink::start_lean("127.0.0.1:0").await?
    };
    if opts.oauth {
        receiver_auth["oauth2"] =
            json!({"token_url": sink.url("oauth/token"), "client_id": "drive", "client_secret": "drive-secret"});
    }
    if opts.transform {
        receiver_auth["transform"] = json!(TRANSFORM);
    }
    // Every request is bounded, so a stalled node cannot hang a run past its deadline.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let tenant = format!("drive-{}-{}", std::process::id(), now_ms() % 100_000);
    let targets = targets(opts);
    let mut summary = json!({"scenario": opts.scenario.name(), "events_posted": opts.events, "batch": opts.batch,
        "concurrency": opts.concurrency, "rate": opts.rate});

    if opts.ceiling {
        // The raw ceiling: the same requests straight to a sink, no node in between.
        let ceiling_sink = Sink::start_lean("127.0.0.1:0").await?;
        let mut ceiling = opts.clone();
        ceiling.events = opts.events.min(20_000);
        ceiling.batch = 1;
        ceiling.rate = None;
        let started = Instant::now();
        let (_, latencies) = post_all(
            &client,
            &ceiling,
            &ceiling_sink.url("ok/ceiling"),
            &["load.test".into()],
            deadline,
        )
        .await;
        summary["ceiling_per_s"] = json!(latencies.len() as f64 / started.elapsed().as_secs_f64());
    }

    if opts.scenario == Scenario::W5 {
        sink.set_switch("dead", 503);
    }
    let mut endpoint_ids = Vec::new();
    let setup_started = Instant::now();
    for t in &targets {
        let mut fields = t.fields.clone();
        fields["url"] = json!(sink.url(&t.path));
        for (key, value) in receiver_auth.as_object().into_iter().flatten() {
            fields[key] = value.clone();
        }
        let endpoint: Value = client
            .post(format!("{}/v1/tenants/{tenant}/endpoints", opts.node))
            .bearer_auth(&opts.token)
            .json(&fields)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = endpoint["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("endpoint creation failed: {endpoint}"))?;
        sink.set_secret(&t.name, endpoint["secret"].as_str().unwrap_or_default());
        endpoint_ids.push(id.to_string());
    }
    summary["setup_s"] = json!(setup_started.elapsed().as_secs_f64());

    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = opts.node_pid.map(|pid| {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(crate::rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    });
    summary["node_rss_start_kib"] = json!(opts.node_pid.map(crate::rss_kib));
    let calls_before = opts.redis_url.as_deref().and_then(redis_calls);
    let redis_cpu_before = opts.redis_url.as_deref().and_then(redis_cpu_seconds);
    let cpu_before = opts.node_pid.map(cpu_seconds);
    let machine_before = machine_ticks();

    let types: Vec<String> = {
        let mut seen = Vec::new();
        for t in &targets {
            if !seen.contains(&t.event_type) {
                seen.push(t.event_type.clone());
            }
        }
        seen
    };
    let path = if opts.batch > 1 { "events/batch" } else { "events" };
    let mut url = format!("{}/v1/tenants/{tenant}/{path}", opts.node);
    if opts.scenario == Scenario::W8 {
        let source: Value = client
            .post(format!("{}/v1/tenants/{tenant}/sources", opts.node))
            .bearer_auth(&opts.token)
            .json(&crate::inbound::source())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = source["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("source creation failed: {source}"))?;
        url = format!("{}/in/{id}", opts.node);
    }
    if let Some(mode) = &opts.catalogue {
        for event_type in &types {
            client
                .put(format!("{}/v1/tenants/{tenant}/event-types/{event_type}", opts.node))
                .bearer_auth(&opts.token)
                .json(&json!({"schemas": {"1": crate::order::schema()}}))
                .send()
                .await?
                .error_for_status()?;
        }
        client
            .put(format!("{}/v1/tenants/{tenant}/settings", opts.node))
            .bearer_auth(&opts.token)
            .json(&json!({"validation": mode}))
            .send()
            .await?
            .error_for_status()?;
        summary["catalogue"] = json!(mode);
    }
    let mut posting = opts.clone();
    if opts.tenant_key {
        let key: Value = client
            .post(format!("{}/v1/tenants/{tenant}/keys", opts.node))
            .bearer_auth(&opts.token)
            .json(&json!({"name": "drive", "scopes": ["events:write"]}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        posting.token = key["key"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no key minted: {key}"))?
            .into();
    }
    let started = Instant::now();
    let (acked, latencies) = post_all(&client, &posting, &url, &types, deadline).await;
    let ingest_s = started.elapsed().as_secs_f64();
    summary["events_acked"] = json!(acked.len());
    summary["ingest_per_s"] = json!(acked.len() as f64 / ingest_s);
    summary["ingest_request_p50_ms"] = json!(percentile(&latencies, 0.5) as f64 / 1000.0);
    summary["ingest_request_p99_ms"] = json!(percentile(&latencies, 0.99) as f64 / 1000.0);

    let mut drain_started = started;
    if opts.scenario == Scenario::W5 {
        // The whole backlog queued for the dead endpoint: then revive it.
        let url = format!("{}/v1/tenants/{tenant}/endpoints/{}", opts.node, endpoint_ids[0]);
        let mut backlog = 0;
        while Instant::now() < deadline {
            let state: Value = client.get(&url).bearer_auth(&opts.token).send().await?.json().await?;
            backlog = state["state"]["backlog"].as_u64().unwrap_or(0);
            if backlog as usize >= acked.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        summary["backlog_queued"] = json!(backlog);
        summary["node_rss_backlog_kib"] = json!(opts.node_pid.map(crate::rss_kib));
        sink.set_switch("dead", 200);
        drain_started = Instant::now();
    }

    // Wait until every awaited endpoint has every acknowledged event meant for it: all of them
    // (W6: each event is for one endpoint, so the union of what they got).
    let awaited: HashSet<&str> = targets.iter().filter(|t| t.awaited).map(|t| t.name.as_str()).collect();
    let missing_now = || -> usize {
        sink.with_delivered(|per_name| {
            if opts.scenario == Scenario::W6 {
                // Each event is for one endpoint: the sets are disjoint.
                let got: usize = awaited
                    .iter()
                    .filter_map(|n| per_name.get(*n))
                    .map(|s| s.iter().filter(|id| acked.contains(*id)).count())
                    .sum();
                acked.len().saturating_sub(got)
            } else {
                awaited
                    .iter()
                    .map(|name| {
                        per_name
                            .get(*name)
                            .map_or(acked.len(), |got| acked.difference(got).count())
                    })
                    .sum()
            }
        })
    };
    let mut missing = missing_now();
    while missing > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        missing = missing_now();
    }
    let total_s = started.elapsed().as_secs_f64();
    let drain_s = drain_started.elapsed().as_secs_f64();

    let stats = sink.stats();
    let mut delivered = 0usize;
    let mut duplicates = 0u64;
    let mut bad_signatures = 0u64;
    for t in targets.iter().filter(|t| t.awaited) {
        let s = &stats["endpoints"][&t.name];
        delivered += s["delivered_unique"].as_u64().unwrap_or(0) as usize;
        duplicates += s["duplicates"].as_u64().unwrap_or(0);
        bad_signatures += s["bad_signatures"].as_u64().unwrap_or(0);
    }
    // End-to-end over all awaited deliveries: recompute from the raw arrivals.
    let mut all_e2e: Vec<u64> = sink
        .received()
        .iter()
        .filter(|r| (200..300).contains(&r.status) && targets.iter().any(|t| t.awaited && t.name == r.name))
        .filter_map(|r| r.e2e_ms)
        .collect();
    all_e2e.sort_unstable();
    summary["delivered"] = json!(delivered);
    summary["delivery_per_s"] = json!(delivered as f64 / total_s);
    summary["drain_s"] = json!(drain_s);
    summary["duplicates"] = json!(duplicates);
    summary["missing"] = json!(missing);
    summary["bad_signatures"] = json!(bad_signatures);
    if opts.tls || opts.client_cert || opts.oauth {
        summary["receiver"] = json!({"https": opts.tls || opts.client_cert, "client_cert": opts.client_cert,
            "oauth": opts.oauth, "oauth_grants": sink.oauth_grants()});
    }
    summary["transform"] = json!(opts.transform);
    summary["e2e_ms"] = json!({
        "p50": percentile(&all_e2e, 0.5), "p90": percentile(&all_e2e, 0.9),
        "p99": percentile(&all_e2e, 0.99), "max": all_e2e.last().copied().unwrap_or(0),
    });
    if let Some(ceiling) = summary["ceiling_per_s"].as_f64() {
        summary["delivery_vs_ceiling"] = json!(delivered as f64 / total_s / ceiling);
    }
    if let (Some(before), Some(after)) = (calls_before, opts.redis_url.as_deref().and_then(redis_calls)) {
        let per_delivery = |n: u64| n as f64 / delivered.max(1) as f64;
        let total = |calls: &std::collections::BTreeMap<String, u64>| calls.values().sum::<u64>();
        summary["redis_commands_per_delivery"] = json!(per_delivery(total(&after).saturating_sub(total(&before))));
        // Which commands they were (those at ≥ 0.01 per delivery): where to look for the next cut.
        let by_name: serde_json::Map<String, Value> = after
            .iter()
            .map(|(name, n)| {
                (
                    name,
                    per_delivery(n.saturating_sub(before.get(name).copied().unwrap_or(0))),
                )
            })
            .filter(|(_, n)| *n >= 0.01)
            .map(|(name, n)| (name.clone(), json!((n * 100.0).round() / 100.0)))
            .collect();
        summary["redis_commands_by_name"] = Value::Object(by_name);
    }
    if let (Some((busy0, total0)), Some((busy1, total1))) = (machine_before, machine_ticks()) {
        // How busy the whole machine was (node, Redis, driver and sink), 0–1: what the node
        // leaves idle is what it waits on.
        summary["machine_busy"] = json!((busy1 - busy0) as f64 / (total1 - total0).max(1) as f64);
    }
    if let (Some(before), Some(after)) = (redis_cpu_before, opts.redis_url.as_deref().and_then(redis_cpu_seconds)) {
        summary["redis_cpu_s_per_10k"] = json!((after - before) * 10_000.0 / delivered.max(1) as f64);
    }
    if let (Some(before), Some(pid)) = (cpu_before, opts.node_pid) {
        summary["node_cpu_s_per_10k"] = json!((cpu_seconds(pid) - before) * 10_000.0 / delivered.max(1) as f64);
        summary["node_rss_peak_kib"] = json!(peak_rss.load(Ordering::Relaxed));
        summary["node_rss_end_kib"] = json!(crate::rss_kib(pid));
    }
    if opts.scenario == Scenario::W6 {
        if let Some(pid) = opts.node_pid {
            // Idle actors stop after their keep-alive; what stays is the idle cost.
            tokio::time::sleep(Duration::from_secs(15).min(deadline.saturating_duration_since(Instant::now()))).await;
            let idle = crate::rss_kib(pid);
            let start = summary["node_rss_start_kib"].as_u64().unwrap_or(idle);
            summary["node_rss_idle_after_kib"] = json!(idle);
            summary["kib_per_idle_endpoint"] = json!(idle.saturating_sub(start) as f64 / opts.endpoints as f64);
        }
    }
    if let Some(sampler) = sampler {
        sampler.abort();
    }

    // Clean up: deleting the endpoints drops whatever is still queued (the W3 slow one).
    for id in &endpoint_ids {
        client
            .delete(format!("{}/v1/tenants/{tenant}/endpoints/{id}", opts.node))
            .bearer_auth(&opts.token)
            .send()
            .await
            .ok();
    }
    Ok(summary)
}

/// The median of every number in `summaries` (objects of the same shape, nested objects
/// too); other values are taken from the first.
pub fn median(summaries: &[Value]) -> Value {
    fn merge(values: &[&Value]) -> Value {
        match values.first() {
            Some(Value::Object(first)) => Value::Object(
                first
                    .keys()
                    .map(|k| {
                        let column: Vec<&Value> = values.iter().map(|v| &v[k]).collect();
                        (k.clone(), merge(&column))
                    })
                    .collect(),
            ),
            Some(Value::Number(_)) => {
                let mut numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                numbers.sort_by(f64::total_cmp);
                let mid = numbers.len() / 2;
                let m = if numbers.len() % 2 == 1 {
                    numbers[mid]
                } else {
                    (numbers[mid - 1] + numbers[mid]) / 2.0
                };
                json!(m)
            }
            Some(other) => (*other).clone(),
            None => Value::Null,
        }
    }
    merge(&summaries.iter().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_every_figure() {
        let runs = [
            json!({"scenario": "w1", "rate": 3, "e2e_ms": {"p99": 10}}),
            json!({"scenario": "w1", "rate": 1, "e2e_ms": {"p99": 30}}),
            json!({"scenario": "w1", "rate": 2, "e2e_ms": {"p99": 20}}),
        ];
        assert_eq!(
            median(&runs),
            json!({"scenario": "w1", "rate": 2.0, "e2e_ms": {"p99": 20.0}})
        );
        assert_eq!(median(&runs[..2])["rate"], json!(2.0));
    }
}
