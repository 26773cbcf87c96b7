//! The node as a real process (`CARGO_BIN_EXE_hookline`), on port 0, with its own key prefix.

use super::Api;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Clone, Debug)]
pub struct NodeOpts {
    pub redis_url: String,
    pub prefix: String,
    pub node_id: Option<String>,
    /// Extra `HOOKLINE__…` settings (section__key, value).
    pub env: Vec<(String, String)>,
}

impl NodeOpts {
    pub fn new(redis_url: &str, prefix: &str) -> NodeOpts {
        NodeOpts {
            redis_url: redis_url.into(),
            prefix: prefix.into(),
            node_id: None,
            env: Vec::new(),
        }
    }

    pub fn set(mut self, key: &str, value: &str) -> NodeOpts {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn node_id(mut self, id: &str) -> NodeOpts {
        self.node_id = Some(id.to_string());
        self
    }
}

pub struct Node {
    pub redis_url: String,
    pub prefix: String,
    child: Child,
    pub api: Api,
    logs: Arc<Mutex<Vec<String>>>,
    _cwd: tempfile::TempDir,
}

impl Node {
    pub async fn start(opts: &NodeOpts) -> Node {
        // An empty working directory, so config/default.toml of the checkout is not read.
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookline"));
        cmd.arg("serve")
            .current_dir(cwd.path())
            .env_remove("RUST_LOG")
            .env("HOOKLINE__SERVER__LISTEN", "127.0.0.1:0")
            .env("HOOKLINE__REDIS__URL", &opts.redis_url)
            .env("HOOKLINE__REDIS__PREFIX", &opts.prefix)
            .env("HOOKLINE__AUTH__ADMIN_TOKENS", format!("[\"{}\"]", super::ADMIN))
            .env("HOOKLINE__DELIVERY__ALLOW_PRIVATE_NETWORKS", "true")
            // Fast clocks so fault tests run in seconds.
            .env("HOOKLINE__SHARDS__COUNT", "16")
            .env("HOOKLINE__SHARDS__LEASE_TTL_MS", "3000")
            .env("HOOKLINE__SHARDS__DUE_POLL_MS", "100")
            .env("HOOKLINE__ROUTER__CLAIM_IDLE_MS", "3000")
            .env("HOOKLINE__ROUTER__BLOCK_MS", "200")
            .env("HOOKLINE__REDIS__COMMAND_TIMEOUT_MS", "1500")
            .env("HOOKLINE__LOG__LEVEL", "info,hookline_actors=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(id) = &opts.node_id {
            cmd.env("HOOKLINE__NODE__ID", id);
        }
        for (k, v) in &opts.env {
            cmd.env(format!("HOOKLINE__{}", k.to_uppercase()), v);
        }
        let mut child = cmd.spawn().expect("start hookline");
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["msg"] == "listening" {
                        if let Some(tx) = addr_tx.take() {
                            tx.send(v["addr"].as_str().unwrap_or_default().to_string()).ok();
                        }
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr: SocketAddr = tokio::time::timeout(Duration::from_secs(20), addr_rx)
            .await
            .expect("node did not log its address within 20 s")
            .expect("node exited before listening")
            .parse()
            .unwrap();
        let api = Api::new(&format!("http://{addr}"));
        Node {
            redis_url: opts.redis_url.clone(),
            prefix: opts.prefix.clone(),
            child,
            api,
            logs,
            _cwd: cwd,
        }
    }

    /// Start and wait until `/readyz` says the node has joined the lease cycle.
    pub async fn start_ready(opts: &NodeOpts) -> Node {
        let node = Node::start(opts).await;
        super::eventually(Duration::from_secs(20), "the node to be ready", || async {
            node.api.ready().await.then_some(())
        })
        .await;
        node
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("node already exited")
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill9(&mut self) {
        self.child.start_kill().ok();
        self.child.wait().await.ok();
    }

    /// SIGSTOP or SIGCONT: pause the process (as a long stall or a frozen VM would) or resume it.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Invariant 3 of docs/ARCHITECTURE.md, checked in Redis: every delivery is in exactly one state, and
    /// its status agrees with where it is — delivered: in neither its endpoint's queue nor its
    /// dead letters; dead: in the dead letters only; pending or failed (retry scheduled): in the
    /// queue only. A deleted endpoint's deliveries are delivered, dead, or (pending or failed)
    /// in its `dropped` set until the janitor marks them dead. Returns how many were checked.
    pub async fn assert_delivery_states(&self) -> usize {
        use fred::prelude::*;
        // On a cluster every master holds some of the records: scan each one.
        let targets: Vec<Vec<String>> = match self.redis_url.strip_prefix("redis-cluster://") {
            Some(hosts) => hosts
                .split(',')
                .map(|h| {
                    let (host, port) = h.rsplit_once(':').unwrap();
                    vec!["-h".into(), host.into(), "-p".into(), port.into()]
                })
                .collect(),
            None => vec![vec!["-u".into(), self.redis_url.clone()]],
        };
        let mut records: Vec<String> = Vec::new();
        for target in targets {
            let out = std::process::Command::new("redis-cli")
                .args(&target)
                .args(["--scan", "--pattern", &format!("{}:*:ep:*:d:*", self.prefix)])
                .output()
                .expect("redis-cli");
            assert!(out.status.success(), "redis-cli --scan {target:?} failed");
            records.extend(String::from_utf8_lossy(&out.stdout).lines().map(String::from));
        }
        let config = hookline::store::redis_config(&self.redis_url).unwrap();
        let client = Builder::from_config(config).build().unwrap();
        client.init().await.unwrap();
        let endpoints = format!("{}:endpoints", self.prefix);
        let mut violations = Vec::new();
        let mut checked = 0;
        for record in records {
            let (endpoint_part, event_id) = record.rsplit_once(":d:").unwrap();
            let endpoint_id = endpoint_part.rsplit_once(":ep:").unwrap().1;
            let exists: bool = client.hexists(&endpoints, endpoint_id).await.unwrap();
            let status: Option<String> = client.hget(&record, "status").await.unwrap();
            if !exists {
                let dropped: Option<f64> = client
                    .zscore(format!("{endpoint_part}:dropped"), event_id)
                    .await
                    .unwrap();
                if matches!(status.as_deref(), Some("pending") | Some("failed")) && dropped.is_none() {
                    violations.push(format!(
                        "{record}: {status:?} for a deleted endpoint, not awaiting the janitor"
                    ));
                }
                checked += 1;
                continue;
            }
            let queued: Option<f64> = client.zscore(format!("{endpoint_part}:q"), event_id).await.unwrap();
            let dead: Option<f64> = client.zscore(format!("{endpoint_part}:dead"), event_id).await.unwrap();
            let ok = match status.as_deref() {
                Some("delivered") => queued.is_none() && dead.is_none(),
                Some("dead") => queued.is_none() && dead.is_some(),
                Some("pending") | Some("failed") => queued.is_some() && dead.is_none(),
                _ => false,
            };
            if !ok {
                violations.push(format!(
                    "{record}: status {status:?}, queued {}, dead {}",
                    queued.is_some(),
                    dead.is_some()
                ));
            }
            checked += 1;
        }
        client.quit().await.ok();
        assert!(
            violations.is_empty(),
            "deliveries in an inconsistent state:\n{}",
            violations.join("\n")
        );
        checked
    }

    /// Resident memory of the node process, in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        hookline_loadtest::rss_kib(self.pid())
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

/// Start the node binary on `redis`/`prefix` with the extra `HOOKLINE__…` settings `env`, expect
/// it to exit with an error within 20 s (a node that keeps running fails the test), and return
/// what it printed.
pub async fn refused_start(redis: &str, prefix: &str, env: &[(&str, &str)]) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("serve")
        .current_dir(cwd.path())
        .env("HOOKLINE__SERVER__LISTEN", "127.0.0.1:0")
        .env("HOOKLINE__REDIS__URL", redis)
        .env("HOOKLINE__REDIS__PREFIX", prefix)
        .env("HOOKLINE__AUTH__INSECURE_NO_AUTH", "true")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = super::poll_until(Duration::from_secs(20), || {
        std::future::ready(child.try_wait().unwrap())
    })
    .await;
    let Some(status) = exited else {
        child.kill().ok();
        panic!("a node with {env:?} kept running");
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success(), "{env:?}: {text}");
    text
}
