//! Who is calling: an admin (token from config) or a tenant key (minted by an admin, stored as
//! its SHA-256), and what the key may do: its scopes, its expiry, the addresses it may come
//! from. Admin tokens are compared in constant time, on their digests. Key records are cached
//! per node for at most [`KEY_CACHE_TTL`], so a revoked key is refused everywhere within it
//! without a Redis read per request.

use super::error::ApiError;
use super::AppState;
use crate::store::ApiKeyRecord;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a tenant key may be allowed to do (`scopes` of `POST …/keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    EventsWrite,
    EventsRead,
    EndpointsRead,
    EndpointsWrite,
    EndpointsSecrets,
    DeliveriesRead,
    DeliveriesReplay,
    SourcesRead,
    SourcesWrite,
    AuditRead,
    PortalCreate,
    EventTypesRead,
    EventTypesWrite,
    SettingsRead,
    SettingsWrite,
}

impl Scope {
    pub const ALL: [Scope; 15] = [
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::EndpointsRead,
        Scope::EndpointsWrite,
        Scope::EndpointsSecrets,
        Scope::DeliveriesRead,
        Scope::DeliveriesReplay,
        Scope::SourcesRead,
        Scope::SourcesWrite,
        Scope::AuditRead,
        Scope::PortalCreate,
        Scope::EventTypesRead,
        Scope::EventTypesWrite,
        Scope::SettingsRead,
        Scope::SettingsWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::EventsRead => "events:read",
            Scope::EndpointsRead => "endpoints:read",
            Scope::EndpointsWrite => "endpoints:write",
            Scope::EndpointsSecrets => "endpoints:secrets",
            Scope::DeliveriesRead => "deliveries:read",
            Scope::DeliveriesReplay => "deliveries:replay",
            Scope::SourcesRead => "sources:read",
            Scope::SourcesWrite => "sources:write",
            Scope::AuditRead => "audit:read",
            Scope::PortalCreate => "portal:create",
            Scope::EventTypesRead => "event_types:read",
            Scope::EventTypesWrite => "event_types:write",
            Scope::SettingsRead => "settings:read",
            Scope::SettingsWrite => "settings:write",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The scope each `/v1/` operation needs (by OpenAPI `operation_id`), as the handlers check it;
/// the document lists it as the operation's bearer scope, and a test holds every route to it.
/// `None`: admin only (key management).
pub fn operation_scope(operation_id: &str) -> Option<Scope> {
    Some(match operation_id {
        "ingest_event" | "ingest_event_batch" => Scope::EventsWrite,
        "get_event" | "list_events" => Scope::EventsRead,
        "list_endpoints" | "get_endpoint" | "test_endpoint_filter" | "test_endpoint_transform" => Scope::EndpointsRead,
        "get_endpoint_secret" => Scope::EndpointsSecrets,
        "create_endpoint"
        | "update_endpoint"
        | "delete_endpoint"
        | "enable_endpoint"
        | "rotate_endpoint_secret"
        | "send_test_event" => Scope::EndpointsWrite,
        "list_deliveries" | "get_delivery" | "list_dead_letters" | "get_endpoint_stats" | "get_tenant_stats" => {
            Scope::DeliveriesRead
        }
        "replay_delivery" | "replay_dead_letters" => Scope::DeliveriesReplay,
        "list_sources" | "get_source" | "list_source_rejections" => Scope::SourcesRead,
        "create_source" | "update_source" | "delete_source" | "rotate_source_secret" => Scope::SourcesWrite,
        "list_audit" => Scope::AuditRead,
        "create_portal_session" | "revoke_portal_sessions" => Scope::PortalCreate,
        "list_event_types" | "get_event_type" => Scope::EventTypesRead,
        "put_event_type" | "archive_event_type" => Scope::EventTypesWrite,
        "get_tenant_settings" => Scope::SettingsRead,
        "put_tenant_settings" => Scope::SettingsWrite,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
pub enum Caller {
    /// `id`: `adm_` + the first 8 hex digits of the token's SHA-256 (`anonymous` when
    /// `auth.insecure_no_auth` let a request without a token in), for the audit log.
    Admin { id: String },
    Tenant {
        /// The key's id (`key_…`), or the portal session's (`ps_…`).
        key_id: String,
        /// A portal session's token rather than a key.
        portal: bool,
        tenant: String,
        /// `None`: every tenant scope (keys minted without scopes, and before scopes existed).
        scopes: Option<Vec<Scope>>,
        /// When the key stops working, and where it may be used from: what a portal session
        /// it opens inherits (a session never outlives or outreaches its key).
        expires_at_ms: Option<u64>,
        allowed_ips: Vec<String>,
    },
}

impl Caller {
    /// May this caller do what `scope` names inside `tenant`? (The tenant name is checked here
    /// too, so every tenant-scoped handler starts with one call.)
    pub fn authorize(&self, tenant: &str, scope: Scope) -> Result<(), ApiError> {
        if !crate::ids::is_tenant(tenant) {
            return Err(ApiError::invalid("tenant: must match ^[a-zA-Z0-9_-]{1,64}$"));
        }
        match self {
            Caller::Admin { .. } => Ok(()),
            Caller::Tenant { tenant: t, .. } if t != tenant => Err(ApiError::forbidden()),
            Caller::Tenant { .. } if self.may(scope) => Ok(()),
            Caller::Tenant { portal: true, .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing_scope",
                format!(
                    "this portal session may not do this: it lacks the scope {} (a read-only session only reads)",
                    scope.name()
                ),
            )),
            Caller::Tenant { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing_scope",
                format!("this key lacks the scope {}", scope.name()),
            )),
        }
    }

    /// Does the caller hold `scope` (in its own tenant)?
    pub fn may(&self, scope: Scope) -> bool {
        match self {
            Caller::Admin { .. } => true,
            Caller::Tenant { scopes: None, .. } => true,
            Caller::Tenant { scopes: Some(s), .. } => s.contains(&scope),
        }
    }

    /// An admin, acting on a well-formed `tenant` (key management).
    pub fn admin_for(&self, tenant: &str) -> Result<(), ApiError> {
        self.require_admin()?;
        self.authorize(tenant, Scope::EventsRead)
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin { .. } => Ok(()),
            Caller::Tenant { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this needs an admin token",
            )),
        }
    }
}

/// `Some(adm_…)` when `token` is one of `auth.admin_tokens`. Every admin token is compared
/// (no early exit), so timing says nothing about which matched.
pub fn admin_id(state: &AppState, token: &str) -> Option<String> {
    let presented = digest(token);
    let is_admin = state
        .admin_digests
        .iter()
        .fold(false, |found, d| found | constant_time_eq(d, &presented));
    is_admin.then(|| format!("adm_{}", crate::store::keys::hex(&presented[..4])))
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a node trusts what it read of a key: a revoked key is refused on every node within
/// this.
pub const KEY_CACHE_TTL: Duration = Duration::from_millis(900);
/// `last_used_at` is written at most this often per key.
const LAST_USED_EVERY_MS: u64 = 60_000;
/// Past this many cached digests (known or not), the cache starts over: random tokens cannot
/// grow it without bound.
const KEY_CACHE_MAX: usize = 10_000;

/// Key records by digest, as read from Redis (`None`: no such key), with when they were read;
/// and when each key's `last_used_at` was last written.
/// A key's record as read (`None`: no such key), and when.
type Cached = (Option<ApiKeyRecord>, Instant);

#[derive(Default)]
pub struct KeyCache {
    records: Mutex<HashMap<[u8; 32], Cached>>,
    used: Mutex<HashMap<String, u64>>,
}

impl KeyCache {
    async fn lookup(&self, state: &AppState, presented: &[u8; 32]) -> Result<Option<ApiKeyRecord>, ApiError> {
        let fresh = {
            let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            records
                .get(presented)
                .filter(|(_, read)| read.elapsed() < KEY_CACHE_TTL)
                .map(|(record, _)| record.clone())
        };
        if let Some(record) = fresh {
            return Ok(record);
        }
        let mut record = state.store.get_api_key(&crate::store::keys::hex(presented)).await?;
        if let Some(session) = record.as_ref().filter(|r| r.portal) {
            // Revoked with its tenant's sessions, even if its record was written meanwhile.
            if state.store.portal_revoked_at(&session.tenant).await? >= session.created_at_ms {
                record = None;
            }
        }
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= KEY_CACHE_MAX {
            records.clear();
        }
        records.insert(*presented, (record.clone(), Instant::now()));
        Ok(record)
    }

    /// Note a use of the key; writes `last_used_at` when the last write is a minute old.
    async fn used(&self, state: &AppState, record: &ApiKeyRecord, key_hash: &str) {
        if record.portal {
            // Sessions are not listed with the keys: nothing to note.
            return;
        }
        let now = hookline_actors::now_ms();
        {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            if used.len() >= KEY_CACHE_MAX {
                used.clear();
            }
            match used.get(&record.id) {
                Some(last) if now.saturating_sub(*last) < LAST_USED_EVERY_MS => return,
                _ => used.insert(record.id.clone(), now),
            };
        }
        // Best effort: a key works whether or not its last use could be written.
        if let Err(e) = state.store.key_used(record, key_hash, now).await {
            tracing::warn!(key = %record.id, error = %e, "could not note a key's last use");
        }
    }
}

/// The caller's address: the socket's peer, or behind `server.trusted_proxies` the forwarded one.
pub fn caller_address(parts: &Parts, state: &AppState) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        // A line that is not text stays in its place, as a malformed hop.
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    crate::inbound::net::caller_ip(peer, &forwarded, &state.trusted_proxies)
}

/// A request the console makes of the API in-process, for a viewer it has already checked (an
/// extension: no client can set it). The API then authorizes that caller as it would any.
#[derive(Debug, Clone)]
pub struct ActingFor(pub Caller);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ActingFor(caller)) = parts.extensions.get::<ActingFor>() {
            return Ok(caller.clone());
        }
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            if state.config.auth.insecure_no_auth {
                return Ok(Caller::Admin { id: "anonymous".into() });
            }
            return Err(ApiError::unauthorized());
        };
        token_caller(parts, state, token).await
    }
}

/// Who presents `token` (an admin token, a key or a portal session's token), checked as every
/// API request is: known, not expired, from an allowed address. The portal's pages use it with
/// the token their cookie holds.
pub async fn token_caller(parts: &Parts, state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let presented = digest(token);
    if let Some(id) = admin_id(state, token) {
        return Ok(Caller::Admin { id });
    }
    if !(token.starts_with("hk_") || token.starts_with("hkp_")) {
        return Err(ApiError::unauthorized());
    }
    let Some(record) = state.keys.lookup(state, &presented).await? else {
        return Err(ApiError::unauthorized());
    };
    if record.expires_at_ms.is_some_and(|at| at <= hookline_actors::now_ms()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this key has expired",
        ));
    }
    if !record.allowed_ips.is_empty() {
        let ip = caller_address(parts, state);
        let ranges: Vec<crate::inbound::net::Cidr> = record.allowed_ips.iter().filter_map(|c| c.parse().ok()).collect();
        if !crate::inbound::net::any_contains(&ranges, ip) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                format!("this key may not be used from {ip}"),
            ));
        }
    }
    state
        .keys
        .used(state, &record, &crate::store::keys::hex(&presented))
        .await;
    let scopes = record
        .scopes
        .as_ref()
        .map(|names| names.iter().filter_map(|n| Scope::parse(n)).collect());
    Ok(Caller::Tenant {
        key_id: record.id,
        portal: record.portal,
        tenant: record.tenant,
        scopes,
        expires_at_ms: record.expires_at_ms,
        allowed_ips: record.allowed_ips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_have_one_name_each_and_parse_back() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.name()), Some(scope));
        }
        assert_eq!(Scope::parse("events:delete"), None);
        let names: std::collections::HashSet<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Scope::ALL.len());
    }

    #[test]
    fn a_key_may_do_what_its_scopes_say_in_its_own_tenant_only() {
        let key = Caller::Tenant {
            key_id: "key_a".into(),
            portal: false,
            expires_at_ms: None,
            allowed_ips: Vec::new(),
            tenant: "a".into(),
            scopes: Some(vec![Scope::EventsRead]),
        };
        assert!(key.authorize("a", Scope::EventsRead).is_ok());
        let missing = key.authorize("a", Scope::EventsWrite).unwrap_err();
        assert_eq!((missing.status.as_u16(), missing.code), (403, "missing_scope"));
        assert!(missing.message.contains("events:write"));
        assert_eq!(key.authorize("b", Scope::EventsRead).unwrap_err().code, "forbidden");
        let every = Caller::Tenant {
            key_id: "key_b".into(),
            portal: false,
            expires_at_ms: None,
            allowed_ips: Vec::new(),
            tenant: "a".into(),
            scopes: None,
        };
        assert!(Scope::ALL.iter().all(|s| every.authorize("a", *s).is_ok()));
        assert!(Caller::Admin { id: "adm_1".into() }
            .authorize("any", Scope::AuditRead)
            .is_ok());
    }
}
