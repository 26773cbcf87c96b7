//! The tiny W1 that keeps `loadtest/` working: the driver's whole path (endpoint set-up, ingest,
//! signature checks, cost figures, clean-up) against a real node. It asserts that everything
//! was delivered and signed, never a speed.

use crate::support::*;
use hookline_loadtest::drive::{run, Options, Scenario};

#[tokio::test]
async fn tiny_w1_delivers_everything() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("w1"))).await;
    let mut options = Options::new(&node.api.base, ADMIN, Scenario::W1);
    options.events = 300;
    options.concurrency = 8;
    options.timeout_s = 60;
    options.node_pid = Some(node.pid());
    options.redis_url = Some(redis.clone());
    options.ceiling = true;
    let summary = run(&options).await.unwrap();
    assert_eq!(summary["events_acked"], 300, "{summary}");
    assert_eq!(summary["delivered"], 300, "{summary}");
    assert_eq!(summary["missing"], 0, "{summary}");
    assert_eq!(summary["bad_signatures"], 0, "{summary}");
    for figure in [
        "ceiling_per_s",
        "redis_commands_per_delivery",
        "node_cpu_s_per_10k",
        "node_rss_peak_kib",
    ] {
        assert!(summary[figure].is_number(), "{figure} missing: {summary}");
    }

    // Batch ingest takes the same path.
    options.batch = 50;
    options.ceiling = false;
    let summary = run(&options).await.unwrap();
    assert_eq!(
        (summary["delivered"].as_u64(), summary["missing"].as_u64()),
        (Some(300), Some(0)),
        "{summary}"
    );
}
