//! The fault soak (issue 24): three nodes on a Redis master with a replica behind Sentinel
//! (`redis.wait_replicas = 1`), a steady mixed load, and a fault schedule from a fixed seed,
//! for a bounded time. At the end it checks, from the sink and the producer's own record only:
//! every acknowledged event reached every endpoint subscribed to it at least once, ordered
//! endpoints saw their tenant's ingest order, no endpoint had more attempts open at once than
//! its `max_in_flight` (so never two nodes' worth), and rate-limited endpoints stayed within
//! their limit in every second. It reports duplicates, each fault's longest delivery gap and
//! how long the system took to take it.
//!
//! Everything it starts (redis-server, sentinel, nodes) is a child process on 127.0.0.1 in a
//! temp dir, killed by PID when the soak ends (and on drop).

use crate::sink::Sink;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// What the soak runs.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The node binary (`target/release/hookline`).
    pub node_bin: PathBuf,
    /// How long the load and the faults run.
    pub duration: Duration,
    /// Picks the order of the faults and their victims.
    pub seed: u64,
    /// Events per second, over all tenants.
    pub rate_per_s: u32,
    /// Time between the end of one fault and the start of the next.
    pub fault_every: Duration,
    /// The most the end waits for deliveries still under way.
    pub drain: Duration,
}

/// One fault as injected.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: &'static str,
    /// Seconds from the start of the load.
    pub at_s: f64,
    /// From injecting it until the system was whole again (processes back, ready).
    pub recovery_ms: u64,
    /// The longest time without any delivery arriving at the sink, from the fault's start
    /// until 10 s after its recovery.
    pub longest_gap_ms: u64,
}

/// One moment more attempts were open at an endpoint than its `max_in_flight`.
#[derive(Debug, Clone, Serialize)]
pub struct ExcessRecord {
    pub endpoint: String,
    /// Seconds from the start of the load.
    pub at_s: f64,
    pub open: usize,
    /// How many of the open requests were for a webhook id open twice (one delivery
    /// attempted by two senders at once) rather than different deliveries.
    pub open_twice: usize,
    /// How long before this moment the oldest open request arrived.
    pub oldest_open_ms: u64,
    /// The fault whose window (from its start to 10 s after its recovery) holds this moment:
    /// `kind #n` (n from 1), or none.
    pub during: Option<String>,
}

/// What the soak found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    pub seed: u64,
    pub duration_s: f64,
    pub faults: Vec<FaultRecord>,
    pub events_acked: usize,
    /// Posts the nodes refused or could not answer (not acknowledged: nothing promised).
    pub posts_refused: usize,
    /// (endpoint, event) pairs that should have arrived.
    pub deliveries_expected: usize,
    /// Those that never did: `endpoint/event` (the first 50), and how many per endpoint.
    pub lost: Vec<String>,
    pub lost_by_endpoint: BTreeMap<String, usize>,
    /// For endpoints with losses: their state as the API shows it at the end.
    pub lost_endpoint_states: BTreeMap<String, serde_json::Value>,
    /// Requests beyond the first success of each delivery.
    pub duplicates: usize,
    pub order_violations: Vec<String>,
    pub in_flight_violations: Vec<String>,
    /// Each moment an endpoint had more attempts open than its `max_in_flight`, placed in the
    /// fault it fell in, to tie an in-flight violation to its cause.
    pub in_flight_excesses: Vec<ExcessRecord>,
    pub rate_violations: Vec<String>,
    /// Where the processes' logs were kept, when a check failed (else they are removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_kept_in: Option<String>,
}

impl SoakReport {
    /// Did every check hold?
    pub fn passed(&self) -> bool {
        self.lost_by_endpoint.is_empty()
            && self.order_violations.is_empty()
            && self.in_flight_violations.is_empty()
            && self.rate_violations.is_empty()
    }
}

const TENANTS: [&str; 3] = ["s0", "s1", "s2"];
/// Each tenant's endpoints: (name suffix, sink path, extra settings). `hang` never answers in
/// time (a receiver that hangs, all along) and is left out of the delivery check.
fn endpoints(tenant: &str, rate_limit: u32) -> Vec<(String, String, serde_json::Value)> {
    [
        ("fast", "ok", json!({})),
        ("slow", "sleep/150", json!({"max_in_flight": 4})),
        ("flaky", "fail/30", json!({"retry_schedule_s": vec![1; 30]})),
        ("ord", "ok", json!({"ordered": true})),
        ("rl", "ok", json!({"rate_limit_per_s": rate_limit})),
        ("hang", "sleep/60000", json!({"timeout_ms": 300, "max_in_flight": 2})),
    ]
    .into_iter()
    .map(|(suffix, path, extra)| {
        let name = format!("{tenant}-{suffix}");
        (name.clone(), format!("{path}/{name}"), extra)
    })
    .collect()
}
/// The rate-limited endpoints' limit: twice a tenant's share of the load, so they keep up in
/// steady state and the limit bites when a fault's backlog drains.
fn rate_limit(rate_per_s: u32) -> u32 {
    (2 * rate_per_s).div_ceil(TENANTS.len() as u32).max(2)
}
/// The most attempts the endpoint may have open at once (the node's default is 10).
fn max_in_flight(name: &str) -> usize {
    match name.rsplit('-').next() {
        Some("slow") => 4,
        Some("ord") => 1,
        Some("hang") => 2,
        _ => 10,
    }
}
const LEASE_TTL_MS: u64 = 3_000;

/// A child process this soak started, restartable with the same arguments.
struct Proc {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(&self.program);
        // Its log's directory as the working directory: empty of config files, so a node
        // reads no config/default.toml, only its environment.
        cmd.current_dir(self.log.parent().unwrap_or(Path::new(".")))
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .env_remove("RUST_LOG")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        self.child = Some(cmd.spawn()?);
        Ok(())
    }
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
    fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .ok();
        }
    }
    async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.ok();
        }
    }
    /// SIGTERM and wait (bounded) for it to exit; SIGKILL if it does not.
    async fn stop(&mut self, within: Duration) {
        self.signal("-TERM");
        if let Some(mut child) = self.child.take() {
            if tokio::time::timeout(within, child.wait()).await.is_err() {
                child.kill().await.ok();
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

async fn until(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > within {
            anyhow::bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A small deterministic generator (xorshift64*): the seed fixes the fault schedule.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The Redis side: a master and a replica (either may be master after a failover) and a
/// Sentinel watching them.
struct Redis {
    servers: [Proc; 2],
    ports: [u16; 2],
    sentinel: Proc,
    sentinel_port: u16,
}

impl Redis {
    async fn start(dir: &Path) -> anyhow::Result<Redis> {
        let ports = [free_port(), free_port()];
        let server = |i: usize, replica_of: Option<u16>| {
            let data = dir.join(format!("redis{i}"));
            std::fs::create_dir_all(&data).ok();
            let mut args: Vec<String> = ["--port", &ports[i].to_string(), "--bind", "127.0.0.1", "--save", ""]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(["--appendonly", "no", "--dir"].map(String::from));
            args.push(data.display().to_string());
            if let Some(master) = replica_of {
                args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
            }
            Proc {
                program: "redis-server".into(),
                args,
                env: Vec::new(),
                log: dir.join(format!("redis{i}.log")),
                child: None,
            }
        };
        let mut servers = [server(0, None), server(1, Some(ports[0]))];
        for s in &mut servers {
            s.start()?;
        }
        until(Duration::from_secs(10), "the replica synced", || {
            redis_cli(ports[1], &["info", "replication"]).contains("master_link_status:up")
        })
        .await?;
        let sentinel_port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
                dir.display(),
                ports[0]
            ),
        )?;
        let mut sentinel = Proc {
            program: "redis-server".into(),
            args: vec![conf.display().to_string(), "--sentinel".into()],
            env: Vec::new(),
            log: dir.join("sentinel.log"),
            child: None,
        };
        sentinel.start()?;
        until(Duration::from_secs(10), "Sentinel answers", || {
            redis_cli(sentinel_port, &["ping"]).contains("PONG")
        })
        .await?;
        Ok(Redis {
            servers,
            ports,
            sentinel,
            sentinel_port,
        })
    }

    fn master_port(&self) -> Option<u16> {
        let out = redis_cli(
            self.sentinel_port,
            &["--raw", "sentinel", "get-master-addr-by-name", "mymaster"],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// Kill the master -9, wait for Sentinel to promote the replica, start the old master
    /// again (Sentinel makes it the new master's replica) and wait for it to sync.
    async fn failover(&mut self) -> anyhow::Result<()> {
        let old = self
            .master_port()
            .ok_or_else(|| anyhow::anyhow!("Sentinel names no master"))?;
        let i = self.ports.iter().position(|p| *p == old).expect("one of ours");
        self.servers[i].kill9().await;
        let other = self.ports[1 - i];
        until(Duration::from_secs(30), "Sentinel promoted the replica", || {
            self.master_port() == Some(other)
        })
        .await
        .map_err(|e| e.context(self.diagnosis()))?;
        // It comes back as the new master's replica, as an operator's unit would start it: a
        // master without persistence that came back as a master, empty, could be what Sentinel
        // promotes at the next hiccup, and every replica would then sync to nothing.
        // And it is no candidate for promotion until it holds the data: a replica that never
        // synced reports no time since its link went down, so Sentinel would take it, and if the
        // new master looked down for a second meanwhile (a fork for the sync on a busy machine),
        // it would promote the empty server and every replica would sync to nothing. Operators
        // do the same (`replica-priority 0` until synced).
        let args = &mut self.servers[i].args;
        for (flag, values) in [("--replicaof", 2), ("--replica-priority", 1)] {
            if let Some(at) = args.iter().position(|a| a == flag) {
                args.drain(at..=at + values);
            }
        }
        args.extend(["--replicaof".into(), "127.0.0.1".into(), other.to_string()]);
        args.extend(["--replica-priority".into(), "0".into()]);
        self.servers[i].start()?;
        // Whichever Sentinel names master by then (on a starved machine it may have failed over
        // once more), the other server must be its synced replica before the next fault.
        until(Duration::from_secs(60), "the old master synced as a replica", || {
            let Some(master) = self.master_port() else { return false };
            let replica = if master == self.ports[0] {
                self.ports[1]
            } else {
                self.ports[0]
            };
            let info = redis_cli(replica, &["info", "replication"]);
            info.contains("role:slave")
                && info.contains(&format!("master_port:{master}"))
                && info.contains("master_link_status:up")
        })
        .await
        .map_err(|e| e.context(self.diagnosis()))?;
        redis_cli(old, &["config", "set", "replica-priority", "100"]);
        Ok(())
    }

    /// What each server says of its replication, and the ends of the logs: the message a
    /// failed failover step carries.
    fn diagnosis(&self) -> String {
        let mut out = format!("Sentinel names master {:?}\n", self.master_port());
        for (i, port) in self.ports.iter().enumerate() {
            let info = redis_cli(*port, &["info", "replication"]);
            let lines: Vec<&str> = info
                .lines()
                .filter(|l| l.starts_with("role") || l.starts_with("master_"))
                .map(str::trim)
                .collect();
            out += &format!(
                "redis{i} :{port}: {}\n{}\n",
                lines.join(" "),
                log_tail(&self.servers[i].log, 12)
            );
        }
        out + &format!("sentinel:\n{}", log_tail(&self.sentinel.log, 20))
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A node process with a fixed id and address, so a restart is the same node.
struct NodeProc {
    proc: Proc,
    base: String,
}

async fn ready(http: &reqwest::Client, base: &str) -> bool {
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn until_ready(http: &reqwest::Client, base: &str, within: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ready(http, base).await {
        if start.elapsed() > within {
            anyhow::bail!("{base} not ready within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

const TOKEN: &str = "soak-admin-token";

/// The acknowledged events, per tenant, in the order their acknowledgements came (one
/// producer per tenant, one post at a time: the ingest order).
type Acked = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// Post `rate_per_s` events a second over the tenants (one producer task each, every fifth
/// post a batch of five), to the nodes in turn, until `stop`.
fn produce(
    http: reqwest::Client,
    bases: Vec<String>,
    rate_per_s: u32,
    acked: Acked,
    refused: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let per_tenant = (rate_per_s as f64 / TENANTS.len() as f64).max(0.1);
    TENANTS
        .iter()
        .enumerate()
        .map(|(t, tenant)| {
            let (http, bases, acked, refused, stop) = (
                http.clone(),
                bases.clone(),
                acked.clone(),
                refused.clone(),
                stop.clone(),
            );
            let tenant = tenant.to_string();
            tokio::spawn(async move {
                let mut n = 0usize;
                let started = Instant::now();
                let mut sent = 0f64;
                while !stop.load(Ordering::Relaxed) {
                    let base = &bases[(n + t) % bases.len()];
                    let batch = n % 5 == 4;
                    let (url, body) = if batch {
                        let events: Vec<_> = (0..5)
                            .map(|i| json!({"type": "load.item", "payload": {"n": n, "i": i}}))
                            .collect();
                        (
                            format!("{base}/v1/tenants/{tenant}/events/batch"),
                            json!({"events": events}),
                        )
                    } else {
                        (
                            format!("{base}/v1/tenants/{tenant}/events"),
                            json!({"type": "load.item", "payload": {"n": n}}),
                        )
                    };
                    let answer = http.post(url).bearer_auth(TOKEN).json(&body).send().await;
                    let ids: Vec<String> = match answer {
                        Ok(r) if r.status().is_success() => {
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            match batch {
                                true => v["results"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|r| r["id"].as_str().map(String::from))
                                    .collect(),
                                false => v["id"].as_str().map(String::from).into_iter().collect(),
                            }
                        }
                        _ => Vec::new(),
                    };
                    let posted = if batch { 5 } else { 1 };
                    *refused.lock().unwrap() += posted - ids.len();
                    acked.lock().unwrap().entry(tenant.clone()).or_default().extend(ids);
                    n += 1;
                    sent += posted as f64;
                    // Keep to the rate (catching up after a slow answer, never bursting past it).
                    let due = Duration::from_secs_f64(sent / per_tenant);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            })
        })
        .collect()
}

/// The faults, in the order the seed shuffles them into (each appears once per round).
const FAULTS: [&str; 5] = [
    "kill_9_node",
    "pause_node",
    "rolling_restart",
    "redis_failover",
    "kill_9_node_mid_batch",
];

/// Run the soak. Errors are the soak's own failures (a process that would not start, Redis
/// that would not fail over); what it found about Hookline is in the report.
pub async fn run(cfg: &SoakConfig) -> anyhow::Result<SoakReport> {
    let dir = tempfile_dir()?;
    match run_in(cfg, &dir).await {
        Ok(mut report) => {
            match report.passed() {
                true => drop(std::fs::remove_dir_all(&dir)),
                false => report.logs_kept_in = Some(dir.display().to_string()),
            }
            Ok(report)
        }
        // Its processes die with their handles; their logs stay for whoever reads the error.
        Err(e) => Err(e.context(format!("the soak's logs are kept in {}", dir.display()))),
    }
}

async fn run_in(cfg: &SoakConfig, dir: &Path) -> anyhow::Result<SoakReport> {
    // Absolute: the processes run in the soak's own directory.
    let node_bin = std::fs::canonicalize(&cfg.node_bin)
        .map_err(|e| anyhow::anyhow!("the node binary {}: {e}", cfg.node_bin.display()))?;
    let mut redis = Redis::start(dir).await?;
    let sink = Sink::start_lean("127.0.0.1:0").await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let url = format!("redis-sentinel://127.0.0.1:{}/mymaster", redis.sentinel_port);
    let mut nodes: Vec<NodeProc> = (1..=3)
        .map(|i| {
            let port = free_port();
            let env = [
                ("HOOKLINE__NODE__ID", format!("soak-{i}")),
                ("HOOKLINE__SERVER__LISTEN", format!("127.0.0.1:{port}")),
                ("HOOKLINE__REDIS__URL", url.clone()),
                ("HOOKLINE__REDIS__PREFIX", "soak".into()),
                ("HOOKLINE__REDIS__WAIT_REPLICAS", "1".into()),
                ("HOOKLINE__REDIS__WAIT_TIMEOUT_MS", "500".into()),
                ("HOOKLINE__REDIS__COMMAND_TIMEOUT_MS", "1500".into()),
                ("HOOKLINE__AUTH__ADMIN_TOKENS", format!("[\"{TOKEN}\"]")),
                ("HOOKLINE__DELIVERY__ALLOW_PRIVATE_NETWORKS", "true".into()),
                ("HOOKLINE__SHARDS__COUNT", "16".into()),
                ("HOOKLINE__SHARDS__LEASE_TTL_MS", LEASE_TTL_MS.to_string()),
                ("HOOKLINE__SHARDS__DUE_POLL_MS", "100".into()),
                ("HOOKLINE__ROUTER__CLAIM_IDLE_MS", "3000".into()),
                ("HOOKLINE__ROUTER__BLOCK_MS", "200".into()),
                ("HOOKLINE__LOG__LEVEL", "warn".into()),
                // The soak is about faults, not the breaker: a receiver failing 30% of the time
                // often has 5 failures in 10 attempts, which opens the default breaker (0.5)
                // for 30 s and more, longer than a short soak's drain.
                ("HOOKLINE__HEALTH__BREAKER_FAILURE_RATIO", "0.9".into()),
            ];
            NodeProc {
                proc: Proc {
                    program: node_bin.clone(),
                    args: vec!["serve".into()],
                    env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    log: dir.join(format!("node{i}.log")),
                    child: None,
                },
                base: format!("http://127.0.0.1:{port}"),
            }
        })
        .collect();
    for node in &mut nodes {
        node.proc.start()?;
    }
    for node in &nodes {
        until_ready(&http, &node.base, Duration::from_secs(30)).await?;
    }
    for tenant in TENANTS {
        for (name, path, extra) in endpoints(tenant, rate_limit(cfg.rate_per_s)) {
            let mut body = json!({"url": sink.url(&path), "event_types": ["load.*"]});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let created = http
                .post(format!("{}/v1/tenants/{tenant}/endpoints", nodes[0].base))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(created.status().is_success(), "creating {name}: {}", created.status());
            if !name.ends_with("-hang") {
                sink.watch_in_flight(&name, max_in_flight(&name));
            }
        }
    }
    // Every node's routers learn of new endpoints by a change notification; give them a moment
    // so no early event is routed before its endpoints are known there.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The load, and the faults meanwhile.
    let acked: Acked = Arc::default();
    let refused = Arc::new(Mutex::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let producers = produce(
        http.clone(),
        bases,
        cfg.rate_per_s,
        acked.clone(),
        refused.clone(),
        stop.clone(),
    );
    let started = Instant::now();
    let mut rng = Rng(cfg.seed.max(1));
    let mut faults = Vec::new();
    let mut order: Vec<&'static str> = Vec::new();
    tokio::time::sleep(cfg.fault_every.min(cfg.duration / 4)).await;
    while started.elapsed() + Duration::from_secs(5) < cfg.duration {
        if order.is_empty() {
            order = FAULTS.to_vec();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        let kind = order.pop().expect("a fault");
        let at = started.elapsed();
        let victim = rng.below(nodes.len());
        match kind {
            "kill_9_node" | "kill_9_node_mid_batch" => {
                if kind == "kill_9_node_mid_batch" {
                    // Right after a burst of posts lands, so routing and attempts are mid-way.
                    tokio::time::sleep(Duration::from_millis(rng.below(200) as u64)).await;
                }
                nodes[victim].proc.kill9().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                nodes[victim].proc.start()?;
            }
            "pause_node" => {
                // Past its lease: the others take its shards; when it wakes its writes are fenced.
                nodes[victim].proc.signal("-STOP");
                tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS + 2_000)).await;
                nodes[victim].proc.signal("-CONT");
            }
            "rolling_restart" => {
                for node in &mut nodes {
                    node.proc.stop(Duration::from_secs(15)).await;
                    node.proc.start()?;
                    until_ready(&http, &node.base, Duration::from_secs(30)).await?;
                }
            }
            _ => redis.failover().await?,
        }
        for node in &nodes {
            until_ready(&http, &node.base, Duration::from_secs(60)).await?;
        }
        let recovery = started.elapsed() - at;
        faults.push((kind, at, recovery));
        let rest = cfg.fault_every.min(cfg.duration.saturating_sub(started.elapsed()));
        tokio::time::sleep(rest).await;
    }
    if let Some(rest) = cfg.duration.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.await.ok();
    }
    let load_s = started.elapsed().as_secs_f64();
    let acked = acked.lock().unwrap().clone();

    // Wait (bounded) for what is still under way, then check.
    let checked: Vec<&str> = ["fast", "slow", "flaky", "ord", "rl"].to_vec();
    let missing = || -> Vec<String> {
        let mut out = Vec::new();
        for (tenant, ids) in &acked {
            for suffix in &checked {
                let name = format!("{tenant}-{suffix}");
                let got = sink.delivered_ids(&name);
                out.extend(
                    ids.iter()
                        .filter(|id| !got.contains(*id))
                        .map(|id| format!("{name}/{id}")),
                );
            }
        }
        out
    };
    let drain_start = Instant::now();
    while !missing().is_empty() && drain_start.elapsed() < cfg.drain {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut report = SoakReport {
        seed: cfg.seed,
        duration_s: load_s,
        events_acked: acked.values().map(Vec::len).sum(),
        posts_refused: *refused.lock().unwrap(),
        deliveries_expected: acked.values().map(Vec::len).sum::<usize>() * checked.len(),
        ..Default::default()
    };
    for lost in missing() {
        let endpoint = lost.split('/').next().unwrap_or_default().to_string();
        *report.lost_by_endpoint.entry(endpoint).or_default() += 1;
        if report.lost.len() < 50 {
            report.lost.push(lost);
        }
    }
    for name in report.lost_by_endpoint.keys() {
        let tenant = name.split('-').next().unwrap_or_default();
        let list: serde_json::Value = match http
            .get(format!("{}/v1/tenants/{tenant}/endpoints", nodes[0].base))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => continue,
        };
        let suffix = format!("/{name}");
        if let Some(ep) = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(&suffix)))
        {
            report.lost_endpoint_states.insert(name.clone(), ep["state"].clone());
        }
    }
    check_sink(&sink, &acked, rate_limit(cfg.rate_per_s), &mut report);
    let arrivals: Vec<u64> = {
        let mut a: Vec<u64> = sink.received().iter().map(|r| r.arrived_ms).collect();
        a.sort_unstable();
        a
    };
    let epoch_ms = now_ms() - started.elapsed().as_millis() as u64;
    report.faults = faults
        .into_iter()
        .map(|(kind, at, recovery)| {
            let from = epoch_ms + at.as_millis() as u64;
            let to = from + recovery.as_millis() as u64 + 10_000;
            FaultRecord {
                kind,
                at_s: at.as_secs_f64(),
                recovery_ms: recovery.as_millis() as u64,
                longest_gap_ms: longest_gap(&arrivals, from, to),
            }
        })
        .collect();
    report.in_flight_excesses = excesses(&sink, &acked, rate_limit(cfg.rate_per_s), epoch_ms, &report.faults);
    for node in &mut nodes {
        node.proc.kill9().await;
    }
    redis.sentinel.kill9().await;
    for s in &mut redis.servers {
        s.kill9().await;
    }
    Ok(report)
}

/// The longest stretch within [from, to] without an arrival.
fn longest_gap(sorted_arrivals: &[u64], from: u64, to: u64) -> u64 {
    let inside = sorted_arrivals.iter().copied().filter(|t| (from..=to).contains(t));
    let mut last = from;
    let mut gap = 0;
    for t in inside.chain([to]) {
        gap = gap.max(t - last);
        last = t;
    }
    gap
}

/// The moments an endpoint had more than its cap open, each placed in its fault's window.
fn excesses(
    sink: &Sink,
    acked: &BTreeMap<String, Vec<String>>,
    limit: u32,
    epoch_ms: u64,
    faults: &[FaultRecord],
) -> Vec<ExcessRecord> {
    let mut out = Vec::new();
    for tenant in acked.keys() {
        for (endpoint, _, _) in endpoints(tenant, limit) {
            for e in sink.in_flight_excesses(&endpoint) {
                let at_s = e.at_ms.saturating_sub(epoch_ms) as f64 / 1_000.0;
                let mut ids: Vec<&str> = e.open.iter().map(|o| o.webhook_id.as_str()).collect();
                ids.sort_unstable();
                let open_twice = ids.windows(2).filter(|w| w[0] == w[1]).count() * 2;
                let oldest = e.open.iter().map(|o| o.arrived_ms).min().unwrap_or(e.at_ms);
                out.push(ExcessRecord {
                    endpoint: endpoint.clone(),
                    at_s,
                    open: e.open.len(),
                    open_twice,
                    oldest_open_ms: e.at_ms.saturating_sub(oldest),
                    during: fault_at(faults, at_s),
                });
            }
        }
    }
    out
}

/// The fault whose window (start to 10 s after recovery) holds `at_s`: `kind #n`.
fn fault_at(faults: &[FaultRecord], at_s: f64) -> Option<String> {
    faults
        .iter()
        .enumerate()
        .find(|(_, f)| (f.at_s..=f.at_s + f.recovery_ms as f64 / 1_000.0 + 10.0).contains(&at_s))
        .map(|(i, f)| format!("{} #{}", f.kind, i + 1))
}

/// Order, in-flight caps, rate limits and duplicates, from what the sink saw.
fn check_sink(sink: &Sink, acked: &BTreeMap<String, Vec<String>>, limit: u32, report: &mut SoakReport) {
    let stats = sink.stats();
    report.duplicates = stats
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, s)| s["duplicates"].as_u64())
        .sum::<u64>() as usize;
    for (tenant, ids) in acked {
        // Ordered: first successes follow the ingest order.
        let name = format!("{tenant}-ord");
        let position: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let firsts = sink.first_successes(&name);
        let mut last: Option<(usize, &str)> = None;
        for id in &firsts {
            let Some(&at) = position.get(id.as_str()) else { continue };
            if let Some((before, prev)) = last {
                if at < before {
                    report
                        .order_violations
                        .push(format!("{name}: {id} (ingested #{at}) after {prev} (#{before})"));
                }
            }
            last = Some((at, id));
        }
        // (Not `hang`: its attempts time out at the node while the sink still sleeps on them.)
        for (endpoint, _, _) in endpoints(tenant, limit)
            .into_iter()
            .filter(|(e, _, _)| !e.ends_with("-hang"))
        {
            let most = sink.max_in_flight(&endpoint);
            if most > max_in_flight(&endpoint) {
                report.in_flight_violations.push(format!(
                    "{endpoint}: {most} open at once, max_in_flight {}",
                    max_in_flight(&endpoint)
                ));
            }
        }
        // Rate limited: in any second at most rate + burst (burst = rate) requests.
        let name = format!("{tenant}-rl");
        let mut times: Vec<u64> = sink.received_by(&name).iter().map(|r| r.arrived_ms).collect();
        times.sort_unstable();
        let cap = 2 * limit as usize;
        for (i, t) in times.iter().enumerate() {
            let within = times[i..].iter().take_while(|u| **u < t + 1_000).count();
            if within > cap {
                report.rate_violations.push(format!(
                    "{name}: {within} requests in the second from {t} ms, at most {cap}"
                ));
                break;
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hookline-soak-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_the_edges_of_the_window() {
        assert_eq!(longest_gap(&[], 100, 200), 100);
        assert_eq!(longest_gap(&[120, 130, 190], 100, 200), 60);
        assert_eq!(longest_gap(&[50, 150, 250], 100, 200), 50);
    }

    #[test]
    fn an_excess_is_placed_in_the_fault_whose_window_holds_it() {
        let fault = |kind, at_s, recovery_ms| FaultRecord {
            kind,
            at_s,
            recovery_ms,
            longest_gap_ms: 0,
        };
        let faults = [fault("pause_node", 10.0, 5_000), fault("redis_failover", 60.0, 9_000)];
        assert_eq!(fault_at(&faults, 24.9).as_deref(), Some("pause_node #1"));
        assert_eq!(fault_at(&faults, 25.1), None);
        assert_eq!(fault_at(&faults, 61.0).as_deref(), Some("redis_failover #2"));
        assert_eq!(fault_at(&faults, 5.0), None);
    }

    #[test]
    fn a_seed_fixes_the_schedule() {
        let draw = |seed| {
            let mut r = Rng(seed);
            (0..8).map(|_| r.below(5)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(7).iter().all(|i| *i < 5));
    }
}
