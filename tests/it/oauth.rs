//! OAuth2 client credentials: a token server and a receiver started here. The token server
//! counts grants; the receiver accepts only a token it knows that has not expired.

use crate::support::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Idp {
    grants: AtomicUsize,
    /// The `expires_in` of the next tokens.
    expires_in: AtomicU64,
    /// Non-zero: every grant request gets this status.
    failing: AtomicU16,
    /// token → (client id, expiry)
    issued: Mutex<HashMap<String, (String, Instant)>>,
    /// The grant requests: (authorization header, form body).
    requests: Mutex<Vec<(String, String)>>,
    /// When each token was granted.
    granted_at: Mutex<HashMap<String, Instant>>,
    /// Bodies the receiver accepted, per client id; and its 401s.
    accepted: Mutex<HashMap<String, usize>>,
    refused: AtomicUsize,
}

async fn token(State(idp): State<Arc<Idp>>, headers: HeaderMap, body: String) -> (StatusCode, axum::Json<Value>) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    idp.requests.lock().unwrap().push((authorization.clone(), body.clone()));
    let failing = idp.failing.load(Ordering::SeqCst);
    if failing != 0 {
        return (
            StatusCode::from_u16(failing).unwrap(),
            axum::Json(json!({"error": "temporarily_unavailable"})),
        );
    }
    let client = client_of(&authorization, &body);
    let n = idp.grants.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_in = idp.expires_in.load(Ordering::SeqCst);
    let value = format!("tok-{n}");
    idp.granted_at.lock().unwrap().insert(value.clone(), Instant::now());
    idp.issued.lock().unwrap().insert(
        value.clone(),
        (client, Instant::now() + Duration::from_secs(expires_in)),
    );
    (
        StatusCode::OK,
        axum::Json(json!({"access_token": value, "token_type": "Bearer", "expires_in": expires_in})),
    )
}

async fn receive(State(idp): State<Arc<Idp>>, headers: HeaderMap) -> StatusCode {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let known = idp.issued.lock().unwrap().get(&presented).cloned();
    match known {
        Some((client, expiry)) if Instant::now() < expiry => {
            *idp.accepted.lock().unwrap().entry(client).or_default() += 1;
            StatusCode::OK
        }
        _ => {
            idp.refused.fetch_add(1, Ordering::SeqCst);
            StatusCode::UNAUTHORIZED
        }
    }
}

async fn start_idp() -> (Arc<Idp>, String) {
    let idp = Arc::new(Idp::default());
    idp.expires_in.store(3600, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route("/hook", axum::routing::post(receive))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (idp, base)
}

impl Idp {
    fn accepted(&self, client: &str) -> usize {
        self.accepted.lock().unwrap().get(client).copied().unwrap_or(0)
    }
    fn grants_of(&self, client: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|(auth, body)| client_of(auth, body) == client)
            .count()
    }
}

/// Whose grant request this is: HTTP Basic, or `client_id` in the form.
fn client_of(authorization: &str, body: &str) -> String {
    if let Some(basic) = authorization.strip_prefix("Basic ") {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD.decode(basic).unwrap();
        return String::from_utf8(pair).unwrap().split(':').next().unwrap().to_string();
    }
    body.split('&')
        .find_map(|kv| kv.strip_prefix("client_id="))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn one_token_serves_many_deliveries_and_is_refreshed_before_expiry_or_once_after_a_401() {
    let (idp, base) = start_idp().await;
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("oauth"))).await;
    let api = &node.api;
    let endpoint = |client: &str, auth: &str, types: &str| {
        json!({
            "url": format!("{base}/hook"),
            "event_types": [types],
            "max_in_flight": 20,
            "retry_schedule_s": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            "oauth2": {"token_url": format!("{base}/token"), "client_id": client,
                       "client_secret": "s3cret value", "scope": "hooks", "auth": auth},
        })
    };
    let bulk = api
        .create_endpoint("o", endpoint("bulk", "client_secret_basic", "bulk.*"))
        .await;
    // The secret is write-only.
    assert_eq!(bulk["oauth2"]["client_id"], "bulk");
    assert!(bulk["oauth2"].get("client_secret").is_none(), "{bulk}");

    // 1,000 deliveries, one token.
    for chunk in 0..4 {
        let events: Vec<Value> = (0..250)
            .map(|i| json!({"type": "bulk.x", "payload": {"n": chunk * 250 + i}}))
            .collect();
        let (status, _) = api
            .post("/v1/tenants/o/events/batch", json!({ "events": events }))
            .await;
        assert_eq!(status, 202);
    }
    wait_for(Duration::from_secs(60), "1,000 deliveries", || {
        idp.accepted("bulk") == 1000
    })
    .await;
    assert_eq!(idp.grants_of("bulk"), 1, "one token for all of them");
    let (auth, body) = idp.requests.lock().unwrap()[0].clone();
    assert_eq!(body, "grant_type=client_credentials&scope=hooks");
    {
        use base64::Engine;
        let pair = base64::engine::general_purpose::STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(pair).unwrap(), "bulk:s3cret+value");
    }

    // The receiver forgets the token: one 401, exactly one new token, delivered in one attempt.
    idp.issued.lock().unwrap().clear();
    let refused_before = idp.refused.load(Ordering::SeqCst);
    api.post_event("o", "bulk.x", json!({"after": "revocation"}))
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "the delivery after the 401", || {
        idp.accepted("bulk") == 1001
    })
    .await;
    assert_eq!(idp.grants_of("bulk"), 2);
    assert_eq!(idp.refused.load(Ordering::SeqCst), refused_before + 1);

    // Short-lived tokens (4 s) are used for 2 s, then a new one is fetched while the old one
    // still works: no delivery is ever refused for an expired token.
    idp.expires_in.store(4, Ordering::SeqCst);
    api.create_endpoint("o", endpoint("brief", "client_secret_post", "brief.*"))
        .await;
    api.post_event("o", "brief.x", json!({"n": 1})).await.unwrap();
    wait_for(Duration::from_secs(10), "the first brief delivery", || {
        idp.accepted("brief") == 1
    })
    .await;
    api.post_event("o", "brief.x", json!({"n": 2})).await.unwrap();
    wait_for(Duration::from_secs(10), "the second brief delivery", || {
        idp.accepted("brief") == 2
    })
    .await;
    assert_eq!(idp.grants_of("brief"), 1, "a token is reused while fresh");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let refused_before = idp.refused.load(Ordering::SeqCst);
    api.post_event("o", "brief.x", json!({"n": 3})).await.unwrap();
    wait_for(Duration::from_secs(10), "the third brief delivery", || {
        idp.accepted("brief") == 3
    })
    .await;
    assert_eq!(idp.grants_of("brief"), 2, "refreshed after half its life");
    assert_eq!(
        idp.refused.load(Ordering::SeqCst),
        refused_before,
        "refreshed before it expired"
    );
    let post_body = idp.requests.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(
        post_body,
        "grant_type=client_credentials&scope=hooks&client_id=brief&client_secret=s3cret+value"
    );

    // A token server that fails: attempts are retried with reason oauth_token_failed, not
    // dead-lettered; once it is back, the delivery goes through.
    idp.expires_in.store(3600, Ordering::SeqCst);
    idp.failing.store(503, Ordering::SeqCst);
    let down = api
        .create_endpoint("o", endpoint("down", "client_secret_basic", "down.*"))
        .await;
    api.post_event("o", "down.x", json!({"n": 1})).await.unwrap();
    let delivery = api.delivery_after("o", down["id"].as_str().unwrap(), 2).await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    let error = delivery["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("oauth_token_failed"), "{delivery}");
    assert!(error.contains("503"), "{error}");
    assert_eq!(idp.accepted("down"), 0);
    idp.failing.store(0, Ordering::SeqCst);
    wait_for(
        Duration::from_secs(20),
        "the delivery once the token server is back",
        || idp.accepted("down") == 1,
    )
    .await;

    // The audit log never shows the client secret.
    let (_, audit) = api.get("/v1/tenants/o/audit?action=endpoint.created").await;
    let text = audit.to_string();
    assert!(text.contains("\"client_secret\":\"***\""), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    // Field rules: 400 naming the field.
    for (oauth2, field) in [
        (
            json!({"token_url": "ftp://x/token", "client_id": "a", "client_secret": "b"}),
            "oauth2.token_url",
        ),
        (
            json!({"token_url": format!("{base}/token"), "client_id": "", "client_secret": "b"}),
            "oauth2.client_id",
        ),
        (
            json!({"token_url": format!("{base}/token"), "client_id": "a"}),
            "oauth2",
        ),
    ] {
        let (status, answer) = api
            .post(
                "/v1/tenants/o/endpoints",
                json!({"url": format!("{base}/hook"), "oauth2": oauth2}),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{answer}");
    }
}
