//! The tenant portal's way in (`/portal/`). The link a platform creates carries the session's
//! token in its fragment (`/portal/#hkp_…`), which browsers never send, so no server or proxy
//! log sees it. The first page holds one small script, allowed by its SHA-256 in the page's
//! `Content-Security-Policy` (no other script runs anywhere): it takes the token out of the
//! address bar and posts it to `/portal/open`, which checks it as the API does and keeps it in
//! an `HttpOnly` cookie scoped to `/portal`. Without script, the same form takes the token
//! pasted. From there the portal is the console's tenant pages, limited to the session
//! (`console_viewer`).

use super::console::{esc, page, same_origin, see_other, Csrf};
use super::console_viewer::{is_portal_token, portal_cookie, portal_tokens, portal_viewer, Viewer};
use super::AppState;
use axum::extract::{Form, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Moves the fragment's token into the form and sends it (a new link replaces the session
/// this browser had); the address bar keeps no token. Without a token, goes on to the pages of
/// the session this browser has, if it has one.
const OPEN_SCRIPT: &str = "var t=location.hash.slice(1),c=document.getElementById('continue');\
if(t){history.replaceState(null,'',location.pathname);var f=document.getElementById('open');\
f.elements.token.value=decodeURIComponent(t);f.submit();}else if(c){location.replace(c.href);}";

/// `'sha256-…'`: the CSP source that lets `OPEN_SCRIPT` (and nothing else) run.
static OPEN_SCRIPT_SOURCE: LazyLock<String> = LazyLock::new(|| {
    let hash = Sha256::digest(OPEN_SCRIPT.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(hash))
});

/// The portal's first page (`status`, with `error` said), the token form and its script.
pub(super) fn landing_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    landing_with(state, status, error, None)
}

/// The first page, offering to go on to `open_tenant`'s pages (this browser's session).
fn landing_with(state: &AppState, status: StatusCode, error: Option<&str>, open_tenant: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let open = open_tenant
        .map(|t| {
            format!(
                "<p><a id=\"continue\" href=\"/portal/t/{}\">Go on to the endpoints of {}</a></p>",
                esc(t),
                esc(t)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h2>Portal</h2>{error}{open}<p>The portal opens from the link your platform gives you.</p>\
         <form method=\"post\" action=\"/portal/open\" id=\"open\" class=\"card\">\
         <label for=\"token\">Portal token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\">\
         <button type=\"submit\">Open</button></form><script>{OPEN_SCRIPT}</script>"
    );
    let mut answer = page(status, "Portal", None, &body);
    let csp = super::console::csp(
        state,
        super::console_viewer::Entrance::Portal,
        Some(&OPEN_SCRIPT_SOURCE),
    );
    answer.headers_mut().insert("content-security-policy", csp);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
    }
    answer
}

/// `GET /portal/`: the first page; with a session already open in this browser, it goes on to
/// its tenant's pages unless the address brings a new token (only the page's script sees it).
pub(super) async fn landing(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Result<Viewer, Response>,
) -> Response {
    if portal_tokens(&headers).is_empty() {
        return landing_page(&state, StatusCode::OK, None);
    }
    match viewer {
        Ok(viewer) => landing_with(&state, StatusCode::OK, None, viewer.own_tenant()),
        Err(answer) => answer,
    }
}

#[derive(Deserialize)]
pub(super) struct Open {
    token: String,
}

/// `POST /portal/open`: a portal session's token in, its cookie out, on to its tenant's pages.
pub(super) async fn open(State(state): State<AppState>, parts: Parts, Form(form): Form<Open>) -> Response {
    if !same_origin(&parts.headers) {
        return landing_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("This form must be sent from the portal's own page."),
        );
    }
    let token = form.token.trim();
    // The token must look like one before it is looked up.
    if !is_portal_token(token) {
        return landing_page(&state, StatusCode::UNAUTHORIZED, Some("That is not a portal link."));
    }
    let viewer = match portal_viewer(&parts, &state, token).await {
        Ok(viewer) => viewer,
        Err((status, why)) => return landing_page(&state, status, Some(&why)),
    };
    let (Some(tenant), Some(expires_at_ms)) = (viewer.own_tenant(), viewer.expires_at_ms()) else {
        return landing_page(&state, StatusCode::UNAUTHORIZED, Some("That is not a portal link."));
    };
    let left_s = (expires_at_ms.saturating_sub(hookline_actors::now_ms()) / 1000).max(1);
    let mut answer = see_other(&format!("/portal/t/{tenant}"));
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, portal_cookie(&state, Some((token, left_s))));
    answer
}

/// `POST /portal/close`: this browser leaves the portal (its cookie is cleared; the session
/// itself lives on until it expires or the platform revokes it).
pub(super) async fn close(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    if let Some(answer) = viewer.refuse_post(&headers, &form.csrf) {
        return answer;
    }
    let mut answer = see_other("/portal/");
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, portal_cookie(&state, None));
    answer
}
