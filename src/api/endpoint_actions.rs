//! Actions on one endpoint: enable it, rotate its signing secret, read it, send it a test event.

use super::audit::Origin;
use super::auth::{Caller, Scope};
use super::endpoints::{change, load, to_json, EndpointOut};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::{AppState, EndpointPath};
use crate::delivery::sign;
use crate::event::NewEvent;
use crate::store::audit::{Kind, Target};
use axum::extract::State;
use axum::http::StatusCode;
use hookline_actors::model::PreviousSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enable))
        .routes(routes!(rotate_secret))
        .routes(routes!(read_secret))
        .routes(routes!(send_test))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewSecret {
    /// The new secret (`hmac_sha256` endpoints); the old one keeps signing beside it for the
    /// overlap.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// The new public key (`ed25519` endpoints); the old key keeps signing beside it for the
    /// overlap.
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
}

/// An endpoint's signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointSecret {
    /// `whsec_…`: what receivers verify signatures with.
    secret: String,
}

/// The endpoint's signing secret (scope `endpoints:secrets`), for a receiver to verify with.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{id}/secret",
    operation_id = "get_endpoint_secret",
    tag = "endpoints",
    params(EndpointPath),
    responses(
        (status = 200, description = "the secret", body = EndpointSecret),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
        (status = 409, description = "an `ed25519` endpoint: it has no shared secret (receivers verify with its \
            `public_key`)", body = ErrorBody),
    )
)]
async fn read_secret(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointSecret>> {
    caller.authorize(&tenant, Scope::EndpointsSecrets)?;
    let cfg = load(&state, &tenant, &id).await?;
    if sign::Scheme::of(&cfg.secret) == sign::Scheme::Ed25519 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "an ed25519 endpoint has no shared secret: receivers verify with its public_key",
        ));
    }
    // Recorded before it is shown: a read that cannot be recorded is refused (503).
    let entry = origin.by(&caller).entry(
        &tenant,
        "endpoint.secret_read",
        Target::new("endpoint", &id),
        Default::default(),
    );
    state.store.audit_only(Kind::Endpoints, &entry).await?;
    Ok(axum::Json(EndpointSecret { secret: cfg.secret }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    /// The `webhook.test` event's id.
    id: String,
    deliveries: u32,
}

/// `?overlap_s=`; unknown parameters are refused (400).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateQuery {
    overlap_s: Option<String>,
}

impl RotateQuery {
    /// The overlap asked for: default a day, at most `MAX_OVERLAP_S`.
    pub(super) fn overlap_s(&self) -> Result<u64, ApiError> {
        match self.overlap_s.as_deref() {
            None => Ok(86_400),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= MAX_OVERLAP_S)
                .ok_or_else(|| ApiError::invalid(format!("overlap_s: whole seconds from 0 to {MAX_OVERLAP_S}"))),
        }
    }
}

/// `previous` after a rotation at `now_ms`: expired secrets dropped, `old` added for
/// `overlap_s` (not at all for 0).
pub(super) fn rotated_out(previous: &mut Vec<PreviousSecret>, old: String, overlap_s: u64, now_ms: u64) {
    previous.retain(|p| p.expires_at_ms > now_ms);
    if overlap_s > 0 {
        previous.push(PreviousSecret {
            secret: old,
            expires_at_ms: now_ms + overlap_s * 1000,
        });
    }
    // Every live secret signs (or is tried on) every request: the newest few are kept.
    if previous.len() > MAX_PREVIOUS_SECRETS {
        previous.drain(..previous.len() - MAX_PREVIOUS_SECRETS);
    }
}

/// Rotated-out secrets kept live at once (older ones stop at once when a newer rotation
/// would pass this many).
pub(super) const MAX_PREVIOUS_SECRETS: usize = 4;

impl IntoParams for RotateQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![super::schema::query_param(
            "overlap_s",
            "Seconds the old secret keeps signing beside the new one (0 to 604800, default 86400).",
            super::schema::overlap_s(),
        )]
    }
}

/// Longest overlap a rotated-out secret may keep signing.
pub(super) const MAX_OVERLAP_S: u64 = 7 * 86_400;

/// Mint a new secret. The old one keeps signing beside it (a second `v1,` signature) for
/// `?overlap_s=` seconds (default a day), so receivers can switch without losing a message.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{id}/rotate-secret",
    operation_id = "rotate_endpoint_secret",
    tag = "endpoints",
    params(EndpointPath, RotateQuery),
    responses(
        (status = 200, description = "the new secret", body = NewSecret),
        (status = 400, description = "a malformed `overlap_s` or tenant, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
    Query(q): Query<RotateQuery>,
) -> ApiResult<axum::Json<NewSecret>> {
    caller.authorize(&tenant, Scope::EndpointsWrite)?;
    let overlap_s = q.overlap_s()?;
    let cfg = change(&state, &origin.by(&caller), &tenant, &id, |cfg| {
        let fresh = sign::Scheme::of(&cfg.secret).new_secret();
        let old = std::mem::replace(&mut cfg.secret, fresh);
        rotated_out(&mut cfg.previous_secrets, old, overlap_s, hookline_actors::now_ms());
        Ok("endpoint.secret_rotated")
    })
    .await?;
    let public_key = sign::public_key(&cfg.secret);
    let secret = public_key.is_none().then_some(cfg.secret);
    Ok(axum::Json(NewSecret { secret, public_key }))
}

/// Send a `webhook.test` event to this endpoint alone (whatever it subscribes to, even if it
/// is disabled: it waits in the queue then). 202 with the event id.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{id}/test",
    operation_id = "send_test_event",
    tag = "endpoints",
    params(EndpointPath),
    responses(
        (status = 202, description = "the test event is stored and queued for this endpoint", body = TestSent),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
        (status = 429, description = "the tenant's ingest limit for this second is spent (`ingest.tenant_rate_limit_per_s`); \
            nothing stored (Retry-After)", body = ErrorBody),
    )
)]
async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
) -> ApiResult<(StatusCode, axum::Json<TestSent>)> {
    caller.authorize(&tenant, Scope::EndpointsWrite)?;
    let cfg = load(&state, &tenant, &id).await?;
    let data = json!({"message": "a test event sent by Hookline", "endpoint_id": cfg.id});
    let event = NewEvent::new(&tenant, TEST_EVENT, &data.to_string(), hookline_actors::now_ms()).only_to(&cfg.id);
    let stored = state.store.ingest(&event).await?;
    if stored.rate_limited {
        // Nothing was stored: a 202 would claim a test send that never happens.
        return Err(super::events::rate_limited(&state));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(TestSent {
            id: event.event_id,
            deliveries: 1,
        }),
    ))
}

/// The type of test sends.
const TEST_EVENT: &str = "webhook.test";

/// Re-enable an endpoint disabled by hand, by a 410 or for failing: its queued work resumes,
/// with a fresh health record (closed breaker, no failure run).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{id}/enable",
    operation_id = "enable_endpoint",
    tag = "endpoints",
    params(EndpointPath),
    responses(
        (status = 200, description = "the endpoint, enabled", body = EndpointOut),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointOut>> {
    caller.authorize(&tenant, Scope::EndpointsWrite)?;
    let cfg = set_disabled(&state, &origin.by(&caller), &tenant, &id, false).await?;
    Ok(axum::Json(
        to_json(&state, &cfg, caller.may(Scope::EndpointsSecrets)).await?,
    ))
}

/// Disable the tenant's endpoint by hand (`disabled_reason: manual`) or enable it (a fresh
/// start for its health), as `author`: what `POST …/enable`, a PATCH of `disabled` and the
/// console do.
pub(super) async fn set_disabled(
    state: &AppState,
    author: &super::audit::Author,
    tenant: &str,
    id: &str,
    disabled: bool,
) -> ApiResult<hookline_actors::EndpointConfig> {
    load(state, tenant, id).await?;
    if !disabled {
        state
            .store
            .save_health(None, id, state.node.shard_of(id), &Default::default())
            .await?;
    }
    change(state, author, tenant, id, |cfg| {
        cfg.disabled = disabled;
        cfg.disabled_reason = disabled.then(|| "manual".to_string());
        Ok(if disabled {
            "endpoint.disabled"
        } else {
            "endpoint.enabled"
        })
    })
    .await
}
