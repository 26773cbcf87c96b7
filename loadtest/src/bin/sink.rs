//! `sink [--listen ADDR]`: run the test receiver until Ctrl-C. See `hookline_loadtest::sink`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9900".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--listen needs an address"))?
            }
            other => anyhow::bail!("unknown argument {other:?}; usage: sink [--listen ADDR]"),
        }
    }
    let sink = hookline_loadtest::sink::Sink::start(&listen).await?;
    println!(
        "{}",
        serde_json::json!({"msg": "sink listening", "addr": sink.addr().to_string()})
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
