//! The outbound HTTP client: pooled reqwest clients (rustls, keep-alive, no redirects), the
//! egress proxy, client certificates and OAuth2 tokens where an endpoint asks for them,
//! Standard Webhooks headers and signature, the SSRF guard, and a bounded read of the
//! response. It implements the actors' `Transport`; classification of the result into
//! retry/dead happens in the actors (`hookline_actors::outcome`).

pub mod clients;
mod describe;
pub mod egress;
pub mod email;
pub mod oauth;
pub mod relay;
pub mod sign;
pub mod slack;
pub mod ssrf;

pub use clients::{check_tls, Egress};
use hookline_actors::model::EndpointKind;
use hookline_actors::outcome::parse_retry_after;
use hookline_actors::transport::FailureKind;
use hookline_actors::{AttemptRequest, AttemptResponse, OAuth2Client, Transport};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// At most this much of a response body is ever read.
const MAX_READ: usize = 64 * 1024;
/// This much of it is kept with the attempt.
const EXCERPT: usize = 1024;

type Failed = (FailureKind, String);

/// A fingerprint of settings a cached client or token was made from (a change makes a new one).
fn fingerprint(settings: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    settings.hash(&mut h);
    h.finish()
}

pub struct HttpTransport {
    clients: clients::Clients,
    tokens: oauth::Tokens,
    allow_private: bool,
    /// Runs endpoints' transforms (`crate::transform`), with `delivery.require_https` for the
    /// URLs they give; none in tools and tests that build a bare transport.
    transforms: Option<(std::sync::Arc<crate::transform::Transforms>, bool)>,
    /// Sends `kind: email` deliveries (`notifications.smtp_url`); none when it is not set.
    mailer: Option<std::sync::Arc<email::Mailer>>,
}

impl HttpTransport {
    pub fn new(egress: &Egress) -> Result<HttpTransport, String> {
        Ok(HttpTransport {
            clients: clients::Clients::new(egress)?,
            tokens: oauth::Tokens::default(),
            allow_private: egress.allow_private_networks,
            transforms: None,
            mailer: None,
        })
    }

    /// This transport, sending email endpoints' deliveries with `mailer`.
    pub fn with_mailer(self, mailer: Option<email::Mailer>) -> Self {
        HttpTransport {
            mailer: mailer.map(std::sync::Arc::new),
            ..self
        }
    }

    /// This transport, running endpoints' transforms on `transforms`.
    pub fn with_transforms(
        self,
        transforms: std::sync::Arc<crate::transform::Transforms>,
        require_https: bool,
    ) -> Self {
        HttpTransport {
            transforms: Some((transforms, require_https)),
            ..self
        }
    }

    /// Without a proxy or extra CAs: what tests and tools use.
    pub fn direct(allow_private_networks: bool) -> Result<HttpTransport, String> {
        HttpTransport::new(&Egress {
            allow_private_networks,
            ..Egress::default()
        })
    }

    /// A URL the node may send to: parsed, a literal address checked by the SSRF guard, and a
    /// name the proxy will be asked for resolved and checked first (names reached directly
    /// are checked by the client's resolver).
    async fn checked(&self, url: &str) -> Result<reqwest::Url, Failed> {
        let url = reqwest::Url::parse(url).map_err(|e| (FailureKind::InvalidRequest, format!("invalid url: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        if !self.allow_private {
            if let Some(ip) = ssrf::literal_ip(host) {
                if ssrf::is_blocked(ip) {
                    return Err((
                        FailureKind::Blocked,
                        format!("destination_blocked: {ip} is not a public address"),
                    ));
                }
            }
        }
        if let Some(relay) = self.clients.relay_for(host) {
            relay
                .check(host)
                .await
                .map_err(|blocked| (FailureKind::Blocked, blocked.to_string()))?;
        }
        Ok(url)
    }

    /// The endpoint's OAuth2 token (a new one if `stale` is the cached one). Every failure
    /// reads `oauth_token_failed: …` and is retried, except a token URL the SSRF guard refuses.
    async fn token(
        &self,
        client: &reqwest::Client,
        endpoint_id: &str,
        oauth: &OAuth2Client,
        stale: Option<&str>,
        deadline: Instant,
    ) -> Result<std::sync::Arc<str>, Failed> {
        let failed = |(kind, why): Failed| match kind {
            FailureKind::Blocked => (kind, format!("oauth_token_failed: {why}")),
            FailureKind::Timeout => (kind, format!("oauth_token_failed: {why}")),
            _ => (FailureKind::Other, format!("oauth_token_failed: {why}")),
        };
        self.checked(&oauth.token_url).await.map_err(failed)?;
        self.tokens
            .bearer(client, endpoint_id, oauth, stale, deadline)
            .await
            .map_err(failed)
    }

    async fn attempt(&self, req: &AttemptRequest, deadline: Instant) -> Result<reqwest::Response, Failed> {
        let url = self.checked(&req.url).await?;
        let auth = req.auth.as_ref();
        let client = match auth {
            Some(a) => self
                .clients
                .client(&a.endpoint_id, a.tls.as_deref())
                .map_err(|why| (FailureKind::InvalidRequest, why))?,
            None => self
                .clients
                .client("", None)
                .map_err(|why| (FailureKind::InvalidRequest, why))?,
        };
        let oauth = auth.and_then(|a| Some((a.endpoint_id.as_str(), a.oauth2.as_deref()?)));
        let Some((endpoint_id, oauth)) = oauth else {
            return self.post(&client, url, req, None, deadline).await;
        };
        let bearer = self.token(&client, endpoint_id, oauth, None, deadline).await?;
        let answer = self.post(&client, url.clone(), req, Some(&bearer), deadline).await?;
        if answer.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        // The receiver refused the token: one new token (unless another attempt already got
        // one), one more try, and its answer counts.
        drop(answer);
        let fresh = self.token(&client, endpoint_id, oauth, Some(&bearer), deadline).await?;
        self.post(&client, url, req, Some(&fresh), deadline).await
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        url: reqwest::Url,
        req: &AttemptRequest,
        bearer: Option<&str>,
        deadline: Instant,
    ) -> Result<reqwest::Response, Failed> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let left = deadline.saturating_duration_since(Instant::now());
        let mut builder = client.post(url).timeout(left);
        for (name, value) in &req.headers {
            // An OAuth2 token takes the place of a custom Authorization header.
            if bearer.is_none() || !name.eq_ignore_ascii_case("authorization") {
                builder = builder.header(name, value);
            }
        }
        if let Some(token) = bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder = builder.header("content-type", "application/json");
        // A Slack endpoint checks nothing of the sender: no Standard Webhooks headers.
        if req.kind == EndpointKind::Webhook {
            builder = builder
                .header("webhook-id", &req.event_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    sign::signature_header(&req.secrets, &req.event_id, timestamp, &req.body),
                );
        }
        let builder = builder.body(req.body.to_string());
        let answer = builder.send().await.map_err(describe)?;
        // The relay could not pass an http request on: no answer from the receiver.
        if let Some(kind) = self.clients.relay_marker().and_then(|m| answer.headers().get(m)) {
            let kind = match kind.as_bytes() {
                b"blocked" => FailureKind::Blocked,
                _ => FailureKind::Connect,
            };
            // The relay's text names the problem (`destination_blocked: …`, `proxy: …`).
            return Err((kind, answer.text().await.unwrap_or_default()));
        }
        Ok(answer)
    }
}

/// A failure's name on an attempt span (`error.type`).
fn failure_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Timeout => "timeout",
        FailureKind::Connect => "connect",
        FailureKind::Blocked => "blocked",
        FailureKind::InvalidRequest => "invalid_request",
        FailureKind::TransformFailed => "transform_failed",
        FailureKind::Cancelled => "cancelled",
        FailureKind::Other => "other",
    }
}

/// What went wrong, in a word the classifier understands and a sentence for the log.
fn describe(e: reqwest::Error) -> Failed {
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
        let traced = req.trace.as_ref().and_then(|t| {
            let traces = crate::traces::get()?;
            Some((traces, crate::traces::Stored::decode(&t.context)?))
        });
        match traced {
            None => self.deliver(req).await,
            // Boxed: the plain path's future stays as small as it was without tracing.
            Some((traces, stored)) => Box::pin(self.traced(traces, stored, req)).await,
        }
    }
}

impl HttpTransport {
    /// An attempt of a traced event: its span (under the event's route span) and a
    /// `traceparent` naming it for the receiver; the endpoint actor ends the span.
    async fn traced(
        &self,
        traces: &crate::traces::Traces,
        stored: crate::traces::Stored,
        mut req: AttemptRequest,
    ) -> AttemptResponse {
        use opentelemetry::KeyValue;
        use tracing::Instrument;
        let (endpoint_id, attempt) = req
            .trace
            .as_ref()
            .map(|t| (t.endpoint_id.as_str(), t.attempt))
            .unwrap_or_default();
        let span = std::sync::Arc::new(traces.attempt(&stored, endpoint_id, &req.event_id, attempt));
        // The node's, whatever case an endpoint's own header used (two would be invalid).
        req.headers.retain(|name, _| !name.eq_ignore_ascii_case("traceparent"));
        req.headers
            .insert("traceparent".into(), crate::traces::traceparent(&span.context));
        // The node's log lines about this attempt carry its trace.
        let log = tracing::info_span!("attempt", trace_id = %stored.trace);
        let mut out = self.deliver(req).instrument(log).await;
        if let Some(status) = out.status {
            span.set(KeyValue::new("http.response.status_code", i64::from(status)));
        }
        if let Some(kind) = out.failure {
            span.set(KeyValue::new("error.type", failure_name(kind)));
        }
        out.trace = Some(span);
        out
    }

    /// One attempt: the transform, then the email, Slack or webhook request.
    async fn deliver(&self, req: AttemptRequest) -> AttemptResponse {
        let (mut req, body_set) = match (req.transform.clone(), &self.transforms) {
            (None, _) => (req, false),
            (Some(spec), Some((transforms, require_https))) => {
                let ran = Instant::now();
                // Boxed: the plain path's future stays as small as it was without transforms.
                match Box::pin(crate::transform::apply(transforms, *require_https, &spec, req)).await {
                    Ok(shaped) => shaped,
                    Err((kind, text)) => {
                        return AttemptResponse {
                            failure: Some(kind),
                            error: Some(text),
                            latency_ms: ran.elapsed().as_millis() as u64,
                            ..Default::default()
                        }
                    }
                }
            }
            (Some(_), None) => {
                return AttemptResponse {
                    failure: Some(FailureKind::Other),
                    error: Some("transform not run: this transport has no transform workers".into()),
                    ..Default::default()
                }
            }
        };
        if req.kind == EndpointKind::Email {
            return match &self.mailer {
                Some(mailer) => mailer.send(&req).await,
                None => AttemptResponse {
                    failure: Some(FailureKind::Other),
                    error: Some("smtp: notifications.smtp_url is not set on this node".into()),
                    ..Default::default()
                },
            };
        }
        if req.kind == EndpointKind::Slack && !body_set {
            if let Some(message) = slack::message(&req.body) {
                req.body = message.into();
            }
        }
        let started = Instant::now();
        let deadline = started + req.timeout;
        let mut out = AttemptResponse::default();
        // The whole attempt (a token, a DNS check, a second try after a 401) within its timeout.
        let attempt = tokio::time::timeout_at(deadline.into(), self.attempt(&req, deadline));
        let attempt = attempt.await.unwrap_or_else(|_| {
            Err((
                FailureKind::Timeout,
                format!("no answer within the attempt's {} ms", req.timeout.as_millis()),
            ))
        });
        match attempt {
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
    use std::sync::Arc;
    use std::time::Duration;

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
            auth: None,
            transform: None,
            kind: Default::default(),
            trace: None,
        }
    }

    #[tokio::test]
    async fn blocked_destinations_fail_permanently_without_a_connection() {
        let strict = HttpTransport::direct(false).unwrap();
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
        let t = HttpTransport::direct(true).unwrap();
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
        let t = HttpTransport::direct(true).unwrap();
        let r = t.send(request(format!("{base}/slow"))).await;
        assert_eq!(r.failure, Some(FailureKind::Timeout), "{r:?}");
        assert!(r.latency_ms >= 1_900 && r.latency_ms < 4_000, "{}", r.latency_ms);
        let refused = t.send(request("http://127.0.0.1:9/closed".into())).await;
        assert_eq!(refused.failure, Some(FailureKind::Connect), "{refused:?}");
    }
}
