//! Content filters on endpoints (issue 21; the matcher is `hookline_actors::filter`): the
//! `filter` field's schema and check, and `POST /v1/tenants/{tenant}/endpoints/{id}/filter/test`.

use super::auth::{Caller, Scope};
use super::endpoints::load;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonObject, Path};
use super::{AppState, EndpointPath};
use axum::extract::State;
use hookline_actors::filter::Filter;
use hookline_actors::EndpointConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(test_filter))
}

/// The keys a filter may have: `$and`, `$or`, `$not`, or a dotted path from `type`, `payload`
/// or `metadata`.
const KEY_PATTERN: &str = r"^(\$and|\$or|\$not|(type|payload|metadata)(\.[^.]+)*)$";

fn filter_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .pattern(Some(KEY_PATTERN)),
        ))
        .max_properties(Some(hookline_actors::filter::MAX_TESTS))
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
}

/// The `filter` field: a filter document, or null (none: every event of its types).
pub fn schema() -> RefOr<Schema> {
    let null = ObjectBuilder::new().schema_type(SchemaType::new(Type::Null));
    RefOr::T(Schema::OneOf(
        OneOfBuilder::new()
            .item(filter_object())
            .item(null)
            .description(Some(
                "A content filter: only events it matches are delivered, the rest create no delivery. Keys: \
                 `$and`/`$or` (arrays of filters), `$not` (a filter), or a dotted path from `type`, `payload` or \
                 `metadata`, whose value is a JSON value to equal or an object of operators (`$eq $ne $gt $gte \
                 $lt $lte $in $nin $exists $regex $startsWith`). Checked when saved (400 naming the place in \
                 it); null removes it. See docs/API.md, \"Content filters\".",
            ))
            .build(),
    ))
}

/// The endpoint's stored filter, checked: 400 naming the place in it that is wrong.
pub fn check(cfg: &EndpointConfig) -> ApiResult<()> {
    match cfg.filter.as_deref().map(Filter::compile) {
        Some(Err(e)) => Err(ApiError::invalid(e.to_string())),
        _ => Ok(()),
    }
}

/// An event to try a filter on, as filters see events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTestEvent {
    /// The event type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// The payload, any JSON.
    #[schema(value_type = Option<Value>)]
    payload: Option<Value>,
    /// String values by key.
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTest {
    event: FilterTestEvent,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilterTestResult {
    /// Would the endpoint's filter let this event through? (True when it has none; its
    /// `event_types` are not looked at.)
    matches: bool,
}

/// Try the endpoint's content filter on an event, without storing or sending anything.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{id}/filter/test",
    operation_id = "test_endpoint_filter",
    tag = "endpoints",
    params(EndpointPath),
    request_body = FilterTest,
    responses(
        (status = 200, description = "whether the filter matches", body = FilterTestResult),
        (status = 400, description = "invalid JSON or an unknown field (the message names it)", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn test_filter(
    State(state): State<AppState>,
    caller: Caller,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
    JsonObject(FilterTest { event }): JsonObject<FilterTest>,
) -> ApiResult<axum::Json<FilterTestResult>> {
    caller.authorize(&tenant, Scope::EndpointsRead)?;
    let cfg = load(&state, &tenant, &id).await?;
    let content = Value::Object(Map::from_iter([
        ("type".to_string(), event.event_type.map_or(Value::Null, Value::String)),
        ("payload".to_string(), event.payload.unwrap_or(Value::Null)),
        (
            "metadata".to_string(),
            Value::Object(
                event
                    .metadata
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        ),
    ]));
    let matches = match cfg.filter.as_deref().map(Filter::compile) {
        None => true,
        Some(Ok(filter)) => filter.matches(&content),
        Some(Err(e)) => return Err(ApiError::invalid(format!("the stored {e}"))),
    };
    Ok(axum::Json(FilterTestResult { matches }))
}
