//! The transport's reqwest clients: one shared by every endpoint, and one per endpoint that
//! presents a client certificate or trusts a CA of its own (`tls`), all built on the same base
//! (no redirects, the SSRF guard's resolver, the egress proxy, `delivery.extra_ca_pem`).

use super::egress::NoProxy;
use super::relay::Relay;
use super::ssrf;
use hookline_actors::ClientTls;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Endpoints with a client of their own, at most (the cache is emptied past it and refilled
/// as attempts come).
const MAX_CLIENTS: usize = 4096;

/// The node's egress settings (`delivery.*`), as the transport needs them.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    pub allow_private_networks: bool,
    /// `http://[user:password@]host:port` of a forward proxy that carries every attempt.
    pub proxy_url: Option<String>,
    /// Hosts and ranges reached without the proxy.
    pub no_proxy: Vec<String>,
    /// PEM certificates trusted beside the system roots, for every endpoint.
    pub extra_ca_pem: Option<String>,
}

/// A PEM bundle's certificates, each one parsed; `what` names the field in the error.
pub fn certificates(pem: &str, what: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let certs =
        reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| format!("{what}: not PEM certificates"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate in it"));
    }
    // reqwest parses a certificate only when it becomes a trust anchor: that checks each one.
    let mut builder = reqwest::Client::builder().tls_built_in_root_certs(false);
    for cert in &certs {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
        .build()
        .map_err(|e| format!("{what}: not a valid certificate ({})", describe_build_error(&e)))?;
    Ok(certs)
}

pub(super) struct Clients {
    shared: reqwest::Client,
    egress: Egress,
    no_proxy: NoProxy,
    extra_roots: Vec<reqwest::Certificate>,
    relay: Option<Arc<Relay>>,
    /// endpoint id → (fingerprint of its `tls`, its client)
    own: Mutex<HashMap<String, (u64, reqwest::Client)>>,
}

impl Clients {
    pub(super) fn new(egress: &Egress) -> Result<Clients, String> {
        let no_proxy = NoProxy::parse(&egress.no_proxy)?;
        let extra_roots = match &egress.extra_ca_pem {
            Some(pem) => certificates(pem, "delivery.extra_ca_pem")?,
            None => Vec::new(),
        };
        let relay = match &egress.proxy_url {
            Some(url) => Some(Arc::new(Relay::start(url, egress.allow_private_networks)?)),
            None => None,
        };
        let mut clients = Clients {
            shared: reqwest::Client::new(),
            egress: egress.clone(),
            no_proxy,
            extra_roots,
            relay,
            own: Mutex::default(),
        };
        clients.shared = clients.base().build().map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(clients)
    }

    /// The builder every client starts from.
    fn base(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true);
        if !self.egress.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(ssrf::GuardedResolver));
        }
        for root in &self.extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if let Some(relay) = &self.relay {
            let (relay_url, no_proxy) = (format!("http://{}", relay.addr), self.no_proxy.clone());
            let proxy = reqwest::Proxy::custom(move |url| {
                let direct = url.host_str().is_none_or(|h| no_proxy.matches(h));
                (!direct).then(|| relay_url.clone())
            });
            builder = builder.proxy(proxy.basic_auth(super::relay::RELAY_USER, &relay.password));
        }
        builder
    }

    /// The header of the relay's own refusals, when there is a relay.
    pub(super) fn relay_marker(&self) -> Option<&str> {
        self.relay.as_deref().map(|r| &*r.marker)
    }

    /// The relay to check `host` with first, when the proxy will carry the attempt.
    pub(super) fn relay_for(&self, host: &str) -> Option<&Relay> {
        self.relay.as_deref().filter(|_| !self.no_proxy.matches(host))
    }

    /// The client for an attempt of `endpoint_id`: its own when it has `tls`.
    pub(super) fn client(&self, endpoint_id: &str, tls: Option<&ClientTls>) -> Result<reqwest::Client, String> {
        let Some(tls) = tls else {
            return Ok(self.shared.clone());
        };
        let fingerprint = super::fingerprint(tls);
        if let Some((seen, client)) = self.own.lock().expect("clients").get(endpoint_id) {
            if *seen == fingerprint {
                return Ok(client.clone());
            }
        }
        let client = self.with_tls(tls)?;
        let mut own = self.own.lock().expect("clients");
        if own.len() >= MAX_CLIENTS {
            own.clear();
        }
        own.insert(endpoint_id.to_string(), (fingerprint, client.clone()));
        Ok(client)
    }

    /// A client presenting `tls`'s certificate and trusting its CA.
    pub(super) fn with_tls(&self, tls: &ClientTls) -> Result<reqwest::Client, String> {
        build(with_tls(self.base(), tls)?)
    }
}

/// Can an endpoint's `tls` be used (certificates, key, CA)? `Err` names the field.
pub fn check_tls(tls: &ClientTls) -> Result<(), String> {
    if let Some(ca) = &tls.ca_pem {
        certificates(ca, "tls.ca_pem")?;
    }
    if let Some(cert) = &tls.client_cert_pem {
        certificates(cert, "tls.client_cert_pem")?;
    }
    with_tls(reqwest::Client::builder(), tls)?
        .build()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "tls.client_key_pem: cannot be used with the certificate ({})",
                describe_build_error(&e)
            )
        })
}

fn with_tls(mut builder: reqwest::ClientBuilder, tls: &ClientTls) -> Result<reqwest::ClientBuilder, String> {
    if let Some(ca) = &tls.ca_pem {
        for root in certificates(ca, "tls.ca_pem")? {
            builder = builder.add_root_certificate(root);
        }
    }
    match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            certificates(cert, "tls.client_cert_pem")?;
            let identity = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map_err(|_| "tls.client_key_pem: not a PEM private key (PKCS#8, PKCS#1 or SEC1)".to_string())?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err("tls: client_cert_pem and client_key_pem go together".into()),
    }
    Ok(builder)
}

fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder.build().map_err(|e| {
        format!(
            "tls: the certificate, key or CA cannot be used ({})",
            describe_build_error(&e)
        )
    })
}

fn describe_build_error(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&err.to_string());
        source = err.source();
    }
    if text.is_empty() {
        text = e.to_string();
    }
    text
}
