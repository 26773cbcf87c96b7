//! `drive`: a minimal load driver. It starts a sink in-process, creates one endpoint on the
//! node pointing at it, posts `--events` events with `--concurrency` requests in flight, waits
//! (bounded by `--timeout-s`) until the sink has every acknowledged event, and prints one JSON
//! summary line. It exits non-zero if anything acknowledged was not delivered.
//!
//! `drive --node http://127.0.0.1:8080 --token dev-admin-token [--events 500] [--concurrency 16]`

use std::collections::HashSet;
use std::time::{Duration, Instant};

struct Args {
    node: String,
    token: String,
    events: usize,
    concurrency: usize,
    timeout_s: u64,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        node: "http://127.0.0.1:8080".into(),
        token: "dev-admin-token".into(),
        events: 500,
        concurrency: 16,
        timeout_s: 60,
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
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!(
        a.events <= 1_000_000 && a.concurrency >= 1 && a.concurrency <= 1_000,
        "events ≤ 1e6, 1 ≤ concurrency ≤ 1000"
    );
    Ok(a)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let sink = hookline_loadtest::sink::Sink::start("127.0.0.1:0").await?;
    let client = reqwest::Client::new();
    let tenant = format!("drive-{}", std::process::id());
    let endpoint: serde_json::Value = client
        .post(format!("{}/v1/tenants/{tenant}/endpoints", args.node))
        .bearer_auth(&args.token)
        .json(&serde_json::json!({"url": sink.url("ok/drive"), "max_in_flight": 32}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(endpoint["id"].is_string(), "endpoint creation failed: {endpoint}");

    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, node, token, tenant, total) = (
            client.clone(),
            next.clone(),
            args.node.clone(),
            args.token.clone(),
            tenant.clone(),
            args.events,
        );
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let t = Instant::now();
                let resp = client
                    .post(format!("{node}/v1/tenants/{tenant}/events"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"type": "load.test", "payload": {"sent_ms": 0}}))
                    .send()
                    .await;
                if let Ok(resp) = resp {
                    if resp.status().as_u16() == 202 {
                        if let Ok(body) = resp.json::<serde_json::Value>().await {
                            acked.push(body["id"].as_str().unwrap_or_default().to_string());
                            latencies.push(t.elapsed().as_micros() as u64);
                        }
                    }
                }
            }
            (acked, latencies)
        }));
    }
    let mut acked = HashSet::new();
    let mut latencies = Vec::new();
    for t in tasks {
        let (a, l) = t.await?;
        acked.extend(a);
        latencies.extend(l);
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut delivered = sink.delivered_ids("drive");
    while !acked.is_subset(&delivered) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        delivered = sink.delivered_ids("drive");
    }
    let total_s = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let missing = acked.difference(&delivered).count();
    let requests = sink.received_by("drive").len();
    let summary = serde_json::json!({
        "events_posted": args.events,
        "events_acked": acked.len(),
        "ingest_per_s": acked.len() as f64 / ingest_s,
        "ingest_p50_ms": percentile(&latencies, 0.5) as f64 / 1000.0,
        "ingest_p99_ms": percentile(&latencies, 0.99) as f64 / 1000.0,
        "delivered": delivered.len(),
        "delivery_per_s": delivered.len() as f64 / total_s,
        "duplicates": requests.saturating_sub(delivered.len()),
        "missing": missing,
    });
    println!("{summary}");
    anyhow::ensure!(missing == 0, "{missing} acknowledged events were not delivered");
    Ok(())
}
