//! Transforms on endpoints (issue 21; they run in `crate::transform`): the `transform` field's
//! schema and its check when saved, and `POST /v1/tenants/{tenant}/endpoints/{id}/transform/test`.

use super::auth::{Caller, Scope};
use super::endpoints::load;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonObject, Path};
use super::{AppState, EndpointPath};
use crate::transform::shape::{self, Shaped};
use crate::transform::worker::MAX_PROGRAM;
use crate::transform::RunError;
use axum::extract::State;
use axum::http::StatusCode;
use hookline_actors::TransformSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(test_transform))
}

/// The `transform` field: a jq program, or null (none).
pub fn schema() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .min_length(Some(1))
            .max_length(Some(MAX_PROGRAM))
            .description(Some(
                "A jq program run on each delivery before it is signed and sent. Its input is `{\"id\", \"type\", \
                 \"timestamp\", \"payload\", \"metadata\", \"endpoint\": {\"id\", \"metadata\"}}`; its one output \
                 is an object that may set `payload` (the exact body sent), `headers` (added), `url` (another \
                 receiver, checked like `url`) or `cancel: true` (the delivery ends dead, `cancelled`). A run \
                 has 10 ms (`transform.timeout_ms`) and 1 MiB of output; a failing run dead-letters the \
                 delivery as `transform_failed`. Compiled when saved (400 naming the line and column); null \
                 removes it. See docs/API.md, \"Transformations\".",
            ))
            .build(),
    ))
}

fn refused(why: RunError) -> ApiError {
    match why {
        RunError::Program(e) => ApiError::invalid(format!("transform: {e}")),
        RunError::Unavailable(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "transform_unavailable",
            format!("the transform could not be checked now ({e}); retry later"),
        ),
    }
}

/// A transform given in a create or update: it must compile (400 naming where it does not).
pub async fn check(state: &AppState, given: Option<&Option<String>>) -> ApiResult<()> {
    let Some(Some(program)) = given else {
        return Ok(());
    };
    if program.chars().count() > MAX_PROGRAM {
        return Err(ApiError::invalid(format!(
            "transform: at most {MAX_PROGRAM} characters"
        )));
    }
    state.transforms.check(program).await.map_err(refused)
}

/// An event to try a transform on, as transforms see events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformTestEvent {
    /// The event's id (default `evt_test`).
    id: Option<String>,
    /// The event type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// RFC 3339 (default: now).
    timestamp: Option<String>,
    /// The payload, any JSON.
    #[schema(value_type = Option<Value>)]
    payload: Option<Value>,
    /// String values by key.
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformTest {
    event: TransformTestEvent,
    /// A program to try instead of the endpoint's own (nothing is saved; needs
    /// `endpoints:write`).
    #[schema(schema_with = schema)]
    transform: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransformTestResult {
    /// The program's output, when it ran and its output is one a delivery can use.
    #[schema(value_type = Option<Object>)]
    output: Option<Value>,
    /// The delivery would be cancelled (`"cancel": true`).
    cancelled: bool,
    /// Why the delivery would be dead-lettered as `transform_failed` (null when it would not).
    error: Option<String>,
}

/// Run the endpoint's transform (or the one given) on an event, without storing or sending
/// anything.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{id}/transform/test",
    operation_id = "test_endpoint_transform",
    tag = "endpoints",
    params(EndpointPath),
    request_body = TransformTest,
    responses(
        (status = 200, description = "the output, or why the run failed", body = TransformTestResult),
        (status = 400, description = "invalid JSON, an unknown field, or a program that does not compile (the \
         message names it)", body = ErrorBody),
        (status = 403, description = "`missing_scope`: a program of one's own needs `endpoints:write`", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
        (status = 409, description = "`no_transform`: the endpoint has none and the request gives none", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
        (status = 503, description = "`transform_unavailable`: no transform worker could run it now", body = ErrorBody),
    )
)]
async fn test_transform(
    State(state): State<AppState>,
    caller: Caller,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
    JsonObject(TransformTest { event, transform }): JsonObject<TransformTest>,
) -> ApiResult<axum::Json<TransformTestResult>> {
    caller.authorize(&tenant, Scope::EndpointsRead)?;
    let cfg = load(&state, &tenant, &id).await?;
    let program: std::sync::Arc<str> = match (transform, &cfg.transform) {
        (Some(given), _) => {
            // Running a program of one's own is more than reading the endpoint.
            caller.authorize(&tenant, Scope::EndpointsWrite)?;
            check(&state, Some(&Some(given.clone()))).await?;
            given.into()
        }
        (None, Some(stored)) => stored.clone(),
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_transform",
                "this endpoint has no transform (give one as `transform` to try it)",
            ))
        }
    };
    let body = serde_json::json!({
        "type": event.event_type,
        "timestamp": event.timestamp.unwrap_or_else(|| crate::api::rfc3339(hookline_actors::now_ms())),
        "data": event.payload.unwrap_or(Value::Null),
    });
    let spec = TransformSpec {
        program: program.clone(),
        event: body.to_string().into(),
        endpoint_id: cfg.id.clone(),
        endpoint_metadata: cfg.metadata.clone(),
        event_metadata: event
            .metadata
            .map(|m| serde_json::to_string(&m).unwrap_or_default().into()),
    };
    let event_id = event.id.unwrap_or_else(|| "evt_test".into());
    let failed = |e: String| TransformTestResult {
        output: None,
        cancelled: false,
        error: Some(e),
    };
    let input = shape::input(&event_id, &spec.event, &spec).map_err(ApiError::invalid)?;
    let output = match state.transforms.run(&program, input).await {
        Ok(output) => output,
        Err(RunError::Program(e)) => return Ok(axum::Json(failed(e))),
        Err(unavailable) => return Err(refused(unavailable)),
    };
    let result = match shape::shape(output.clone(), state.config.delivery.require_https) {
        Ok(Shaped::Cancel) => TransformTestResult {
            output: Some(output),
            cancelled: true,
            error: None,
        },
        Ok(Shaped::Send { .. }) => TransformTestResult {
            output: Some(output),
            cancelled: false,
            error: None,
        },
        Err(e) => failed(e),
    };
    Ok(axum::Json(result))
}
