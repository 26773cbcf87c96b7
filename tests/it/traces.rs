//! Tracing (issue 22): an OTLP/HTTP collector in the test (spans decoded with
//! `opentelemetry-proto`) sees one trace per event — ingest under the producer's
//! `traceparent`, route, one span per attempt, a retry on another node included — and
//! receivers get the attempt's `traceparent`. A collector that is down costs no delivery.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A span as the collector got it, with the `service.name` of the node that sent it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    attributes: Vec<(String, String)>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP/HTTP (protobuf) collector on loopback: `POST /v1/traces`.
async fn collector() -> (String, Arc<Mutex<Vec<Got>>>) {
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
                let mut keep = keep.lock().unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .map(text)
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        keep.push(Got {
                            service: service.clone(),
                            name: span.name,
                            trace: hex(&span.trace_id),
                            id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            attributes: span.attributes.iter().map(|kv| (kv.key.clone(), text(kv))).collect(),
                        });
                    }
                }
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (base, got)
}

fn traced(opts: NodeOpts, collector: &str, service: &str) -> NodeOpts {
    opts.set("tracing__otlp_endpoint", collector)
        .set("tracing__service_name", service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_an_event_through_ingest_routing_and_every_attempt_across_a_restart() {
    let (collector, got) = collector().await;
    let base = NodeOpts::new(&shared_redis_url(), &unique_prefix("traces")).node_id("traced-a");
    let mut a = Node::start_ready(&traced(base.clone(), &collector, "hookline-a")).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    sink.set_switch("second", 503);
    let first = a.api.create_endpoint("tr", json!({"url": sink.url("ok/first")})).await;
    let second = a
        .api
        // Long enough (±20% jitter) for the first node to stop before its retry is due.
        .create_endpoint(
            "tr",
            json!({"url": sink.url("switch/second"), "retry_schedule_s": [12]}),
        )
        .await;

    let (producer_trace, producer_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/tenants/tr/events", a.api.base))
        .bearer_auth(ADMIN)
        .header("traceparent", format!("00-{producer_trace}-{producer_span}-01"))
        .json(&json!({"type": "order.created", "payload": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let event_id = answer.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The first node makes the first attempts (one fails), then stops before the retry is due.
    wait_for(Duration::from_secs(15), "both first attempts", || {
        sink.arrivals("first") == 1 && sink.arrivals("second") == 1
    })
    .await;
    a.api
        .get_until(
            &format!(
                "/v1/tenants/tr/deliveries?endpoint_id={}",
                second["id"].as_str().unwrap()
            ),
            Duration::from_secs(10),
            |page| page["data"][0]["attempts"].as_u64() == Some(1),
        )
        .await;
    a.sigterm();
    assert!(a.wait_exit(Duration::from_secs(20)).await.is_some_and(|s| s.success()));
    // The second node makes the retry.
    sink.set_switch("second", 200);
    let b = Node::start_ready(&traced(base.node_id("traced-b"), &collector, "hookline-b")).await;
    wait_for(Duration::from_secs(30), "the retry on the second node", || {
        sink.received_by("second").iter().any(|r| r.status == 200)
    })
    .await;

    let of_trace = || -> Vec<Got> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace == producer_trace)
            .cloned()
            .collect()
    };
    wait_for(Duration::from_secs(20), "five spans exported", || of_trace().len() >= 5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spans = of_trace();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).cloned().collect::<Vec<_>>();
    let (ingest, route, attempts) = (named("ingest"), named("route"), named("attempt"));
    assert_eq!(
        (ingest.len(), route.len(), attempts.len(), spans.len()),
        (1, 1, 3, 5),
        "{spans:#?}"
    );
    let (ingest, route) = (&ingest[0], &route[0]);
    // The producer's span is the root's parent; routing hangs under ingest, attempts under routing.
    assert_eq!(ingest.parent, producer_span);
    assert_eq!(ingest.attr("hookline.event_id"), Some(event_id.as_str()));
    assert_eq!(ingest.attr("hookline.outcome"), Some("accepted"));
    assert_eq!(route.parent, ingest.id);
    assert_eq!(route.attr("hookline.endpoints"), Some("2"));
    assert!(attempts.iter().all(|s| s.parent == route.id), "{attempts:#?}");
    let attempt = |endpoint: &serde_json::Value, number: &str| {
        attempts
            .iter()
            .find(|s| {
                s.attr("hookline.endpoint_id") == endpoint["id"].as_str() && s.attr("hookline.attempt") == Some(number)
            })
            .unwrap_or_else(|| panic!("attempt {number} of {endpoint} in {attempts:#?}"))
            .clone()
    };
    let (one, failed, retried) = (attempt(&first, "1"), attempt(&second, "1"), attempt(&second, "2"));
    assert_eq!(one.attr("http.response.status_code"), Some("200"));
    assert_eq!(one.attr("hookline.outcome"), Some("success"));
    assert_eq!(failed.attr("http.response.status_code"), Some("503"));
    assert_eq!(failed.attr("hookline.outcome"), Some("retry"));
    assert_eq!(retried.attr("http.response.status_code"), Some("200"));
    assert_eq!(retried.attr("hookline.outcome"), Some("success"));
    // The retry was made by the second node, in the same trace.
    assert_eq!(
        (
            ingest.service.as_str(),
            failed.service.as_str(),
            retried.service.as_str()
        ),
        ("hookline-a", "hookline-a", "hookline-b")
    );

    // Each request the receivers got names its own attempt's span.
    let traceparents = |name: &str| -> Vec<String> {
        sink.received_by(name)
            .iter()
            .map(|r| r.headers.get("traceparent").cloned().unwrap_or_default())
            .collect()
    };
    let expected = |span: &Got| format!("00-{producer_trace}-{}-01", span.id);
    assert_eq!(traceparents("first"), vec![expected(&one)]);
    assert_eq!(traceparents("second"), vec![expected(&failed), expected(&retried)]);

    // The first node's log line of each attempt carries the trace id.
    let logged = a.logs();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("\"attempt finished\"") && l.contains(&format!("\"trace_id\":\"{producer_trace}\""))),
        "no attempt line with the trace id"
    );
    assert_eq!(b.api.metric("hookline_trace_spans_dropped_total").await, 0.0);
}

/// A collector that takes connections and never answers (worse than one that is down: each
/// export waits for its timeout). Its connections are held until the test ends.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_down_delivery_goes_on_and_dropped_spans_are_counted() {
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("traces-down"))
        .set("tracing__otlp_endpoint", &black_hole().await)
        .set("tracing__sample_ratio", "1.0");
    let node = Node::start_ready(&opts).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    node.api
        .create_endpoint("td", json!({"url": sink.url("ok/down")}))
        .await;
    for i in 0..20 {
        node.api
            .post_event("td", "order.created", json!({"i": i}))
            .await
            .unwrap();
    }
    wait_for(Duration::from_secs(20), "every delivery", || {
        sink.delivered_ids("down").len() == 20
    })
    .await;
    // Every request still names a trace, though none of it reaches a collector.
    assert!(sink.received_by("down").iter().all(|r| r
        .headers
        .get("traceparent")
        .is_some_and(|t| t.starts_with("00-") && t.ends_with("-01"))));
    // A producer's span that is not sampled: its event is not traced, its delivery names no trace.
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/tenants/td/events", node.api.base))
        .bearer_auth(ADMIN)
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        .json(&json!({"type": "order.created", "payload": {"unsampled": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    wait_for(Duration::from_secs(20), "the unsampled delivery", || {
        sink.delivered_ids("down").len() == 21
    })
    .await;
    let unsampled: Vec<_> = sink
        .received_by("down")
        .into_iter()
        .filter(|r| r.body.contains("unsampled"))
        .collect();
    assert_eq!(unsampled.len(), 1);
    assert_eq!(unsampled[0].headers.get("traceparent"), None);
    let dropped = eventually(Duration::from_secs(30), "dropped spans counted", || async {
        let n = node.api.metric("hookline_trace_spans_dropped_total").await;
        // 20 ingest, 20 route and 20 attempt spans, all dropped.
        (n >= 60.0).then_some(n)
    })
    .await;
    assert!(dropped <= 60.0, "{dropped}");
}
