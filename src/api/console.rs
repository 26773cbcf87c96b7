//! The operator console (`/console/`) and the tenant portal (`/portal/`): pages rendered here
//! from the same store the API uses, with no script but the portal's first page's one
//! (`console_portal`). Both entrances share the tenant pages; `console_viewer` says who is
//! looking and what they may do.
//!
//! - Sign-in takes an admin token once; the node keeps a session in Redis
//!   (`store::console`) and gives the browser only its random id, in an `HttpOnly`,
//!   `SameSite=Strict` cookie scoped to `/console` (never in a URL).
//! - Every POST must come from this origin (`Origin` names this host) and, once signed in,
//!   carry the viewer's CSRF token.
//! - Every answer forbids script (but that one, by its hash), framing (the portal's may be
//!   allowed, `console.portal_frame_ancestors`) and sniffing (`secure_headers`), and every
//!   value is HTML-escaped (`esc`): an endpoint description holding `<script>` is text.

use super::auth::{admin_id, Caller};
use super::console_viewer::{Entrance, Viewer};
use super::AppState;
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

/// The session cookie.
pub const COOKIE: &str = "hookline_console";
/// How long a sign-in lasts.
const SESSION_TTL_S: u64 = 8 * 3600;
/// Endpoints shown on a tenant's page at most.
pub(super) const PAGE: usize = 100;
const STYLE: &str = include_str!("console.css");
/// Answers' `Content-Security-Policy` for `entrance`: no plugin, styles and images from this
/// node only, no script but `script` (a hash source), framing as configured for the portal.
pub(super) fn csp(state: &AppState, entrance: Entrance, script: Option<&str>) -> HeaderValue {
    // The checked list, joined by single spaces (the setting may separate them by any
    // whitespace, which a header cannot carry).
    let ancestors = match entrance {
        Entrance::Console => "'none'".to_string(),
        Entrance::Portal => state
            .config
            .console
            .frame_ancestors()
            .map_or_else(|_| "'none'".to_string(), |list| list.join(" ")),
    };
    let script = script.map(|s| format!(" script-src {s};")).unwrap_or_default();
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';{script} \
         frame-ancestors {ancestors}; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).expect("a policy of checked sources")
}

pub fn router(state: AppState, api: Router) -> Router<AppState> {
    let mut router = Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route("/console/style.css", get(style))
        .route("/console/sign-in", post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/tenants", get(tenants))
        .route("/console/nodes", get(super::console_nodes::nodes))
        .route("/portal", get(|| async { Redirect::to("/portal/") }))
        .route("/portal/", get(super::console_portal::landing))
        .route("/portal/open", post(super::console_portal::open))
        .route("/portal/close", post(super::console_portal::close));
    // The tenant pages, the same at both entrances.
    for base in ["/console", "/portal"] {
        router = router
            .route(&format!("{base}/t/{{tenant}}"), get(super::console_tenant::tenant_page))
            .route(
                &format!("{base}/t/{{tenant}}/e/{{id}}"),
                get(super::console_endpoint::endpoint_page),
            )
            .route(
                &format!("{base}/t/{{tenant}}/e/{{id}}/{{action}}"),
                post(super::console_endpoint::act),
            )
            .route(
                &format!("{base}/t/{{tenant}}/new"),
                get(super::console_edit::new_page).post(super::console_edit::create),
            )
            .route(
                &format!("{base}/t/{{tenant}}/e/{{id}}/edit"),
                get(super::console_edit::edit_page).post(super::console_edit::save),
            )
            .route(
                &format!("{base}/t/{{tenant}}/e/{{id}}/delete"),
                get(super::console_edit::delete_page).post(super::console_edit::delete),
            )
            .route(
                &format!("{base}/t/{{tenant}}/e/{{id}}/dead-letters"),
                get(super::console_log::dead_letters).post(super::console_log::replay_dead_letters),
            )
            .route(
                &format!("{base}/t/{{tenant}}/deliveries"),
                get(super::console_log::deliveries),
            )
            .route(&format!("{base}/t/{{tenant}}/events"), get(super::console_log::event))
            .route(
                &format!("{base}/t/{{tenant}}/sources"),
                get(super::console_sources::sources).post(super::console_sources::create),
            )
            .route(
                &format!("{base}/t/{{tenant}}/sources/{{id}}"),
                get(super::console_sources::source),
            )
            .route(
                &format!("{base}/t/{{tenant}}/notifications"),
                get(super::console_notifications::channels).post(super::console_notifications::create),
            )
            .route(
                &format!("{base}/t/{{tenant}}/d/{{id}}"),
                get(super::console_delivery::delivery_page),
            )
            .route(
                &format!("{base}/t/{{tenant}}/d/{{id}}/replay"),
                post(super::console_delivery::replay),
            );
    }
    router
        .layer(axum::Extension(super::console_viewer::InnerApi(api)))
        .layer(axum::middleware::from_fn_with_state(state, secure_headers))
}

async fn secure_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let entrance = Entrance::of(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key("content-security-policy") {
        headers.insert("content-security-policy", csp(&state, entrance, None));
    }
    if entrance == Entrance::Console || !state.config.console.portal_framed() {
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        // Not `no-referrer`: with it, browsers send `Origin: null` on the console's own posts.
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// HTML-escaped text, for element content and quoted attribute values alike.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A signed-in operator, as the session records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Session {
    pub(super) admin: String,
    pub(super) csrf: String,
}

fn session_hash(id: &str) -> String {
    crate::store::keys::hex(&super::auth::digest(id))
}

/// The values of the request's cookies named `name`, in order (a browser may send two of one
/// name, e.g. set with different attributes).
pub(super) fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('=').map(str::to_string))
        .collect()
}

/// The operator's session id in the request's cookie.
fn cookie_id(headers: &HeaderMap) -> Option<String> {
    cookie_values(headers, COOKIE)
        .into_iter()
        .find(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The request's session, if it has one that is still good: its admin token is still one of
/// `auth.admin_tokens` (an `anonymous` one only while `auth.insecure_no_auth` is on). A session
/// that is no longer good is deleted.
pub(super) async fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, Response> {
    let Some(id) = cookie_id(headers) else { return Ok(None) };
    let hash = session_hash(&id);
    let stored = state.store.get_console_session(&hash).await.map_err(unavailable)?;
    let Some(session) = stored.and_then(|json| serde_json::from_str::<Session>(&json).ok()) else {
        return Ok(None);
    };
    let still_admin = match session.admin.as_str() {
        "anonymous" => state.config.auth.insecure_no_auth,
        admin => state
            .admin_digests
            .iter()
            .any(|d| format!("adm_{}", crate::store::keys::hex(&d[..4])) == admin),
    };
    if !still_admin {
        state.store.delete_console_session(&hash).await.map_err(unavailable)?;
        return Ok(None);
    }
    Ok(Some(session))
}

/// A POST must come from a page of this node: its `Origin` names the host it was sent to.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| reqwest::Url::parse(o).ok());
    let Some(origin) = origin.filter(|o| matches!(o.scheme(), "http" | "https")) else {
        return false;
    };
    match (host, origin.host_str()) {
        (Some(host), Some(origin_host)) => {
            let authority = match origin.port() {
                Some(port) => format!("{origin_host}:{port}"),
                None => origin_host.to_string(),
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

pub(super) fn page(status: StatusCode, title: &str, viewer: Option<&Viewer>, body: &str) -> Response {
    let nav = match viewer {
        Some(v) if v.entrance == Entrance::Console => format!(
            "<nav><a href=\"/console/tenants\">Tenants</a><a href=\"/console/nodes\" id=\"nodes\">Nodes</a>\
             <span class=\"who\">{}</span>\
             <form method=\"post\" action=\"/console/sign-out\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Sign out</button></form></nav>",
            esc(&actor_id(&v.caller)),
            esc(&v.csrf)
        ),
        Some(v) => {
            let tenant = v.own_tenant().unwrap_or_default();
            format!(
                "<nav><a href=\"{}\">Endpoints</a><span class=\"who\">{}{}</span>\
                 <form method=\"post\" action=\"/portal/close\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Close</button></form></nav>",
                v.link(tenant, ""),
                esc(tenant),
                if v.read_only() { " · read-only" } else { "" },
                esc(&v.csrf)
            )
        }
        None => String::new(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Hookline</title>\
         <link rel=\"stylesheet\" href=\"/console/style.css\"></head><body><header><h1>Hookline</h1>{nav}</header>\
         <main>{body}</main></body></html>",
        esc(title)
    );
    (status, Html(html)).into_response()
}

/// The admin's or the session's id, as the audit log names it.
fn actor_id(caller: &Caller) -> String {
    match caller {
        Caller::Admin { id } => id.clone(),
        Caller::Tenant { key_id, .. } => key_id.clone(),
    }
}

fn refused(status: StatusCode, why: &str) -> Response {
    page(status, "Refused", None, &format!("<p class=\"error\">{}</p>", esc(why)))
}

/// The store failed: the page says so plainly; the log says what happened.
pub(super) fn unavailable(e: crate::store::Error) -> Response {
    tracing::warn!(error = %e, "console: the store failed");
    let mut answer = refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "The store is not answering; try again shortly.",
    );
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    answer
}

fn sign_in_form(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<h2>Sign in</h2>{error}<form method=\"post\" action=\"/console/sign-in\" class=\"card\">\
         <label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\">\
         <button type=\"submit\">Sign in</button></form>"
    )
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Err(answer) => answer,
        Ok(Some(_)) => Redirect::to("/console/tenants").into_response(),
        Ok(None) => page(StatusCode::OK, "Sign in", None, &sign_in_form(None)),
    }
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<SignIn>) -> Response {
    if !same_origin(&headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "This form must be sent from the console's own page.",
        );
    }
    let admin = match admin_id(&state, form.token.trim()) {
        Some(id) => id,
        // As the API: without auth, no token is anyone; a wrong token is still wrong.
        None if state.config.auth.insecure_no_auth && form.token.trim().is_empty() => "anonymous".to_string(),
        None => {
            return page(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                None,
                &sign_in_form(Some("That is not an admin token.")),
            )
        }
    };
    let id = crate::store::keys::hex(&rand::random::<[u8; 32]>());
    let session = Session {
        admin,
        csrf: crate::store::keys::hex(&rand::random::<[u8; 16]>()),
    };
    let json = serde_json::to_string(&session).unwrap_or_default();
    if let Err(e) = state
        .store
        .put_console_session(&session_hash(&id), &json, SESSION_TTL_S)
        .await
    {
        return unavailable(e);
    }
    let cookie = format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_S}");
    let mut answer = see_other("/console/tenants");
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("hex cookie"));
    answer
}

/// The body of every signed-in form: the session's CSRF token.
#[derive(Deserialize)]
pub(super) struct Csrf {
    pub(super) csrf: String,
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Csrf>) -> Response {
    let current = match session(&state, &headers).await {
        Err(answer) => return answer,
        Ok(current) => current,
    };
    let Some(current) = current else {
        return signed_out();
    };
    if !same_origin(&headers) || !same_text(&form.csrf, &current.csrf) {
        return refused(
            StatusCode::FORBIDDEN,
            "This form must be sent from the console's own page.",
        );
    }
    if let Some(id) = cookie_id(&headers) {
        if let Err(e) = state.store.delete_console_session(&session_hash(&id)).await {
            return unavailable(e);
        }
    }
    signed_out()
}

/// A 303 to `to` (after a form's post).
pub(super) fn see_other(to: &str) -> Response {
    let mut answer = Redirect::to(to).into_response();
    *answer.status_mut() = StatusCode::SEE_OTHER;
    answer
}

/// Back to sign-in, the cookie cleared.
fn signed_out() -> Response {
    let mut answer = see_other("/console/");
    let gone = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&gone).expect("plain cookie"));
    answer
}

/// Equal, in a time that does not depend on where they differ.
pub(super) fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn tenants(viewer: Viewer, Query(q): Query<TenantQuery>) -> Response {
    let mut error = String::new();
    if let Some(tenant) = q.tenant.as_deref().map(str::trim) {
        if crate::ids::is_tenant(tenant) {
            return Redirect::to(&format!("/console/t/{tenant}")).into_response();
        }
        error = format!(
            "<p class=\"error\">{} is not a tenant name (1 to 64 of a-z, A-Z, 0-9, _ and -).</p>",
            esc(&format!("{tenant:?}"))
        );
    }
    let body = format!(
        "<h2>Tenants</h2>{error}<form method=\"get\" action=\"/console/tenants\" class=\"card\">\
         <label for=\"tenant\">Tenant</label><input id=\"tenant\" name=\"tenant\" required>\
         <button type=\"submit\">Open</button></form>"
    );
    page(StatusCode::OK, "Tenants", Some(&viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_character_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x" + 'y')</script> & more"#),
            "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;)&lt;/script&gt; &amp; more"
        );
    }

    #[test]
    fn posts_must_name_this_host_as_their_origin() {
        let headers = |host: &str, origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            h
        };
        assert!(same_origin(&headers("127.0.0.1:8080", Some("http://127.0.0.1:8080"))));
        assert!(same_origin(&headers("hooks.example", Some("https://hooks.example"))));
        assert!(!same_origin(&headers("127.0.0.1:8080", Some("http://evil.example"))));
        assert!(!same_origin(&headers("127.0.0.1:8080", Some("http://127.0.0.1:9090"))));
        assert!(!same_origin(&headers("127.0.0.1:8080", Some("null"))));
        assert!(!same_origin(&headers("127.0.0.1:8080", Some("ftp://127.0.0.1:8080"))));
        assert!(!same_origin(&headers("127.0.0.1:8080", None)));
    }

    #[test]
    fn the_session_cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        let id = "a".repeat(64);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={id}; y=2")).unwrap(),
        );
        assert_eq!(cookie_id(&h), Some(id));
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}=short")).unwrap(),
        );
        assert_eq!(cookie_id(&h), None);
    }
}
