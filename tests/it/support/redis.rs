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
            child: None,
        };
        server.launch();
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
