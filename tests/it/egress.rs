//! How receivers trust the node's requests, and how they leave it: client certificates (mTLS)
//! with a CA per endpoint, and the egress proxy (Debian's tinyproxy, started here) asked only
//! for addresses the node checked itself.

use crate::support::tls::{TestCa, TlsReceiver};
use crate::support::*;
use hookline::delivery::{Egress, HttpTransport};
use hookline_actors::transport::FailureKind;
use hookline_actors::{AttemptRequest, Transport};
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn client_certificates_are_presented_and_each_endpoint_trusts_its_own_ca() {
    let (ca, other_ca) = (TestCa::new("receiver CA"), TestCa::new("someone else's CA"));
    let receiver = TlsReceiver::start(&ca.server(&["127.0.0.1"]), Some(&ca)).await;
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("mtls"))).await;
    let api = &node.api;
    let url = format!("https://127.0.0.1:{}/hook", receiver.addr.port());
    let (good, stranger) = (ca.client("hookline"), other_ca.client("hookline"));
    let endpoint = |tls: Value| json!({"url": url, "tls": tls, "retry_schedule_s": [1, 1, 1, 1, 1]});

    let with_cert = api
        .create_endpoint(
            "m",
            endpoint(json!({"client_cert_pem": good.cert_pem, "client_key_pem": good.key_pem, "ca_pem": ca.pem()})),
        )
        .await;
    // The key is write-only; the certificate and CA are shown.
    assert_eq!(
        with_cert["tls"],
        json!({"client_cert_pem": good.cert_pem, "ca_pem": ca.pem()})
    );
    let no_cert = api.create_endpoint("m", endpoint(json!({"ca_pem": ca.pem()}))).await;
    let wrong_ca = api
        .create_endpoint(
            "m",
            endpoint(
                json!({"client_cert_pem": stranger.cert_pem, "client_key_pem": stranger.key_pem, "ca_pem": ca.pem()}),
            ),
        )
        .await;
    // Right certificate, but without the receiver's CA: the system roots do not know it, and
    // another endpoint's CA is not this one's.
    let no_ca = api
        .create_endpoint(
            "m",
            endpoint(json!({"client_cert_pem": good.cert_pem, "client_key_pem": good.key_pem})),
        )
        .await;

    api.post_event("m", "a.b", json!({"n": 1})).await.unwrap();
    let delivered = api.delivery_after("m", with_cert["id"].as_str().unwrap(), 1).await;
    assert_eq!(delivered["status"], "delivered", "{delivered}");
    assert_eq!(receiver.received(), 1);
    for (ep, why) in [
        (&no_cert, "no client certificate"),
        (&wrong_ca, "a certificate from another CA"),
        (&no_ca, "the receiver's CA not trusted"),
    ] {
        // Retried, not dead-lettered, each attempt with an error that says TLS went wrong.
        let d = api.delivery_after("m", ep["id"].as_str().unwrap(), 2).await;
        assert_ne!(d["status"], "delivered", "{why}: {d}");
        assert_ne!(d["status"], "dead", "{why}: {d}");
        let error = d["attempts"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            ["certificate", "tls", "alert", "handshake"]
                .iter()
                .any(|w| error.contains(w)),
            "{why}: {error}"
        );
    }
    assert_eq!(
        receiver.received(),
        1,
        "only the endpoint with the right certificate got through"
    );
    assert!(!receiver.handshake_errors().is_empty());

    // What is not a certificate or key is refused naming the field; the pair goes together.
    let refused = [
        (json!({"client_cert_pem": good.cert_pem}), "tls"),
        (json!({"client_key_pem": good.key_pem}), "tls"),
        (
            json!({"ca_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
            "tls.ca_pem",
        ),
        (
            json!({"client_cert_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "client_key_pem": good.key_pem}),
            "tls.client_cert_pem",
        ),
        (
            json!({"client_cert_pem": good.cert_pem, "client_key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "tls.client_key_pem",
        ),
        // A key pasted with the certificate would be stored and shown as the certificate is.
        (
            json!({"client_cert_pem": format!("{}{}", good.cert_pem, good.key_pem), "client_key_pem": good.key_pem}),
            "tls.client_cert_pem",
        ),
        (json!({"ca_pem": format!("{}{}", ca.pem(), good.key_pem)}), "tls.ca_pem"),
        (
            json!({"client_cert_pem": good.cert_pem, "client_key_pem": format!("{}{}", good.key_pem, good.cert_pem)}),
            "tls.client_key_pem",
        ),
        (json!({"ca_pem": format!("junk\n{}", ca.pem())}), "tls.ca_pem"),
        (json!([ca.pem()]), "tls"),
    ];
    for (tls, field) in refused {
        let (status, answer) = api.post("/v1/tenants/m/endpoints", endpoint(tls.clone())).await;
        assert_eq!(status, 400, "{tls}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{field}:")), "{tls}: {message}");
    }
    // PATCH null removes it. The key is never shown (secrets::with_a_key_no_secret_is_stored_in_clear_…
    // proves it is sealed at rest); the audit log masks it.
    let path = format!("/v1/tenants/m/endpoints/{}", with_cert["id"].as_str().unwrap());
    let (status, cleared) = api
        .call(reqwest::Method::PATCH, &path, Some(json!({"tls": null})))
        .await;
    assert_eq!((status, &cleared["tls"]), (200, &Value::Null), "{cleared}");
    let (_, audit) = api.get("/v1/tenants/m/audit?action=endpoint.created").await;
    let text = audit.to_string();
    assert!(!text.contains("PRIVATE KEY"), "the audit log shows a key: {text}");
    assert!(text.contains("\"client_key_pem\":\"***\""), "{text}");
}

/// A tinyproxy on a free port, logging every request it gets; stopped (by its PID) on drop.
struct Tinyproxy {
    port: u16,
    dir: tempfile::TempDir,
    child: tokio::process::Child,
}

impl Tinyproxy {
    async fn start(port: u16) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\nMaxClients 50\n",
                dir.path().join("log").display()
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tinyproxy is installed by .ci/tinyproxy");
        let proxy = Tinyproxy { port, dir, child };
        wait_for(Duration::from_secs(10), "tinyproxy to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        proxy
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests it logged (`CONNECT 127.0.0.1:1234 HTTP/1.1`).
    fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| l.split_once("): ").map(|(_, r)| r.to_string()))
            .filter(|r| r.starts_with("CONNECT ") || r.starts_with("POST ") || r.starts_with("GET "))
            .collect()
    }

    async fn stop(mut self) -> tempfile::TempDir {
        self.child.kill().await.ok();
        self.dir
    }
}

fn attempt(url: &str) -> AttemptRequest {
    AttemptRequest {
        url: url.into(),
        event_id: "evt_1".into(),
        body: Arc::from("{}"),
        secrets: vec![hookline::delivery::sign::new_secret()],
        headers: BTreeMap::new(),
        timeout: Duration::from_secs(5),
        auth: None,
        transform: None,
        kind: Default::default(),
        trace: None,
    }
}

#[tokio::test]
async fn the_proxy_carries_every_attempt_and_is_asked_only_for_checked_addresses() {
    let proxy_port = free_port();
    let proxy = Tinyproxy::start(proxy_port).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let sink_port = sink.addr().port();
    let ca = TestCa::new("receiver CA");
    let tls_receiver = TlsReceiver::start(&ca.server(&["localhost"]), None).await;
    let opts = NodeOpts::new(&shared_redis_url(), &unique_prefix("proxy")).set("delivery__proxy_url", &proxy.url());
    let node = Node::start_ready(&opts).await;
    let api = &node.api;
    // By name: the node resolves `localhost` itself and asks the proxy for 127.0.0.1.
    let plain = api
        .create_endpoint(
            "p",
            json!({"url": format!("http://localhost:{sink_port}/ok/proxied"), "retry_schedule_s": [1, 1, 1, 1, 1, 1, 1, 1]}),
        )
        .await;
    // https through the tunnel: TLS runs end to end, checked against the name, not the IP.
    api.create_endpoint(
        "p",
        json!({"url": format!("https://localhost:{}/hook", tls_receiver.addr.port()), "tls": {"ca_pem": ca.pem()}}),
    )
    .await;
    for n in 0..5 {
        api.post_event("p", "a.b", json!({"n": n})).await.unwrap();
    }
    wait_for(Duration::from_secs(20), "five deliveries through the proxy", || {
        sink.received_by("proxied").len() == 5 && tls_receiver.received() == 5
    })
    .await;
    let asked = proxy.requests();
    // An http attempt through the proxy is one connection: the log shows each of the five.
    let to_sink = format!("CONNECT 127.0.0.1:{sink_port} HTTP/1.1");
    assert_eq!(asked.iter().filter(|r| **r == to_sink).count(), 5, "{asked:?}");
    let tls_port = tls_receiver.addr.port();
    assert!(
        asked.contains(&format!("CONNECT 127.0.0.1:{tls_port} HTTP/1.1")),
        "{asked:?}"
    );
    assert!(
        asked.iter().all(|r| !r.contains("localhost")),
        "the proxy was asked for a name: {asked:?}"
    );

    // The proxy down: attempts fail and are retried; back up, they go through.
    let dir = proxy.stop().await;
    api.post_event("p", "a.b", json!({"n": 5})).await.unwrap();
    let delivery = api.delivery_after("p", plain["id"].as_str().unwrap(), 2).await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    let error = delivery["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("proxy"), "{delivery}");
    assert_eq!(
        delivery["attempts"][0]["status_code"],
        Value::Null,
        "the proxy's refusal is not the receiver's answer"
    );
    assert_eq!(sink.received_by("proxied").len(), 5);
    drop(dir);
    let proxy = Tinyproxy::start(proxy_port).await;
    wait_for(
        Duration::from_secs(20),
        "the sixth delivery once the proxy is back",
        || sink.received_by("proxied").len() == 6,
    )
    .await;
    assert!(!proxy.requests().is_empty(), "it came through the proxy");

    // A name that resolves to a private address is refused before the proxy is asked.
    let before = proxy.requests().len();
    let strict = HttpTransport::new(&Egress {
        allow_private_networks: false,
        proxy_url: Some(proxy.url()),
        ..Egress::default()
    })
    .unwrap();
    let refused = strict
        .send(attempt(&format!("http://localhost:{sink_port}/ok/never")))
        .await;
    assert_eq!(refused.failure, Some(FailureKind::Blocked), "{refused:?}");
    assert!(refused.error.unwrap().contains("destination_blocked"));
    assert_eq!(proxy.requests().len(), before, "the proxy was asked");
    assert!(sink.received_by("never").is_empty());

    // `no_proxy` hosts are reached directly (here with the proxy's port closed).
    let direct = HttpTransport::new(&Egress {
        allow_private_networks: true,
        proxy_url: Some(format!("http://127.0.0.1:{}", free_port())),
        no_proxy: vec!["localhost".into()],
        ..Egress::default()
    })
    .unwrap();
    let answer = direct
        .send(attempt(&format!("http://localhost:{sink_port}/ok/direct")))
        .await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let through_closed = direct
        .send(attempt(&format!("http://127.0.0.1:{sink_port}/ok/direct")))
        .await;
    assert_eq!(through_closed.status, None, "{through_closed:?}");
}

#[tokio::test]
async fn delivery_extra_ca_pem_is_trusted_for_every_endpoint() {
    let ca = TestCa::new("private CA");
    let receiver = TlsReceiver::start(&ca.server(&["127.0.0.1"]), None).await;
    let url = format!("https://127.0.0.1:{}/hook", receiver.addr.port());
    // As an operator sets it: the path of a PEM file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, ca.pem()).unwrap();
    let settings = hookline::config::Delivery {
        allow_private_networks: true,
        extra_ca_pem: Some(file.display().to_string()),
        ..Default::default()
    };
    let trusting = HttpTransport::new(&settings.egress().unwrap()).unwrap();
    let answer = trusting.send(attempt(&url)).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    // Without it, the same receiver is not trusted.
    let refused = HttpTransport::direct(true).unwrap().send(attempt(&url)).await;
    assert_eq!(refused.status, None, "{refused:?}");
    assert!(refused
        .error
        .unwrap_or_default()
        .to_ascii_lowercase()
        .contains("certificate"));
    assert_eq!(receiver.received(), 1);
}
