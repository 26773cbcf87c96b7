//! `/v1/tenants/{tenant}/endpoints`: create, list, get, patch, delete, enable. Dead letters
//! are in `dead_letters`, secret rotation and test sends in `endpoint_actions`.

use super::audit::{Author, Origin};
use super::auth::{Caller, Scope};
use super::endpoint_auth::{
    KindName, OAuth2Fields, OAuth2Out, PayloadModeName, SchemeName, Signature, TlsFields, TlsOut,
};
use super::endpoint_rules::{check_https, validate};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonObject, ObjectOnly, Path, Whole};
use super::{rfc3339, AppState};
use super::{EndpointPath, TenantPath};
use crate::delivery::sign;
use crate::store::audit::Target;
use crate::store::endpoints::endpoint_changes;
use crate::store::Written;
use axum::extract::State;
use axum::http::StatusCode;
use hookline_actors::EndpointConfig;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(super::endpoint_list::list, create))
        .routes(routes!(fetch, update, remove))
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The writable fields of an endpoint. A PATCH sends any subset; `null` resets an optional
/// field to the node default, removes `tls` and `oauth2` (and leaves `url`, `event_types`,
/// `secret`, `headers`, `ordered` and `disabled` as they are). Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointFields {
    #[schema(schema_with = super::schema::endpoint_url)]
    url: Option<String>,
    #[schema(schema_with = super::schema::event_types)]
    event_types: Option<Vec<String>>,
    /// At most 1024 characters.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1024)]
    description: Option<Option<String>>,
    #[schema(schema_with = super::schema::secret)]
    secret: Option<String>,
    /// Deliveries per second, 1 to 100000; absent or null: unlimited.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    rate_limit_per_s: Option<Option<Whole<u32>>>,
    /// Attempts at once, 1 to 1000; absent or null: `delivery.max_in_flight`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    max_in_flight: Option<Option<Whole<u32>>>,
    /// Per-attempt timeout, 100 to 300000 ms; absent or null: `delivery.timeout_ms`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>, minimum = 100, maximum = 300000)]
    timeout_ms: Option<Option<Whole<u64>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::schema::retry_schedule)]
    retry_schedule_s: Option<Option<Vec<Whole<u64>>>>,
    #[schema(schema_with = super::schema::headers)]
    headers: Option<BTreeMap<String, String>>,
    /// Deliver strictly one at a time in ingest order (a failing head blocks the rest).
    ordered: Option<bool>,
    /// True disables the endpoint by hand (`disabled_reason: manual`); false enables it.
    disabled: Option<bool>,
    /// How deliveries are signed (default `hmac_sha256`). Changing it mints a key of the new
    /// scheme; the old one keeps signing beside it for a day.
    #[schema(value_type = Option<Signature>)]
    signature: Option<ObjectOnly<Signature>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::endpoint_auth::tls_schema)]
    tls: Option<Option<ObjectOnly<TlsFields>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::endpoint_auth::oauth2_schema)]
    oauth2: Option<Option<ObjectOnly<OAuth2Fields>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::endpoint_filter::schema)]
    filter: Option<Option<serde_json::Map<String, serde_json::Value>>>,
    /// `full` (default): deliveries carry the event. `thin`: `{"type", "timestamp", "data":
    /// {"id", "thin": true}}`; the receiver fetches the event with `GET …/events/{id}`.
    #[schema(value_type = Option<PayloadModeName>)]
    payload_mode: Option<PayloadModeName>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::schema::metadata)]
    metadata: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::endpoint_transform::schema)]
    transform: Option<Option<String>>,
    /// `webhook` (default): Standard Webhooks. `slack`: `url` is a Slack-compatible incoming
    /// webhook; deliveries are chat messages rendered from the event, without signature headers.
    /// `email`: `email` instead of `url`; deliveries are emails sent through the node's SMTP server.
    #[schema(value_type = Option<KindName>)]
    kind: Option<KindName>,
    /// For `kind: email`: the recipients (the endpoint's `url` becomes `mailto:…`).
    email: Option<super::endpoint_email::EmailFields>,
}

/// The body of a creation: `EndpointFields` with `url` required (documentation only: the
/// handler reads `EndpointFields` and refuses a missing `url` itself).
pub struct NewEndpoint;

impl utoipa::PartialSchema for NewEndpoint {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        match <EndpointFields as utoipa::PartialSchema>::schema() {
            RefOr::T(Schema::Object(mut fields)) => {
                fields.description = Some(
                    "A new endpoint: only `url` is required; absent fields take the node defaults. \
                     Unknown fields are refused."
                        .into(),
                );
                fields.required = vec!["url".into()];
                fields.properties.insert("url".into(), super::schema::url(false).into());
                RefOr::T(Schema::Object(fields))
            }
            other => other,
        }
    }
}

impl ToSchema for NewEndpoint {}

/// An endpoint as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    id: String,
    url: String,
    event_types: Vec<String>,
    description: Option<String>,
    /// The signing secret: shown to the admin and to keys with `endpoints:secrets` (and on
    /// creation, to whoever created it); left out for other keys, and for `ed25519`
    /// endpoints (their key never leaves the node).
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    signature: Signature,
    /// `whpk_…`: what receivers of an `ed25519` endpoint verify with (null for `hmac_sha256`).
    public_key: Option<String>,
    rate_limit_per_s: Option<u32>,
    max_in_flight: Option<u32>,
    timeout_ms: Option<u64>,
    retry_schedule_s: Option<Vec<u64>>,
    headers: BTreeMap<String, String>,
    ordered: bool,
    disabled: bool,
    /// The client certificate and CA (never the key); null when not set.
    tls: Option<TlsOut>,
    /// The OAuth2 client (never its secret); null when not set.
    oauth2: Option<OAuth2Out>,
    #[schema(schema_with = super::endpoint_filter::schema)]
    filter: Option<serde_json::Value>,
    payload_mode: PayloadModeName,
    /// The tenant's own labels (`{}` when none): shown, never sent to the receiver.
    metadata: BTreeMap<String, String>,
    #[schema(schema_with = super::endpoint_transform::schema)]
    transform: Option<String>,
    kind: KindName,
    /// The recipients of a `kind: email` endpoint (null for other kinds).
    email: Option<super::endpoint_email::EmailFields>,
    created_at: String,
    updated_at: String,
    state: EndpointState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointState {
    /// closed | open | half_open
    breaker: String,
    /// Deliveries queued for it.
    backlog: u64,
    /// `manual`, `gone` (the receiver answered 410) or `failing` (auto-disabled).
    disabled_reason: Option<String>,
    /// Start of the current run of failures (none since the last success).
    failing_since: Option<String>,
}

impl EndpointFields {
    /// What no single field says: a `secret` is an HMAC secret (`whsec_…`), so it does not go
    /// with the `ed25519` scheme, whose key the node makes.
    fn check(&self, rules: &crate::config::Delivery) -> ApiResult<()> {
        if let Some(url) = &self.url {
            check_https("url", url, rules)?;
        }
        if let Some(Some(oauth)) = &self.oauth2 {
            check_https("oauth2.token_url", oauth.0.token_url(), rules)?;
        }
        if let Some(secret) = &self.secret {
            if sign::decode_secret(secret).is_none() {
                return Err(ApiError::invalid(
                    "secret: must be whsec_ followed by base64 of 24 to 64 bytes",
                ));
            }
            if self
                .signature
                .as_ref()
                .is_some_and(|s| s.0.scheme == SchemeName::Ed25519)
            {
                // Each field is valid alone (the document cannot say they exclude each other).
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "secret: an ed25519 endpoint signs with a key the node makes; leave secret out",
                ));
            }
        }
        Ok(())
    }

    /// The scheme a new endpoint starts with.
    fn scheme(&self) -> sign::Scheme {
        self.signature
            .as_ref()
            .map_or(sign::Scheme::HmacSha256, |s| s.0.scheme.into())
    }

    fn apply(self, cfg: &mut EndpointConfig) {
        if let Some(v) = self.url {
            cfg.url = v;
        }
        if let Some(v) = self.event_types {
            cfg.event_types = v;
        }
        if let Some(v) = self.description {
            cfg.description = v;
        }
        // A change of scheme (a new `secret` is an HMAC one) keeps the old key signing beside
        // the new one for a day; a new HMAC secret replaces an HMAC secret at once, as before.
        let to = match (&self.secret, self.signature.as_ref().map(|s| s.0)) {
            (Some(_), _) => Some(sign::Scheme::HmacSha256),
            (None, Some(s)) => Some(sign::Scheme::from(s.scheme)),
            (None, None) => None,
        };
        if let Some(to) = to.filter(|to| sign::Scheme::of(&cfg.secret) != *to) {
            let fresh = self.secret.clone().unwrap_or_else(|| to.new_secret());
            let old = std::mem::replace(&mut cfg.secret, fresh);
            super::endpoint_actions::rotated_out(&mut cfg.previous_secrets, old, 86_400, hookline_actors::now_ms());
        } else if let Some(v) = self.secret {
            cfg.secret = v;
        }
        if let Some(v) = self.rate_limit_per_s {
            cfg.rate_limit_per_s = v.map(|w| w.0);
        }
        if let Some(v) = self.max_in_flight {
            cfg.max_in_flight = v.map(|w| w.0);
        }
        if let Some(v) = self.timeout_ms {
            cfg.timeout_ms = v.map(|w| w.0);
        }
        if let Some(v) = self.retry_schedule_s {
            cfg.retry_schedule_s = v.map(|delays| delays.into_iter().map(|w| w.0).collect());
        }
        if let Some(v) = self.headers {
            cfg.headers = v;
        }
        if let Some(v) = self.ordered {
            if cfg.ordered && !v {
                cfg.unordered_since_ms = Some(hookline_actors::now_ms());
            }
            cfg.ordered = v;
        }
        if let Some(disabled) = self.disabled {
            cfg.disabled = disabled;
            cfg.disabled_reason = disabled.then(|| "manual".to_string());
        }
        if let Some(v) = self.filter {
            cfg.filter = v.map(|f| std::sync::Arc::new(serde_json::Value::Object(f)));
        }
        if let Some(mode) = self.payload_mode {
            cfg.payload_mode = mode.into();
        }
        if let Some(metadata) = self.metadata {
            cfg.metadata = metadata.unwrap_or_default();
        }
        if let Some(transform) = self.transform {
            cfg.transform = transform.map(Into::into);
        }
        if let Some(kind) = self.kind {
            cfg.kind = kind.into();
        }
        if let Some(email) = self.email {
            cfg.url = email.url();
        }
        super::endpoint_auth::apply(
            cfg,
            self.tls.map(|t| t.map(|t| t.0)),
            self.oauth2.map(|o| o.map(|o| o.0)),
        );
    }
}

pub(super) async fn to_json(state: &AppState, cfg: &EndpointConfig, show_secret: bool) -> ApiResult<EndpointOut> {
    let shard = state.node.shard_of(&cfg.id);
    let backlog = state.store.backlog(&cfg.id, shard).await?;
    let health = state.store.load_health(&cfg.id, shard).await?;
    let email = super::endpoint_email::EmailFields::of(cfg);
    let cfg = cfg.clone();
    Ok(EndpointOut {
        id: cfg.id,
        url: cfg.url,
        event_types: cfg.event_types,
        description: cfg.description,
        secret: (show_secret && sign::Scheme::of(&cfg.secret) == sign::Scheme::HmacSha256).then(|| cfg.secret.clone()),
        signature: Signature::of(&cfg.secret),
        public_key: sign::public_key(&cfg.secret),
        rate_limit_per_s: cfg.rate_limit_per_s,
        max_in_flight: cfg.max_in_flight,
        timeout_ms: cfg.timeout_ms,
        retry_schedule_s: cfg.retry_schedule_s,
        headers: cfg.headers,
        ordered: cfg.ordered,
        disabled: cfg.disabled,
        tls: super::endpoint_auth::tls_out(cfg.tls.as_deref()),
        oauth2: super::endpoint_auth::oauth2_out(cfg.oauth2.as_deref()),
        filter: cfg.filter.as_deref().cloned(),
        payload_mode: cfg.payload_mode.into(),
        metadata: cfg.metadata,
        transform: cfg.transform.as_deref().map(str::to_string),
        kind: cfg.kind.into(),
        email,
        created_at: rfc3339(cfg.created_at_ms),
        updated_at: rfc3339(cfg.updated_at_ms),
        state: EndpointState {
            breaker: health.breaker.state.name().to_string(),
            backlog,
            disabled_reason: cfg.disabled_reason,
            failing_since: health.failing_since_ms.map(rfc3339),
        },
    })
}

/// The endpoint, if it exists and belongs to `tenant` (404 otherwise: ids of other tenants'
/// endpoints are not confirmed to exist).
pub(super) async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<EndpointConfig> {
    if !crate::ids::is_endpoint_id(id) {
        return Err(ApiError::not_found("endpoint"));
    }
    match state.store.get_endpoint(id).await? {
        Some(cfg) if cfg.tenant == tenant => Ok(cfg),
        _ => Err(ApiError::not_found("endpoint")),
    }
}

/// After a change: this node sees it at once; others hear of it on the change channel.
fn announce(state: &AppState, cfg: &EndpointConfig) {
    state.index.upsert(cfg, state.node.shard_of(&cfg.id));
    state.node.endpoint_changed(&cfg.id);
}

/// Change the tenant's endpoint `id` as stored with `change`, recorded as `action` (or what
/// `change` names), and tell the nodes. `change` may run more than once: another writer's
/// change in between is read again, never overwritten.
pub(super) async fn change(
    state: &AppState,
    author: &Author,
    tenant: &str,
    id: &str,
    mut change: impl FnMut(&mut EndpointConfig) -> ApiResult<&'static str>,
) -> ApiResult<EndpointConfig> {
    if !crate::ids::is_endpoint_id(id) {
        return Err(ApiError::not_found("endpoint"));
    }
    let changed = state
        .store
        .change_endpoint(id, |current| {
            if current.tenant != tenant {
                return Err(ApiError::not_found("endpoint"));
            }
            let mut next = current.clone();
            let action = change(&mut next)?;
            let changes = endpoint_changes(Some(current), Some(&next));
            Ok(Some((
                next,
                author.entry(tenant, action, Target::new("endpoint", id), changes),
            )))
        })
        .await?;
    let cfg = changed.ok_or_else(|| ApiError::not_found("endpoint"))?;
    announce(state, &cfg);
    Ok(cfg)
}

/// Create an endpoint (only `url` is required).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints",
    operation_id = "create_endpoint",
    tag = "endpoints",
    params(TenantPath),
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "created; the answer holds its secret", body = EndpointOut),
        (status = 400, description = "invalid JSON, a missing `url`, an unknown or invalid field (the message \
            names it), a private address while `delivery.allow_private_networks` is off, or a malformed tenant", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
        (status = 409, description = "a `secret` with the `ed25519` scheme (its key is the node's)", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(TenantPath { tenant }): Path<TenantPath>,
    JsonObject(fields): JsonObject<EndpointFields>,
) -> ApiResult<(StatusCode, axum::Json<EndpointOut>)> {
    caller.authorize(&tenant, Scope::EndpointsWrite)?;
    if fields.url.is_none() && fields.email.is_none() {
        return Err(ApiError::invalid("url: is required (email, for kind email)"));
    }
    if fields.url.is_some() && fields.email.is_some() {
        return Err(ApiError::invalid("email: give url or email, not both"));
    }
    fields.check(&state.config.delivery)?;
    let now = hookline_actors::now_ms();
    let mut cfg = EndpointConfig::new(
        crate::ids::new_endpoint_id(),
        tenant,
        String::new(),
        fields.scheme().new_secret(),
        now,
    );
    super::endpoint_transform::check(&state, fields.transform.as_ref()).await?;
    fields.apply(&mut cfg);
    validate(&cfg, &state.config.delivery)?;
    let changes = endpoint_changes(None, Some(&cfg));
    let entry = origin.by(&caller).entry(
        &cfg.tenant,
        "endpoint.created",
        Target::new("endpoint", &cfg.id),
        changes,
    );
    state
        .store
        .put_endpoint(&cfg, state.node.shard_of(&cfg.id), &entry)
        .await?;
    announce(&state, &cfg);
    Ok((StatusCode::CREATED, axum::Json(to_json(&state, &cfg, true).await?)))
}

/// One endpoint with its state (breaker, backlog).
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{id}",
    operation_id = "get_endpoint",
    tag = "endpoints",
    params(EndpointPath),
    responses(
        (status = 200, description = "the endpoint", body = EndpointOut),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
) -> ApiResult<axum::Json<EndpointOut>> {
    caller.authorize(&tenant, Scope::EndpointsRead)?;
    let cfg = load(&state, &tenant, &id).await?;
    Ok(axum::Json(
        to_json(&state, &cfg, caller.may(Scope::EndpointsSecrets)).await?,
    ))
}

/// Change any fields; `null` resets an optional one to the node default. Takes effect on the
/// next attempt.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}/endpoints/{id}",
    operation_id = "update_endpoint",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EndpointFields,
    responses(
        (status = 200, description = "the endpoint as changed", body = EndpointOut),
        (status = 400, description = "invalid JSON, an unknown or invalid field (the message names it), a \
            private address while `delivery.allow_private_networks` is off, or a malformed tenant", body = ErrorBody),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
        (status = 409, description = "a `secret` with the `ed25519` scheme (its key is the node's)", body = ErrorBody),
        (status = 415, description = "content-type is not application/json", body = ErrorBody),
    )
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
    JsonObject(fields): JsonObject<EndpointFields>,
) -> ApiResult<axum::Json<EndpointOut>> {
    caller.authorize(&tenant, Scope::EndpointsWrite)?;
    fields.check(&state.config.delivery)?;
    let current = load(&state, &tenant, &id).await?;
    let mut checked = current.clone();
    fields.clone().apply(&mut checked);
    validate(&checked, &state.config.delivery)?;
    super::endpoint_transform::check(&state, fields.transform.as_ref()).await?;
    if current.disabled && !checked.disabled {
        // Enabling by PATCH is the same as POST …/enable: a fresh start for its health.
        state
            .store
            .save_health(None, &id, state.node.shard_of(&id), &Default::default())
            .await?;
    }
    let rules = &state.config.delivery;
    let cfg = change(&state, &origin.by(&caller), &tenant, &id, |cfg| {
        let was_disabled = cfg.disabled;
        fields.clone().apply(cfg);
        validate(cfg, rules)?;
        Ok(match (was_disabled, cfg.disabled) {
            (false, true) => "endpoint.disabled",
            (true, false) => "endpoint.enabled",
            _ => "endpoint.updated",
        })
    })
    .await?;
    Ok(axum::Json(
        to_json(&state, &cfg, caller.may(Scope::EndpointsSecrets)).await?,
    ))
}

/// Delete the endpoint and drop its pending deliveries (they become dead, `endpoint_deleted`).
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/endpoints/{id}",
    operation_id = "delete_endpoint",
    tag = "endpoints",
    params(EndpointPath),
    responses(
        (status = 204, description = "deleted", headers(
            ("Hookline-Dropped-Deliveries" = u64, description = "pending deliveries dropped (always sent)")
        )),
        (status = 404, description = "no such endpoint in this tenant", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(EndpointPath { tenant, id }): Path<EndpointPath>,
) -> ApiResult<(StatusCode, [(&'static str, String); 1])> {
    caller.authorize(&tenant, Scope::EndpointsWrite)?;
    let author = origin.by(&caller);
    // Deleted as read: a change in between is read again, so the entry shows what went.
    for _ in 0..crate::store::endpoints::CHANGE_TRIES {
        let cfg = load(&state, &tenant, &id).await?;
        let changes = endpoint_changes(Some(&cfg), None);
        let entry = author.entry(&tenant, "endpoint.deleted", Target::new("endpoint", &id), changes);
        let dropped = match state
            .store
            .delete_endpoint(&cfg, state.node.shard_of(&id), &entry)
            .await?
        {
            Ok(dropped) => dropped,
            Err(Written::Changed) => continue,
            Err(_) => return Err(ApiError::not_found("endpoint")),
        };
        state.index.remove(&cfg.id);
        state.node.endpoint_changed(&cfg.id);
        tracing::info!(tenant = %cfg.tenant, endpoint_id = %cfg.id, dropped, "endpoint deleted with its pending deliveries");
        // 204 has no body: the count is in a header (and the log and `hookline_deliveries_dropped_total`).
        return Ok((StatusCode::NO_CONTENT, [(DROPPED_HEADER, dropped.to_string())]));
    }
    Err(crate::store::Error::Contended(format!("endpoint {id}")).into())
}

/// How many pending deliveries a DELETE dropped.
pub const DROPPED_HEADER: &str = "hookline-dropped-deliveries";
