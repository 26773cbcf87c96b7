//! `POST /v1/tenants/{tenant}/keys` (admin): mint a tenant API key, shown once, stored hashed.

use super::auth::{digest, Caller};
use super::error::{ApiResult, ErrorBody};
use super::extract::Path;
use super::AppState;
use super::TenantPath;
use crate::store::ApiKeyRecord;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}

/// A new tenant key. `key` is shown only here: the node keeps its SHA-256.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKey {
    pub id: String,
    /// `hk_…`: a bearer token that may do everything inside this tenant and nothing outside.
    pub key: String,
    pub tenant: String,
}

/// Mint a tenant API key (admin token only).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/keys",
    operation_id = "create_tenant_key",
    tag = "keys",
    params(TenantPath),
    responses(
        (status = 201, description = "the key, shown once", body = NewKey),
        (status = 403, description = "the token is a tenant key: only an admin token may mint keys", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> ApiResult<(StatusCode, axum::Json<NewKey>)> {
    caller.require_admin()?;
    caller.authorize(&tenant)?;
    let key = crate::ids::new_api_key();
    let record = ApiKeyRecord {
        id: crate::ids::new_key_id(),
        tenant,
        created_at_ms: hookline_actors::now_ms(),
    };
    state
        .store
        .put_api_key(&crate::store::keys::hex(&digest(&key)), &record)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewKey {
            id: record.id,
            key,
            tenant: record.tenant,
        }),
    ))
}
