//! Process lifecycle: configuration errors, graceful shutdown on SIGTERM.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::time::{Duration, Instant};

fn run_with_env(env: &[(&str, &str)]) -> std::process::Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.current_dir(cwd.path())
        .env("HOOKLINE__SERVER__LISTEN", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_bad_setting_stops_the_node_naming_the_key() {
    let cases = [
        (
            vec![
                ("HOOKLINE__AUTH__INSECURE_NO_AUTH", "true"),
                ("HOOKLINE__DELIVERY__TIMEOUT_MS", "fast"),
            ],
            "delivery.timeout_ms",
        ),
        (
            vec![
                ("HOOKLINE__AUTH__INSECURE_NO_AUTH", "true"),
                ("HOOKLINE__REDIS__URL", "http://nope"),
            ],
            "redis.url",
        ),
        (vec![], "auth.admin_tokens"),
    ];
    for (env, key) in cases {
        let out = run_with_env(&env);
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(text.contains(key), "{env:?}: {text}");
    }
}

/// SIGTERM: stop accepting, let the attempt in flight finish, give leases back, exit 0 — and
/// the finished attempt is recorded, so a restarted node does not send it again.
#[tokio::test]
async fn sigterm_finishes_in_flight_attempts_and_exits_zero() {
    let redis = shared_redis_url();
    let opts = NodeOpts::new(&redis, &unique_prefix("term"));
    let mut node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api
        .create_endpoint("g", json!({"url": sink.url("sleep/2000/term")}))
        .await;
    let id = node.api.post_event("g", "a.b", json!({})).await.unwrap();
    wait_for(Duration::from_secs(10), "the attempt to start", || {
        sink.arrivals("term") == 1
    })
    .await;

    let started = Instant::now();
    node.sigterm();
    let status = node
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("node did not exit within 30 s");
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        sink.delivered_ids("term").contains(&id),
        "the in-flight attempt was cut off"
    );
    // The last lines may still be in the pipe when the exit is seen: give the reader a moment.
    wait_for(Duration::from_secs(5), "the \"stopped\" log line", || {
        node.logs().iter().any(|l| l.contains("\"msg\":\"stopped\""))
    })
    .await;

    // A new node on the same prefix finds nothing left to send.
    let next = Node::start_ready(&opts).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink.arrivals("term"),
        1,
        "the delivery was made again after a clean shutdown"
    );
    drop(next);
}

/// `shards.count` and `router.partitions` are fixed for a deployment: a node configured with
/// other values than the first node recorded in Redis refuses to start, naming the key, rather
/// than queueing work where the other nodes never look.
#[tokio::test]
async fn a_node_that_does_not_match_the_deployment_refuses_to_start() {
    let redis = shared_redis_url();
    let prefix = unique_prefix("layout");
    let _first = Node::start_ready(&NodeOpts::new(&redis, &prefix)).await;
    for (key, env, value) in [
        ("shards.count", "HOOKLINE__SHARDS__COUNT", "32"),
        ("router.partitions", "HOOKLINE__ROUTER__PARTITIONS", "4"),
    ] {
        let text = refused_start(&redis, &prefix, &[("HOOKLINE__SHARDS__COUNT", "16"), (env, value)]).await;
        assert!(
            text.contains(key) && text.contains("does not match the deployment"),
            "{text}"
        );
    }
}
