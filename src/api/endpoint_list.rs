//! `GET /v1/tenants/{tenant}/endpoints`: the tenant's endpoints, oldest first, paged by
//! offset, optionally only those whose metadata holds given values (`metadata.<key>=<value>`).

use super::auth::{Caller, Scope};
use super::endpoints::{to_json, EndpointOut};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::{page_limit, AppState, ListQuery, TenantPath};
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

/// Most endpoints one filtered request looks at: past it the page may be short (its cursor
/// goes on from there).
pub const SCAN_BUDGET: usize = 1_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointPage {
    data: Vec<EndpointOut>,
    /// Pass as `cursor` for the next page; null at the end. Filtered by metadata, a page may
    /// hold fewer than `limit` endpoints and still have a next one (each request looks at
    /// 1,000 at most).
    next_cursor: Option<String>,
}

/// The tenant's endpoints, oldest first, paged; `metadata.<key>=<value>` (any number, all
/// must hold) lists only endpoints with those labels.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints",
    operation_id = "list_endpoints",
    tag = "endpoints",
    params(TenantPath, ListQuery),
    responses(
        (status = 200, description = "a page of the tenant's endpoints", body = EndpointPage),
        (status = 400, description = "a malformed tenant, limit, cursor or metadata key, or an unknown query \
            parameter", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<axum::Json<EndpointPage>> {
    caller.authorize(&tenant, Scope::EndpointsRead)?;
    let (mut limit, mut cursor, mut metadata) = (None, None, Vec::new());
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "limit" => &mut limit,
            "cursor" => &mut cursor,
            _ => {
                super::event_search::metadata_param(&name, value, &mut metadata)?;
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::invalid(format!("{name}: given twice")));
        }
    }
    let limit = page_limit(limit)?;
    let offset = super::offset_cursor(cursor.as_deref())?;
    let (endpoints, next) = if metadata.is_empty() {
        state.store.list_endpoints(&tenant, offset, limit).await?
    } else {
        let holds =
            |cfg: &hookline_actors::EndpointConfig| metadata.iter().all(|(k, v)| cfg.metadata.get(k) == Some(v));
        state
            .store
            .find_endpoints(&tenant, offset, limit, SCAN_BUDGET, holds)
            .await?
    };
    let mut data = Vec::with_capacity(endpoints.len());
    for cfg in &endpoints {
        data.push(to_json(&state, cfg, caller.may(Scope::EndpointsSecrets)).await?);
    }
    Ok(axum::Json(EndpointPage {
        data,
        next_cursor: next.map(|n| n.to_string()),
    }))
}
