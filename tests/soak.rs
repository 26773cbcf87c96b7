//! The short fault soak (issue 24; `loadtest/src/soak.rs`, `loadtest/bench soak` for the long
//! one): three nodes behind Sentinel with `redis.wait_replicas = 1`, a mixed load for 80 s
//! while every kind of fault is injected once (kill -9 of a node, kill -9 mid-batch, SIGSTOP past
//! the lease, a SIGTERM rolling restart, a Redis master failover). Nothing acknowledged may be
//! lost, ordered endpoints keep ingest order, in-flight caps and rate limits hold.
//!
//! A test binary of its own: `cargo test` runs binaries one after another, so the soak (five
//! processes under load on a small machine) never starves another test's timing.

use std::time::Duration;

// Several threads: the sink must answer while the soak waits on processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_with_every_fault_loses_nothing_acknowledged() {
    let cfg = hookline_loadtest::soak::SoakConfig {
        node_bin: env!("CARGO_BIN_EXE_hookline").into(),
        duration: Duration::from_secs(80),
        seed: 1,
        rate_per_s: 30,
        fault_every: Duration::from_secs(5),
        drain: Duration::from_secs(60),
    };
    let report = hookline_loadtest::soak::run(&cfg).await.expect("the soak ran");
    let text = serde_json::to_string_pretty(&report).unwrap();
    let kinds: std::collections::BTreeSet<&str> = report.faults.iter().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), 5, "every kind of fault once: {text}");
    assert!(report.events_acked >= 600, "too little load to judge: {text}");
    assert!(report.passed(), "{text}");
}
