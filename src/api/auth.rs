//! Who is calling: an admin (token from config) or a tenant (API key minted by an admin,
//! stored as its SHA-256). Admin tokens are compared in constant time, on their digests.

use super::error::ApiError;
use super::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    Tenant(String),
}

impl Caller {
    /// May this caller act inside `tenant`? (The tenant name is checked here too, so every
    /// tenant-scoped handler starts with one call.)
    pub fn authorize(&self, tenant: &str) -> Result<(), ApiError> {
        if !crate::ids::is_tenant(tenant) {
            return Err(ApiError::invalid("tenant: must match ^[a-zA-Z0-9_-]{1,64}$"));
        }
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(t) if t == tenant => Ok(()),
            Caller::Tenant(_) => Err(ApiError::forbidden()),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this needs an admin token",
            )),
        }
    }
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            if state.config.auth.insecure_no_auth {
                return Ok(Caller::Admin);
            }
            return Err(ApiError::unauthorized());
        };
        let presented = digest(token);
        // Check every admin token (no early exit), so timing says nothing about which matched.
        let is_admin = state
            .admin_digests
            .iter()
            .fold(false, |found, d| found | constant_time_eq(d, &presented));
        if is_admin {
            return Ok(Caller::Admin);
        }
        if token.starts_with("hk_") {
            if let Some(record) = state.store.get_api_key(&crate::store::keys::hex(&presented)).await? {
                return Ok(Caller::Tenant(record.tenant));
            }
        }
        Err(ApiError::unauthorized())
    }
}
