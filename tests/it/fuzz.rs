//! A bounded property test of the JSON the API parses (events, batches, endpoints, replays):
//! random and near-valid bodies, never a panic or a 5xx, always the JSON error shape, and the
//! node healthy afterwards with what it accepted before still delivered.
//!
//! Generated endpoint URLs are either the loopback sink or strings without a scheme (always
//! refused), so nothing is ever sent off this machine.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Requests per run: bounded, about 2 s on this machine.
const CASES: usize = 600;

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object built from some of `fields` (each valid-ish or arbitrary) plus, sometimes, a stray key.
fn object_of(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> impl Strategy<Value = Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(name, strategy)| prop::option::weighted(0.7, strategy.prop_map(move |v| (name.to_string(), v))).boxed())
        .collect();
    (parts, prop::option::weighted(0.1, ("[a-z_]{1,12}", any_json()))).prop_map(|(chosen, stray)| {
        let mut object: Map<String, Value> = chosen.into_iter().flatten().collect();
        if let Some((k, v)) = stray {
            object.insert(k, v);
        }
        Value::Object(object)
    })
}

fn event_type() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => "[a-z]{1,8}\\.[a-z]{1,8}".prop_map(Value::String),
        1 => ".{0,140}".prop_map(Value::String),
        1 => any_json(),
    ]
    .boxed()
}

fn event() -> BoxedStrategy<Value> {
    object_of(vec![
        ("type", event_type()),
        ("payload", any_json().boxed()),
        (
            "idempotency_key",
            prop_oneof![".{0,300}".prop_map(Value::String), any_json()].boxed(),
        ),
    ])
    .boxed()
}

/// A valid endpoint, or one with a single field replaced by arbitrary JSON (or an `id`).
fn near_valid_endpoint(sink_url: String) -> BoxedStrategy<Value> {
    let fields = vec![
        "url",
        "event_types",
        "description",
        "secret",
        "rate_limit_per_s",
        "max_in_flight",
        "timeout_ms",
        "retry_schedule_s",
        "headers",
        "ordered",
        "disabled",
        "id",
    ];
    (prop::sample::select(fields), any_json(), any::<bool>())
        .prop_map(move |(field, value, mutate)| {
            let mut body = json!({"url": sink_url, "event_types": ["keep.*"], "rate_limit_per_s": 100});
            if mutate {
                body[field] = value;
            }
            body
        })
        .boxed()
}

fn endpoint(sink_url: String) -> BoxedStrategy<Value> {
    prop_oneof![random_endpoint(sink_url.clone()), near_valid_endpoint(sink_url)].boxed()
}

fn random_endpoint(sink_url: String) -> BoxedStrategy<Value> {
    let number = |range: std::ops::Range<i64>| prop_oneof![4 => range.prop_map(|n| json!(n)), 1 => any_json()].boxed();
    object_of(vec![
        (
            "url",
            prop_oneof![4 => Just(Value::String(sink_url)), 1 => "[^:]{0,40}".prop_map(Value::String), 1 => any_json()]
                .boxed(),
        ),
        (
            "event_types",
            prop_oneof![
                4 => prop::collection::vec("[a-z]{1,6}(\\.[a-z*]{1,6})?".prop_map(Value::String), 1..4).prop_map(Value::Array),
                1 => prop::collection::vec(event_type(), 0..4).prop_map(Value::Array),
                1 => any_json(),
            ]
            .boxed(),
        ),
        ("description", prop_oneof![3 => ".{0,40}".prop_map(Value::String), 1 => any_json()].boxed()),
        (
            "secret",
            prop_oneof![
                3 => prop::collection::vec(any::<u8>(), 20..70).prop_map(|key| {
                    use base64::Engine;
                    Value::String(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key)))
                }),
                1 => "whsec_[A-Za-z0-9+/=]{0,90}".prop_map(Value::String),
                1 => any_json(),
            ]
            .boxed(),
        ),
        ("rate_limit_per_s", number(-1..3_000)),
        ("max_in_flight", number(-1..1_100)),
        ("timeout_ms", number(50..5_000)),
        (
            "retry_schedule_s",
            prop_oneof![3 => prop::collection::vec(0u64..1_000_000, 0..60).prop_map(|v| json!(v)), 1 => any_json()].boxed(),
        ),
        (
            "headers",
            prop_oneof![
                3 => prop::collection::btree_map("[a-z-]{1,12}", "[ -~]{0,12}", 0..4).prop_map(|m| json!(m)),
                1 => prop::collection::btree_map(".{0,12}", ".{0,12}", 0..4).prop_map(|m| json!(m)),
                1 => any_json(),
            ]
            .boxed(),
        ),
        ("ordered", prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => any_json()].boxed()),
        ("disabled", prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => any_json()].boxed()),
    ])
    .boxed()
}

/// A body as sent: JSON text, sometimes cut short or with raw bytes.
fn mangle(body: Value) -> impl Strategy<Value = Vec<u8>> {
    let text = body.to_string().into_bytes();
    let len = text.len();
    prop_oneof![
        6 => Just(text.clone()),
        1 => (0..=len).prop_map(move |cut| text[..cut].to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn sample<S: Strategy>(runner: &mut TestRunner, strategy: S) -> S::Value {
    strategy.new_tree(runner).expect("generate a case").current()
}

#[tokio::test]
async fn random_json_never_gets_a_5xx_or_costs_accepted_data() {
    let redis = shared_redis_url();
    let node = Node::start_ready(&NodeOpts::new(&redis, &unique_prefix("fuzz"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let api = &node.api;
    let ep = api
        .create_endpoint("f", json!({"url": sink.url("ok/f"), "event_types": ["keep.*"]}))
        .await;
    let ep_path = format!("/v1/tenants/f/endpoints/{}", ep["id"].as_str().unwrap());
    let before = api.post_event("f", "keep.before", json!({"n": 1})).await.unwrap();

    // Deterministic: the same cases on every run, so a failure reproduces.
    let mut runner = TestRunner::deterministic();
    let mut statuses = std::collections::BTreeMap::<(u16, usize), usize>::new();
    for case in 0..CASES {
        let (method, path, body): (Method, String, Value) = match case % 6 {
            0 | 1 => (
                Method::POST,
                "/v1/tenants/f/events".into(),
                sample(&mut runner, event()),
            ),
            2 => {
                let events = sample(&mut runner, prop::collection::vec(event(), 0..5));
                (
                    Method::POST,
                    "/v1/tenants/f/events/batch".into(),
                    json!({"events": events}),
                )
            }
            3 => (
                Method::POST,
                "/v1/tenants/f/endpoints".into(),
                sample(&mut runner, endpoint(sink.url("ok/new"))),
            ),
            4 => (
                Method::PATCH,
                ep_path.clone(),
                sample(&mut runner, endpoint(sink.url("ok/f"))),
            ),
            _ => {
                let since = sample(&mut runner, object_of(vec![("since", any_json().boxed())]));
                (Method::POST, format!("{ep_path}/dead-letters/replay"), since)
            }
        };
        let bytes = sample(&mut runner, mangle(body));
        let text = String::from_utf8_lossy(&bytes).to_string();
        let (status, answer, _) = api
            .raw(method.clone(), &path, Some(&text), Some("application/json"))
            .await;
        *statuses.entry((status, case % 6)).or_default() += 1;
        assert!(status < 500, "{method} {path} {text}: {status} {answer}");
        if status >= 400 {
            assert!(
                answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
                "{method} {path} {text}: {status} without the error shape: {answer}"
            );
        }
    }
    // The generators reach both sides on every route: some requests pass, others are refused.
    for route in 0..6 {
        assert!(
            statuses.keys().any(|(s, r)| *r == route && *s < 300),
            "route {route}: {statuses:?}"
        );
        assert!(
            statuses.keys().any(|(s, r)| *r == route && *s == 400),
            "route {route}: {statuses:?}"
        );
    }

    // Healthy afterwards; what was accepted before is delivered, and so is what comes after.
    assert!(api.ready().await);
    let (status, restored) = api
        .call(Method::PATCH, &ep_path, Some(json!({"url": sink.url("ok/f"), "event_types": ["keep.*"], "disabled": false, "ordered": false, "rate_limit_per_s": null, "max_in_flight": null, "retry_schedule_s": null, "timeout_ms": null, "headers": {}})))
        .await;
    assert_eq!(status, 200, "{restored}");
    let after = api.post_event("f", "keep.after", json!({"n": 2})).await.unwrap();
    wait_for(Duration::from_secs(20), "deliveries after the flood", || {
        let ids = sink.delivered_ids("f");
        ids.contains(&before) && ids.contains(&after)
    })
    .await;
    assert!(node.logs().iter().all(|l| !l.contains("panicked")), "the node panicked");
    eprintln!("statuses: {statuses:?}");
}
