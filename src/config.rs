//! One `Config`: built-in defaults, then a TOML file, then `HOOKLINE__SECTION__KEY` environment
//! variables, then validation. A bad value stops the node with a message naming the key.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Load(String),
    #[error("config: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub node: NodeCfg,
    pub redis: Redis,
    pub auth: Auth,
    pub delivery: Delivery,
    pub retention: Retention,
    pub ingest: Ingest,
    pub shards: Shards,
    pub router: RouterCfg,
    pub health: Health,
    pub log: Log,
    pub metrics: MetricsCfg,
    pub security: Security,
    pub console: Console,
    pub transform: Transform,
    pub notifications: Notifications,
    pub tracing: Tracing,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// `"<key id>:<base64 of 32 bytes>"`: the first seals secrets at rest (AES-256-GCM), every
    /// one opens them. Empty: secrets stay clear (and the node says so at start).
    pub encryption_keys: Vec<String>,
    /// Refuse to start without an encryption key.
    pub require_encryption: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: String,
    /// Longest a graceful shutdown may take before the node exits anyway.
    pub shutdown_timeout_s: u64,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the caller (the
    /// inbound gateway's `allowed_ips` and rejection log). Empty: the socket's peer is the caller.
    pub trusted_proxies: Vec<String>,
    /// A request's headers (or an idle connection's next request) must arrive within this.
    pub header_read_timeout_s: u64,
    /// A request's body must arrive within this after its headers (else 408).
    pub body_read_timeout_s: u64,
    /// An answer within this (else 503).
    pub request_timeout_s: u64,
    /// A client that stops reading its answer for this long is cut off.
    pub write_timeout_s: u64,
    /// Connections open at once; past it new ones wait in the kernel's queue.
    pub max_connections: usize,
}
impl Default for Server {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            shutdown_timeout_s: 25,
            trusted_proxies: Vec::new(),
            header_read_timeout_s: 10,
            body_read_timeout_s: 30,
            request_timeout_s: 60,
            write_timeout_s: 30,
            max_connections: 8_192,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NodeCfg {
    /// Stable name of this node (consumer name and lease holder). Must differ between live
    /// nodes. Empty = `<hostname>-<random>`, new at each start.
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Redis {
    pub url: String,
    pub prefix: String,
    pub pool_size: usize,
    pub command_timeout_ms: u64,
    /// Ingest answers 2xx only once this many replicas hold the event (`WAIT`); 0: as soon as
    /// the master does.
    pub wait_replicas: u32,
    /// How long ingest waits for those replicas before answering 503 "not confirmed".
    pub wait_timeout_ms: u64,
}
impl Default for Redis {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "hookline".into(),
            pool_size: 4,
            command_timeout_ms: 3_000,
            wait_replicas: 0,
            wait_timeout_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub admin_tokens: Vec<String>,
    pub insecure_no_auth: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub allow_private_networks: bool,
    /// Refuse `http://` endpoint URLs (400), unless private networks are allowed (tests, dev).
    pub require_https: bool,
    pub timeout_ms: u64,
    pub retry_schedule_s: Vec<u64>,
    /// Attempts in flight per endpoint when the endpoint does not say.
    pub max_in_flight: u32,
    /// Due deliveries an endpoint actor holds in memory at most.
    pub window: usize,
    /// How long an endpoint actor whose queue went empty waits for more before it stops.
    pub idle_linger_ms: u64,
    /// Bodies of the events this node stored kept in memory for its own pulls (MiB; 0: none).
    pub body_cache_mb: u64,
    /// `http://[user:password@]host:port` of a forward proxy every attempt goes through.
    pub proxy_url: Option<String>,
    /// Hosts (and their subdomains) and address ranges reached without the proxy.
    pub no_proxy: Vec<String>,
    /// PEM certificates (or the path of a file holding them) trusted beside the system roots.
    pub extra_ca_pem: Option<String>,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            require_https: false,
            timeout_ms: 10_000,
            retry_schedule_s: vec![5, 300, 1800, 7200, 18000, 36000, 36000],
            max_in_flight: 10,
            window: 100,
            idle_linger_ms: 5_000,
            body_cache_mb: 16,
            proxy_url: None,
            no_proxy: Vec::new(),
            extra_ca_pem: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub days: u64,
    /// When above 0, retention in seconds instead of `days` (short-lived setups and tests).
    pub seconds: u64,
    /// How often a janitor pass runs (one node per interval does it).
    pub janitor_interval_s: u64,
    /// Endpoints one janitor pass trims (their delivery logs and dead letters).
    pub janitor_batch: usize,
    /// How long audit entries are kept, in days.
    pub audit_days: u64,
}
impl Default for Retention {
    fn default() -> Self {
        Self {
            days: 30,
            seconds: 0,
            janitor_interval_s: 60,
            janitor_batch: 500,
            audit_days: 365,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    pub idempotency_window_s: u64,
    pub max_payload_bytes: usize,
    /// The largest request body of `POST …/events/batch`.
    pub max_batch_bytes: usize,
    /// Events one tenant may ingest per second across all nodes (0: no limit). Past it,
    /// ingest answers 429 with `Retry-After` and stores nothing.
    pub tenant_rate_limit_per_s: u32,
}
impl Default for Ingest {
    fn default() -> Self {
        Self {
            idempotency_window_s: 86_400,
            max_payload_bytes: 262_144,
            max_batch_bytes: 16 * 1024 * 1024,
            tenant_rate_limit_per_s: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shards {
    /// Fixed for the life of a deployment: every node must use the same number.
    pub count: u32,
    pub lease_ttl_ms: u64,
    /// The shortest time between two looks of a shard owner at its due set (it looks after
    /// its endpoint actors stop, and when the earliest due entry comes due).
    pub due_poll_ms: u64,
    /// The longest a shard owner goes without looking (a safety net: routing and replays wake
    /// the owners of their endpoints, on any node, at once).
    pub due_poll_max_ms: u64,
}
impl Default for Shards {
    fn default() -> Self {
        Self {
            count: 64,
            lease_ttl_ms: 10_000,
            due_poll_ms: 500,
            due_poll_max_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterCfg {
    pub batch: usize,
    pub block_ms: u64,
    /// Unacked stream entries idle this long are taken over from their (dead) consumer.
    pub claim_idle_ms: u64,
    pub resync_s: u64,
    /// Events partitions (streams), each routed by its own router on every node; a tenant's
    /// events all go to one. On Redis Cluster they spread routing over the masters. Fixed for
    /// the life of a deployment, like `shards.count`: every node must use the same number.
    pub partitions: u32,
}
impl Default for RouterCfg {
    fn default() -> Self {
        Self {
            batch: 256,
            block_ms: 1_000,
            claim_idle_ms: 30_000,
            resync_s: 30,
            partitions: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsCfg {
    /// How often the node samples its gauges (queued deliveries, oldest age, drain time,
    /// breakers, router lag) from Redis.
    pub sample_interval_s: u64,
    /// Label per-tenant figures with `tenant` (ingest, attempts, queued). Tenants are the
    /// platform's customers: bounded, but turn it off for very many.
    pub tenant_labels: bool,
    /// Label attempts and queued deliveries with `endpoint` ids too (unbounded: off by default).
    pub endpoint_labels: bool,
}
impl Default for MetricsCfg {
    fn default() -> Self {
        Self {
            sample_interval_s: 15,
            tenant_labels: true,
            endpoint_labels: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A `tracing` filter (`info`, `hookline=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}
impl Default for Log {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

/// Each figment error as "`section.key`: what is wrong (from where)", with the key spelled as
/// in the TOML file whether the value came from the file or the environment.
fn describe(err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("`{key}`: {}{source}", e.kind)
            }
        })
        .collect();
    ConfigError::Load(lines.join("; "))
}

impl Config {
    /// Defaults, then `file` (or `config/default.toml` if it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Invalid {
                        key: "--config",
                        problem: format!("file {} does not exist", path.display()),
                    });
                }
                figment = figment.merge(Toml::file(path));
            }
            None if Path::new("config/default.toml").exists() => {
                figment = figment.merge(Toml::file("config/default.toml"));
            }
            None => {}
        }
        Self::from_figment(figment.merge(Env::prefixed("HOOKLINE__").split("__")))
    }

    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, problem: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                problem: problem.into(),
            })
        }
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "server.listen",
                format!("must be an address like 0.0.0.0:8080, got {:?}", self.server.listen),
            );
        }
        for (key, value) in [
            ("server.header_read_timeout_s", self.server.header_read_timeout_s),
            ("server.body_read_timeout_s", self.server.body_read_timeout_s),
            ("server.request_timeout_s", self.server.request_timeout_s),
            ("server.write_timeout_s", self.server.write_timeout_s),
        ] {
            if !(1..=3_600).contains(&value) {
                return bad(key, "must be between 1 and 3600");
            }
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) {
            return bad("server.max_connections", "must be between 1 and 1000000");
        }
        if let Err(e) = crate::store::seal::Sealer::new(&self.security.encryption_keys) {
            return bad("security.encryption_keys", e);
        }
        if self.security.require_encryption && self.security.encryption_keys.is_empty() {
            return bad(
                "security.encryption_keys",
                "is empty but security.require_encryption is true: give at least one key",
            );
        }
        if let Some(wrong) = self
            .server
            .trusted_proxies
            .iter()
            .find(|c| c.parse::<crate::inbound::net::Cidr>().is_err())
        {
            return bad(
                "server.trusted_proxies",
                format!("{wrong:?} is not an IP address or CIDR range"),
            );
        }
        if let Err((key, problem)) = self
            .delivery
            .egress_checked()
            .and(self.transform.checked())
            .and(self.notifications.checked())
            .and(self.tracing.checked())
        {
            return bad(key, problem);
        }
        if let Err(problem) = self.console.frame_ancestors() {
            return bad("console.portal_frame_ancestors", problem);
        }
        if !(self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("rediss://")
            || self.redis.url.starts_with("redis-cluster://")
            || self.redis.url.starts_with("redis-sentinel://"))
        {
            return bad(
                "redis.url",
                "must start with redis://, rediss://, redis-cluster:// or redis-sentinel://",
            );
        }
        if crate::store::redis_config(&self.redis.url).is_err() {
            return bad("redis.url", format!("is not a valid Redis URL: {:?}", self.redis.url));
        }
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(['{', '}', ' ']) {
            return bad("redis.prefix", "must be non-empty, without braces or spaces");
        }
        if self.redis.pool_size == 0 || self.redis.pool_size > 64 {
            return bad("redis.pool_size", "must be between 1 and 64");
        }
        if self.redis.wait_replicas > 16 {
            return bad("redis.wait_replicas", "must be between 0 and 16");
        }
        if !(1..=60_000).contains(&self.redis.wait_timeout_ms)
            || self.redis.wait_timeout_ms >= self.redis.command_timeout_ms
        {
            return bad(
                "redis.wait_timeout_ms",
                "must be between 1 and 60000 and below redis.command_timeout_ms",
            );
        }
        if self.redis.command_timeout_ms < 100 {
            return bad("redis.command_timeout_ms", "must be at least 100");
        }
        if self.auth.admin_tokens.is_empty() && !self.auth.insecure_no_auth {
            return bad(
                "auth.admin_tokens",
                "is empty: set at least one token, or auth.insecure_no_auth = true for local development",
            );
        }
        if self.auth.admin_tokens.iter().any(|t| t.len() < 8) {
            return bad("auth.admin_tokens", "every token must be at least 8 characters");
        }
        if !(100..=300_000).contains(&self.delivery.timeout_ms) {
            return bad("delivery.timeout_ms", "must be between 100 and 300000");
        }
        if self.delivery.retry_schedule_s.len() > 50 || self.delivery.retry_schedule_s.iter().any(|s| *s > 7 * 86_400) {
            return bad("delivery.retry_schedule_s", "at most 50 delays, each at most 604800 s");
        }
        if !(1..=1_000).contains(&self.delivery.max_in_flight) {
            return bad("delivery.max_in_flight", "must be between 1 and 1000");
        }
        if !(1..=10_000).contains(&self.delivery.window) {
            return bad("delivery.window", "must be between 1 and 10000");
        }
        if self.delivery.idle_linger_ms > 60_000 {
            return bad("delivery.idle_linger_ms", "must be at most 60000");
        }
        if self.delivery.body_cache_mb > 1_024 {
            return bad("delivery.body_cache_mb", "must be at most 1024");
        }
        if self.retention.seconds == 0 && (self.retention.days == 0 || self.retention.days > 3650) {
            return bad("retention.days", "must be between 1 and 3650");
        }
        if self.retention.seconds > 3650 * 86_400 {
            return bad("retention.seconds", "must be at most 3650 days (0: use retention.days)");
        }
        if !(1..=3600).contains(&self.metrics.sample_interval_s) {
            return bad("metrics.sample_interval_s", "must be between 1 and 3600");
        }
        if !(1..=3650).contains(&self.retention.audit_days) {
            return bad("retention.audit_days", "must be between 1 and 3650");
        }
        if self.retention.janitor_interval_s == 0 {
            return bad("retention.janitor_interval_s", "must be at least 1");
        }
        if !(1..=100_000).contains(&self.retention.janitor_batch) {
            return bad("retention.janitor_batch", "must be between 1 and 100000");
        }
        if self.ingest.idempotency_window_s == 0 {
            return bad("ingest.idempotency_window_s", "must be at least 1");
        }
        if !(1_024..=16 * 1024 * 1024).contains(&self.ingest.max_payload_bytes) {
            return bad("ingest.max_payload_bytes", "must be between 1024 and 16777216");
        }
        if !(self.ingest.max_payload_bytes..=256 * 1024 * 1024).contains(&self.ingest.max_batch_bytes) {
            return bad(
                "ingest.max_batch_bytes",
                "must be at least ingest.max_payload_bytes and at most 268435456",
            );
        }
        if !(1..=4_096).contains(&self.shards.count) {
            return bad("shards.count", "must be between 1 and 4096");
        }
        if self.shards.lease_ttl_ms < 300 {
            return bad("shards.lease_ttl_ms", "must be at least 300");
        }
        if self.shards.due_poll_ms < 10 {
            return bad("shards.due_poll_ms", "must be at least 10");
        }
        if self.shards.due_poll_max_ms < self.shards.due_poll_ms {
            return bad("shards.due_poll_max_ms", "must be at least shards.due_poll_ms");
        }
        if !(1..=10_000).contains(&self.router.batch) {
            return bad("router.batch", "must be between 1 and 10000");
        }
        if self.router.block_ms == 0 || self.router.block_ms > 10_000 {
            return bad("router.block_ms", "must be between 1 and 10000");
        }
        if self.router.claim_idle_ms < 1_000 {
            return bad("router.claim_idle_ms", "must be at least 1000");
        }
        if self.router.resync_s == 0 {
            return bad("router.resync_s", "must be at least 1");
        }
        if !(1..=256).contains(&self.router.partitions) {
            return bad("router.partitions", "must be between 1 and 256");
        }
        if self.log.level.parse::<tracing_subscriber::EnvFilter>().is_err() {
            return bad("log.level", format!("is not a valid filter: {:?}", self.log.level));
        }
        if self.health.disable_after_s == 0 {
            return bad("health.disable_after_s", "must be at least 1");
        }
        if self.health.breaker_min_attempts == 0 {
            return bad("health.breaker_min_attempts", "must be at least 1");
        }
        if !(self.health.breaker_failure_ratio > 0.0 && self.health.breaker_failure_ratio <= 1.0) {
            return bad("health.breaker_failure_ratio", "must be more than 0 and at most 1");
        }
        if self.health.breaker_window_s == 0 {
            return bad("health.breaker_window_s", "must be at least 1");
        }
        if self.health.probe_intervals_s.is_empty() || self.health.probe_intervals_s.contains(&0) {
            return bad("health.probe_intervals_s", "at least one interval, each at least 1 s");
        }
        if !(self.health.ramp_start_per_s > 0.0 && self.health.ramp_full_per_s >= self.health.ramp_start_per_s) {
            return bad(
                "health.ramp_start_per_s",
                "must be more than 0 and at most health.ramp_full_per_s",
            );
        }
        if self.router.claim_idle_ms <= self.router.block_ms {
            return bad(
                "router.claim_idle_ms",
                "must be longer than router.block_ms, or live consumers' work is taken from them",
            );
        }
        Ok(())
    }

    pub fn retention_s(&self) -> u64 {
        if self.retention.seconds > 0 {
            self.retention.seconds
        } else {
            self.retention.days * 86_400
        }
    }

    /// What the store takes from the configuration.
    pub fn store_settings(&self) -> crate::store::StoreSettings {
        crate::store::StoreSettings {
            url: self.redis.url.clone(),
            prefix: self.redis.prefix.clone(),
            pool_size: self.redis.pool_size,
            command_timeout_ms: self.redis.command_timeout_ms,
            router_block_ms: self.router.block_ms,
            partitions: self.router.partitions,
            shard_count: self.shards.count,
            dead_letter_interval_s: self.notifications.dead_letter_interval_s,
            retention_s: self.retention_s(),
            audit_retention_s: self.retention.audit_days * 86_400,
            idempotency_window_s: self.ingest.idempotency_window_s,
            tenant_rate_limit_per_s: self.ingest.tenant_rate_limit_per_s,
            encryption_keys: self.security.encryption_keys.clone(),
            wait_replicas: self.redis.wait_replicas,
            wait_timeout_ms: self.redis.wait_timeout_ms,
            body_cache_bytes: self.delivery.body_cache_mb as usize * 1024 * 1024,
        }
    }
}

mod console;
mod egress;
mod features;
mod health;
pub use console::Console;
pub use features::{Notifications, Tracing, Transform};
pub use health::Health;
#[cfg(test)]
mod tests;
