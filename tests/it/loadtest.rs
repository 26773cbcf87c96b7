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

    // Batch ingest takes the same path, here with a tenant key holding events:write only.
    options.batch = 50;
    options.ceiling = false;
    options.tenant_key = true;
    let summary = run(&options).await.unwrap();
    assert_eq!(
        (summary["delivered"].as_u64(), summary["missing"].as_u64()),
        (Some(300), Some(0)),
        "{summary}"
    );
}

/// W8, the inbound scenario, end to end at a small rate: GitHub-signed requests to a source,
/// every one accepted and delivered, with the accept latency reported.
#[tokio::test]
async fn tiny_w8_posts_signed_requests_to_a_source_and_delivers_them() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("w8"))).await;
    let mut options = Options::new(&node.api.base, ADMIN, Scenario::W8);
    options.events = 200;
    options.rate = Some(200);
    options.concurrency = 8;
    options.timeout_s = 60;
    let summary = run(&options).await.unwrap();
    assert_eq!(summary["events_acked"], 200, "{summary}");
    assert_eq!(summary["delivered"], 200, "{summary}");
    assert_eq!(summary["missing"], 0, "{summary}");
    assert!(summary["ingest_request_p99_ms"].as_f64().unwrap() > 0.0, "{summary}");
    assert!(summary["e2e_ms"]["p99"].as_u64().is_some(), "{summary}");
}

/// The sink's in-flight count (behind the ordered and isolation checks) counts a request out
/// when its sender gives up on it mid-answer, as when a node aborts an attempt on losing a
/// shard: an abandoned request does not stay counted and inflate every later maximum.
#[tokio::test]
async fn the_sink_counts_an_abandoned_request_out_of_flight() {
    use hookline_loadtest::sink::Sink;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let client = reqwest::Client::new();
    let abandoned = client
        .post(sink.url("sleep/2000/x"))
        .timeout(std::time::Duration::from_millis(200))
        .body("{}")
        .send()
        .await;
    assert!(abandoned.is_err(), "the slow request was answered within its timeout");
    wait_for(
        std::time::Duration::from_secs(10),
        "the abandoned request to end",
        || sink.arrivals("x") == 1,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let answered = client.post(sink.url("sleep/10/x")).body("{}").send().await.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(sink.max_in_flight("x"), 1, "two requests were never in flight at once");
}

/// The tiny `pages` benchmark (issue 18's page timings): every page it times answers 200 in a
/// seeded tenant. Asserts the pages answered, never how fast.
#[tokio::test]
async fn tiny_pages_bench_reaches_every_page() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("pages"))).await;
    let mut options = hookline_loadtest::pages::Options::new(&node.api.base, ADMIN);
    options.endpoints = 4;
    options.events = 3;
    options.times = 2;
    options.timeout = std::time::Duration::from_secs(60);
    let summary = hookline_loadtest::pages::run(&options).await.unwrap();
    assert_eq!(summary["deliveries"], 12, "{summary}");
    let pages = summary["pages"].as_object().unwrap();
    assert_eq!(pages.len(), 12, "{summary}");
    for (name, timing) in pages {
        assert!(timing["median_ms"].as_f64().unwrap() > 0.0, "{name}: {summary}");
    }
}
