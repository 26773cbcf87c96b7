//! Delivery stats: after a known workload, an endpoint's buckets count exactly the attempts
//! made, by outcome, in minute and hour buckets alike; the tenant's are the sum of its
//! endpoints'; the parameters are checked.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::time::Duration;

/// (success, retry, failed, dead) summed over an answer's buckets, and the bucket count.
fn totals(stats: &Value) -> ([u64; 4], usize) {
    let buckets = stats["buckets"].as_array().unwrap_or_else(|| panic!("{stats}"));
    let mut sum = [0; 4];
    for b in buckets {
        for (i, field) in ["success", "retry", "failed", "dead"].iter().enumerate() {
            sum[i] += b[field].as_u64().unwrap();
        }
    }
    (sum, buckets.len())
}

#[tokio::test]
async fn stats_count_exactly_the_attempts_made() {
    let (redis, prefix) = (shared_redis_url(), unique_prefix("stats"));
    let node = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let make = |url: String, types: &str, extra: Value| {
        let mut body = json!({"url": url, "event_types": [types]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let ok = api
        .create_endpoint("s", make(sink.url("ok/fine"), "ok.*", json!({})))
        .await;
    let refuse = api
        .create_endpoint("s", make(sink.url("status/400/refuse"), "refuse.*", json!({})))
        .await;
    let flaky = api
        .create_endpoint(
            "s",
            make(
                sink.url("status/503/flaky"),
                "flaky.*",
                json!({"retry_schedule_s": [1]}),
            ),
        )
        .await;
    for (kind, n) in [("ok.a", 5), ("refuse.a", 3), ("flaky.a", 2)] {
        for _ in 0..n {
            api.post_event("s", kind, json!({})).await.unwrap();
        }
    }
    // 5 delivered; 3 refused for good; 2 × (a retry, then dead with retries exhausted).
    let counts = || ["fine", "refuse", "flaky"].map(|n| sink.received_by(n).len());
    let done = poll_until(Duration::from_secs(20), || async {
        (counts() == [5, 3, 4]).then_some(())
    })
    .await;
    let log = node.logs();
    assert!(
        done.is_some(),
        "attempts seen {:?}; the node's last lines: {:?}",
        counts(),
        &log[log.len().saturating_sub(5)..]
    );
    let expected = [(&ok, [5, 0, 0, 0]), (&refuse, [0, 0, 3, 0]), (&flaky, [0, 2, 0, 2])];
    for (ep, want) in expected {
        let path = format!("/v1/tenants/s/endpoints/{}/stats", ep["id"].as_str().unwrap());
        // The records (and so the stats) follow the answers by a moment.
        let minutes = api
            .get_until(&path, Duration::from_secs(10), |s| totals(s).0 == want)
            .await;
        assert_eq!(minutes["step"], 60);
        assert!(
            (60..=61).contains(&totals(&minutes).1),
            "an hour of minute buckets: {minutes}"
        );
        let (_, hours) = api.get(&format!("{path}?step=3600")).await;
        assert_eq!(totals(&hours).0, want, "hour buckets count the same attempts: {hours}");
        let busy = minutes["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["latency_ms"]["p50"].is_u64());
        let busy = busy.unwrap_or_else(|| panic!("no bucket with a latency: {minutes}"));
        assert!(busy["latency_ms"]["p99"].as_u64() >= busy["latency_ms"]["p50"].as_u64());
    }
    // Buckets expire: 3 hours for minutes, 8 days for hours.
    for (step, kept) in [(60, 3 * 3_600), (3_600, 8 * 86_400)] {
        let pattern = format!("{prefix}:*:st:{step}:*");
        let keys = redis_cli(&redis, &["--scan", "--pattern", &pattern]);
        assert!(!keys.trim().is_empty(), "no bucket of step {step}");
        for key in keys.lines() {
            let ttl: i64 = redis_cli(&redis, &["ttl", key]).trim().parse().unwrap();
            assert!((1..=kept).contains(&ttl), "{key} expires in {ttl} s");
        }
    }
    // Every attempt the log holds is counted once.
    let (_, log) = api.get("/v1/tenants/s/deliveries?limit=500").await;
    let attempts: u64 = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempts"].as_u64().unwrap())
        .sum();
    let tenant = api
        .get_until("/v1/tenants/s/stats", Duration::from_secs(5), |s| {
            totals(s).0 == [5, 2, 3, 2]
        })
        .await;
    assert_eq!(totals(&tenant).0.iter().sum::<u64>(), attempts, "{tenant}");

    // Parameters: a window in the past is empty, the range is bounded, bad values are 400.
    let (_, old) = api
        .get("/v1/tenants/s/stats?from=2020-01-01T00:00:00Z&to=2020-01-01T01:00:00Z")
        .await;
    assert_eq!(totals(&old), ([0; 4], 60));
    let (_, wide) = api.get("/v1/tenants/s/stats?from=2020-01-01T00:00:00Z").await;
    assert_eq!(totals(&wide).1, 200, "at most 200 buckets, the newest");
    let (_, backwards) = api
        .get("/v1/tenants/s/stats?from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(totals(&backwards).1, 0);
    for bad in ["step=5", "from=yesterday", "window=1"] {
        let (status, answer) = api.get(&format!("/v1/tenants/s/stats?{bad}")).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {answer}"
        );
    }
    let path = format!("/v1/tenants/s/endpoints/{}/stats", "ep_00000000000000000000");
    assert_eq!(api.get(&path).await.0, 404);
}
