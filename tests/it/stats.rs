//! Delivery stats: after a known workload, an endpoint's buckets count exactly the attempts
//! made, by outcome, in minute and hour buckets alike; the tenant's are the sum of its
//! endpoints'; the parameters are checked; the janitor's roll-up keeps them exact.

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
    // Records write unrolled minutes, kept as long as hours (8 days) so none expires before
    // the janitor rolls it up (`stats_stay_exact_while_minutes_roll_up` checks the roll).
    let keys = redis_cli(&redis, &["--scan", "--pattern", &format!("{prefix}:*:st:m:*")]);
    assert!(!keys.trim().is_empty(), "no unrolled minute bucket");
    for key in keys.lines() {
        let ttl: i64 = redis_cli(&redis, &["ttl", key]).trim().parse().unwrap();
        assert!((3 * 3_600..=8 * 86_400).contains(&ttl), "{key} expires in {ttl} s");
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

/// The roll-up (`store::stats`): records write only unrolled minutes; the janitor's roll moves
/// them into minute and hour buckets. Whenever they are read, before, during or after a roll,
/// with records arriving late for minutes already rolled, and across a day's worth of minutes
/// at once, minutes and hours count exactly the attempts recorded.
#[tokio::test]
async fn stats_stay_exact_while_minutes_roll_up() {
    use crate::store::{connect, stored_endpoint};
    use hookline_actors::model::{FinishedAttempt, Next};
    let (cfg, store, _client) = connect(&unique_prefix("stats-roll")).await;
    let (endpoint, shard) = stored_endpoint(&store, &cfg).await;
    let epoch = store.hold_lease(shard, "n1", 60_000).await.unwrap().expect("held");
    let owner = format!("n1#{epoch}");
    // The checks below assume the minute does not turn meanwhile: start early in a minute.
    let into_minute = hookline_actors::now_ms() % 60_000;
    if into_minute > 45_000 {
        tokio::time::sleep(std::time::Duration::from_millis(60_000 - into_minute + 100)).await;
    }
    let now_s = hookline_actors::now_ms() / 1000;
    let minute = now_s - now_s % 60;
    let mut made = 0u64;
    let record = |ago_s: u64, n: usize| {
        let batch: Vec<FinishedAttempt> = (0..n)
            .map(|i| FinishedAttempt {
                event_id: format!("evt_{ago_s}_{i}_{}", hookline_actors::now_ms()),
                number: 1,
                record: crate::store::answered(200, 3, (now_s - ago_s) * 1000),
                next: Next::Delivered,
                new_record: None,
            })
            .collect();
        let (store, endpoint, owner) = (store.clone(), endpoint.clone(), owner.clone());
        async move {
            for r in store.record_attempts(&owner, &endpoint, shard, &batch).await {
                r.unwrap();
            }
        }
    };
    // (minutes over the last 3 h, hours over the last 3 days): the sums of every bucket.
    let sums = || async {
        let minutes = store
            .endpoint_stats(&endpoint.id, 60, now_s - 3 * 3_600 + 60, now_s + 1)
            .await
            .unwrap();
        let hours = store
            .endpoint_stats(&endpoint.id, 3_600, now_s - 3 * 86_400, now_s + 1)
            .await
            .unwrap();
        let total = |b: &[hookline::store::stats::Bucket]| b.iter().map(|b| b.counts[0]).sum::<u64>();
        (total(&minutes), total(&hours))
    };
    let redis = shared_redis_url();
    let prefix = &cfg.redis.prefix;
    let keys = |kind: &str| redis_cli(&redis, &["--scan", "--pattern", &format!("{prefix}:*:st:{kind}:*")]);
    let dirty = || {
        let key = store.keys().stats_dirty(shard);
        redis_cli(&redis, &["zscore", &key, &endpoint.id]).trim().to_string()
    };

    // Two hours ago, 90 minutes ago, the last minute, this minute: within the minutes kept.
    for (ago, n) in [(2 * 3_600, 3), (90 * 60, 2), (60, 4), (0, 1)] {
        record(ago, n).await;
        made += n as u64;
    }
    assert!(
        keys("60").trim().is_empty() && keys("3600").trim().is_empty(),
        "nothing rolled yet"
    );
    let oldest = (now_s - 2 * 3_600) / 60 * 60;
    assert_eq!(dirty(), oldest.to_string(), "the oldest unrolled minute is noted");
    assert_eq!(
        sums().await,
        (made, made),
        "unrolled minutes count in minutes and hours"
    );

    // The roll: every minute before this one; this one stays unrolled and dirty.
    let rolled = store.roll_stats().await.unwrap();
    assert_eq!(rolled, 3, "the three past minutes with counts");
    assert_eq!(sums().await, (made, made), "the same after the roll");
    let unrolled = keys("m");
    assert_eq!(unrolled.lines().count(), 1, "only this minute is left: {unrolled}");
    assert_eq!(dirty(), minute.to_string(), "and it is the endpoint's oldest now");
    for (kind, kept) in [("60", 3 * 3_600), ("3600", 8 * 86_400)] {
        let rolled = keys(kind);
        assert!(!rolled.trim().is_empty(), "no rolled bucket of step {kind}");
        for key in rolled.lines() {
            let ttl: i64 = redis_cli(&redis, &["ttl", key]).trim().parse().unwrap();
            assert!((1..=kept).contains(&ttl), "{key} expires in {ttl} s");
        }
    }
    let two_hours_ago = redis_cli(&redis, &["ttl", &store.keys().stats(shard, &endpoint.id, 60, oldest)]);
    let two_hours_ago: i64 = two_hours_ago.trim().parse().unwrap();
    assert!(
        two_hours_ago <= 3_600 + 60,
        "a rolled minute expires 3 h after it began, not after the roll: {two_hours_ago}"
    );

    // Late records for rolled minutes, each read while a roll runs: never counted twice or
    // missed (the roll and the read are each one script).
    for i in 0..20 {
        record(90 * 60 + (i % 3) * 60, 1).await;
        made += 1;
        let (roll, read) = tokio::join!(store.roll_stats(), sums());
        roll.unwrap();
        assert_eq!(read, (made, made), "round {i}");
    }
    store.roll_stats().await.unwrap();
    assert_eq!(sums().await, (made, made));

    // Two days ago: an older minute than any, rolled over two days' minutes (calls of a day).
    record(2 * 86_400, 5).await;
    made += 5;
    assert_eq!(dirty(), ((now_s - 2 * 86_400) / 60 * 60).to_string());
    assert_eq!(sums().await.1, made, "the hours count it before the roll");
    assert_eq!(store.roll_stats().await.unwrap(), 1);
    assert_eq!(sums().await.1, made, "and after");
    let day_old_hour = (now_s - 2 * 86_400) / 3_600 * 3_600;
    let hour = store
        .endpoint_stats(&endpoint.id, 3_600, day_old_hour, day_old_hour + 1)
        .await
        .unwrap();
    assert_eq!(hour[0].counts[0], 5, "{hour:?}");

    // Buckets an older node wrote straight into the rolled names count too (a rolling upgrade).
    let old_hour = store.keys().stats(shard, &endpoint.id, 3_600, day_old_hour);
    let old_minute = store.keys().stats(shard, &endpoint.id, 60, minute - 120);
    let old_hour_now = store
        .keys()
        .stats(shard, &endpoint.id, 3_600, (minute - 120) / 3_600 * 3_600);
    for key in [&old_hour, &old_minute, &old_hour_now] {
        redis_cli(&redis, &["hincrby", key, "s0", "1"]);
    }
    // (The two-day-old five are past the minutes' 3 hours.)
    assert_eq!(sums().await, (made - 5 + 1, made + 2));
}
