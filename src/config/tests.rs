//! The configuration's tests: defaults, files, the environment, and each validation rule.
use super::*;
use figment::providers::Toml;

fn from_toml(s: &str) -> Result<Config, ConfigError> {
    Config::from_figment(Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(s)))
}

#[test]
fn defaults_match_the_contract() {
    let c = from_toml("[auth]\nadmin_tokens = [\"0123456789\"]").unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:8080");
    assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(c.redis.prefix, "hookline");
    assert_eq!(c.delivery.timeout_ms, 10_000);
    assert_eq!(
        c.delivery.retry_schedule_s,
        vec![5, 300, 1800, 7200, 18000, 36000, 36000]
    );
    assert_eq!(c.retention.days, 30);
    assert_eq!(c.ingest.idempotency_window_s, 86_400);
    assert_eq!(c.ingest.max_payload_bytes, 262_144);
    assert!(!c.delivery.allow_private_networks);
    assert_eq!(c.console.portal_frame_ancestors, "'none'");
    assert_eq!((c.transform.workers, c.transform.timeout_ms), (2, 10));
}

#[test]
fn shipped_config_files_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dev = Config::load(Some(Path::new(&format!("{root}/config/default.toml")))).unwrap();
    assert!(dev.delivery.allow_private_networks);
    // The production example has no admin token on purpose: it must come from the env.
    let prod = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::file(format!("{root}/config/production.example.toml")))
        .merge(Serialized::default("auth.admin_tokens", vec!["a-long-enough-token"]));
    let prod = Config::from_figment(prod).unwrap();
    assert!(!prod.delivery.allow_private_networks);
}

#[test]
fn retention_in_seconds_overrides_days() {
    let base = "[auth]\ninsecure_no_auth = true\n";
    assert_eq!(from_toml(base).unwrap().retention_s(), 30 * 86_400);
    let short = from_toml(&format!("{base}[retention]\nseconds = 3\ndays = 0")).unwrap();
    assert_eq!(short.retention_s(), 3);
}

#[test]
fn refuses_to_start_without_auth() {
    let err = from_toml("").unwrap_err().to_string();
    assert!(err.contains("auth.admin_tokens"), "{err}");
    assert!(from_toml("[auth]\ninsecure_no_auth = true").is_ok());
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("[server]\nlisten = \"nope\"", "server.listen"),
        ("[delivery]\ntimeout_ms = 5", "delivery.timeout_ms"),
        ("[redis]\nurl = \"http://x\"", "redis.url"),
        ("[shards]\ncount = 0", "shards.count"),
        ("[router]\npartitions = 0", "router.partitions"),
        ("[delivery]\ntimeout_ms = \"fast\"", "delivery.timeout_ms"),
        ("[delivery]\nbogus = 1", "bogus"),
        ("[retention]\ndays = 0", "retention.days"),
        ("[retention]\njanitor_interval_s = 0", "retention.janitor_interval_s"),
        ("[retention]\njanitor_batch = 0", "retention.janitor_batch"),
        (
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]",
            "server.trusted_proxies",
        ),
        ("[server]\nheader_read_timeout_s = 0", "server.header_read_timeout_s"),
        ("[server]\nbody_read_timeout_s = 0", "server.body_read_timeout_s"),
        ("[server]\nrequest_timeout_s = 4000", "server.request_timeout_s"),
        ("[server]\nmax_connections = 0", "server.max_connections"),
        ("[server]\nwrite_timeout_s = 0", "server.write_timeout_s"),
        (
            "[security]\nencryption_keys = [\"k1:short\"]",
            "security.encryption_keys",
        ),
        ("[security]\nrequire_encryption = true", "security.encryption_keys"),
        ("[delivery]\nproxy_url = \"socks5://p:1080\"", "delivery.proxy_url"),
        ("[delivery]\nproxy_url = \"not a url\"", "delivery.proxy_url"),
        ("[delivery]\nno_proxy = [\"bad name!\"]", "delivery.no_proxy"),
        (
            "[delivery]\nextra_ca_pem = \"/nonexistent/ca.pem\"",
            "delivery.extra_ca_pem",
        ),
        (
            "[delivery]\nextra_ca_pem = \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\"",
            "delivery.extra_ca_pem",
        ),
        (
            "[console]\nportal_frame_ancestors = \"https://a.example; script-src *\"",
            "console.portal_frame_ancestors",
        ),
        ("[transform]\nworkers = 0", "transform.workers"),
        (
            "[notifications]\ndead_letter_interval_s = 0",
            "notifications.dead_letter_interval_s",
        ),
        ("[transform]\ntimeout_ms = 0", "transform.timeout_ms"),
        ("[transform]\ntimeout_ms = 10001", "transform.timeout_ms"),
        ("[tracing]\notlp_endpoint = \"collector:4318\"", "tracing.otlp_endpoint"),
        (
            "[tracing]\notlp_endpoint = \"http:///v1/traces\"",
            "tracing.otlp_endpoint",
        ),
        ("[tracing]\nsample_ratio = 1.5", "tracing.sample_ratio"),
        ("[tracing]\nservice_name = \" \"", "tracing.service_name"),
    ];
    for (toml, key) in cases {
        let err = from_toml(&format!("[auth]\ninsecure_no_auth = true\n{toml}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{toml}: {err}");
    }
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own error type
fn environment_overrides_use_double_underscores() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HOOKLINE__REDIS__URL", "redis://127.0.0.1:6380");
        jail.set_env("HOOKLINE__AUTH__INSECURE_NO_AUTH", "true");
        jail.set_env("HOOKLINE__DELIVERY__RETRY_SCHEDULE_S", "[1, 2]");
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.redis.url, "redis://127.0.0.1:6380");
        assert_eq!(c.delivery.retry_schedule_s, vec![1, 2]);
        Ok(())
    });
}

#[test]
fn the_otlp_endpoint_gets_the_traces_path_only_when_it_has_none() {
    let url = |endpoint: &str| {
        crate::config::Tracing {
            otlp_endpoint: endpoint.into(),
            ..Default::default()
        }
        .traces_url()
    };
    assert_eq!(url("http://c:4318").as_deref(), Some("http://c:4318/v1/traces"));
    assert_eq!(url("http://c:4318/").as_deref(), Some("http://c:4318/v1/traces"));
    assert_eq!(
        url("https://c/otlp/v1/traces").as_deref(),
        Some("https://c/otlp/v1/traces")
    );
    assert_eq!(url(""), None);
    assert_eq!(url("grpc://c:4317"), None);
}
