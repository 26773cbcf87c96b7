//! Who looks at a console page: an operator signed in at `/console/` (an admin: every tenant),
//! or a tenant's portal session at `/portal/` (its `hkp_` token in a cookie: one tenant, and
//! reads only for a read-only session). Both entrances run the same page code; what a viewer
//! may see or do is what the API lets its caller do (`Caller::authorize`), checked by the
//! server on every page and post, whatever buttons a page shows.

use super::auth::{token_caller, ActingFor, Caller, Scope};
use super::console::{cookie_values, esc, page, same_origin, same_text, session};
use super::{AppState, RequestId};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

/// The portal's cookie: the session's token itself (the browser got it in the link's fragment).
pub const PORTAL_COOKIE: &str = "hookline_portal";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entrance {
    Console,
    Portal,
}

impl Entrance {
    /// The entrance a request came in by.
    pub(super) fn of(path: &str) -> Entrance {
        if path == "/portal" || path.starts_with("/portal/") {
            Entrance::Portal
        } else {
            Entrance::Console
        }
    }
}

/// The API's routes, as the console's pages call them in-process ([`Viewer::call`]).
#[derive(Clone)]
pub(super) struct InnerApi(pub(super) Router);

pub(super) struct Viewer {
    pub(super) entrance: Entrance,
    /// An admin for the console; the portal session (`Caller::Tenant`, `portal: true`).
    pub(super) caller: Caller,
    /// What every post of this viewer's pages carries.
    pub(super) csrf: String,
    /// The API, and what its calls carry of this request: its id, its peer, its forwarding.
    api: Option<InnerApi>,
    context: Extensions,
    forwarded: Vec<HeaderValue>,
}

/// What an API call answered: its status, its JSON body (`Null` for none), its headers.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    pub(super) headers: HeaderMap,
}

impl Answer {
    pub(super) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The error's message (`{"error": {"message"}}`), or the status.
    pub(super) fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map_or_else(|| self.status.to_string(), str::to_string)
    }
}

/// Largest API answer a page reads.
const ANSWER_LIMIT: usize = 8 << 20;

impl Viewer {
    fn new(parts: &Parts, entrance: Entrance, caller: Caller, csrf: String) -> Viewer {
        let mut context = Extensions::new();
        if let Some(id) = parts.extensions.get::<RequestId>() {
            context.insert(id.clone());
        }
        if let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            context.insert(*peer);
        }
        Viewer {
            entrance,
            caller,
            csrf,
            api: parts.extensions.get::<InnerApi>().cloned(),
            context,
            forwarded: parts.headers.get_all("x-forwarded-for").iter().cloned().collect(),
        }
    }

    /// `method path` of the API (`path` with its query), as this viewer's caller: the API
    /// authorizes, validates, changes and audits exactly as for any client.
    pub(super) async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let failed = |why: String| Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: serde_json::json!({"error": {"code": "internal", "message": why}}),
            headers: HeaderMap::new(),
        };
        let Some(InnerApi(api)) = self.api.clone() else {
            return failed("the console has no API to call".into());
        };
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = match Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes))
        {
            Ok(request) => request,
            Err(e) => return failed(format!("could not make the request {path}: {e}")),
        };
        for value in &self.forwarded {
            request.headers_mut().append("x-forwarded-for", value.clone());
        }
        request.extensions_mut().extend(self.context.clone());
        request.extensions_mut().insert(ActingFor(self.caller.clone()));
        let Ok(response) = api.oneshot(request).await;
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, ANSWER_LIMIT).await {
            Ok(bytes) if bytes.is_empty() => Value::Null,
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) => return failed(format!("could not read the answer of {path}: {e}")),
        };
        Answer {
            status: parts.status,
            body,
            headers: parts.headers,
        }
    }

    /// Where this viewer's pages live: `/console` or `/portal`.
    pub(super) fn base(&self) -> &'static str {
        match self.entrance {
            Entrance::Console => "/console",
            Entrance::Portal => "/portal",
        }
    }

    /// The (escaped) address of `rest` in `tenant`'s pages, e.g. `link("acme", "/e/ep_1")`.
    pub(super) fn link(&self, tenant: &str, rest: &str) -> String {
        esc(&format!("{}/t/{tenant}{rest}", self.base()))
    }

    /// May this viewer do what `scope` names (in its own tenant)? Pages show an action only
    /// then; the API checks the post again ([`Viewer::call`]).
    pub(super) fn may(&self, scope: Scope) -> bool {
        self.caller.may(scope)
    }

    /// The tenant a portal session belongs to.
    pub(super) fn own_tenant(&self) -> Option<&str> {
        match &self.caller {
            Caller::Tenant { tenant, .. } => Some(tenant),
            Caller::Admin { .. } => None,
        }
    }

    /// May this viewer change nothing at all (a read-only portal session)?
    pub(super) fn read_only(&self) -> bool {
        ![
            Scope::EndpointsWrite,
            Scope::DeliveriesReplay,
            Scope::SourcesWrite,
            Scope::EventsWrite,
        ]
        .into_iter()
        .any(|scope| self.may(scope))
    }

    /// When a portal session ends (never for an operator: the console's sign-in has its own).
    pub(super) fn expires_at_ms(&self) -> Option<u64> {
        match &self.caller {
            Caller::Tenant { expires_at_ms, .. } => *expires_at_ms,
            Caller::Admin { .. } => None,
        }
    }

    /// The page to answer when this viewer may not read `tenant`'s pages (with `scope`): 404
    /// for a name that cannot be a tenant, 403 for another tenant than a portal session's.
    pub(super) fn refuse_read(&self, tenant: &str, scope: Scope) -> Option<Response> {
        if !crate::ids::is_tenant(tenant) {
            return Some(self.not_found("tenant name"));
        }
        let refused = self.caller.authorize(tenant, scope).err()?;
        Some(self.error(refused.status, "Refused", &refused.message))
    }

    /// [`Viewer::refuse_post`], then 404 for a tenant or endpoint id that cannot be one: what
    /// every post about one endpoint checks before it calls the API.
    pub(super) fn refuse_endpoint_post(
        &self,
        headers: &HeaderMap,
        csrf: &str,
        tenant: &str,
        id: &str,
    ) -> Option<Response> {
        self.refuse_post(headers, csrf).or_else(|| {
            (!crate::ids::is_tenant(tenant) || !crate::ids::is_endpoint_id(id)).then(|| self.not_found("endpoint"))
        })
    }

    /// The page to answer when a post is not from this viewer's own page: another origin, or
    /// without the viewer's CSRF token.
    pub(super) fn refuse_post(&self, headers: &HeaderMap, csrf: &str) -> Option<Response> {
        (!same_origin(headers) || !same_text(csrf, &self.csrf)).then(|| {
            self.error(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form must be sent from the console's own page.",
            )
        })
    }

    /// A page saying what went wrong, with the viewer's header.
    pub(super) fn error(&self, status: StatusCode, title: &str, message: &str) -> Response {
        page(
            status,
            title,
            Some(self),
            &format!("<p class=\"error\">{}</p>", esc(message)),
        )
    }

    /// 404: no such `what`.
    pub(super) fn not_found(&self, what: &str) -> Response {
        self.error(StatusCode::NOT_FOUND, "Not found", &format!("No such {what}."))
    }
}

/// The portal session's CSRF token: derived from its token, so nothing more is stored.
fn portal_csrf(token: &str) -> String {
    crate::store::keys::hex(&super::auth::digest(&format!("hookline portal csrf\n{token}")))[..32].to_string()
}

/// Does `token` look like a portal session's (`hkp_` and letters and digits)?
pub(super) fn is_portal_token(token: &str) -> bool {
    token
        .strip_prefix("hkp_")
        .is_some_and(|rest| (1..=100).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The portal tokens in the request's cookies, in order (normally one).
pub(super) fn portal_tokens(headers: &HeaderMap) -> Vec<String> {
    cookie_values(headers, PORTAL_COOKIE)
        .into_iter()
        .filter(|t| is_portal_token(t))
        .collect()
}

/// The viewer a portal token makes, or why it makes none (401/403 as the API says it).
pub(super) async fn portal_viewer(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<Viewer, (StatusCode, String)> {
    match token_caller(parts, state, token).await {
        Ok(caller @ Caller::Tenant { portal: true, .. }) => {
            Ok(Viewer::new(parts, Entrance::Portal, caller, portal_csrf(token)))
        }
        // An admin token or a key opens the API, not the portal.
        Ok(_) => Err((StatusCode::UNAUTHORIZED, "That is not a portal link.".into())),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Err((
            StatusCode::UNAUTHORIZED,
            "This portal session has ended (it expired or was revoked). Open the portal again from your platform."
                .into(),
        )),
        Err(e) => Err((e.status, e.message)),
    }
}

/// The portal's cookie, set (`token`, for `max_age_s`) or cleared (`None`). A portal that may
/// be framed by another site needs `SameSite=None` to see its cookie inside the frame, and so
/// `Secure` (HTTPS, or localhost) and `Partitioned` (the cookie lives in that frame only).
pub(super) fn portal_cookie(state: &AppState, token: Option<(&str, u64)>) -> HeaderValue {
    let site = if state.config.console.portal_framed() {
        "Secure; SameSite=None; Partitioned"
    } else {
        "SameSite=Strict"
    };
    let (value, max_age) = token.unwrap_or(("", 0));
    let cookie = format!("{PORTAL_COOKIE}={value}; Path=/portal; HttpOnly; {site}; Max-Age={max_age}");
    HeaderValue::from_str(&cookie).expect("a cookie of checked characters")
}

/// Back to the portal's first page, its cookie cleared, with `why` said there.
fn portal_ended(state: &AppState, status: StatusCode, why: &str) -> Response {
    let mut answer = super::console_portal::landing_page(state, status, Some(why));
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, portal_cookie(state, None));
    answer
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Entrance::of(parts.uri.path()) {
            Entrance::Console => match session(state, &parts.headers).await? {
                Some(s) => Ok(Viewer::new(
                    parts,
                    Entrance::Console,
                    Caller::Admin { id: s.admin },
                    s.csrf,
                )),
                None => Err(Redirect::to("/console/").into_response()),
            },
            Entrance::Portal => {
                let tokens = portal_tokens(&parts.headers);
                if tokens.is_empty() {
                    return Err(Redirect::to("/portal/").into_response());
                }
                // The first that opens a session (an older cookie of the same name, set with
                // other attributes, must not shadow a good one).
                let mut refused = None;
                for token in &tokens {
                    match portal_viewer(parts, state, token).await {
                        Ok(viewer) => return Ok(viewer),
                        Err(why) => {
                            refused.get_or_insert(why);
                        }
                    }
                }
                let (status, why) = refused.unwrap_or((StatusCode::UNAUTHORIZED, String::new()));
                Err(if status == StatusCode::UNAUTHORIZED {
                    portal_ended(state, status, &why)
                } else {
                    // The store failed, or the address is not allowed: the session stays.
                    super::console_portal::landing_page(state, status, Some(&why))
                })
            }
        }
    }
}
