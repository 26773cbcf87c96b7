//! `POST /v1/tenants/{tenant}/keys` (admin): mint a tenant API key, shown once, stored hashed.

use super::auth::{digest, Caller};
use super::error::ApiResult;
use super::extract::Path;
use super::AppState;
use crate::store::ApiKeyRecord;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tenants/{tenant}/keys", post(create))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
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
        axum::Json(json!({"id": record.id, "key": key, "tenant": record.tenant})),
    ))
}
