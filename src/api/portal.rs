//! `/v1/tenants/{tenant}/portal-sessions`: links a platform embeds to give one tenant its
//! portal. A session's token is a bearer token for this API, limited to its tenant, to reads
//! for a read-only session, and to its lifetime; it is stored like a key (the SHA-256 of the
//! token, beside the keys, cached as they are: revoked everywhere within a second).

use super::audit::Origin;
use super::auth::{digest, Caller, Scope};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Whole;
use super::extract::{Path, RawBody};
use super::{rfc3339, AppState, TenantPath};
use crate::store::audit::Target;
use crate::store::ApiKeyRecord;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, revoke_all))
}

/// Longest and default life of a session.
pub const MAX_TTL_S: u64 = crate::store::api_keys::PORTAL_MAX_TTL_S;
const DEFAULT_TTL_S: u64 = 3_600;

/// What a read-only session may do: every read of the tenant (its endpoints' secrets too: the
/// portal shows them on request), nothing that changes state.
const READ_ONLY: [Scope; 8] = [
    Scope::EventsRead,
    Scope::EndpointsRead,
    Scope::EndpointsSecrets,
    Scope::DeliveriesRead,
    Scope::SourcesRead,
    Scope::AuditRead,
    Scope::EventTypesRead,
    Scope::SettingsRead,
];

/// What no portal session holds: the catalogue and the settings are the platform's to
/// define (a session sees them), and a session opens no other.
const NEVER_IN_PORTAL: [Scope; 3] = [Scope::PortalCreate, Scope::EventTypesWrite, Scope::SettingsWrite];

/// A new session. Every field is optional; the body itself may be left out.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionFields {
    /// Seconds the session works: 1 to 604800, default 3600.
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 604800)]
    ttl_s: Option<Whole<u64>>,
    /// True: the session may read everything of the tenant and change nothing (the API
    /// refuses it, 403). Default false.
    read_only: Option<bool>,
}

/// A portal session, as created: `token` and `url` are shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalSession {
    /// `ps_…`, as the audit log names the session.
    id: String,
    /// `/portal/#<token>`: the portal page of the console with the token in the fragment,
    /// which browsers never send to a server.
    url: String,
    /// `hkp_…`: a bearer token for the tenant's API, as the portal uses it.
    token: String,
    expires_at: String,
    read_only: bool,
}

/// Create a portal session for the tenant (scope `portal:create`): a link that opens the
/// tenant's portal, and a token for the tenant's API that expires.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/portal-sessions",
    operation_id = "create_portal_session",
    tag = "portal",
    params(TenantPath),
    request_body(content = Option<SessionFields>, description = "optional: `ttl_s`, `read_only`"),
    responses(
        (status = 201, description = "the session, its token shown once", body = PortalSession),
        (status = 400, description = "a body that is not a session's fields, a `ttl_s` out of range, or a malformed \
            tenant (the message names it)", body = ErrorBody),
        (status = 413, description = "the body is larger than `ingest.max_payload_bytes` + 16 KiB", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(TenantPath { tenant }): Path<TenantPath>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, axum::Json<PortalSession>)> {
    caller.authorize(&tenant, Scope::PortalCreate)?;
    let fields: SessionFields = super::extract::optional_object(&body, "a JSON object {\"ttl_s\", \"read_only\"}")?;
    let ttl_s = fields.ttl_s.map_or(DEFAULT_TTL_S, |w| w.0);
    if !(1..=MAX_TTL_S).contains(&ttl_s) {
        return Err(ApiError::invalid(format!("ttl_s: whole seconds from 1 to {MAX_TTL_S}")));
    }
    let read_only = fields.read_only.unwrap_or(false);
    // A session may do what the session asks for and its creator may do, no more: from
    // where the creator's key may be used, and not past the key's own expiry.
    let wanted: Vec<Scope> = if read_only {
        READ_ONLY.to_vec()
    } else {
        Scope::ALL
            .into_iter()
            .filter(|s| !NEVER_IN_PORTAL.contains(s))
            .collect()
    };
    let scopes: Vec<Scope> = wanted.into_iter().filter(|s| caller.may(*s)).collect();
    let (key_expiry, allowed_ips) = match &caller {
        Caller::Tenant {
            expires_at_ms,
            allowed_ips,
            ..
        } => (*expires_at_ms, allowed_ips.clone()),
        Caller::Admin { .. } => (None, Vec::new()),
    };
    let now = hookline_actors::now_ms();
    let expires_at_ms = key_expiry.map_or(now + ttl_s * 1000, |k| k.min(now + ttl_s * 1000));
    let token = crate::ids::new_portal_token();
    let record = ApiKeyRecord {
        id: crate::ids::new_portal_session_id(),
        tenant,
        created_at_ms: now,
        name: None,
        scopes: Some(scopes.iter().map(|s| s.name().to_string()).collect()),
        expires_at_ms: Some(expires_at_ms),
        allowed_ips,
        prefix: token.chars().take(8).collect(),
        portal: true,
    };
    let expires_at = rfc3339(expires_at_ms);
    let changes = [("read_only", json!(read_only)), ("expires_at", json!(expires_at))]
        .into_iter()
        .map(|(field, to)| (field.to_string(), json!({"from": null, "to": to})))
        .collect();
    let entry = origin.by(&caller).entry(
        &record.tenant,
        "portal.session_created",
        Target::new("portal_session", &record.id),
        changes,
    );
    let hash = crate::store::keys::hex(&digest(&token));
    state.store.put_portal_session(&hash, &record, &entry).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(PortalSession {
            id: record.id,
            url: format!("/portal/#{token}"),
            token,
            expires_at,
            read_only,
        }),
    ))
}

/// Revoke every portal session of the tenant (scope `portal:create`): every node refuses
/// their tokens within a second.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/portal-sessions",
    operation_id = "revoke_portal_sessions",
    tag = "portal",
    params(TenantPath),
    responses(
        (status = 204, description = "every session of the tenant is revoked (also when there was none)"),
    )
)]
async fn revoke_all(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(TenantPath { tenant }): Path<TenantPath>,
) -> ApiResult<StatusCode> {
    caller.authorize(&tenant, Scope::PortalCreate)?;
    let author = origin.by(&caller);
    let entry = |record: &ApiKeyRecord| {
        author.entry(
            &tenant,
            "portal.session_revoked",
            Target::new("portal_session", &record.id),
            Default::default(),
        )
    };
    let revoked = state.store.revoke_portal_sessions(&tenant, entry).await?;
    tracing::info!(tenant = %tenant, revoked, "portal sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}
