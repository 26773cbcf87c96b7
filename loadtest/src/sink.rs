//! A webhook receiver on loopback whose behaviour is chosen by path:
//!
//! | path | answer |
//! |---|---|
//! | `/ok/<name>` | 200 at once |
//! | `/sleep/<ms>/<name>` | 200 after `ms` milliseconds |
//! | `/status/<code>/<name>` | that status |
//! | `/fail/<percent>/<name>` | 503 with that probability, else 200 |
//! | `/retry-after/<secs>/<name>` | 429 with `Retry-After: secs` |
//! | `/switch/<name>` | the status set with [`Sink::set_switch`] (200 until set) |
//!
//! `POST /oauth/token` answers a bearer token (OAuth2 client credentials) and counts the grants.
//! [`Sink::start_lean_tls`] serves the same over HTTPS, optionally requiring client
//! certificates.
//!
//! It records every request (path, headers, body, arrival time) and the most requests it ever
//! had in flight at once per path. Given an endpoint's secret ([`Sink::set_secret`]) it
//! verifies each request's Standard Webhooks signature; given a `sent_ms` in the event's data
//! (the driver puts it there) it computes end-to-end latency. `GET /stats` answers JSON per
//! name: requests, unique deliveries, duplicates, bad signatures, e2e p50/p90/p99/max.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Received {
    /// The path without its behaviour part: `/ok/a` → `a`, `/sleep/10/a` → `a`.
    pub name: String,
    pub path: String,
    pub webhook_id: String,
    /// Empty in lean mode.
    pub headers: BTreeMap<String, String>,
    /// Empty in lean mode.
    pub body: String,
    pub arrived_ms: u64,
    pub status: u16,
    /// Arrival minus the `sent_ms` the driver put in the payload, if there was one.
    pub e2e_ms: Option<u64>,
    /// Whether the signature matched the secret set for `name` (None: no secret set).
    pub signature_ok: Option<bool>,
}

impl Received {
    pub fn webhook_id(&self) -> &str {
        &self.webhook_id
    }
}

#[derive(Default)]
struct Inner {
    /// Keep only id, status and time of each request (for long load runs).
    lean: bool,
    received: Vec<Received>,
    arrivals: HashMap<String, usize>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    /// Per name with a cap set (`watch_in_flight`): the requests open now, and each moment
    /// more than the cap were open (the first 100).
    watched: HashMap<String, Watched>,
    switches: HashMap<String, u16>,
    secrets: HashMap<String, Vec<u8>>,
    /// Distinct ids answered 2xx per name, kept as requests come, so a driver waiting for its
    /// deliveries can check without copying every record (which also held up the sink).
    delivered: HashMap<String, HashSet<String>>,
    /// `POST /oauth/token` requests.
    oauth_grants: usize,
}

#[derive(Default)]
struct Watched {
    cap: usize,
    open: Vec<OpenRequest>,
    excesses: Vec<InFlightExcess>,
}

/// A request open at the sink: its `webhook-id` and when it arrived.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpenRequest {
    pub webhook_id: String,
    pub arrived_ms: u64,
}

/// A moment a watched name had more requests open than its cap, and which they were.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InFlightExcess {
    pub at_ms: u64,
    pub open: Vec<OpenRequest>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Sink {
    addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Sink {
    /// Start on `addr` (use `127.0.0.1:0` for a free port), recording every request whole.
    pub async fn start(addr: &str) -> std::io::Result<Sink> {
        Self::start_with(addr, false).await
    }

    /// Start recording only id, status and arrival time (no headers, no body): for load runs
    /// of hundreds of thousands of requests.
    pub async fn start_lean(addr: &str) -> std::io::Result<Sink> {
        Self::start_with(addr, true).await
    }

    /// Lean, over HTTPS with `server`'s certificate; with `client_ca`, only callers whose
    /// client certificate it signed are served.
    pub async fn start_lean_tls(
        addr: &str,
        server: &crate::tls::Issued,
        client_ca: Option<&crate::tls::TestCa>,
    ) -> std::io::Result<Sink> {
        let listener = crate::tls::TlsListener::bind(addr, server, client_ca).await?;
        let addr = axum::serve::Listener::local_addr(&listener)?;
        let (shared, app) = Self::app(true);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Ok(Sink {
            addr,
            scheme: "https",
            shared,
            server,
        })
    }

    fn app(lean: bool) -> (Shared, Router) {
        let shared = Shared::default();
        shared.lock().lean = lean;
        let app = Router::new()
            .route("/stats", get(stats))
            .route("/oauth/token", post(token))
            .route("/{*path}", post(receive))
            .with_state(shared.clone());
        (shared, app)
    }

    async fn start_with(addr: &str, lean: bool) -> std::io::Result<Sink> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shared, app) = Self::app(lean);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Ok(Sink {
            addr,
            scheme: "http",
            shared,
            server,
        })
    }

    /// How many OAuth2 tokens were asked for.
    pub fn oauth_grants(&self) -> usize {
        self.shared.lock().oauth_grants
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port/<path>` (`https` for a TLS sink)
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}/{}", self.scheme, self.addr, path.trim_start_matches('/'))
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    pub fn received_by(&self, name: &str) -> Vec<Received> {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.name == name)
            .cloned()
            .collect()
    }

    /// Distinct `webhook-id`s that got a 2xx answer under `name`.
    pub fn delivered_ids(&self, name: &str) -> HashSet<String> {
        self.shared.lock().delivered.get(name).cloned().unwrap_or_default()
    }

    /// The `webhook-id`s under `name` in the order of their first 2xx answer (the order a
    /// receiver saw them delivered; ordered endpoints must keep ingest order).
    pub fn first_successes(&self, name: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.name == name && (200..300).contains(&r.status))
            .map(|r| r.webhook_id().to_string())
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// Run `f` on the distinct ids answered 2xx, per name, without copying them.
    pub fn with_delivered<R>(&self, f: impl FnOnce(&HashMap<String, HashSet<String>>) -> R) -> R {
        f(&self.shared.lock().delivered)
    }

    pub fn count(&self) -> usize {
        self.shared.lock().received.len()
    }

    /// Requests that arrived under `name`, finished or not.
    pub fn arrivals(&self, name: &str) -> usize {
        self.shared.lock().arrivals.get(name).copied().unwrap_or(0)
    }

    /// Requests under `name` in flight now.
    pub fn in_flight(&self, name: &str) -> usize {
        self.shared.lock().in_flight.get(name).copied().unwrap_or(0)
    }

    /// The most requests `name` ever had in flight at once.
    pub fn max_in_flight(&self, name: &str) -> usize {
        self.shared.lock().max_in_flight.get(name).copied().unwrap_or(0)
    }

    /// Watch `name`'s requests in flight: from now on, each arrival that makes more than `cap`
    /// open at once is kept with the open requests' ids (see `in_flight_excesses`).
    pub fn watch_in_flight(&self, name: &str, cap: usize) {
        self.shared.lock().watched.insert(
            name.to_string(),
            Watched {
                cap,
                ..Default::default()
            },
        );
    }

    /// The moments a watched `name` had more than its cap open (the first 100).
    pub fn in_flight_excesses(&self, name: &str) -> Vec<InFlightExcess> {
        self.shared
            .lock()
            .watched
            .get(name)
            .map(|w| w.excesses.clone())
            .unwrap_or_default()
    }

    pub fn set_switch(&self, name: &str, status: u16) {
        self.shared.lock().switches.insert(name.to_string(), status);
    }

    /// Verify requests under `name` against this `whsec_…` secret from now on.
    pub fn set_secret(&self, name: &str, secret: &str) {
        use base64::Engine;
        let key = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap_or_default();
        self.shared.lock().secrets.insert(name.to_string(), key);
    }

    /// Per-name figures, as `GET /stats` serves them.
    pub fn stats(&self) -> serde_json::Value {
        stats_of(&self.shared.lock())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `(behaviour answer, name)` for a path.
async fn behave(shared: &Shared, path: &str) -> (u16, Option<u64>, String) {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let rest = |n: usize| parts.get(n..).map(|p| p.join("/")).unwrap_or_default();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
    match parts.first().copied() {
        Some("ok") => (200, None, rest(1)),
        Some("sleep") => (200, Some(num(1)), rest(2)),
        Some("status") => (num(1) as u16, None, rest(2)),
        Some("fail") => {
            let failed = (rand_percent() as u64) < num(1);
            (if failed { 503 } else { 200 }, None, rest(2))
        }
        Some("retry-after") => (429, None, rest(2)),
        Some("switch") => {
            let name = rest(1);
            let status = shared.lock().switches.get(&name).copied().unwrap_or(200);
            (status, None, name)
        }
        _ => (404, None, path.to_string()),
    }
}

fn rand_percent() -> u32 {
    // A cheap per-request random number without another dependency.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = nanos ^ 0x9e37_79b9;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x % 100
}

/// One request in flight at the sink, for the per-name in-flight count.
struct InFlight {
    shared: Shared,
    name: String,
    webhook_id: String,
    arrived_ms: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        if let Some(n) = inner.in_flight.get_mut(&self.name) {
            *n = n.saturating_sub(1);
        }
        if let Some(w) = inner.watched.get_mut(&self.name) {
            if let Some(at) = w
                .open
                .iter()
                .position(|o| o.webhook_id == self.webhook_id && o.arrived_ms == self.arrived_ms)
            {
                w.open.swap_remove(at);
            }
        }
    }
}

async fn receive(State(shared): State<Shared>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived_ms = now_ms();
    let (status, sleep_ms, name) = behave(&shared, &path).await;
    let webhook_id = headers
        .get("webhook-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    {
        let mut inner = shared.lock();
        *inner.arrivals.entry(name.clone()).or_default() += 1;
        let n = inner.in_flight.entry(name.clone()).or_default();
        *n += 1;
        let current = *n;
        let max = inner.max_in_flight.entry(name.clone()).or_default();
        *max = (*max).max(current);
        if let Some(w) = inner.watched.get_mut(&name) {
            w.open.push(OpenRequest {
                webhook_id: webhook_id.clone().unwrap_or_default(),
                arrived_ms,
            });
            if w.open.len() > w.cap && w.excesses.len() < 100 {
                let open = w.open.clone();
                w.excesses.push(InFlightExcess {
                    at_ms: arrived_ms,
                    open,
                });
            }
        }
    }
    // Counted out when the answer is ready, or when the sender gives up first (the server
    // then drops this handler mid-sleep).
    let _in_flight = InFlight {
        shared: shared.clone(),
        name: name.clone(),
        webhook_id: webhook_id.clone().unwrap_or_default(),
        arrived_ms,
    };
    if let Some(ms) = sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (lean, key) = {
        let inner = shared.lock();
        (inner.lean, inner.secrets.get(&name).cloned())
    };
    let signature_ok = key.map(|key| signature_matches(&key, &headers, &body));
    let e2e_ms = sent_ms(&body).map(|sent| arrived_ms.saturating_sub(sent));
    let record = Received {
        name: name.clone(),
        path: if lean { String::new() } else { path.clone() },
        webhook_id: webhook_id.unwrap_or_default(),
        headers: if lean {
            BTreeMap::new()
        } else {
            headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        },
        body: if lean {
            String::new()
        } else {
            String::from_utf8_lossy(&body).into_owned()
        },
        arrived_ms,
        status,
        e2e_ms,
        signature_ok,
    };
    {
        let mut inner = shared.lock();
        if (200..300).contains(&record.status) {
            let id = record.webhook_id().to_string();
            inner.delivered.entry(record.name.clone()).or_default().insert(id);
        }
        inner.received.push(record);
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if path.starts_with("retry-after/") {
        let secs = path.split('/').nth(1).unwrap_or("1").to_string();
        return (code, [("retry-after", secs)], "slow down").into_response();
    }
    (code, "ok").into_response()
}

/// An OAuth2 token endpoint that grants every request the same long-lived token.
async fn token(State(shared): State<Shared>) -> axum::Json<serde_json::Value> {
    shared.lock().oauth_grants += 1;
    axum::Json(json!({"access_token": "sink-token", "token_type": "Bearer", "expires_in": 3600}))
}

async fn stats(State(shared): State<Shared>) -> Response {
    axum::Json(stats_of(&shared.lock())).into_response()
}

#[derive(Default)]
struct NameStats {
    requests: usize,
    delivered: HashSet<String>,
    /// 2xx answers for an id already answered 2xx.
    duplicates: usize,
    bad_signatures: usize,
    e2e_ms: Vec<u64>,
}

fn stats_of(inner: &Inner) -> serde_json::Value {
    let mut per_name: BTreeMap<String, NameStats> = BTreeMap::new();
    for r in &inner.received {
        let entry = per_name.entry(r.name.clone()).or_default();
        entry.requests += 1;
        if r.signature_ok == Some(false) {
            entry.bad_signatures += 1;
        }
        if (200..300).contains(&r.status) {
            if entry.delivered.insert(r.webhook_id().to_string()) {
                entry.e2e_ms.extend(r.e2e_ms);
            } else {
                entry.duplicates += 1;
            }
        }
    }
    let endpoints: serde_json::Map<String, serde_json::Value> = per_name
        .into_iter()
        .map(|(name, mut s)| {
            let max = inner.max_in_flight.get(&name).copied().unwrap_or(0);
            s.e2e_ms.sort_unstable();
            let figures = json!({
                "requests": s.requests,
                "delivered_unique": s.delivered.len(),
                "duplicates": s.duplicates,
                "bad_signatures": s.bad_signatures,
                "max_in_flight": max,
                "e2e_ms": {
                    "p50": percentile(&s.e2e_ms, 0.5),
                    "p90": percentile(&s.e2e_ms, 0.9),
                    "p99": percentile(&s.e2e_ms, 0.99),
                    "max": s.e2e_ms.last().copied().unwrap_or(0),
                },
            });
            (name, figures)
        })
        .collect();
    json!({"requests": inner.received.len(), "endpoints": endpoints})
}

/// The value at quantile `p` of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `data.sent_ms` of a webhook body, if it has one.
fn sent_ms(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        sent_ms: Option<u64>,
    }
    serde_json::from_slice::<Envelope>(body).ok()?.data.sent_ms
}

/// Does one of the `v1,` signatures match `HMAC-SHA256(key, "{id}.{timestamp}.{body}")`?
fn signature_matches(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(format!("{}.{}.", get("webhook-id"), get("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    get("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    async fn post(sink: &Sink, path: &str, id: &str, timeout: Duration) -> Option<u16> {
        reqwest::Client::new()
            .post(sink.url(path))
            .header("webhook-id", id)
            .timeout(timeout)
            .body("{}")
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    #[tokio::test]
    async fn a_watched_name_keeps_each_moment_past_its_cap() {
        let sink = Sink::start_lean("127.0.0.1:0").await.unwrap();
        sink.watch_in_flight("w", 1);
        let long = Duration::from_secs(10);
        let (a, b) = tokio::join!(
            post(&sink, "sleep/300/w", "msg_a", long),
            post(&sink, "sleep/300/w", "msg_b", long)
        );
        assert_eq!((a, b), (Some(200), Some(200)));
        let excesses = sink.in_flight_excesses("w");
        assert_eq!(excesses.len(), 1, "{excesses:?}");
        let mut ids: Vec<&str> = excesses[0].open.iter().map(|o| o.webhook_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["msg_a", "msg_b"]);
        // One after the other stays within the cap; both answered count out.
        post(&sink, "sleep/10/w", "msg_c", long).await;
        assert_eq!(sink.in_flight_excesses("w").len(), 1);
        assert_eq!(sink.in_flight("w"), 0);
    }

    #[tokio::test]
    async fn a_sender_that_gives_up_counts_out_at_once() {
        let sink = Sink::start_lean("127.0.0.1:0").await.unwrap();
        sink.watch_in_flight("g", 1);
        assert_eq!(
            post(&sink, "sleep/3000/g", "msg_g", Duration::from_millis(100)).await,
            None
        );
        // The server drops the sleeping handler when the connection closes, well before 3 s.
        let gone = Instant::now();
        while sink.in_flight("g") > 0 && gone.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            sink.in_flight("g"),
            0,
            "still open {:?} after the sender left",
            gone.elapsed()
        );
    }
}
