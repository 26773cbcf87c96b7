//! `drive`: run one load scenario against a node and print one JSON summary line (see
//! `hookline_loadtest::drive` for the scenarios and figures). Exits non-zero if anything
//! acknowledged was not delivered.
//!
//! `drive --node http://127.0.0.1:8080 --token dev-admin-token --scenario w1|…|w8
//!        [--events N] [--endpoints N] [--concurrency N] [--rate N] [--batch N] [--runs N]
//!        [--node-pid PID] [--redis redis://…] [--ceiling] [--tenant-key] [--tls] [--client-cert] [--oauth] [--timeout-s S]
//!        [--catalogue off|warn|enforce]`
//! `--tls` delivers over HTTPS (a CA made for the run; endpoints get `tls.ca_pem`),
//! `--client-cert` also makes the sink require a client certificate the endpoints present,
//! `--oauth` makes the endpoints fetch an OAuth2 token from the sink and send it.
//! (`--tenant-key`: ingest with a tenant key minted for the run, holding `events:write` only,
//! instead of the admin token)
//! `--catalogue MODE`: the validation benchmark: 2 KB orders, their type registered with a
//! realistic schema, the tenant's `validation` set to MODE (compare `off` with `enforce`).
//!
//! With `--runs N` it runs the scenario N times and ends with a line holding the median of
//! every figure (`"median_of": N`). `drive --median-of FILE` prints the medians of the
//! summaries in FILE (runs made one by one, each on a fresh node).

use hookline_loadtest::drive::{run, Options, Scenario};

fn parse() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let scenario = value_of("--scenario").unwrap_or_else(|| "w1".into());
    let scenario =
        Scenario::parse(&scenario).ok_or_else(|| anyhow::anyhow!("unknown scenario {scenario:?} (w1…w8)"))?;
    let mut o = Options::new(
        &value_of("--node").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        &value_of("--token").unwrap_or_else(|| "dev-admin-token".into()),
        scenario,
    );
    let known = [
        "--node",
        "--token",
        "--scenario",
        "--events",
        "--endpoints",
        "--concurrency",
        "--rate",
        "--batch",
        "--node-pid",
        "--redis",
        "--timeout-s",
        "--runs",
        "--catalogue",
    ];
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--ceiling" | "--tenant-key" | "--tls" | "--client-cert" | "--oauth" | "--transform" => i += 1,
            flag if known.contains(&flag) => {
                anyhow::ensure!(i + 1 < args.len(), "{flag} needs a value");
                i += 2;
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    if let Some(v) = value_of("--events") {
        o.events = v.parse()?;
    }
    if let Some(v) = value_of("--endpoints") {
        o.endpoints = v.parse()?;
    }
    if let Some(v) = value_of("--concurrency") {
        o.concurrency = v.parse()?;
    }
    if let Some(v) = value_of("--rate") {
        o.rate = Some(v.parse()?);
    }
    if let Some(v) = value_of("--batch") {
        o.batch = v.parse()?;
    }
    if let Some(v) = value_of("--timeout-s") {
        o.timeout_s = v.parse()?;
    }
    o.node_pid = value_of("--node-pid").map(|v| v.parse()).transpose()?;
    o.redis_url = value_of("--redis");
    o.ceiling = args.iter().any(|a| a == "--ceiling");
    o.tenant_key = args.iter().any(|a| a == "--tenant-key");
    o.tls = args.iter().any(|a| a == "--tls");
    o.client_cert = args.iter().any(|a| a == "--client-cert");
    o.oauth = args.iter().any(|a| a == "--oauth");
    o.transform = args.iter().any(|a| a == "--transform");
    o.catalogue = value_of("--catalogue");
    if let Some(mode) = &o.catalogue {
        anyhow::ensure!(
            ["off", "warn", "enforce"].contains(&mode.as_str()),
            "--catalogue: off, warn or enforce"
        );
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, file] = args.as_slice() {
        if flag == "--median-of" {
            // The medians of summaries printed before (one JSON line each; others skipped).
            let summaries: Vec<serde_json::Value> = std::fs::read_to_string(file)?
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|v: &serde_json::Value| v.get("scenario").is_some())
                .collect();
            anyhow::ensure!(!summaries.is_empty(), "no summaries in {file}");
            let mut median = hookline_loadtest::drive::median(&summaries);
            median["median_of"] = summaries.len().into();
            println!("{median}");
            return Ok(());
        }
    }
    let options = parse()?;
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1);
    anyhow::ensure!((1..=20).contains(&runs), "--runs: 1 to 20");
    let mut summaries = Vec::new();
    let mut missing = 0;
    for _ in 0..runs {
        let summary = run(&options).await?;
        println!("{summary}");
        missing += summary["missing"].as_u64().unwrap_or(0);
        summaries.push(summary);
    }
    if runs > 1 {
        let mut median = hookline_loadtest::drive::median(&summaries);
        median["median_of"] = runs.into();
        println!("{median}");
    }
    anyhow::ensure!(missing == 0, "{missing} acknowledged deliveries did not arrive");
    Ok(())
}
