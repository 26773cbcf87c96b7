//! `drive`: a load driver. It starts a sink in-process (lean: ids and times only), creates an
//! endpoint on the node pointing at it, posts `--events` events with `--concurrency` requests
//! in flight, and prints one JSON summary line. Every run is bounded by `--timeout-s`; it exits
//! non-zero if anything acknowledged was not delivered.
//!
//! Scenarios (`--scenario`):
//! - `throughput` (default): a healthy endpoint; ingest rate and latency, delivery rate.
//! - `backlog` (W5): the endpoint is dead (503) while the events queue up — the node's breaker
//!   opens and the backlog waits in Redis — then it is revived and the backlog drains. With
//!   `--node-pid` it samples the node's RSS throughout (peak, with the backlog queued, drained).
//!
//! `drive --node http://127.0.0.1:8080 --token dev-admin-token [--events 500] [--concurrency 16]
//!        [--scenario throughput|backlog] [--node-pid PID] [--timeout-s 600]`

use hookline_loadtest::rss_kib;
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Throughput,
    Backlog,
}

struct Args {
    node: String,
    token: String,
    events: usize,
    concurrency: usize,
    timeout_s: u64,
    scenario: Scenario,
    node_pid: Option<u32>,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        node: "http://127.0.0.1:8080".into(),
        token: "dev-admin-token".into(),
        events: 500,
        concurrency: 16,
        timeout_s: 60,
        scenario: Scenario::Throughput,
        node_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--node" => a.node = value()?,
            "--token" => a.token = value()?,
            "--events" => a.events = value()?.parse()?,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--timeout-s" => a.timeout_s = value()?.parse()?,
            "--node-pid" => a.node_pid = Some(value()?.parse()?),
            "--scenario" => {
                a.scenario = match value()?.as_str() {
                    "throughput" => Scenario::Throughput,
                    "backlog" => Scenario::Backlog,
                    other => anyhow::bail!("unknown scenario {other:?} (throughput, backlog)"),
                }
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!(
        a.events <= 1_000_000 && (1..=1_000).contains(&a.concurrency) && (1..=3_600).contains(&a.timeout_s),
        "events ≤ 1e6, 1 ≤ concurrency ≤ 1000, 1 ≤ timeout-s ≤ 3600"
    );
    Ok(a)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Post `events` events from `concurrency` tasks; the acknowledged ids and ingest latencies (µs).
async fn ingest(client: &reqwest::Client, args: &Args, tenant: &str) -> (HashSet<String>, Vec<u64>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, total) = (client.clone(), next.clone(), args.events);
        let url = format!("{}/v1/tenants/{tenant}/events", args.node);
        let token = args.token.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let body = json!({"type": "load.test", "payload": {"n": 1}});
                let Ok(resp) = client.post(&url).bearer_auth(&token).json(&body).send().await else {
                    continue;
                };
                if resp.status().as_u16() != 202 {
                    continue;
                }
                if let Ok(answer) = resp.json::<Value>().await {
                    if let Some(id) = answer["id"].as_str() {
                        acked.push(id.to_string());
                        latencies.push(t.elapsed().as_micros() as u64);
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

/// Wait until the sink has every id in `acked` under `name`, or the deadline passes.
async fn await_delivery(sink: &Sink, name: &str, acked: &HashSet<String>, deadline: Instant) -> HashSet<String> {
    loop {
        let delivered = sink.delivered_ids(name);
        if acked.is_subset(&delivered) || Instant::now() >= deadline {
            return delivered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let sink = Sink::start_lean("127.0.0.1:0").await?;
    let client = reqwest::Client::new();
    let tenant = format!("drive-{}", std::process::id());
    let path = match args.scenario {
        Scenario::Throughput => "ok/drive",
        Scenario::Backlog => "switch/drive",
    };
    if args.scenario == Scenario::Backlog {
        sink.set_switch("drive", 503);
    }
    let endpoint: Value = client
        .post(format!("{}/v1/tenants/{tenant}/endpoints", args.node))
        .bearer_auth(&args.token)
        .json(&json!({"url": sink.url(path), "max_in_flight": 32}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let endpoint_id = endpoint["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("endpoint creation failed: {endpoint}"))?;

    // RSS sampler (peak), when the node's pid is known.
    let peak_rss = Arc::new(AtomicU64::new(0));
    if let Some(pid) = args.node_pid {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
    let rss_start = args.node_pid.map(rss_kib);

    let started = Instant::now();
    let (acked, latencies) = ingest(&client, &args, &tenant).await;
    let ingest_s = started.elapsed().as_secs_f64();
    let mut summary = json!({
        "scenario": if args.scenario == Scenario::Backlog { "backlog" } else { "throughput" },
        "events_posted": args.events,
        "events_acked": acked.len(),
        "ingest_per_s": acked.len() as f64 / ingest_s,
        "ingest_p50_ms": percentile(&latencies, 0.5) as f64 / 1000.0,
        "ingest_p99_ms": percentile(&latencies, 0.99) as f64 / 1000.0,
        "node_rss_start_kib": rss_start,
    });

    let drain_started = Instant::now();
    if args.scenario == Scenario::Backlog {
        // Wait until the whole backlog is queued for the endpoint, then revive it.
        let url = format!("{}/v1/tenants/{tenant}/endpoints/{endpoint_id}", args.node);
        let mut backlog = 0;
        while Instant::now() < deadline {
            let state: Value = client.get(&url).bearer_auth(&args.token).send().await?.json().await?;
            backlog = state["state"]["backlog"].as_u64().unwrap_or(0);
            if backlog as usize >= acked.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        summary["backlog_queued"] = json!(backlog);
        summary["node_rss_backlog_kib"] = json!(args.node_pid.map(rss_kib));
        sink.set_switch("drive", 200);
    }
    let drain_started = if args.scenario == Scenario::Backlog {
        Instant::now()
    } else {
        drain_started
    };
    let delivered = await_delivery(&sink, "drive", &acked, deadline).await;
    let drain_s = drain_started.elapsed().as_secs_f64();
    let total_s = started.elapsed().as_secs_f64();
    let requests = sink.received_by("drive").iter().filter(|r| r.status == 200).count();
    let missing = acked.difference(&delivered).count();
    summary["delivered"] = json!(delivered.len());
    summary["delivery_per_s"] = json!(delivered.len() as f64 / total_s);
    summary["drain_s"] = json!(drain_s);
    summary["drain_per_s"] = json!(delivered.len() as f64 / drain_s);
    summary["duplicates"] = json!(requests.saturating_sub(delivered.len()));
    summary["missing"] = json!(missing);
    summary["node_rss_peak_kib"] = json!(args.node_pid.map(|_| peak_rss.load(Ordering::Relaxed)));
    summary["node_rss_end_kib"] = json!(args.node_pid.map(rss_kib));
    println!("{summary}");
    anyhow::ensure!(missing == 0, "{missing} acknowledged events were not delivered");
    Ok(())
}
