//! `pages --node http://127.0.0.1:8080 --token dev-admin-token [--endpoints N] [--events N]
//!        [--times N] [--timeout-s S]`: the console's pages in a big tenant
//! (`hookline_loadtest::pages`); prints one JSON line. Run by `loadtest/bench pages`.

use hookline_loadtest::pages::{run, Options};
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
    let mut o = Options::new(
        &flag(&args, "--node").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        &flag(&args, "--token").unwrap_or_else(|| "dev-admin-token".into()),
    );
    let number =
        |name: &str| -> anyhow::Result<Option<usize>> { Ok(flag(&args, name).map(|v| v.parse()).transpose()?) };
    if let Some(n) = number("--endpoints")? {
        o.endpoints = n;
    }
    if let Some(n) = number("--events")? {
        o.events = n;
    }
    if let Some(n) = number("--times")? {
        o.times = n;
    }
    if let Some(n) = number("--timeout-s")? {
        o.timeout = Duration::from_secs(n as u64);
    }
    println!("{}", run(&o).await?);
    Ok(())
}
