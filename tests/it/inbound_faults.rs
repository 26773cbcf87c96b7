//! The inbound gateway under faults: a kill -9 while providers post.

use crate::inbound::*;
use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Post `count` Stripe-signed events (ids `{tag}-{task}-{n}`) from `tasks` tasks; every id the
/// node answered `success` for goes into `accepted`. Connection errors (a dead node) are counted,
/// not fatal.
async fn post_stripe_events(
    base: String,
    source: String,
    tag: &'static str,
    count: usize,
    tasks: usize,
    accepted: Arc<Mutex<Vec<String>>>,
    failed: Arc<AtomicUsize>,
) {
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (base, source, accepted, failed) = (base.clone(), source.clone(), accepted.clone(), failed.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                for n in (task..count).step_by(tasks) {
                    let body =
                        json!({"id": format!("{tag}-{n}"), "type": "charge.succeeded", "data": {"n": n}}).to_string();
                    let signature = stripe_signature("kill-secret", unix_now(), body.as_bytes());
                    let sent = http
                        .post(format!("{base}/in/{source}"))
                        .header("Stripe-Signature", signature)
                        .body(body)
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(resp) if resp.status() == 200 => resp.json::<serde_json::Value>().await.ok(),
                        _ => None,
                    };
                    match answer {
                        Some(a) if a["status"] == "success" => {
                            accepted.lock().unwrap().push(a["id"].as_str().unwrap().to_string())
                        }
                        Some(_) => {}
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
}

/// Invariant 1 for the inbound door: every `success` answered before a kill -9 is delivered
/// downstream after a restart (at least once).
#[tokio::test]
async fn kill_9_while_providers_post_loses_no_accepted_event() {
    let redis = shared_redis_url();
    let opts = NodeOpts::new(&redis, &unique_prefix("inbound-kill9")).node_id("inbound-kill9");
    let mut node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api
        .create_endpoint(
            "k",
            json!({"url": sink.url("sleep/20/k"), "max_in_flight": 4, "event_types": ["stripe.*"]}),
        )
        .await;
    let source = create_source(
        &node,
        "k",
        json!({"name": "s", "kind": "stripe", "secret": "kill-secret", "type_prefix": "stripe."}),
    )
    .await;
    let source = source["id"].as_str().unwrap().to_string();

    let accepted = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicUsize::new(0));
    let poster = tokio::spawn(post_stripe_events(
        node.api.base.clone(),
        source.clone(),
        "ch",
        3_000,
        16,
        accepted.clone(),
        failed.clone(),
    ));
    wait_for(Duration::from_secs(60), "inbound posts under way", || {
        accepted.lock().unwrap().len() >= 1_000
    })
    .await;
    node.kill9().await;
    poster.await.unwrap();
    let accepted: HashSet<String> = accepted.lock().unwrap().iter().cloned().collect();
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "the kill came after the last post: it proved nothing"
    );
    // About 200 deliveries a second (4 at once × 20 ms): work was still queued at the kill.
    let delivered_at_kill = sink.delivered_ids("k").len();
    assert!(
        accepted.len() >= delivered_at_kill + 100,
        "nothing left to deliver at the kill ({delivered_at_kill} of {})",
        accepted.len()
    );

    let node = Node::start_ready(&opts).await;
    wait_for(
        Duration::from_secs(60),
        "every accepted inbound event delivered",
        || accepted.is_subset(&sink.delivered_ids("k")),
    )
    .await;
    println!(
        "inbound kill -9: {} accepted before the kill, {} posts failed, {} delivered",
        accepted.len(),
        failed.load(Ordering::Relaxed),
        sink.delivered_ids("k").len()
    );
    // A provider retries what failed: the same ids, so nothing accepted before is stored again.
    let again = Arc::new(Mutex::new(Vec::new()));
    post_stripe_events(
        node.api.base.clone(),
        source,
        "ch",
        3_000,
        16,
        again.clone(),
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    let again: HashSet<String> = again.lock().unwrap().iter().cloned().collect();
    assert!(again.is_disjoint(&accepted), "a retried provider id was stored twice");
    // One event per provider id, whether its first answer was lost in the kill or not.
    assert_eq!(
        stored_event_count(&node),
        3_000,
        "every provider id stored exactly once"
    );
}
