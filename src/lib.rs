//! Hookline: a webhook delivery node.
//!
//! The map (see docs/ARCHITECTURE.md for the whole picture):
//! - [`config`] — one `Config`: defaults, TOML file, `HOOKLINE__…` environment, validation.
//! - [`api`] — the HTTP API of API.md (axum), one file per resource.
//! - [`store`] — everything that talks to Redis: keys, Lua scripts, typed operations; it
//!   implements the actors' store traits (`RouterStore`, `LeaseStore`, `EndpointStore`).
//! - [`event`] — an event's id, exact body and time format (ingest, test sends, node events).
//! - [`delivery`] — the outbound HTTP client: signing, SSRF guard, bounded response reads; it
//!   implements the actors' `Transport` trait.
//! - [`telemetry`] — JSON logs and the Prometheus recorder.
//! - `hookline_actors` (the `actors/` crate) — router, shard leases, endpoint actors.
//!
//! [`run`] wires them together and serves until the shutdown future resolves.

pub mod api;
pub mod catalogue;
pub mod cidr;
pub mod config;
pub mod delivery;
pub mod event;
pub mod ids;
pub mod inbound;
pub mod janitor;
pub mod sampler;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod traces;
pub mod transform;

use config::Config;
use hookline_actors::matching::SubscriptionIndex;
use hookline_actors::{Node, NodeSettings, Stores, SystemClock};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("http client: {0}")]
    Http(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("actors: {0}")]
    Actors(#[from] ractor::SpawnErr),
    #[error("the node's actors stopped unexpectedly")]
    ActorsStopped,
    #[error("this node does not match the deployment: {0}")]
    Layout(String),
}

/// Read the catalogue version every `catalogue::VERSION_POLL` for as long as the node runs: a
/// change whose notification this node missed (a reconnect) drops that tenant's entry within
/// that time.
async fn follow_catalogue_version(store: Arc<store::RedisStore>, catalogue: Arc<catalogue::Catalogue>) {
    let mut every = tokio::time::interval(catalogue::VERSION_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let moved = match store.catalogue_version().await {
            Ok(version) => catalogue.moved(version),
            Err(e) => {
                tracing::debug!(error = %e, "reading the catalogue version failed");
                continue;
            }
        };
        if moved {
            let held = catalogue.held_versions();
            let tenants: Vec<String> = held.iter().map(|(t, _)| t.clone()).collect();
            match store.catalogue_versions(&tenants).await {
                Ok(current) => catalogue.forget_changed(&held, &current),
                Err(e) => {
                    tracing::debug!(error = %e, "reading the tenants' catalogue versions failed");
                    catalogue.look_again();
                }
            }
        }
    }
}

/// The actors' settings, resolved from `cfg` (public for tests that start actors themselves).
pub fn node_settings(cfg: &Config) -> NodeSettings {
    let node_id = if cfg.node.id.is_empty() {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into());
        format!("{host}-{}", &ids::new_key_id()[4..12])
    } else {
        cfg.node.id.clone()
    };
    NodeSettings {
        node_id,
        shard_count: cfg.shards.count,
        lease_ttl_ms: cfg.shards.lease_ttl_ms,
        due_poll_ms: cfg.shards.due_poll_ms,
        due_poll_max_ms: cfg.shards.due_poll_max_ms,
        router_batch: cfg.router.batch,
        router_block_ms: cfg.router.block_ms,
        router_claim_idle_ms: cfg.router.claim_idle_ms,
        stream_partitions: cfg.router.partitions,
        resync_interval_ms: cfg.router.resync_s * 1000,
        default_timeout_ms: cfg.delivery.timeout_ms,
        default_retry_schedule_s: cfg.delivery.retry_schedule_s.clone(),
        default_max_in_flight: cfg.delivery.max_in_flight,
        window: cfg.delivery.window,
        idle_keepalive_ms: 10_000,
        idle_linger_ms: cfg.delivery.idle_linger_ms,
        drain_timeout_ms: cfg.server.shutdown_timeout_s.saturating_sub(3).max(1) * 1000,
        breaker: hookline_actors::breaker::BreakerSettings {
            min_attempts: cfg.health.breaker_min_attempts,
            failure_ratio: cfg.health.breaker_failure_ratio,
            window_ms: cfg.health.breaker_window_s * 1000,
            probe_intervals_ms: cfg.health.probe_intervals_s.iter().map(|s| s * 1000).collect(),
            ramp_ms: cfg.health.ramp_s * 1000,
            ramp_start_per_s: cfg.health.ramp_start_per_s,
            ramp_full_per_s: cfg.health.ramp_full_per_s,
        },
        disable_after_ms: cfg.health.disable_after_s * 1000,
        dead_letter_notice_interval_s: cfg.notifications.dead_letter_interval_s,
        metric_labels: hookline_actors::names::MetricLabels {
            tenant: cfg.metrics.tenant_labels,
            endpoint: cfg.metrics.endpoint_labels,
        },
    }
}

/// Run a node until `shutdown` resolves, then stop gracefully: refuse new work, finish or hand
/// back in-flight attempts, give back shard leases.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RunError> {
    let cfg = Arc::new(cfg);
    let store = store::RedisStore::connect(&cfg.store_settings()).await?;
    let (shards, partitions) = (cfg.shards.count, cfg.router.partitions);
    let sealed = store.seals_secrets();
    telemetry::metrics_handle(); // the recorder, before the first figure
    let tracing = &cfg.tracing;
    traces::install(tracing.traces_url(), tracing.sample_ratio, &tracing.service_name)
        .map_err(|e| RunError::Http(format!("tracing: {e}")))?;
    metrics::gauge!(telemetry::names::SECRETS_ENCRYPTED).set(if sealed { 1.0 } else { 0.0 });
    if !sealed {
        tracing::warn!("secrets are stored in clear: set security.encryption_keys to seal them (AES-256-GCM)");
    }
    if !store.wait_connected(Duration::from_secs(5)).await {
        tracing::warn!(url = %redacted(&cfg.redis.url), "Redis does not answer yet; serving 503 until it does");
    } else if let Ok(Some(wrong)) = store.check_layout(shards, partitions).await {
        return Err(RunError::Layout(wrong));
    }
    // Checked again (and first, if Redis was down) until Redis answers; a mismatch stops the node.
    let (layout_tx, layout_rx) = tokio::sync::oneshot::channel::<String>();
    let layout_check = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                match store.check_layout(shards, partitions).await {
                    Ok(Some(wrong)) => {
                        layout_tx.send(wrong).ok();
                        return;
                    }
                    Ok(None) => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        })
    };
    let egress = cfg.delivery.egress().map_err(RunError::Http)?;
    let transforms = transform::Transforms::new(cfg.transform.workers, cfg.transform.timeout_ms);
    let notify = &cfg.notifications;
    let mailer = delivery::email::Mailer::new(&notify.smtp_url, &notify.email_from, &notify.console_url)
        .map_err(RunError::Http)?;
    let transport = Arc::new(
        delivery::HttpTransport::new(&egress)
            .map_err(RunError::Http)?
            .with_transforms(transforms.clone(), cfg.delivery.require_https)
            .with_mailer(mailer),
    );
    let index = Arc::new(SubscriptionIndex::new());
    let settings = node_settings(&cfg);
    tracing::info!(node_id = %settings.node_id, shards = settings.shard_count, "starting node");
    let settings_node_id = settings.node_id.clone();
    let (node, mut supervisor) = Node::start(
        Stores::all(store.clone()),
        transport,
        settings,
        index.clone(),
        Arc::new(SystemClock),
    )
    .await?;

    let catalogue = Arc::new(catalogue::Catalogue::default());
    let watcher_node = node.clone();
    let watcher_store = store.clone();
    let watcher_catalogue = catalogue.clone();
    tokio::spawn(async move {
        // Keep trying until the change channel is subscribed (Redis may be down at start).
        loop {
            let (node, working) = (watcher_node.clone(), watcher_node.clone());
            let catalogue = watcher_catalogue.clone();
            let on_catalogue = move |tenant: String| catalogue.forget(&tenant);
            let on_work = move |pairs| working.work_announced(pairs);
            match watcher_store
                .watch_changes(move |id| node.endpoint_changed(&id), on_catalogue, on_work)
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "subscribing to endpoint changes failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });

    tokio::spawn(follow_catalogue_version(store.clone(), catalogue.clone()));
    let janitor = tokio::spawn(janitor::run(store.clone(), cfg.clone(), settings_node_id.clone()));
    let sampler = tokio::spawn(sampler::run(
        store.clone(),
        index.clone(),
        telemetry::metrics_handle(),
        cfg.clone(),
        settings_node_id,
    ));

    let listener = server::listen(&cfg.server.listen).map_err(|source| RunError::Listen {
        addr: cfg.server.listen.clone(),
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: cfg.server.listen.clone(),
        source,
    })?;
    tracing::info!(addr = %addr, "listening");

    let accepting = Arc::new(AtomicBool::new(true));
    let state = api::AppState {
        config: cfg.clone(),
        store: store.clone(),
        node: node.clone(),
        index,
        admin_digests: Arc::new(cfg.auth.admin_tokens.iter().map(|t| api::auth::digest(t)).collect()),
        metrics: telemetry::metrics_handle(),
        accepting: accepting.clone(),
        openapi: Arc::from(""),
        keys: Arc::new(api::auth::KeyCache::default()),
        trusted_proxies: Arc::new(
            cfg.server
                .trusted_proxies
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
        ),
        catalogue,
        transforms,
    };

    let (actors_died_tx, actors_died_rx) = tokio::sync::oneshot::channel::<()>();
    let layout_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let stop = {
        let (accepting, layout_error) = (accepting.clone(), layout_error.clone());
        async move {
            let layout_rx = async move {
                match layout_rx.await {
                    Ok(wrong) => wrong,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown => tracing::info!("shutdown requested"),
                _ = actors_died_rx => tracing::error!("actors stopped; shutting down"),
                wrong = layout_rx => {
                    tracing::error!(error = %wrong, "this node does not match the deployment; stopping");
                    *layout_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(wrong);
                }
            }
            accepting.store(false, Ordering::Relaxed);
        }
    };
    let watchdog = tokio::spawn(async move {
        (&mut supervisor).await.ok();
        actors_died_tx.send(()).ok();
    });

    let limits = server::Limits {
        header_read: Duration::from_secs(cfg.server.header_read_timeout_s),
        body_read: Duration::from_secs(cfg.server.body_read_timeout_s),
        request: Duration::from_secs(cfg.server.request_timeout_s),
        write: Duration::from_secs(cfg.server.write_timeout_s),
        max_connections: cfg.server.max_connections,
        drain: Duration::from_secs((cfg.server.shutdown_timeout_s / 3).max(1)),
    };
    server::serve(listener, api::app(state), limits, stop).await;
    janitor.abort();
    sampler.abort();
    layout_check.abort();
    let actors_alive = !watchdog.is_finished();
    if actors_alive {
        watchdog.abort();
        node.shutdown().await;
    }
    store.shutdown().await;
    // The last spans (the attempts the drain finished) go out before the process ends.
    traces::flush(Duration::from_secs(2)).await;
    tracing::info!("stopped");
    let layout_error = layout_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (layout_error, actors_alive) {
        (Some(wrong), _) => Err(RunError::Layout(wrong)),
        (None, true) => Ok(()),
        (None, false) => Err(RunError::ActorsStopped),
    }
}

/// A URL with its password (if any) replaced by `***`, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redis_passwords_are_not_logged() {
        assert_eq!(super::redacted("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(super::redacted("rediss://user:pw@h:1"), "rediss://user:***@h:1");
        assert_eq!(super::redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
