//! OAuth2 client credentials (an endpoint's `oauth2`): a token per endpoint, fetched from the
//! receiver's token URL with the `client_credentials` grant, shared by the endpoint's attempts
//! and reused until shortly before it expires (`expires_in` − 30 s; half its life when it
//! lives a minute or less; 5 minutes when the server does not say; a day at most). One fetch at a time per
//! endpoint: attempts that need a token meanwhile wait for that fetch. A failed fetch is
//! remembered for a second, so a burst of attempts against a down token server asks it once.

use hookline_actors::transport::FailureKind;
use hookline_actors::{OAuth2Client, OAuth2ClientAuth};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this much of a token answer is read.
const MAX_ANSWER: usize = 64 * 1024;
/// How long a failed fetch answers for the next attempts.
const FAILURE_HELD: Duration = Duration::from_secs(1);
/// A token's life when the server does not give `expires_in`.
const DEFAULT_LIFE: Duration = Duration::from_secs(300);
/// The longest a token is used, whatever the server says.
const MAX_LIFE: Duration = Duration::from_secs(86_400);

/// Why there is no token: a word the classifier understands (`Blocked` for a token URL the
/// SSRF guard refuses, else `Other`) and a sentence.
pub type TokenError = (FailureKind, String);
/// Endpoints with a token, at most (emptied past it).
const MAX_SLOTS: usize = 65_536;

#[derive(Default)]
struct Slot {
    token: Option<Token>,
    failed: Option<(u64, Instant, TokenError)>,
}

struct Token {
    value: Arc<str>,
    /// Of the `oauth2` settings it was fetched with: a change fetches a new one.
    fingerprint: u64,
    refresh_at: Instant,
}

#[derive(Default)]
pub(super) struct Tokens {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

/// When a token that lives `expires_in` seconds is fetched again.
pub fn lifetime(expires_in: Option<u64>) -> Duration {
    let life = match expires_in {
        None => DEFAULT_LIFE,
        Some(s) if s > 60 => Duration::from_secs(s - 30),
        Some(s) => Duration::from_millis(s * 500),
    };
    life.min(MAX_LIFE)
}

impl Tokens {
    /// The endpoint's token: the cached one unless it is `stale` (the receiver refused it) or
    /// due for refresh; else a new one from the token URL through `client`.
    pub(super) async fn bearer(
        &self,
        client: &reqwest::Client,
        endpoint_id: &str,
        oauth: &OAuth2Client,
        stale: Option<&str>,
        deadline: Instant,
    ) -> Result<Arc<str>, TokenError> {
        let fingerprint = super::fingerprint(oauth);
        let slot = {
            let mut slots = self.slots.lock().expect("token slots");
            if slots.len() >= MAX_SLOTS && !slots.contains_key(endpoint_id) {
                slots.clear();
            }
            slots.entry(endpoint_id.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        let now = Instant::now();
        if let Some(token) = &slot.token {
            let usable = token.fingerprint == fingerprint && now < token.refresh_at;
            if usable && stale != Some(&*token.value) {
                return Ok(token.value.clone());
            }
        }
        if let Some((seen, at, why)) = &slot.failed {
            if *seen == fingerprint && now.duration_since(*at) < FAILURE_HELD {
                return Err(why.clone());
            }
        }
        // The time left is counted after the wait for another attempt's fetch.
        let timeout = deadline.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return Err((FailureKind::Timeout, "no time left to fetch a token".into()));
        }
        match fetch(client, oauth, timeout).await {
            Ok((value, life)) => {
                let value: Arc<str> = Arc::from(value);
                let now = Instant::now();
                slot.token = Some(Token {
                    value: value.clone(),
                    fingerprint,
                    refresh_at: now.checked_add(life).unwrap_or(now),
                });
                slot.failed = None;
                Ok(value)
            }
            Err(why) => {
                slot.token = None;
                slot.failed = Some((fingerprint, Instant::now(), why.clone()));
                Err(why)
            }
        }
    }
}

/// `application/x-www-form-urlencoded` of one value (RFC 6749 2.3.1 encodes the client id and
/// secret this way before HTTP Basic).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The grant request's body and `Authorization` header.
pub fn grant(oauth: &OAuth2Client) -> (String, Option<String>) {
    use base64::Engine;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &oauth.scope {
        form.push(("scope", scope));
    }
    if let Some(audience) = &oauth.audience {
        form.push(("audience", audience));
    }
    let authorization = match oauth.auth {
        OAuth2ClientAuth::ClientSecretBasic => {
            let pair = format!(
                "{}:{}",
                form_encode(&oauth.client_id),
                form_encode(&oauth.client_secret)
            );
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        }
        OAuth2ClientAuth::ClientSecretPost => {
            form.push(("client_id", &oauth.client_id));
            form.push(("client_secret", &oauth.client_secret));
            None
        }
    };
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    (body, authorization)
}

/// One grant request: the token and how long to use it, or why there is none.
async fn fetch(
    client: &reqwest::Client,
    oauth: &OAuth2Client,
    timeout: Duration,
) -> Result<(String, Duration), TokenError> {
    let (body, authorization) = grant(oauth);
    let mut request = client
        .post(&oauth.token_url)
        .timeout(timeout)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let mut answer = request.send().await.map_err(super::describe)?;
    let status = answer.status();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER {
        match answer.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER - bytes.len())]),
            Ok(None) => break,
            Err(e) => return Err(super::describe(e)),
        }
    }
    if !status.is_success() {
        let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
        return Err((
            FailureKind::Other,
            format!("the token URL answered {}: {excerpt}", status.as_u16()),
        ));
    }
    parse_answer(&bytes).map_err(|why| (FailureKind::Other, why))
}

/// A token answer (RFC 6749 5.1): `access_token`, `token_type` bearer, `expires_in`.
pub fn parse_answer(bytes: &[u8]) -> Result<(String, Duration), String> {
    let answer: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| "the token URL's answer is not JSON".to_string())?;
    let token = answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty() && reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
        .ok_or("the token URL's answer has no usable access_token")?;
    match answer["token_type"].as_str() {
        Some(kind) if kind.eq_ignore_ascii_case("bearer") => {}
        other => return Err(format!("token_type {other:?} is not bearer")),
    }
    // A number, or a number in a string (some servers send that).
    let expires_in = match &answer["expires_in"] {
        // `as` saturates: 1e30 is u64::MAX, which `lifetime` caps.
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Ok((token.to_string(), lifetime(expires_in)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(auth: OAuth2ClientAuth) -> OAuth2Client {
        OAuth2Client {
            token_url: "https://idp.example/token".into(),
            client_id: "hook line".into(),
            client_secret: "s:c/r&t".into(),
            scope: Some("webhooks.write".into()),
            audience: None,
            auth,
        }
    }

    #[test]
    fn grants_encode_the_credentials_as_rfc_6749_says() {
        let (body, auth) = grant(&client(OAuth2ClientAuth::ClientSecretBasic));
        assert_eq!(body, "grant_type=client_credentials&scope=webhooks.write");
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.unwrap().strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "hook+line:s%3Ac%2Fr%26t");
        let (body, auth) = grant(&client(OAuth2ClientAuth::ClientSecretPost));
        assert_eq!(
            body,
            "grant_type=client_credentials&scope=webhooks.write&client_id=hook+line&client_secret=s%3Ac%2Fr%26t"
        );
        assert_eq!(auth, None);
    }

    #[test]
    fn answers_and_lifetimes() {
        let (token, life) = parse_answer(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#).unwrap();
        assert_eq!((token.as_str(), life), ("abc", Duration::from_secs(3570)));
        let (_, life) = parse_answer(br#"{"access_token":"abc","token_type":"bearer","expires_in":"4"}"#).unwrap();
        assert_eq!(life, Duration::from_secs(2));
        let (_, life) = parse_answer(br#"{"access_token":"abc","token_type":"bearer"}"#).unwrap();
        assert_eq!(life, DEFAULT_LIFE);
        assert!(parse_answer(br#"{"access_token":"abc","token_type":"mac"}"#).is_err());
        assert!(parse_answer(br#"{"token_type":"bearer"}"#).is_err());
        assert!(parse_answer(b"<html>").is_err());
        assert!(parse_answer(br#"{"access_token":"a\nb","token_type":"bearer"}"#).is_err());
        // Absurd lifetimes are capped (an Instant that far ahead would overflow).
        for absurd in [
            &br#"{"access_token":"a","token_type":"bearer","expires_in":1e30}"#[..],
            br#"{"access_token":"a","token_type":"bearer","expires_in":18446744073709551615}"#,
        ] {
            assert_eq!(parse_answer(absurd).unwrap().1, MAX_LIFE);
        }
        assert_eq!(lifetime(Some(u64::MAX)), MAX_LIFE);
        assert_eq!(lifetime(Some(0)), Duration::ZERO);
    }
}
