//! The outbound HTTP client: one pooled reqwest client (rustls, keep-alive, no redirects, no
//! proxy), Standard Webhooks headers and signature, the SSRF guard, and a bounded read of the
//! response. It implements the actors' `Transport`; classification of the result into
//! retry/dead happens in the actors (`hookline_actors::outcome`).

pub mod sign;
pub mod ssrf;

use hookline_actors::outcome::parse_retry_after;
use hookline_actors::transport::FailureKind;
use hookline_actors::{AttemptRequest, AttemptResponse, Transport};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// At most this much of a response body is ever read.
const MAX_READ: usize = 64 * 1024;
/// This much of it is kept with the attempt.
const EXCERPT: usize = 1024;

pub struct HttpTransport {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpTransport {
    pub fn new(allow_private_networks: bool) -> Result<HttpTransport, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true);
        if !allow_private_networks {
            builder = builder.dns_resolver(Arc::new(ssrf::GuardedResolver));
        }
        Ok(HttpTransport {
            client: builder.build()?,
            allow_private: allow_private_networks,
        })
    }

    async fn attempt(&self, req: &AttemptRequest) -> Result<reqwest::Response, (FailureKind, String)> {
        let url =
            reqwest::Url::parse(&req.url).map_err(|e| (FailureKind::InvalidRequest, format!("invalid url: {e}")))?;
        if !self.allow_private {
            if let Some(ip) = url.host_str().and_then(ssrf::literal_ip) {
                if ssrf::is_blocked(ip) {
                    return Err((
                        FailureKind::Blocked,
                        format!("destination_blocked: {ip} is not a public address"),
                    ));
                }
            }
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut builder = self.client.post(url).timeout(req.timeout);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        builder = builder
            .header("content-type", "application/json")
            .header("webhook-id", &req.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign::signature_header(&req.secrets, &req.event_id, timestamp, &req.body),
            )
            .body(req.body.to_string());
        builder.send().await.map_err(describe)
    }
}

/// What went wrong, in a word the classifier understands and a sentence for the log.
fn describe(e: reqwest::Error) -> (FailureKind, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(blocked) = err.downcast_ref::<ssrf::BlockedDestination>() {
            return (FailureKind::Blocked, blocked.to_string());
        }
        source = err.source();
    }
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Connect
    } else if e.is_builder() {
        FailureKind::InvalidRequest
    } else {
        FailureKind::Other
    };
    // Without the URL: it may carry a receiver's credentials (query tokens), and this text is
    // logged and stored with the attempt.
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    (kind, text)
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn send(&self, req: AttemptRequest) -> AttemptResponse {
        let started = Instant::now();
        let deadline = started + req.timeout;
        let mut out = AttemptResponse::default();
        match self.attempt(&req).await {
            Err((kind, text)) => {
                out.failure = Some(kind);
                out.error = Some(text);
            }
            Ok(mut resp) => {
                out.status = Some(resp.status().as_u16());
                out.retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let mut body = Vec::new();
                // Read at most MAX_READ bytes, within the attempt's deadline; the status is
                // what decides the outcome, so a slow or endless body only shortens the excerpt.
                while body.len() < MAX_READ {
                    match tokio::time::timeout_at(deadline.into(), resp.chunk()).await {
                        Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_READ - body.len())]),
                        _ => break,
                    }
                }
                out.excerpt = String::from_utf8_lossy(&body[..body.len().min(EXCERPT)]).into_owned();
            }
        }
        out.latency_ms = started.elapsed().as_millis() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use std::collections::BTreeMap;

    async fn receiver() -> String {
        let app = axum::Router::new()
            .route(
                "/redirect",
                post(|| async { (axum::http::StatusCode::FOUND, [("location", "/elsewhere")], "") }),
            )
            .route("/huge", post(|| async { "x".repeat(1_000_000) }))
            .route(
                "/busy",
                post(|| async { (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "30")], "") }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        format!("http://{addr}")
    }

    fn request(url: String) -> AttemptRequest {
        AttemptRequest {
            url,
            event_id: "evt_1".into(),
            body: Arc::from("{}"),
            secrets: vec![sign::new_secret()],
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn blocked_destinations_fail_permanently_without_a_connection() {
        let strict = HttpTransport::new(false).unwrap();
        for url in [
            "http://localhost:9/hook",
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
        ] {
            let r = strict.send(request(url.into())).await;
            assert_eq!(r.failure, Some(FailureKind::Blocked), "{url}: {r:?}");
            assert!(r.error.unwrap().contains("destination_blocked"));
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_reads_are_bounded() {
        let base = receiver().await;
        let t = HttpTransport::new(true).unwrap();
        let r = t.send(request(format!("{base}/redirect"))).await;
        assert_eq!(r.status, Some(302));
        let r = t.send(request(format!("{base}/huge"))).await;
        assert_eq!(r.status, Some(200));
        assert_eq!(r.excerpt.len(), EXCERPT);
        let r = t.send(request(format!("{base}/busy"))).await;
        assert_eq!((r.status, r.retry_after), (Some(429), Some(Duration::from_secs(30))));
    }

    #[tokio::test]
    async fn slow_receivers_time_out() {
        let base = receiver().await;
        let t = HttpTransport::new(true).unwrap();
        let r = t.send(request(format!("{base}/slow"))).await;
        assert_eq!(r.failure, Some(FailureKind::Timeout), "{r:?}");
        assert!(r.latency_ms >= 1_900 && r.latency_ms < 4_000, "{}", r.latency_ms);
        let refused = t.send(request("http://127.0.0.1:9/closed".into())).await;
        assert_eq!(refused.failure, Some(FailureKind::Connect), "{refused:?}");
    }
}
