//! The deploy files hold together (Docker is not on this machine, so what can be checked here
//! is checked): the compose file parses and wires three nodes, Redis with AOF, nginx,
//! Prometheus with the alert rules, Grafana with the dashboard and Jaeger for the nodes'
//! traces; `nginx -t` accepts the
//! nginx config; Prometheus scrapes every node; the Dockerfile is multi-stage, non-root, with
//! a HEALTHCHECK on /healthz.

use serde_yaml::Value;
use std::collections::BTreeSet;

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", root())).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    let mut v: Value = serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    v.apply_merge().unwrap();
    v
}

#[test]
fn deploy_files_parse_and_wire_three_nodes() {
    let compose = yaml("deploy/docker-compose.yml");
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for wanted in [
        "redis",
        "node-1",
        "node-2",
        "node-3",
        "nginx",
        "prometheus",
        "grafana",
        "jaeger",
    ] {
        assert!(names.contains(wanted), "service {wanted} missing: {names:?}");
    }
    let redis_cmd = format!("{:?}", compose["services"]["redis"]["command"]);
    assert!(
        redis_cmd.contains("appendonly") && redis_cmd.contains("yes"),
        "Redis without AOF: {redis_cmd}"
    );

    let nodes: Vec<&str> = names.iter().copied().filter(|n| n.starts_with("node-")).collect();
    let mut ids = BTreeSet::new();
    for node in &nodes {
        let env = &compose["services"][*node]["environment"];
        assert_eq!(
            env["HOOKLINE__REDIS__URL"].as_str(),
            Some("redis://redis:6379"),
            "{node}"
        );
        assert!(
            env["HOOKLINE__AUTH__ADMIN_TOKENS"].is_string(),
            "{node}: no admin token"
        );
        ids.insert(env["HOOKLINE__NODE__ID"].as_str().unwrap().to_string());
        assert!(
            compose["services"][*node]["build"]["dockerfile"].as_str() == Some("Dockerfile"),
            "{node}"
        );
    }
    assert_eq!(ids.len(), 3, "node ids must differ: {ids:?}");

    // Traces: every node exports to Jaeger's OTLP/HTTP port, with a value the node accepts.
    let jaeger = &compose["services"]["jaeger"];
    assert!(jaeger["image"]
        .as_str()
        .unwrap()
        .starts_with("jaegertracing/all-in-one:"));
    assert_eq!(jaeger["environment"]["COLLECTOR_OTLP_ENABLED"].as_str(), Some("true"));
    for node in &nodes {
        let env = &compose["services"][*node]["environment"];
        let endpoint = env["HOOKLINE__TRACING__OTLP_ENDPOINT"].as_str().unwrap_or_default();
        let tracing = hookline::config::Tracing {
            otlp_endpoint: endpoint.into(),
            ..Default::default()
        };
        assert!(tracing.checked().is_ok(), "{node}: {endpoint}");
        assert_eq!(
            tracing.traces_url().as_deref(),
            Some("http://jaeger:4318/v1/traces"),
            "{node}"
        );
    }

    // nginx balances over exactly the node services, and `nginx -t` accepts the file (with
    // the service names, which only resolve inside compose, swapped for loopback).
    let nginx = read("deploy/nginx.conf");
    let upstreams: BTreeSet<String> = nginx
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .filter(|s| s.ends_with(';'))
        .map(|s| s.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        upstreams,
        nodes.iter().map(|n| n.to_string()).collect(),
        "nginx upstream"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut conf = nginx.clone();
    for n in &nodes {
        conf = conf.replace(&format!("{n}:8080"), "127.0.0.1:8080");
    }
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let nginx_bin = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("-v").output().is_ok())
        .expect("nginx is installed by .ci/nginx");
    let out = std::process::Command::new(nginx_bin)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus scrapes every node and loads the alert rules mounted from config/.
    let prometheus = yaml("deploy/prometheus.yml");
    let targets: BTreeSet<String> = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets, nodes.iter().map(|n| format!("{n}:8080")).collect());
    let rules = prometheus["rule_files"][0].as_str().unwrap();
    let mounts = format!("{:?}", compose["services"]["prometheus"]["volumes"]);
    assert!(
        mounts.contains(&format!("../config/prometheus/alerts.yml:{rules}")),
        "{mounts}"
    );
    assert!(std::path::Path::new(&format!("{}/config/prometheus/alerts.yml", root())).exists());

    // Grafana provisions the dashboard from where compose mounts config/grafana/hookline.json.
    let provider = yaml("deploy/grafana/provisioning/dashboards/hookline.yml");
    let path = provider["providers"][0]["options"]["path"].as_str().unwrap();
    let mounts = format!("{:?}", compose["services"]["grafana"]["volumes"]);
    assert!(
        mounts.contains(&format!("../config/grafana/hookline.json:{path}/hookline.json")),
        "{mounts}"
    );
    let datasource = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        datasource["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );

    // The image: multi-stage, non-root, HEALTHCHECK on /healthz.
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2);
    assert!(dockerfile
        .lines()
        .any(|l| l.starts_with("USER ") && !l.contains("root")));
    assert!(dockerfile
        .lines()
        .any(|l| l.starts_with("HEALTHCHECK") && l.contains("/healthz")));
}
