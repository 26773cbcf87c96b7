//! Tenant API keys, stored by the SHA-256 of the key, with a per-tenant index (id → digest) for
//! listing and revoking, and the time each was last used.

use super::audit::{AuditEntry, Kind, Write, Written};
use super::{RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant: String,
    pub created_at_ms: u64,
    #[serde(default)]
    pub name: Option<String>,
    /// `None`: every tenant scope (as every key minted before scopes existed).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// The key's first 8 characters (empty for keys minted before it was kept).
    #[serde(default)]
    pub prefix: String,
    /// A portal session's token (`hkp_…`), not a key: not listed with the keys, gone when it
    /// expires.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub portal: bool,
}

impl RedisStore {
    /// Store a new key's record (by the digest of the key) with the entry that records it.
    pub async fn put_api_key(&self, key_hash: &str, record: &ApiKeyRecord, entry: &AuditEntry) -> Result<()> {
        let json = serde_json::to_string(record)?;
        self.audited(Kind::Keys, key_hash, Write::Set(&json), None, entry)
            .await?;
        let _: Value = self
            .client()
            .hset(self.keys.tenant_keys(&record.tenant), (record.id.as_str(), key_hash))
            .await?;
        Ok(())
    }

    pub async fn get_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let json: Option<String> = self.client().hget(self.keys.api_keys(), key_hash).await?;
        json.map(|j| serde_json::from_str(&j).map_err(super::Error::from))
            .transpose()
    }

    /// A tenant's keys, oldest first, each with when it was last used (ms).
    pub async fn list_api_keys(&self, tenant: &str) -> Result<Vec<(ApiKeyRecord, Option<u64>)>> {
        let client = self.client();
        let index: HashMap<String, String> = client.hgetall(self.keys.tenant_keys(tenant)).await?;
        if index.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, hashes): (Vec<String>, Vec<String>) = index.into_iter().unzip();
        let records: Vec<Option<String>> = client.hmget(self.keys.api_keys(), hashes).await?;
        let used: Vec<Option<u64>> = client.hmget(self.keys.api_keys_used(), ids).await?;
        let mut keys: Vec<(ApiKeyRecord, Option<u64>)> = records
            .into_iter()
            .zip(used)
            .filter_map(|(json, used)| Some((serde_json::from_str(&json?).ok()?, used)))
            .collect();
        keys.sort_by(|a, b| (a.0.created_at_ms, &a.0.id).cmp(&(b.0.created_at_ms, &b.0.id)));
        Ok(keys)
    }

    /// Revoke a tenant's key by id, with the entry `entry(record)` that records it; false if
    /// the tenant has no such key.
    pub async fn revoke_api_key(
        &self,
        tenant: &str,
        key_id: &str,
        entry: impl FnOnce(&ApiKeyRecord) -> AuditEntry,
    ) -> Result<bool> {
        let client = self.client();
        let hash: Option<String> = client.hget(self.keys.tenant_keys(tenant), key_id).await?;
        let Some(hash) = hash else { return Ok(false) };
        let revoked = match self.get_api_key(&hash).await? {
            Some(record) => {
                let entry = entry(&record);
                self.audited(Kind::Keys, &hash, Write::Delete, None, &entry).await? == Written::Done
            }
            // Only the index was left (a revocation stopped half-way): finish it.
            None => false,
        };
        let _: Value = client.hdel(self.keys.tenant_keys(tenant), key_id).await?;
        let _: Value = client.hdel(self.keys.api_keys_used(), key_id).await?;
        Ok(revoked)
    }

    /// Note that a key was used at `now_ms` (and index a key minted before the index existed,
    /// so it can be listed and revoked).
    pub async fn key_used(&self, record: &ApiKeyRecord, key_hash: &str, now_ms: u64) -> Result<()> {
        let client = self.client();
        let _: Value = client
            .hset(self.keys.api_keys_used(), (record.id.as_str(), now_ms))
            .await?;
        let _: Value = client
            .hsetnx(self.keys.tenant_keys(&record.tenant), record.id.as_str(), key_hash)
            .await?;
        Ok(())
    }
}

/// The longest life of a portal session (`ttl_s`).
pub const PORTAL_MAX_TTL_S: u64 = 7 * 86_400;

impl RedisStore {
    /// Store a portal session (its record beside the keys, by the digest of its token) with
    /// the entry that records it.
    pub async fn put_portal_session(&self, token_hash: &str, record: &ApiKeyRecord, entry: &AuditEntry) -> Result<()> {
        // Indexed first: the janitor and a revocation find every session that can exist.
        let expires = record.expires_at_ms.unwrap_or(0) as f64;
        let _: Value = self
            .client()
            .zadd(
                self.keys.portal_expiry(),
                None,
                None,
                false,
                false,
                (expires, token_hash),
            )
            .await?;
        let _: Value = self
            .client()
            .hset(
                self.keys.tenant_portal(&record.tenant),
                (record.id.as_str(), token_hash),
            )
            .await?;
        let json = serde_json::to_string(record)?;
        self.audited(Kind::Keys, token_hash, Write::Set(&json), None, entry)
            .await?;
        Ok(())
    }

    /// Revoke every portal session of a tenant, each with the entry `entry(record)`; returns
    /// how many were revoked.
    pub async fn revoke_portal_sessions(
        &self,
        tenant: &str,
        entry: impl Fn(&ApiKeyRecord) -> AuditEntry,
    ) -> Result<usize> {
        let client = self.client();
        // First the mark every node checks: a session whose record is being written right now
        // (indexed, not yet stored) is refused all the same, once it exists.
        let now = hookline_actors::now_ms();
        let kept = Expiration::EX((PORTAL_MAX_TTL_S + 86_400) as i64);
        let _: Value = client
            .set(self.keys.portal_revoked(tenant), now, Some(kept), None, false)
            .await?;
        let index: HashMap<String, String> = client.hgetall(self.keys.tenant_portal(tenant)).await?;
        let mut revoked = 0;
        for (id, hash) in index {
            // A record not written yet stays indexed: the janitor removes it when it expires.
            let Some(record) = self.get_api_key(&hash).await? else {
                continue;
            };
            if self
                .audited(Kind::Keys, &hash, Write::Delete, None, &entry(&record))
                .await?
                == Written::Done
            {
                revoked += 1;
            }
            let _: Value = client.hdel(self.keys.tenant_portal(tenant), id.as_str()).await?;
            let _: Value = client.zrem(self.keys.portal_expiry(), hash.as_str()).await?;
        }
        Ok(revoked)
    }

    /// When the tenant's portal sessions were last all revoked (ms; 0: never).
    pub async fn portal_revoked_at(&self, tenant: &str) -> Result<u64> {
        let at: Option<u64> = self.client().get(self.keys.portal_revoked(tenant)).await?;
        Ok(at.unwrap_or(0))
    }

    /// Remove up to `limit` portal sessions past their expiry (they stopped working then; the
    /// entry of their creation says when). Returns how many were removed.
    pub(super) async fn expire_portal_sessions(&self, now_ms: u64, limit: usize) -> Result<u64> {
        let client = self.client();
        let hashes: Vec<String> = client
            .zrangebyscore(
                self.keys.portal_expiry(),
                "-inf",
                now_ms as f64,
                false,
                Some((0, limit as i64)),
            )
            .await?;
        for hash in &hashes {
            if let Some(record) = self.get_api_key(hash).await? {
                let _: Value = client
                    .hdel(self.keys.tenant_portal(&record.tenant), record.id.as_str())
                    .await?;
                let _: Value = client.hdel(self.keys.api_keys(), hash.as_str()).await?;
            }
            let _: Value = client.zrem(self.keys.portal_expiry(), hash.as_str()).await?;
        }
        Ok(hashes.len() as u64)
    }
}
