//! A private `redis-server` on a free port in a temp dir, for tests that need persistence,
//! a Redis restart or an empty Redis. Only the process this helper started is ever killed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn ping(hostport: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(hostport) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    aof: bool,
    /// The master's port, for a replica.
    replica_of: Option<u16>,
    child: Option<Child>,
}

impl RedisServer {
    /// `aof = true`: append-only file with `appendfsync always` (nothing acknowledged is lost
    /// across a kill -9 of Redis). `aof = false`: no persistence at all.
    pub fn start(aof: bool) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            aof,
            replica_of: None,
            child: None,
        };
        server.launch();
        server
    }

    /// A replica of `master` (no persistence), synced before this returns.
    pub fn start_replica_of(master: &RedisServer) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            aof: false,
            replica_of: Some(master.port),
            child: None,
        };
        server.launch();
        let start = Instant::now();
        while !super::redis_cli(&server.url(), &["info", "replication"]).contains("master_link_status:up") {
            assert!(start.elapsed() < Duration::from_secs(10), "the replica did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args([
                "--appendonly",
                if self.aof { "yes" } else { "no" },
                "--appendfsync",
                "always",
            ])
            .args(
                self.replica_of
                    .map(|master| vec!["--replicaof".to_string(), "127.0.0.1".into(), master.to_string()])
                    .unwrap_or_default(),
            )
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let start = Instant::now();
        while !ping(&self.hostport()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn hostport(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.hostport())
    }

    /// SIGKILL Redis (only the process this helper started).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) this Redis: stopped, it keeps its connections
    /// but answers nothing (a replica stopped so does not confirm writes).
    pub fn stop_signal(&self, stop: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if stop { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Start again on the same port and directory (with AOF, the data comes back).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A local Redis Cluster of `masters` masters (no replicas), each a private `redis-server
/// --cluster-enabled yes` on a free port in one temp dir, joined with `redis-cli --cluster
/// create`. Only the processes this helper started are ever killed.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
}

/// A port that is free, and whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    pub fn start(masters: usize) -> RedisCluster {
        RedisCluster::start_with_replicas(masters, 0)
    }

    /// `masters` masters with `replicas` replicas each (all synced before this returns).
    pub fn start_with_replicas(masters: usize, replicas: usize) -> RedisCluster {
        let mut cluster = RedisCluster {
            ports: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        };
        for _ in 0..masters * (1 + replicas) {
            let port = free_cluster_port();
            cluster.ports.push(port);
            cluster.children.push(None);
            cluster.launch(cluster.ports.len() - 1);
        }
        let addrs: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Every node must see the whole cluster (and replicas their master's data) before a
        // client connects.
        let start = Instant::now();
        while !cluster
            .ports
            .iter()
            .all(|p| cluster.info(*p).contains("cluster_state:ok"))
            || cluster.replica_ports().iter().any(|p| !cluster.replica_synced(*p))
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the cluster did not become ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Start the `i`th node (again: with its nodes.conf it rejoins the cluster as it left it,
    /// as a replica if its slots moved meanwhile).
    fn launch(&mut self, i: usize) {
        let port = self.ports[i];
        let node_dir = self.dir.path().join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.children[i] = Some(child);
        let start = Instant::now();
        while !ping(&format!("127.0.0.1:{port}")) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "cluster redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the node on `port` (only a process this helper started).
    pub fn kill9(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        if let Some(mut child) = self.children[i].take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Start the node on `port` again after `kill9`.
    pub fn start_again(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        assert!(self.children[i].is_none(), "already running");
        self.launch(i);
    }

    fn role(&self, port: u16) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "info", "replication"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The running nodes that are masters now, and replicas now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.ports_with("role:master")
    }
    pub fn replica_ports(&self) -> Vec<u16> {
        self.ports_with("role:slave")
    }
    fn ports_with(&self, role: &str) -> Vec<u16> {
        self.running().filter(|p| self.role(*p).contains(role)).collect()
    }
    fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
    }

    /// Is this replica connected to its master and synced?
    pub fn replica_synced(&self, port: u16) -> bool {
        self.role(port).contains("master_link_status:up")
    }

    /// Is the cluster whole again (every running node says `cluster_state:ok`)?
    pub fn is_ok(&self) -> bool {
        self.running().all(|p| self.info(p).contains("cluster_state:ok"))
    }

    fn info(&self, port: u16) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "info"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `redis-cluster://h1:p1,h2:p2,…`, as `redis.url` takes it.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    /// Keys per master: how the data spread over the cluster.
    pub fn keys_per_master(&self) -> Vec<u64> {
        self.master_ports()
            .iter()
            .map(|p| {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "DBSIZE"])
                    .output()
                    .expect("redis-cli");
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// A private Redis Sentinel watching one master as `mymaster` (quorum 1, down after 1 s unless
/// told otherwise), on a
/// free port with its config in a temp dir (Sentinel rewrites it). Killed on drop.
pub struct Sentinel {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Sentinel {
    pub fn start(master: &RedisServer) -> Sentinel {
        Sentinel::start_after(master, 1_000)
    }

    /// A Sentinel that takes the master for down after `down_after_ms` without an answer.
    pub fn start_after(master: &RedisServer, down_after_ms: u64) -> Sentinel {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster {down_after_ms}\nsentinel failover-timeout mymaster 5000\n",
                dir.path().display(),
                master.port
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (it is also Redis Sentinel)");
        let start = Instant::now();
        while !ping(&format!("127.0.0.1:{port}")) {
            assert!(start.elapsed() < Duration::from_secs(10), "sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sentinel { port, _dir: dir, child }
    }

    /// The address Sentinel gives for the master now.
    pub fn master_port(&self) -> Option<u16> {
        let out = super::redis_cli(
            &format!("redis://127.0.0.1:{}", self.port),
            &["--raw", "sentinel", "get-master-addr-by-name", "mymaster"],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
