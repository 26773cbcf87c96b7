//! Notifications (issue 22): the node's operational events, once per change, never a storm,
//! delivered like any event, and Slack-kind endpoints that get them as chat messages.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The tenant's events of `event_type` (newest first), every page.
async fn events_of(api: &Api, tenant: &str, event_type: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api
            .get(&format!(
                "/v1/tenants/{tenant}/events?type={event_type}&limit=500&cursor={cursor}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return all,
        }
    }
}

/// The Slack messages the sink took at `name`, as JSON.
fn messages(sink: &Sink, name: &str) -> Vec<Value> {
    sink.received_by(name)
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("a Slack message is JSON"))
        .collect()
}

#[tokio::test]
async fn a_slack_channel_hears_once_of_each_breaker_change_and_of_a_disable() {
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("notify"))
        .set("health__probe_intervals_s", "[1]")
        // Long enough for the flaky endpoint to recover first on a loaded machine.
        .set("health__disable_after_s", "8");
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let slack = api
        .create_endpoint(
            "n",
            json!({"url": sink.url("ok/slack"), "kind": "slack", "event_types": ["hookline.*"]}),
        )
        .await;
    assert_eq!(slack["kind"], "slack");
    // An every-event endpoint hears of none of it (only `disabled`, as it always did).
    api.create_endpoint("n", json!({"url": sink.url("ok/everything")}))
        .await;
    sink.set_switch("flaky", 503);
    sink.set_switch("dead", 503);
    let create = |name: &str, description: &str| {
        api.create_endpoint(
            "n",
            json!({"url": sink.url(&format!("switch/{name}")), "event_types": ["order.*"],
                   "description": description, "retry_schedule_s": vec![1; 30]}),
        )
    };
    let flaky = create("flaky", "flaky <one>").await;
    let dead = create("dead", "dead one").await;
    for i in 0..12 {
        api.post_event("n", "order.created", json!({"i": i})).await.unwrap();
    }

    let texts = |sink: &Sink| -> Vec<String> {
        messages(sink, "slack")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    wait_for(Duration::from_secs(30), "both breakers opened", || {
        texts(&sink)
            .iter()
            .filter(|t| t.contains("circuit breaker opened"))
            .count()
            == 2
    })
    .await;
    // The flaky receiver comes back: its next probe succeeds.
    sink.set_switch("flaky", 200);
    wait_for(Duration::from_secs(30), "the recovery and the disable", || {
        let t = texts(&sink);
        t.iter().any(|t| t.contains("recovered")) && t.iter().any(|t| t.contains("was disabled"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let all = messages(&sink, "slack");
    let t = texts(&sink);
    let count = |needle: &str, who: &str| t.iter().filter(|t| t.contains(needle) && t.contains(who)).count();
    assert_eq!(count("circuit breaker opened", "*flaky &lt;one&gt;*"), 1, "{t:#?}");
    assert_eq!(count("circuit breaker opened", "*dead one*"), 1, "{t:#?}");
    assert_eq!(count("recovered", "*flaky &lt;one&gt;*"), 1, "{t:#?}");
    assert_eq!(count("was disabled", "*dead one*"), 1, "{t:#?}");
    assert_eq!(
        count("recovered", "*dead one*") + count("was disabled", "*flaky"),
        0,
        "{t:#?}"
    );
    // Well-formed Slack bodies: the text, a section with it, a context line; no signature.
    let disabled = all
        .iter()
        .find(|m| m["text"].as_str().unwrap().contains("was disabled"))
        .unwrap();
    let dead_url = dead["url"].as_str().unwrap();
    assert_eq!(
        disabled["text"],
        format!(
            ":no_entry: Endpoint *dead one* (<{dead_url}>) was disabled (failing): nothing is sent to it until it is \
             enabled again."
        )
    );
    assert_eq!(disabled["blocks"][0]["type"], "section");
    assert_eq!(
        disabled["blocks"][0]["text"],
        json!({"type": "mrkdwn", "text": disabled["text"]})
    );
    assert_eq!(disabled["blocks"][1]["type"], "context");
    for r in sink.received_by("slack") {
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        assert!(
            !r.headers.contains_key("webhook-signature"),
            "no Standard Webhooks headers to Slack"
        );
    }
    // The events themselves, as the API shows them.
    let opened = events_of(api, "n", "hookline.endpoint.breaker_opened").await;
    assert_eq!(opened.len(), 2);
    let flaky_id = flaky["id"].as_str().unwrap();
    let recovered = events_of(api, "n", "hookline.endpoint.recovered").await;
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["payload"]["endpoint_id"], flaky_id);
    let everything: Vec<String> = sink
        .received_by("everything")
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter_map(|b| b["type"].as_str().map(String::from))
        .filter(|t| t.starts_with("hookline."))
        .collect();
    assert_eq!(
        everything,
        vec!["hookline.endpoint.disabled".to_string()],
        "a `*` endpoint"
    );
}

#[tokio::test]
async fn two_hundred_endpoints_failing_together_make_two_hundred_notices_and_dead_letters_are_rate_limited() {
    // Leases of 10 s, not the tests' 3 s: on a starved machine a lapsed lease restarts the
    // endpoints from their saved health, and a breaker that opened just before tells again
    // (at least once, as it should) — not what this test is about.
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("storm")).set("shards__lease_ttl_ms", "10000");
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..200 {
        let ep = api
            .create_endpoint(
                "s",
                json!({"url": sink.url(&format!("status/503/e{i}")), "event_types": ["load.*"]}),
            )
            .await;
        ids.push(ep["id"].as_str().unwrap().to_string());
    }
    let refusing = api
        .create_endpoint(
            "s",
            json!({"url": sink.url("status/400/refusing"), "event_types": ["refused.*"]}),
        )
        .await;
    for i in 0..12 {
        api.post_event("s", "load.test", json!({"i": i})).await.unwrap();
    }
    for i in 0..5 {
        api.post_event("s", "refused.one", json!({"i": i})).await.unwrap();
    }
    for _ in 0..120 {
        if events_of(api, "s", "hookline.endpoint.breaker_opened").await.len() >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every breaker has opened (2,400 failed attempts): nothing more is due to come.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let opened = events_of(api, "s", "hookline.endpoint.breaker_opened").await;
    let mut told: Vec<String> = opened
        .iter()
        .map(|e| e["payload"]["endpoint_id"].as_str().unwrap().to_string())
        .collect();
    told.sort();
    ids.sort();
    if told != ids {
        // A second notice means a breaker closed again: say what the node warned of (a lost
        // lease, say).
        let warned: Vec<String> = node
            .logs()
            .into_iter()
            .filter(|l| l.contains("\"warn\""))
            .take(20)
            .collect();
        panic!(
            "one breaker_opened per endpoint, and no more: {told:?}\nthe node warned:\n{}",
            warned.join("\n")
        );
    }

    let dead = events_of(api, "s", "hookline.endpoint.dead_letters").await;
    let refusing_id = refusing["id"].as_str().unwrap();
    let of_refusing: Vec<&Value> = dead
        .iter()
        .filter(|e| e["payload"]["endpoint_id"] == refusing_id)
        .collect();
    assert_eq!(of_refusing.len(), 1, "one dead-letter notice per interval: {dead:#?}");
    let first = &of_refusing[0]["payload"];
    assert!(
        first["count"].as_u64().unwrap() >= 1,
        "the first batch of dead letters: {first}"
    );
    assert_eq!(first["top_reasons"][0]["reason"], "http_400", "{first}");
    assert_eq!(first["interval_s"], 3600);
    // All five were dead-lettered; those after the first batch are counted into the next notice.
    let (_, letters) = api
        .get(&format!("/v1/tenants/s/endpoints/{refusing_id}/dead-letters"))
        .await;
    assert_eq!(letters["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_burst_of_refused_inbound_requests_is_told_once() {
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("rejections"))
        .set("notifications__source_rejections_per_minute", "5");
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    let (status, source) = api
        .post(
            "/v1/tenants/in/sources",
            json!({"name": "provider", "kind": "stripe", "secret": "whsec_stripe_test", "type_prefix": "stripe."}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let url = format!("/in/{}", source["id"].as_str().unwrap());
    for _ in 0..12 {
        let (status, _) = api.call(Method::POST, &url, Some(json!({"unsigned": true}))).await;
        assert!(status == 400 || status == 401, "{status}");
    }
    let told = events_of(api, "in", "hookline.source.rejections").await;
    assert_eq!(told.len(), 1, "{told:#?}");
    let payload = &told[0]["payload"];
    assert_eq!(payload["source_id"], source["id"]);
    assert_eq!(
        payload["rejections_this_minute"], 5,
        "told when the fifth came: {payload}"
    );
    assert_eq!(payload["kind"], "stripe");
}

#[tokio::test]
async fn the_console_lists_a_tenants_channels_and_adds_one() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("channels"))).await;
    let (api, base) = (&node.api, &node.api.base);
    api.create_endpoint(
        "c",
        json!({"url": "https://hooks.slack.com/services/T/B/X", "kind": "slack", "event_types": ["hookline.*"],
               "description": "ops <channel>"}),
    )
    .await;
    api.create_endpoint(
        "c",
        json!({"url": "https://example.com/orders", "event_types": ["order.*"]}),
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed = client
        .post(format!("{base}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", base.as_str())
        .body(format!("token={ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = |path: String| {
        let request = client.get(format!("{base}{path}")).header("cookie", &cookie).send();
        async move {
            let answer = request.await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let (status, tenant) = page("/console/t/c".into()).await;
    assert_eq!(status, 200);
    assert!(
        tenant.contains("href=\"/console/t/c/notifications\""),
        "linked from the tenant's page"
    );
    let (status, html) = page("/console/t/c/notifications".into()).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("https://hooks.slack.com/services/T/B/X"), "{html}");
    assert!(html.contains("ops &lt;channel&gt;"), "escaped: {html}");
    assert!(
        !html.contains("https://example.com/orders"),
        "an ordinary endpoint is no channel: {html}"
    );

    // Add email recipients through the form (with the page's CSRF token).
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let form = |target: &str| {
        format!(
            "csrf={csrf}&kind=email&target={}&event_types=&description=on-call",
            target.replace('@', "%40").replace(',', "%2C").replace(' ', "+")
        )
    };
    let created = client
        .post(format!("{base}/console/t/c/notifications"))
        .header("cookie", &cookie)
        .header("origin", base.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form("ops@example.com, oncall@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    let (_, html) = page("/console/t/c/notifications".into()).await;
    assert!(html.contains("ops@example.com, oncall@example.com"), "{html}");
    let (_, listed) = api.get("/v1/tenants/c/endpoints?limit=10").await;
    let email = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "email")
        .unwrap()
        .clone();
    assert_eq!(email["event_types"], json!(["hookline.*"]));
    assert_eq!(email["email"]["to"], json!(["ops@example.com", "oncall@example.com"]));
    // A refused channel comes back with the API's message.
    let refused = client
        .post(format!("{base}/console/t/c/notifications"))
        .header("cookie", &cookie)
        .header("origin", base.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form("not an address"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("email.to"));
}

#[tokio::test]
async fn dead_letters_held_back_by_the_interval_are_told_when_it_is_over() {
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("held"))
        .set("notifications__dead_letter_interval_s", "2")
        .set("retention__janitor_interval_s", "1");
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let refusing = api
        .create_endpoint(
            "h",
            json!({"url": sink.url("status/400/refusing"), "event_types": ["order.*"]}),
        )
        .await;
    let id = refusing["id"].as_str().unwrap();
    let dead_letters = |n: usize| {
        let path = format!("/v1/tenants/h/endpoints/{id}/dead-letters");
        async move {
            api.get_until(&path, Duration::from_secs(20), |page| {
                page["data"].as_array().is_some_and(|d| d.len() >= n)
            })
            .await
        }
    };
    api.post_event("h", "order.created", json!({"n": 1})).await.unwrap();
    dead_letters(1).await;
    // Within the interval: counted, not told yet.
    for n in 2..=4 {
        api.post_event("h", "order.created", json!({"n": n})).await.unwrap();
    }
    assert_eq!(dead_letters(4).await["data"].as_array().unwrap().len(), 4);
    let total = |told: &[Value]| {
        told.iter()
            .map(|e| e["payload"]["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    let mut told = Vec::new();
    for _ in 0..100 {
        told = events_of(api, "h", "hookline.endpoint.dead_letters").await;
        if total(&told) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Newest first: the oldest notice told the first dead letter alone, at once; the later ones
    // (the janitor's, once the interval was over) the three held back.
    assert_eq!(total(&told), 4, "every dead letter told, none twice: {told:#?}");
    assert!(told.len() >= 2, "{told:#?}");
    assert_eq!(told.last().unwrap()["payload"]["count"], 1, "{told:#?}");
}
