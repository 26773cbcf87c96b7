//! The operator console in a real headless Chromium (selenium from `.ci/python-tools`, Debian's
//! chromium and chromedriver from `.ci/chromium`): sign-in, the tenant picker, a tenant's
//! endpoints, sign-out; a description holding a script tag is text; the session cookie is
//! HttpOnly and SameSite=Strict; posts from elsewhere are refused; every page forbids script.

use crate::support::*;
use hookline_loadtest::sink::Sink;
use serde_json::{json, Value};
use std::time::Duration;

const HOSTILE: &str = "<script>document.title='pwned'</script><b>bold</b>";

#[tokio::test]
async fn an_operator_signs_in_and_sees_a_tenants_endpoints_with_every_value_as_text() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("console"))).await;
    let sink = Sink::start("127.0.0.1:0").await.unwrap();
    let tenant = "acme-console";
    let ep = node
        .api
        .create_endpoint(tenant, json!({"url": sink.url("ok/console"), "description": HOSTILE}))
        .await;
    // One delivery, so the endpoint's page has a bar and a row to show.
    node.api
        .post_event(tenant, "order.created", json!({"n": 1}))
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "the delivery", || {
        sink.received_by("console").len() == 1
    })
    .await;
    let path = format!(
        "/v1/tenants/{tenant}/deliveries?endpoint_id={}",
        ep["id"].as_str().unwrap()
    );
    node.api
        .get_until(&path, Duration::from_secs(10), |page| {
            page["data"][0]["status"] == "delivered"
        })
        .await;

    // An endpoint of another tenant whose receiver answers 410: one dead letter to replay.
    let gone_tenant = "acme-console-dl";
    let gone = node
        .api
        .create_endpoint(gone_tenant, json!({"url": sink.url("status/410/gone")}))
        .await;
    let gone_id = gone["id"].as_str().unwrap();
    node.api
        .post_event(gone_tenant, "order.created", json!({"n": 2}))
        .await
        .unwrap();
    let dead_letters = format!("/console/t/{gone_tenant}/e/{gone_id}/dead-letters");
    let form_url = sink.url("ok/form");

    // HOOKLINE_CONSOLE_SHOTS=dir keeps the screenshots there (for docs/); else a temp dir.
    let temp = tempfile::tempdir().unwrap();
    let shots = shots_dir(&temp);
    let seen = run_browser_script(
        "console_browser.py",
        &[
            ("HOOKLINE_URL", &node.api.base),
            ("HOOKLINE_ADMIN", ADMIN),
            ("HOOKLINE_TENANT", tenant),
            ("HOOKLINE_FORM_URL", &form_url),
            ("HOOKLINE_DEAD_LETTERS", &dead_letters),
            ("HOOKLINE_SHOTS", shots.to_str().unwrap()),
        ],
        Duration::from_secs(120),
    )
    .await;
    let base = &node.api.base;

    assert_eq!(seen["sign_in_heading"], "Sign in", "{seen}");
    assert_eq!(seen["wrong_token_error"], "That is not an admin token.", "{seen}");
    assert_eq!(seen["after_sign_in"], format!("{base}/console/tenants"), "{seen}");
    assert_eq!(
        seen["cookie"],
        json!({"httpOnly": true, "sameSite": "Strict", "path": "/console"}),
        "{seen}"
    );
    assert_eq!(seen["tenant_page"], format!("{base}/console/t/{tenant}"), "{seen}");
    // The description is shown exactly, as text: no script ran, no tag became an element.
    assert_eq!(seen["descriptions"], json!([HOSTILE]), "{seen}");
    assert_eq!(seen["bold_in_description"], 0, "{seen}");
    assert!(!seen["title"].as_str().unwrap().contains("pwned"), "{seen}");
    assert_eq!(seen["states"], json!(["closed"]), "{seen}");
    assert_eq!(seen["success_rates"], json!(["100.0%"]), "{seen}");
    // The endpoint's page: one success bar this minute, the delivery in the list.
    let ep_id = ep["id"].as_str().unwrap();
    assert_eq!(
        seen["endpoint_page"],
        format!("{base}/console/t/{tenant}/e/{ep_id}"),
        "{seen}"
    );
    assert_eq!(seen["success_bars"], 1, "{seen}");
    assert!(
        seen["bar_titles"][0].as_str().unwrap().ends_with("success: 1"),
        "{seen}"
    );
    assert_eq!(seen["delivery_statuses"], json!(["delivered"]), "{seen}");
    assert!(
        seen["summary"]
            .as_str()
            .unwrap()
            .starts_with("1 attempt in the last hour: 1 success"),
        "{seen}"
    );
    // Its latency line has the minute's point (p50 and p99); the day's view, one hour's bar.
    assert_eq!(seen["latency_points"], 2, "{seen}");
    assert!(
        seen["summary_24h"]
            .as_str()
            .unwrap()
            .starts_with("1 attempt in the last 24 hours: 1 success"),
        "{seen}"
    );
    assert_eq!(seen["hour_bars_24h"], 1, "{seen}");
    // Disabled and enabled again from the page, as the API would, each change in the audit log.
    assert_eq!(seen["state_after_disable"], "disabled (manual)", "{seen}");
    assert_eq!(seen["state_after_enable"], "enabled", "{seen}");
    assert_eq!(seen["back_on_endpoint_page"], true, "{seen}");
    let (_, changes) = node
        .api
        .get(&format!("/v1/tenants/{tenant}/audit?target_id={ep_id}"))
        .await;
    assert_eq!(
        texts(&changes["data"], "action"),
        ["endpoint.enabled", "endpoint.disabled", "endpoint.created"],
        "{changes}"
    );
    assert_eq!(
        changes["data"][1]["changes"]["disabled"],
        json!({"from": false, "to": true}),
        "{changes}"
    );
    // The delivery: its attempt, a replay from the page, and the second attempt it made.
    let dlv = seen["delivery_page"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(dlv.starts_with(&format!("dlv_{}", &ep_id[3..])), "{seen}");
    assert_eq!(
        seen["delivery_page"],
        format!("{base}/console/t/{tenant}/d/{dlv}"),
        "{seen}"
    );
    assert_eq!(seen["attempt_codes"], json!(["200"]), "{seen}");
    assert_eq!(
        seen["replay_notice"], "Replayed: a new attempt cycle has started.",
        "{seen}"
    );
    assert_eq!(seen["attempt_codes_after_replay"], json!(["200", "200"]), "{seen}");
    assert_eq!(sink.received_by("console").len(), 2, "the replay was delivered");
    let (_, audit) = node
        .api
        .get(&format!("/v1/tenants/{tenant}/audit?action=delivery.replayed"))
        .await;
    let replayed: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"]["id"] == dlv)
        .collect();
    assert_eq!(replayed.len(), 1, "{audit}");
    assert_eq!(replayed[0]["actor"]["kind"], "admin", "{audit}");
    // The endpoint made through the form: its test event delivered, seen in the log, replayed.
    let created = seen["created_page"].as_str().unwrap();
    let form_id = created.rsplit('/').next().unwrap();
    assert_eq!(created, format!("{base}/console/t/{tenant}/e/{form_id}"), "{seen}");
    assert_eq!(seen["created_url"], form_url, "{seen}");
    assert!(
        seen["test_notice"].as_str().unwrap().starts_with("Test event evt_"),
        "{seen}"
    );
    assert_eq!(seen["log_statuses"], json!(["delivered"]), "{seen}");
    assert_eq!(seen["form_attempts"], json!(["200"]), "{seen}");
    assert_eq!(seen["form_attempts_after_replay"], json!(["200", "200"]), "{seen}");
    assert_eq!(sink.received_by("form").len(), 2, "the test event and its replay");
    // Edited as JSON (every field a PATCH takes but the write-only ones and `disabled`), and
    // a value the API refuses came back with the API's message.
    assert_eq!(
        seen["edit_fields"],
        json!([
            "description",
            "email",
            "event_types",
            "filter",
            "headers",
            "kind",
            "max_in_flight",
            "metadata",
            "ordered",
            "payload_mode",
            "rate_limit_per_s",
            "retry_schedule_s",
            "signature",
            "timeout_ms",
            "transform",
            "url"
        ]),
        "{seen}"
    );
    assert!(seen["edit_error"].as_str().unwrap().contains("timeout_ms"), "{seen}");
    assert_eq!(seen["event_type"], "webhook.test", "{seen}");
    assert_eq!(seen["event_went_to"], json!(["delivered"]), "{seen}");
    assert_eq!(seen["pending_before_delete"], "0", "{seen}");
    assert_eq!(
        seen["delete_notice"],
        format!("Endpoint {form_id} deleted; 0 pending deliveries dropped."),
        "{seen}"
    );
    // What the forms did, as the API and the audit log saw it.
    let (status, _) = node.api.get(&format!("/v1/tenants/{tenant}/endpoints/{form_id}")).await;
    assert_eq!(status, 404, "deleted");
    let (_, changes) = node
        .api
        .get(&format!("/v1/tenants/{tenant}/audit?target_id={form_id}"))
        .await;
    let entries = changes["data"].as_array().unwrap();
    assert_eq!(
        texts(&changes["data"], "action"),
        [
            "endpoint.deleted",
            "endpoint.updated",
            "endpoint.secret_read",
            "endpoint.secret_rotated",
            "endpoint.created"
        ],
        "{changes}"
    );
    assert!(entries.iter().all(|e| e["actor"]["kind"] == "admin"), "{changes}");
    assert!(seen["revealed"].as_str().unwrap().starts_with("whsec_"), "{seen}");
    let created_entry = &entries[4]["changes"];
    assert_eq!(created_entry["description"]["to"], "made in the form", "{changes}");
    assert_eq!(
        created_entry["event_types"]["to"],
        json!(["webhook.test", "order.*"]),
        "{changes}"
    );
    let updated = &entries[1]["changes"];
    assert_eq!(
        (&updated["description"]["to"], &updated["timeout_ms"]["to"]),
        (&json!("edited in the form"), &json!(5000)),
        "{changes}"
    );
    // A source made through the form; what the API refused first came back with its message;
    // its secret is not on its page; an unsigned request to it is among its rejections.
    assert!(seen["source_error"].as_str().unwrap().contains("secret"), "{seen}");
    assert_eq!(seen["source_kind"], "stripe", "{seen}");
    assert_eq!(seen["source_secret_shown"], false, "{seen}");
    assert_eq!(seen["unsigned_status"], 401, "{seen}");
    assert_eq!(seen["rejection_reasons"], json!(["missing_header"]), "{seen}");
    assert_eq!(seen["source_names"], json!(["Billing provider"]), "{seen}");
    // The dead letter, replayed from its page.
    assert_eq!(seen["letter_reasons"], json!(["gone"]), "{seen}");
    assert_eq!(
        seen["replay_all_notice"], "1 dead letters replayed: each starts a new attempt cycle.",
        "{seen}"
    );

    assert_eq!(seen["after_sign_out"], format!("{base}/console/"), "{seen}");
    assert_eq!(
        seen["tenants_after_sign_out"],
        format!("{base}/console/"),
        "signed out for good: {seen}"
    );
    for name in [
        "sign-in",
        "tenants",
        "endpoints",
        "endpoint",
        "delivery",
        "deliveries",
        "dead-letters",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}");
        let variety = seen["shots"][name].as_u64().unwrap();
        assert!(
            variety > 8,
            "the {name} screenshot looks blank ({variety} distinct byte values)"
        );
    }
}

#[tokio::test]
async fn console_posts_from_elsewhere_are_refused_and_pages_forbid_script() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("console-csrf"))).await;
    let base = &node.api.base;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(format!("{base}/console/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script is allowed at all: {csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-store");

    let sign_in = |origin: Option<String>| {
        let mut request = client
            .post(format!("{base}/console/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={ADMIN}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    // A form on another site (or a request naming no origin) cannot sign anyone in.
    for origin in [None, Some("http://evil.example".to_string())] {
        let refused = sign_in(origin.clone()).await.unwrap();
        assert_eq!(refused.status(), 403, "{origin:?}");
        assert!(refused.headers().get("set-cookie").is_none());
    }
    // A wrong token: 401, no cookie.
    let wrong = client
        .post(format!("{base}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", base)
        .body("token=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let signed = sign_in(Some(base.clone())).await.unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let id = session.split('=').nth(1).unwrap();
    // The session lives in Redis for 8 hours at most, under the digest of its id.
    let ttl: i64 = redis_cli(
        &node.redis_url,
        &["ttl", &format!("{}:console:{}", node.prefix, sha256_hex(id))],
    )
    .trim()
    .parse()
    .unwrap();
    assert!((1..=28_800).contains(&ttl), "{ttl}");
    let get = |path: &str| client.get(format!("{base}{path}")).header("cookie", &session).send();
    // Every console answer forbids script, signed in or not, page or style sheet or redirect.
    for path in [
        "/console/tenants",
        "/console/t/acme",
        "/console/style.css",
        "/console/",
        "/console/t/bad%20name",
    ] {
        let answer = get(path).await.unwrap();
        let csp = answer.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    }
    let csrf = csrf_of(&get("/console/tenants").await.unwrap().text().await.unwrap());
    let sign_out = |origin: Option<String>, csrf: String| {
        let mut request = client
            .post(format!("{base}/console/sign-out"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    // Signed in, a post needs both this origin and the session's CSRF token.
    for (origin, token) in [
        (Some(base.clone()), "guess".to_string()),
        (None, csrf.clone()),
        (Some("http://evil.example".to_string()), csrf.clone()),
    ] {
        let forged = sign_out(origin.clone(), token).await.unwrap();
        assert_eq!(forged.status(), 403, "{origin:?}");
        assert_eq!(
            get("/console/tenants").await.unwrap().status(),
            200,
            "a forged sign-out ended it: {origin:?}"
        );
    }
    // A node whose admin tokens no longer include the one that signed in refuses the session
    // (and forgets it).
    let rotated = Node::start_ready(
        &NodeOpts::new(&node.redis_url, &node.prefix).set("auth__admin_tokens", "[\"another-admin-token\"]"),
    )
    .await;
    let refused = client
        .get(format!("{}/console/tenants", rotated.api.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            refused.status().as_u16(),
            refused.headers()["location"].to_str().unwrap()
        ),
        (303, "/console/")
    );
    drop(rotated);
    let forgotten = get("/console/tenants").await.unwrap();
    assert_eq!(forgotten.status(), 303, "the revoked session was deleted");

    // Sign-out ends the session on the node, not only in the browser.
    let signed = sign_in(Some(base.clone())).await.unwrap();
    let session = cookie_of(&signed);
    let get = |path: &str| client.get(format!("{base}{path}")).header("cookie", &session).send();
    let csrf = csrf_of(&get("/console/tenants").await.unwrap().text().await.unwrap());
    let out = client
        .post(format!("{base}/console/sign-out"))
        .header("cookie", &session)
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        get("/console/tenants").await.unwrap().status(),
        303,
        "the old cookie still works"
    );
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
