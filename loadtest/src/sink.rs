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
//! It records every request (path, headers, body, arrival time) and the most requests it ever
//! had in flight at once per path. `GET /stats` answers JSON counts per path.

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
    switches: HashMap<String, u16>,
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

    async fn start_with(addr: &str, lean: bool) -> std::io::Result<Sink> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared::default();
        shared.lock().lean = lean;
        let app = Router::new()
            .route("/stats", get(stats))
            .route("/{*path}", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Ok(Sink { addr, shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port/<path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
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
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.name == name && (200..300).contains(&r.status))
            .map(|r| r.webhook_id().to_string())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.shared.lock().received.len()
    }

    /// Requests that arrived under `name`, finished or not.
    pub fn arrivals(&self, name: &str) -> usize {
        self.shared.lock().arrivals.get(name).copied().unwrap_or(0)
    }

    /// The most requests `name` ever had in flight at once.
    pub fn max_in_flight(&self, name: &str) -> usize {
        self.shared.lock().max_in_flight.get(name).copied().unwrap_or(0)
    }

    pub fn set_switch(&self, name: &str, status: u16) {
        self.shared.lock().switches.insert(name.to_string(), status);
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

async fn receive(State(shared): State<Shared>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived_ms = now_ms();
    let (status, sleep_ms, name) = behave(&shared, &path).await;
    {
        let mut inner = shared.lock();
        *inner.arrivals.entry(name.clone()).or_default() += 1;
        let n = inner.in_flight.entry(name.clone()).or_default();
        *n += 1;
        let current = *n;
        let max = inner.max_in_flight.entry(name.clone()).or_default();
        *max = (*max).max(current);
    }
    if let Some(ms) = sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let lean = shared.lock().lean;
    let webhook_id = headers
        .get("webhook-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
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
    };
    {
        let mut inner = shared.lock();
        if let Some(n) = inner.in_flight.get_mut(&name) {
            *n -= 1;
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

async fn stats(State(shared): State<Shared>) -> Response {
    let inner = shared.lock();
    let mut per_name: BTreeMap<String, (usize, HashSet<String>)> = BTreeMap::new();
    for r in &inner.received {
        let entry = per_name.entry(r.name.clone()).or_default();
        entry.0 += 1;
        if (200..300).contains(&r.status) {
            entry.1.insert(r.webhook_id().to_string());
        }
    }
    let endpoints: serde_json::Map<String, serde_json::Value> = per_name
        .into_iter()
        .map(|(name, (requests, ids))| {
            let max = inner.max_in_flight.get(&name).copied().unwrap_or(0);
            (
                name,
                json!({"requests": requests, "delivered_unique": ids.len(), "max_in_flight": max}),
            )
        })
        .collect();
    axum::Json(json!({"requests": inner.received.len(), "endpoints": endpoints})).into_response()
}
