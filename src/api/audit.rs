//! The audit log over HTTP: `GET /v1/tenants/{tenant}/audit` (scope `audit:read`) and
//! `GET /v1/audit` (admin, every tenant); and what every audited handler uses to name who
//! changed what (`Origin`, `Author`). The entries are written by the store, in the same
//! script as the change (`store/audit.rs`).

use super::auth::{caller_address, Caller, Scope};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::{AppState, RequestId, TenantPath};
use crate::store::audit::{Actor, AuditEntry, AuditQuery, Target};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_log))
        .routes(routes!(whole_log))
}

/// Where a request came from, for the entry of the change it makes: its id and the caller's
/// address (behind `server.trusted_proxies`, the forwarded one).
pub struct Origin {
    request_id: Option<String>,
    ip: String,
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Origin {
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
            ip: caller_address(parts, state).to_string(),
        })
    }
}

/// Who makes the changes of one request: the caller where it came from.
pub struct Author {
    actor: Actor,
    request_id: Option<String>,
    ip: String,
}

impl Origin {
    pub fn by(self, caller: &Caller) -> Author {
        let actor = match caller {
            Caller::Admin { id } => Actor {
                kind: "admin".into(),
                id: id.clone(),
            },
            Caller::Tenant { key_id, portal, .. } => Actor {
                kind: if *portal { "portal" } else { "key" }.into(),
                id: key_id.clone(),
            },
        };
        Author {
            actor,
            request_id: self.request_id,
            ip: self.ip,
        }
    }
}

impl Author {
    /// The entry of one change this request makes.
    pub fn entry(&self, tenant: &str, action: &str, target: Target, changes: Map<String, Json>) -> AuditEntry {
        AuditEntry {
            id: String::new(),
            time: super::rfc3339(hookline_actors::now_ms()),
            tenant: tenant.to_string(),
            actor: self.actor.clone(),
            action: action.to_string(),
            target,
            changes,
            request_id: self.request_id.clone(),
            ip: Some(self.ip.clone()),
        }
    }
}

/// `?from=&to=&action=&target_id=&cursor=&limit=`. Unknown parameters are refused (400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    target_id: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

impl IntoParams for LogQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        use super::schema::{audit_cursor, audit_filter, limit, query_param, time_bound};
        vec![
            query_param(
                "from",
                "Only entries at or after this time (RFC 3339, UTC).",
                time_bound(),
            ),
            query_param(
                "to",
                "Only entries at or before this time (RFC 3339, UTC).",
                time_bound(),
            ),
            query_param(
                "action",
                "Only entries of this action, e.g. `endpoint.updated`.",
                audit_filter(),
            ),
            query_param(
                "target_id",
                "Only entries about this id (`ep_…`, `src_…`, `key_…`, `dlv_…`).",
                audit_filter(),
            ),
            query_param(
                "cursor",
                "`next_cursor` of the previous page (absent or empty: the newest entries).",
                audit_cursor(),
            ),
            query_param("limit", "Page size: 1 to 500, default 50.", limit()),
        ]
    }
}

/// Longest `action` or `target_id` filter.
pub const MAX_FILTER: usize = 64;

impl LogQuery {
    fn parse(self) -> ApiResult<AuditQuery> {
        let time = |field: &str, text: Option<String>| text.map(|t| super::parse_time(field, &t)).transpose();
        let filter = |field: &str, text: Option<String>| match text {
            Some(t) if t.chars().count() > MAX_FILTER => {
                Err(ApiError::invalid(format!("{field}: at most {MAX_FILTER} characters")))
            }
            other => Ok(other),
        };
        let cursor = match self.cursor {
            None => None,
            Some(c) if c.is_empty() => None,
            Some(c) => match crate::store::audit::parse_id(&c) {
                Some(_) => Some(c),
                None => return Err(ApiError::invalid("cursor: not a cursor this API returned")),
            },
        };
        Ok(AuditQuery {
            from_ms: time("from", self.from)?,
            to_ms: time("to", self.to)?,
            action: filter("action", self.action)?,
            target_id: filter("target_id", self.target_id)?,
            cursor,
            limit: super::page_limit(self.limit)?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    data: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; null at the end. A page may hold fewer than
    /// `limit` entries and still have a next one, when the filters matched few of the
    /// entries one request reads.
    next_cursor: Option<String>,
}

/// The tenant's audit log, newest first: every change to its endpoints, sources and keys,
/// secret reads and replays, by whom, from where, with the fields before and after.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/audit",
    operation_id = "list_audit",
    tag = "audit",
    params(TenantPath, LogQuery),
    responses(
        (status = 200, description = "a page of the tenant's audit log", body = AuditPage),
        (status = 400, description = "a malformed tenant, time, filter, limit or cursor, or an unknown query \
            parameter", body = ErrorBody),
    )
)]
async fn tenant_log(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    caller.authorize(&tenant, Scope::AuditRead)?;
    let (data, next_cursor) = state.store.audit_page(Some(&tenant), &q.parse()?).await?;
    Ok(axum::Json(AuditPage { data, next_cursor }))
}

/// Every tenant's audit log, newest first (admin token only).
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "list_all_audit",
    tag = "audit",
    params(LogQuery),
    responses(
        (status = 200, description = "a page of the audit log of every tenant", body = AuditPage),
        (status = 400, description = "a malformed time, filter, limit or cursor, or an unknown query parameter", body = ErrorBody),
        (status = 403, description = "the token is a tenant key: only an admin token reads every tenant's log", body = ErrorBody),
    )
)]
async fn whole_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    caller.require_admin()?;
    let (data, next_cursor) = state.store.audit_page(None, &q.parse()?).await?;
    Ok(axum::Json(AuditPage { data, next_cursor }))
}
