//! `hookline [serve] [--config FILE]`: parse the command line, load config, run the node.
//! `hookline secrets rotate [--config FILE]`: seal every stored secret again under the first
//! of `security.encryption_keys`, then exit. `hookline transform-worker` is what the node starts
//! to run endpoints' transforms (`hookline::transform::worker`), not for people.

use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: the node allocates per request and per delivery (bodies,
/// keys, script arguments), and glibc's allocator took a fifth of its CPU in W1
/// (BENCHMARKS.md "Session 19": W1 +15%, W2 +40% deliveries/s, node CPU −22–35%).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: hookline [serve] [--config FILE]\n\
  Starts a Hookline node. Without --config it reads config/default.toml if present.\n\
  Every setting can be overridden as HOOKLINE__<SECTION>__<KEY>.\n\
  hookline secrets rotate [--config FILE]: seal every stored secret again under the first of\n\
  security.encryption_keys (run it once every node has the new key first), then exit.";

/// What to do.
#[derive(PartialEq)]
enum Command {
    Serve,
    RotateSecrets,
}

fn parse_args() -> Result<(Command, Option<PathBuf>), String> {
    let mut args = std::env::args().skip(1).peekable();
    let mut command = Command::Serve;
    match args.peek().map(String::as_str) {
        Some("serve") => {
            args.next();
        }
        Some("secrets") => {
            args.next();
            match args.next().as_deref() {
                Some("rotate") => command = Command::RotateSecrets,
                other => return Err(format!("unknown secrets command {other:?}\n{USAGE}")),
            }
        }
        _ => {}
    }
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?)),
            "--help" | "-h" => return Err(USAGE.to_string()),
            "--version" | "-V" => return Err(format!("hookline {}", env!("CARGO_PKG_VERSION"))),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok((command, config))
}

/// `hookline secrets rotate`: one re-sealing pass, reported as a JSON line.
async fn rotate_secrets(cfg: hookline::config::Config) -> ExitCode {
    if cfg.security.encryption_keys.is_empty() {
        tracing::error!("security.encryption_keys is empty: there is no key to seal under");
        return ExitCode::from(2);
    }
    let store = match hookline::store::RedisStore::connect(&cfg.store_settings()).await {
        Ok(store) => store,
        Err(e) => {
            tracing::error!(error = %e, "cannot reach Redis");
            return ExitCode::FAILURE;
        }
    };
    if !store.wait_connected(std::time::Duration::from_secs(10)).await {
        tracing::error!("Redis does not answer");
        return ExitCode::FAILURE;
    }
    // Only the keys must fit (a deployment's layout is the nodes' business).
    let outcome = match store.check_keys().await {
        Ok(Some(wrong)) => Err(wrong),
        Ok(None) => store.reseal_all().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    store.shutdown().await;
    match outcome {
        Ok(report) => {
            tracing::info!(
                endpoints = report.endpoints_resealed,
                sources = report.sources_resealed,
                changed_meanwhile = report.skipped_changed,
                "secrets resealed"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "secrets not resealed");
            ExitCode::FAILURE
        }
    }
}

async fn signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn main() -> ExitCode {
    // A transform worker (`hookline::transform`) is started by the node itself: no config, no
    // logs, no runtime, just jobs on stdin.
    if std::env::args().nth(1).as_deref() == Some("transform-worker") {
        return hookline::transform::worker::main();
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(node_main()),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn node_main() -> ExitCode {
    let (command, config_file) = match parse_args() {
        Ok(c) => c,
        Err(text) => {
            eprintln!("{text}");
            return if text.starts_with("hookline ") || text.starts_with("usage") {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let cfg = match hookline::config::Config::load(config_file.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            println!(
                "{}",
                serde_json::json!({"level": "error", "msg": "invalid configuration", "error": e.to_string()})
            );
            return ExitCode::from(2);
        }
    };
    hookline::telemetry::init_logging(&cfg.log.level);
    if command == Command::RotateSecrets {
        return rotate_secrets(cfg).await;
    }
    let grace = std::time::Duration::from_secs(cfg.server.shutdown_timeout_s + 4);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        signal().await;
        tx.send(()).ok();
        // A second deadline: whatever happens, exit within the promised time.
        tokio::time::sleep(grace).await;
        tracing::error!("graceful shutdown took too long; exiting");
        std::process::exit(1);
    });
    match hookline::run(cfg, async move {
        rx.await.ok();
    })
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "node failed");
            ExitCode::FAILURE
        }
    }
}
