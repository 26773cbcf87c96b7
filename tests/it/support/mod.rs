//! Shared test helpers: the node as a real process, a private Redis, an API client, waiting.

pub mod browser;
pub mod multi_node;
pub mod node;
pub mod redis;
pub mod tls;
pub mod wait;

pub use browser::{console_sign_in, cookie_of, csrf_of, run_browser_script, shots_dir};
pub use multi_node::*;
pub use node::{refused_start, Node, NodeOpts};
pub use redis::{RedisCluster, RedisServer, Sentinel};
pub use wait::{eventually, last_reading, poll_until, wait_for};

use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

pub const ADMIN: &str = "test-admin-token";

/// The machine's Redis, or `HOOKLINE_TEST_REDIS`. A missing Redis fails the test with the
/// command that starts one, never a silent skip.
pub fn shared_redis_url() -> String {
    let url = std::env::var("HOOKLINE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let hostport = url.trim_start_matches("redis://").trim_end_matches('/');
    if !redis::ping(hostport) {
        panic!(
            "no Redis answers at {url}: start one with `redis-server --daemonize yes --port 6379 --save '' --appendonly no` \
             (or set HOOKLINE_TEST_REDIS)"
        );
    }
    url
}

/// A key prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test-{name}-{}-{nanos}", std::process::id())
}

/// A small client for the node's API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Api {
            http,
            base: base.to_string(),
            token: Some(ADMIN.to_string()),
        }
    }

    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(String::from),
            ..self.clone()
        }
    }

    /// Send `body` (raw text) with `content_type`; returns status and the JSON answer
    /// (`Value::Null` when the answer is empty or not JSON).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.expect("request to node failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let ct = text.as_ref().map(|_| "application/json");
        let (status, value, _) = self.raw(method, path, text.as_deref(), ct).await;
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Create an endpoint; panics unless 201.
    pub async fn create_endpoint(&self, tenant: &str, body: Value) -> Value {
        let (status, ep) = self.post(&format!("/v1/tenants/{tenant}/endpoints"), body).await;
        assert_eq!(status, 201, "endpoint creation failed: {ep}");
        ep
    }

    /// Post an event; returns its id if the node acknowledged it (2xx).
    pub async fn post_event(&self, tenant: &str, event_type: &str, payload: Value) -> Option<String> {
        let body = serde_json::json!({"type": event_type, "payload": payload}).to_string();
        let req = self
            .http
            .post(format!("{}/v1/tenants/{tenant}/events", self.base))
            .bearer_auth(self.token.as_deref().unwrap_or_default())
            .header("content-type", "application/json")
            .body(body);
        let resp = req.send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.ok()?;
        v["id"].as_str().map(String::from)
    }

    /// GET `path` every 50 ms until `done` holds for the answer or `timeout` passes; returns the
    /// last answer either way (the caller asserts on it, so a failure shows what was seen).
    pub async fn get_until(&self, path: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        last_reading(timeout, || async { self.get(path).await.1 }, done).await
    }

    /// The newest delivery to `endpoint` (with its attempts) once it has made `attempts`
    /// attempts, waiting up to 20 s.
    pub async fn delivery_after(&self, tenant: &str, endpoint: &str, attempts: u64) -> Value {
        let path = format!("/v1/tenants/{tenant}/deliveries?endpoint_id={endpoint}");
        let listed = self
            .get_until(&path, Duration::from_secs(20), |page| {
                page["data"][0]["attempts"].as_u64() >= Some(attempts)
            })
            .await;
        let id = listed["data"][0]["id"].as_str().expect("a delivery").to_string();
        self.get(&format!("/v1/tenants/{tenant}/deliveries/{id}")).await.1
    }

    /// Is the node ready (`/readyz` 200)?
    pub async fn ready(&self) -> bool {
        self.http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    /// The sum of every series of the metric `name` in a scrape of `/metrics` (0 if absent);
    /// `name` may go on with its first labels (`name{op="ingest"`) to sum only those series.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{', ',', '}']))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }
}

/// Most arrivals within any `window_ms` sliding window.
pub fn max_in_window(mut arrivals: Vec<u64>, window_ms: u64) -> usize {
    arrivals.sort_unstable();
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| **t < arrivals[i] + window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Calls of each command Redis at `url` has run (`INFO commandstats`, lower-case names; `info`
/// itself left out). For a Redis of the test's own: the shared one counts other tests too.
pub fn command_calls(url: &str) -> std::collections::BTreeMap<String, u64> {
    redis_cli(url, &["info", "commandstats"])
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split("calls=").nth(1)?.split(',').next()?.parse().ok()?;
            (name != "info").then(|| (name.to_string(), calls))
        })
        .collect()
}

/// Run `redis-cli -u url args…`; panics on an error reply. Returns its output.
pub fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", url])
        .args(args)
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && !text.starts_with("ERR"),
        "redis-cli {args:?}: {text}"
    );
    text
}

/// An event to store as it is: `id` and `body` chosen by the test (type `a.b`), no
/// idempotency key.
pub fn stored_event(tenant: &str, id: &str, body: &str) -> hookline::event::NewEvent {
    hookline::event::NewEvent {
        tenant: tenant.into(),
        event_id: id.into(),
        event_type: "a.b".into(),
        body: body.into(),
        idempotency_key: None,
        only_endpoint: None,
        provider_dedup: None,
        schema_errors: None,
        metadata: None,
        trace: None,
    }
}

/// The `bin` of the venv where `.ci/python-tools` installed the Python tools the tests run
/// (openapi-spec-validator, schemathesis, the standardwebhooks library), at
/// `HOOKLINE_PYTHON_TOOLS` (default `/opt/hookline-venv`). Missing tools fail the test, never
/// skip it.
pub fn python_tools() -> std::path::PathBuf {
    let venv = std::path::PathBuf::from(
        std::env::var("HOOKLINE_PYTHON_TOOLS").unwrap_or_else(|_| "/opt/hookline-venv".into()),
    );
    for tool in ["openapi-spec-validator", "st", "python"] {
        assert!(
            venv.join("bin").join(tool).is_file(),
            "{tool} is not installed in {}: run .ci/python-tools (it creates that venv with the versions \
             pinned in .ci/python-tools.txt; set HOOKLINE_PYTHON_TOOLS for another place)",
            venv.display()
        );
    }
    venv.join("bin")
}

/// Events stored under a node's key prefix (the length of every events stream).
pub fn stored_event_count(node: &Node) -> u64 {
    let keys = redis_cli(
        &node.redis_url,
        &["--raw", "keys", &format!("{}:{{ev*}}:events", node.prefix)],
    );
    keys.lines()
        .filter(|k| !k.is_empty())
        .map(|k| {
            redis_cli(&node.redis_url, &["xlen", k])
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum()
}

/// The audit entry of a change a test makes straight in the store.
pub fn test_entry(tenant: &str) -> hookline::store::AuditEntry {
    hookline::store::AuditEntry::by_system(
        "test",
        tenant,
        "test.change",
        hookline::store::audit::Target::new("endpoint", "ep_test"),
        Default::default(),
    )
}

/// The text field `field` of every item of the JSON array `list`, in order (a test's view of a
/// list's ids, actions, …).
pub fn texts<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .map(|items| items.iter().filter_map(|item| item[field].as_str()).collect())
        .unwrap_or_default()
}

/// A loopback port free when asked (for a server a test starts later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
