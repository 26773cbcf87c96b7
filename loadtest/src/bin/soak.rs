//! `soak [--node-bin PATH] [--duration-s 600] [--seed 1] [--rate 60] [--fault-every-s 20]
//!       [--drain-s 120]`: the fault soak (`hookline_loadtest::soak`); prints its report as one
//! JSON line and exits 1 if a check failed. Run by `loadtest/bench soak`.

use hookline_loadtest::soak::{run, SoakConfig};
use std::time::Duration;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |name: &str, default: u64| -> anyhow::Result<u64> {
        Ok(flag(&args, name).map(|v| v.parse()).transpose()?.unwrap_or(default))
    };
    let cfg = SoakConfig {
        node_bin: flag(&args, "--node-bin")
            .unwrap_or_else(|| "target/release/hookline".into())
            .into(),
        duration: Duration::from_secs(number("--duration-s", 600)?),
        seed: number("--seed", 1)?,
        rate_per_s: number("--rate", 60)? as u32,
        fault_every: Duration::from_secs(number("--fault-every-s", 20)?),
        drain: Duration::from_secs(number("--drain-s", 120)?),
    };
    let report = run(&cfg).await?;
    println!("{}", serde_json::to_string(&report)?);
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
