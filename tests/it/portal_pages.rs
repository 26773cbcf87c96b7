//! The tenant portal's pages (`/portal/`): opened with a portal session's token (from the link's
//! fragment, by the first page's one hashed script), kept in an HttpOnly cookie; they show the
//! session's tenant only, act only as the API lets the session act (a read-only one changes
//! nothing, whatever is posted), and stop working when the session expires or is revoked.

use crate::support::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

async fn portal_token(api: &Api, tenant: &str, body: Value) -> String {
    let (status, s) = api.post(&format!("/v1/tenants/{tenant}/portal-sessions"), body).await;
    assert_eq!(status, 201, "{s}");
    s["token"].as_str().unwrap().to_string()
}

struct Browser {
    base: String,
    client: reqwest::Client,
    cookie: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            base: base.to_string(),
            client,
            cookie: String::new(),
        }
    }

    /// `POST /portal/open` with `token` from `origin`: the answer.
    async fn open(&self, token: &str, origin: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/portal/open", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }

    /// Opens the portal with `token` and keeps its cookie; the `Set-Cookie` line.
    async fn open_ok(&mut self, token: &str) -> String {
        let answer = self.open(token, Some(&self.base.clone())).await;
        assert_eq!(answer.status(), 303, "{}", answer.text().await.unwrap());
        let set = answer.headers()["set-cookie"].to_str().unwrap().to_string();
        self.cookie = set.split(';').next().unwrap().to_string();
        set
    }

    async fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let answer = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
        (status, answer.text().await.unwrap(), headers)
    }

    async fn post(&self, path: &str, csrf: &str) -> (u16, String) {
        let answer = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}"))
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }
}

#[tokio::test]
async fn the_portal_shows_its_own_tenant_and_acts_only_as_its_session_may() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("portal-pages"))).await;
    let api = &node.api;
    let base = api.base.clone();
    let ours = api
        .create_endpoint("pp-a", json!({"url": "http://127.0.0.1:9/a", "description": "ours"}))
        .await;
    let ours_id = ours["id"].as_str().unwrap().to_string();
    let theirs = api
        .create_endpoint("pp-b", json!({"url": "http://127.0.0.1:9/theirs-secret-path"}))
        .await;
    let theirs_id = theirs["id"].as_str().unwrap().to_string();

    // The first page: one inline script, allowed by its hash and by nothing else.
    let mut browser = Browser::new(&base);
    let (status, landing, headers) = browser.get("/portal/").await;
    assert_eq!(status, 200);
    let script = landing
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the page's script");
    assert!(
        script.contains("location.hash") && script.contains("replaceState"),
        "{script}"
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes()));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains(&format!("script-src 'sha256-{hash}'")), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(landing.matches("<script").count(), 1);

    // Only a portal session's token opens it, from the portal's own page.
    let full = portal_token(api, "pp-a", json!({"ttl_s": 3600})).await;
    let refused = browser.open(&full, Some("http://evil.example")).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("set-cookie").is_none());
    let mut tampered = full.clone();
    tampered.pop();
    tampered.push('x');
    let (_, key) = api.post("/v1/tenants/pp-a/keys", json!({})).await;
    for wrong in [
        tampered.as_str(),
        ADMIN,
        key["key"].as_str().unwrap(),
        "hkp_<script>",
        "",
    ] {
        let answer = browser.open(wrong, Some(&base)).await;
        assert_eq!(answer.status(), 401, "{wrong}");
        assert!(answer.headers().get("set-cookie").is_none(), "{wrong}");
    }

    let set = browser.open_ok(&full).await;
    assert!(
        set.starts_with(&format!("hookline_portal={full};"))
            && set.contains("Path=/portal")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict"),
        "{set}"
    );
    let max_age: u64 = set.split("Max-Age=").nth(1).unwrap().trim().parse().unwrap();
    assert!(
        (3_500..=3_600).contains(&max_age),
        "the cookie lives as long as the session: {set}"
    );
    // Back on the first page, it offers the session's pages (its script goes on to them).
    let (status, landing, _) = browser.get("/portal/").await;
    assert_eq!(status, 200);
    assert!(
        landing.contains("<a id=\"continue\" href=\"/portal/t/pp-a\">"),
        "{landing}"
    );

    // Its tenant's pages, with links inside the portal.
    let (status, page, _) = browser.get("/portal/t/pp-a").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("href=\"/portal/t/pp-a/e/{ours_id}\"")), "{page}");
    assert!(!page.contains("/console/t/"), "{page}");
    // Not another tenant's, however asked.
    for path in [
        "/portal/t/pp-b".to_string(),
        format!("/portal/t/pp-b/e/{theirs_id}"),
        format!("/portal/t/pp-b/d/dlv_{theirs_id}_evt_x"),
    ] {
        let (status, page, _) = browser.get(&path).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(!page.contains("theirs-secret-path"), "{path}");
    }
    let (status, page, _) = browser.get(&format!("/portal/t/pp-a/e/{theirs_id}")).await;
    assert_eq!(status, 404, "another tenant's endpoint under this tenant: {page}");
    assert!(!page.contains("theirs-secret-path"));
    // The portal's cookie is no console sign-in.
    let (status, _, headers) = browser.get("/console/tenants").await;
    assert_eq!((status, &headers["location"]), (303, &"/console/".parse().unwrap()));

    // A full session disables through the page, as the API would, and the audit log names it.
    let endpoint_page = format!("/portal/t/pp-a/e/{ours_id}");
    let (_, page, _) = browser.get(&endpoint_page).await;
    assert!(page.contains("id=\"disable\""), "{page}");
    let csrf = csrf_of(&page);
    assert_eq!(
        browser.post(&format!("{endpoint_page}/disable"), "guess").await.0,
        403,
        "a post without the page's token"
    );
    assert_eq!(browser.post(&format!("{endpoint_page}/disable"), &csrf).await.0, 303);
    let (_, now) = api.get(&format!("/v1/tenants/pp-a/endpoints/{ours_id}")).await;
    assert_eq!(now["disabled"], true, "{now}");
    let (_, log) = api
        .get(&format!(
            "/v1/tenants/pp-a/audit?action=endpoint.disabled&target_id={ours_id}"
        ))
        .await;
    assert_eq!(log["data"][0]["actor"]["kind"], "portal", "{log}");

    // A read-only session sees the page without the action, and the server refuses the post.
    let read_only = portal_token(api, "pp-a", json!({"read_only": true})).await;
    let mut reader = Browser::new(&base);
    reader.open_ok(&read_only).await;
    let (status, page, _) = reader.get(&endpoint_page).await;
    assert_eq!(status, 200);
    assert!(page.contains("read-only") && !page.contains("id=\"enable\""), "{page}");
    let csrf = csrf_of(&page);
    let (status, page) = reader.post(&format!("{endpoint_page}/enable"), &csrf).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("read-only session"), "{page}");
    let (_, now) = api.get(&format!("/v1/tenants/pp-a/endpoints/{ours_id}")).await;
    assert_eq!(now["disabled"], true, "a read-only session enabled it");
    // Whatever it posts: the forms' posts are API calls as the session, which the API refuses.
    let (_, list) = api.get("/v1/tenants/pp-a/endpoints").await;
    let before = list["data"].as_array().unwrap().len();
    for path in [
        "/portal/t/pp-a/new".to_string(),
        format!("{endpoint_page}/edit"),
        format!("{endpoint_page}/delete"),
        format!("{endpoint_page}/test"),
        format!("{endpoint_page}/rotate"),
        format!("{endpoint_page}/dead-letters"),
        "/portal/t/pp-a/notifications".to_string(),
    ] {
        let (status, page) = reader.post(&path, &csrf).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("read-only session"), "{path}: {page}");
    }
    let (_, list) = api.get("/v1/tenants/pp-a/endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), before);
    // The pages of the forms are not offered either.
    for path in ["/portal/t/pp-a/new".to_string(), format!("{endpoint_page}/edit")] {
        assert_eq!(reader.get(&path).await.0, 403, "{path}");
    }
    let (_, tenant_page, _) = reader.get("/portal/t/pp-a").await;
    assert!(!tenant_page.contains("id=\"new\""), "{tenant_page}");
    // A full session's forms work (the API takes the session's changes).
    let (_, full_page, _) = browser.get("/portal/t/pp-a").await;
    assert!(full_page.contains("id=\"new\""), "{full_page}");

    // Close: this browser leaves; the session itself still works elsewhere.
    let (status, _) = reader.post("/portal/close", &csrf).await;
    assert_eq!(status, 303);
    assert_eq!(
        api.with_token(Some(&read_only))
            .get("/v1/tenants/pp-a/endpoints")
            .await
            .0,
        200
    );

    // Revoked: every page refuses within a second or so, and clears the cookie.
    assert_eq!(
        api.call(Method::DELETE, "/v1/tenants/pp-a/portal-sessions", None)
            .await
            .0,
        204
    );
    let ended = poll_until(Duration::from_secs(5), || async {
        let (status, page, headers) = browser.get("/portal/t/pp-a").await;
        (status == 401).then_some((page, headers))
    })
    .await
    .expect("a revoked session still shows pages after 5 s");
    assert!(ended.0.contains("has ended"), "{}", ended.0);
    let cleared = ended.1["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("hookline_portal=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // Expired: refused too.
    let short = portal_token(api, "pp-a", json!({"ttl_s": 1})).await;
    let mut late = Browser::new(&base);
    late.open_ok(&short).await;
    assert_eq!(late.get("/portal/t/pp-a").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(late.get("/portal/t/pp-a").await.0, 401);
}

#[tokio::test]
async fn a_portal_that_may_be_framed_says_where_and_keeps_its_cookie_in_the_frame() {
    let node = Node::start_ready(
        &NodeOpts::new(&shared_redis_url(), &unique_prefix("portal-frame"))
            // Any whitespace separates sources in the setting; the header gets single spaces.
            .set("console__portal_frame_ancestors", "'self'\n https://dash.example.com"),
    )
    .await;
    let mut browser = Browser::new(&node.api.base);
    let (_, _, headers) = browser.get("/portal/").await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'self' https://dash.example.com;"),
        "{csp}"
    );
    assert!(
        headers.get("x-frame-options").is_none(),
        "X-Frame-Options cannot name origins"
    );
    // The console itself is never framed.
    let (_, _, headers) = browser.get("/console/").await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    // Inside another site's frame, only a SameSite=None cookie reaches the portal; browsers
    // take one only if it is Secure, and keep it for that frame alone if it is Partitioned.
    let token = portal_token(&node.api, "pp-f", json!({})).await;
    let set = browser.open_ok(&token).await;
    assert!(
        set.contains("Secure") && set.contains("SameSite=None") && set.contains("Partitioned"),
        "{set}"
    );
    let (status, _, headers) = browser.get("/portal/t/pp-f").await;
    assert_eq!(status, 200);
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'self' https://dash.example.com"));
}

const HOSTILE: &str = "<script>document.title='pwned'</script><b>bold</b>";

#[tokio::test]
async fn a_tenant_opens_its_portal_from_a_link_in_a_real_browser_and_in_a_frame() {
    // Framed by a platform's page on http://localhost (another site than the node's 127.0.0.1).
    let node = Node::start_ready(
        &NodeOpts::new(&shared_redis_url(), &unique_prefix("portal-browser"))
            .set("console__portal_frame_ancestors", "http://localhost:*"),
    )
    .await;
    let api = &node.api;
    let (tenant, other) = ("pb-ours", "pb-theirs");
    let ep = api
        .create_endpoint(
            tenant,
            json!({"url": "http://127.0.0.1:9/ours", "description": HOSTILE}),
        )
        .await;
    api.create_endpoint(other, json!({"url": "http://127.0.0.1:9/theirs"}))
        .await;
    let full = portal_token(api, tenant, json!({})).await;
    let read_only = portal_token(api, tenant, json!({"read_only": true})).await;
    let framed = portal_token(api, tenant, json!({})).await;

    let temp = tempfile::tempdir().unwrap();
    let shots = shots_dir(&temp);
    let seen = run_browser_script(
        "portal_browser.py",
        &[
            ("HOOKLINE_URL", &api.base),
            ("HOOKLINE_TENANT", tenant),
            ("HOOKLINE_OTHER_TENANT", other),
            ("HOOKLINE_PORTAL_TOKEN", &full),
            ("HOOKLINE_PORTAL_READ_ONLY_TOKEN", &read_only),
            ("HOOKLINE_PORTAL_FRAMED_TOKEN", &framed),
            ("HOOKLINE_SHOTS", shots.to_str().unwrap()),
        ],
        Duration::from_secs(120),
    )
    .await;
    let base = &api.base;
    // The link lands on the tenant's pages; the token is in no address, not even in history.
    assert_eq!(seen["landed"], format!("{base}/portal/t/{tenant}"), "{seen}");
    assert!(!seen["back_url"].as_str().unwrap().contains("hkp_"), "{seen}");
    assert_eq!(seen["continued_to"], format!("{base}/portal/t/{tenant}"), "{seen}");
    assert_eq!(
        seen["cookie"],
        json!({"httpOnly": true, "sameSite": "None", "path": "/portal"}),
        "{seen}"
    );
    assert_eq!(seen["who"], tenant, "{seen}");
    assert_eq!(seen["descriptions"], json!([HOSTILE]), "{seen}");
    assert_eq!(seen["bold_in_description"], 0, "{seen}");
    assert!(!seen["title"].as_str().unwrap().contains("pwned"), "{seen}");
    // A full session changes things from the page.
    let ep_id = ep["id"].as_str().unwrap();
    assert_eq!(
        seen["endpoint_page"],
        format!("{base}/portal/t/{tenant}/e/{ep_id}"),
        "{seen}"
    );
    assert_eq!(seen["state_after_disable"], "disabled (manual)", "{seen}");
    assert_eq!(seen["state_after_enable"], "enabled", "{seen}");
    // Another tenant: refused, nothing listed.
    assert!(
        seen["other_tenant_error"]
            .as_str()
            .unwrap()
            .contains("may not act on that tenant"),
        "{seen}"
    );
    assert_eq!(seen["other_tenant_rows"], 0, "{seen}");
    // Read-only: the page offers no change, only what the session may read (the signing
    // secret, `endpoints:secrets`); the server refuses a change anyway (the other test).
    assert_eq!(seen["read_only_who"], format!("{tenant} · read-only"), "{seen}");
    assert_eq!(seen["read_only_buttons"], json!(["secret"]), "{seen}");
    assert_eq!(seen["read_only_links"], json!([]), "{seen}");
    assert_eq!(seen["read_only_state"], "enabled", "{seen}");
    // In the platform's frame, the portal opened and kept its session across the redirect.
    assert_eq!(seen["framed"], json!([ep_id]), "{seen}");
    assert_eq!(seen["framed_who"], json!([tenant]), "{seen}");
    let (_, log) = api
        .get(&format!(
            "/v1/tenants/{tenant}/audit?target_id={ep_id}&action=endpoint.disabled"
        ))
        .await;
    assert_eq!(log["data"][0]["actor"]["kind"], "portal", "{log}");
    for name in ["portal", "portal-framed"] {
        let variety = seen["shots"][name].as_u64().unwrap();
        assert!(variety > 8, "the {name} screenshot looks blank ({variety})");
    }
}

#[tokio::test]
async fn a_portal_session_sees_only_what_its_scopes_let_it_read() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("portal-scopes"))).await;
    let api = &node.api;
    let ep = api
        .create_endpoint("ps-a", json!({"url": "http://127.0.0.1:9/a", "disabled": true}))
        .await;
    let id = ep["id"].as_str().unwrap();
    let event = api.post_event("ps-a", "order.created", json!({})).await.unwrap();
    // A platform key that may open sessions and read endpoints, not deliveries.
    let (_, key) = api
        .post(
            "/v1/tenants/ps-a/keys",
            json!({"scopes": ["portal:create", "endpoints:read"]}),
        )
        .await;
    let platform = api.with_token(key["key"].as_str());
    let narrow = portal_token(&platform, "ps-a", json!({})).await;
    let mut browser = Browser::new(&api.base);
    browser.open_ok(&narrow).await;
    let (status, page, _) = browser.get(&format!("/portal/t/ps-a/e/{id}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("may not read deliveries"), "{page}");
    assert!(!page.contains(&event) && !page.contains("svg"), "{page}");
    let (_, list, _) = browser.get("/portal/t/ps-a").await;
    assert!(list.contains(id) && !list.contains("Success, 24 h"), "{list}");
    for path in [
        "/portal/t/ps-a/deliveries".to_string(),
        format!("/portal/t/ps-a/events?id={event}"),
    ] {
        assert_eq!(browser.get(&path).await.0, 403, "{path}");
    }
    // A cookie of a session that ended, sent before the good one, does not shadow it.
    let ended = portal_token(api, "ps-a", json!({"ttl_s": 1})).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let good = browser.cookie.clone();
    browser.cookie = format!("hookline_portal={ended}; {good}");
    assert_eq!(browser.get("/portal/t/ps-a").await.0, 200);
    browser.cookie = format!("hookline_portal={ended}");
    assert_eq!(browser.get("/portal/t/ps-a").await.0, 401);
}

#[tokio::test]
async fn the_endpoints_list_pages_by_a_hundred() {
    let node = Node::start_ready(&NodeOpts::new(&shared_redis_url(), &unique_prefix("portal-paging"))).await;
    let api = &node.api;
    let mut made = std::collections::BTreeSet::new();
    for i in 0..102 {
        let ep = api
            .create_endpoint("pg-many", json!({"url": format!("http://127.0.0.1:9/{i}")}))
            .await;
        made.insert(ep["id"].as_str().unwrap().to_string());
    }
    let token = portal_token(api, "pg-many", json!({})).await;
    let mut browser = Browser::new(&api.base);
    browser.open_ok(&token).await;
    let ids_on = |page: &str| -> Vec<String> {
        page.split("<td class=\"id\"><a href=\"/portal/t/pg-many/e/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().to_string())
            .collect()
    };
    let (_, first, _) = browser.get("/portal/t/pg-many").await;
    assert_eq!(ids_on(&first).len(), 100);
    assert!(
        first.contains("Endpoints 1–100") && first.contains("href=\"/portal/t/pg-many?at=100\""),
        "{first}"
    );
    assert!(!first.contains("id=\"previous\""));
    let (_, second, _) = browser.get("/portal/t/pg-many?at=100").await;
    assert_eq!(ids_on(&second).len(), 2, "{second}");
    assert!(
        second.contains("Endpoints 101–102") && second.contains("href=\"/portal/t/pg-many?at=0\""),
        "{second}"
    );
    assert!(!second.contains("id=\"next\""));
    let seen: std::collections::BTreeSet<String> = ids_on(&first).into_iter().chain(ids_on(&second)).collect();
    assert_eq!(seen, made, "every endpoint on exactly one of the two pages");
    // Not a number: the first page.
    let (status, again, _) = browser.get("/portal/t/pg-many?at=lots").await;
    assert_eq!((status, ids_on(&again).len()), (200, 100));
}
