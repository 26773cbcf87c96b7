//! `hookline [serve] [--config FILE]`: parse the command line, load config, run the node.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: hookline [serve] [--config FILE]\n\
  Starts a Hookline node. Without --config it reads config/default.toml if present.\n\
  Every setting can be overridden as HOOKLINE__<SECTION>__<KEY>.";

fn parse_args() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("serve") {
        args.next();
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
    Ok(config)
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

#[tokio::main]
async fn main() -> ExitCode {
    let config_file = match parse_args() {
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
