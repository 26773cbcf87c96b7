//! Inbound sources: their configs and per-tenant index, their rejection logs, and their
//! per-second request counters.

use super::audit::{AuditEntry, Kind, Write, Written};
use super::{scripts, RedisStore, Result};
use crate::inbound::source::Source;
use fred::prelude::*;
use fred::types::Value;

/// Rejections kept per source.
pub const REJECTIONS_KEPT: i64 = 100;

impl RedisStore {
    /// A source as stored: its secrets and credentials sealed.
    pub(super) fn source_json(&self, source: &Source) -> Result<String> {
        let mut sealed = source.clone();
        self.each_secret(&mut sealed, |s, v| Ok(s.seal(v)))?;
        Ok(serde_json::to_string(&sealed)?)
    }

    /// A source as read back: its secrets and credentials opened.
    pub(super) fn source_from(&self, json: &str) -> Result<Source> {
        let mut source: Source = serde_json::from_str(json)?;
        let id = source.id.clone();
        self.each_secret(&mut source, |s, v| {
            s.open(v)
                .map_err(|e| super::Error::corrupt(&format!("source {id}: {e}")))
        })?;
        Ok(source)
    }

    /// Replace each secret of `source` (signing secrets, password, API key) with `f` of it.
    fn each_secret(&self, source: &mut Source, f: impl Fn(&super::seal::Sealer, &str) -> Result<String>) -> Result<()> {
        if let Some(secret) = &mut source.secret {
            *secret = f(&self.sealer, secret)?;
        }
        for previous in &mut source.previous_secrets {
            previous.secret = f(&self.sealer, &previous.secret)?;
        }
        if let Some(basic) = &mut source.basic {
            basic.password = f(&self.sealer, &basic.password)?;
        }
        if let Some(key) = &mut source.api_key {
            key.value = f(&self.sealer, &key.value)?;
        }
        Ok(())
    }

    /// Store a new source with the entry that records it.
    pub async fn put_source(&self, source: &Source, entry: &AuditEntry) -> Result<()> {
        let json = self.source_json(source)?;
        self.audited(Kind::Sources, &source.id, Write::Set(&json), None, entry)
            .await?;
        let _: Value = self
            .client()
            .zadd(
                self.keys.tenant_sources(&source.tenant),
                None,
                None,
                false,
                false,
                (source.created_at_ms as f64, source.id.as_str()),
            )
            .await?;
        Ok(())
    }

    /// Replace a source read at version `read_at_ms` (its `updated_at_ms` then), with the
    /// entry that records the change, only if it still exists and nothing changed it since.
    pub async fn replace_source(&self, source: &Source, read_at_ms: u64, entry: &AuditEntry) -> Result<Written> {
        let json = self.source_json(source)?;
        self.audited(Kind::Sources, &source.id, Write::Set(&json), Some(read_at_ms), entry)
            .await
    }

    pub async fn get_source(&self, source_id: &str) -> Result<Option<Source>> {
        let json: Option<String> = self.client().hget(self.keys.sources(), source_id).await?;
        json.map(|j| self.source_from(&j)).transpose()
    }

    /// Delete a source as read (at its `updated_at_ms`) with the entry that records it, and
    /// its rejection log. Its events stay (they are the tenant's events).
    pub async fn delete_source(&self, source: &Source, entry: &AuditEntry) -> Result<Written> {
        let guard = Some(source.updated_at_ms);
        let written = self
            .audited(Kind::Sources, &source.id, Write::Delete, guard, entry)
            .await?;
        if written == Written::Done {
            let client = self.client();
            let _: Value = client
                .zrem(self.keys.tenant_sources(&source.tenant), source.id.as_str())
                .await?;
            let _: Value = client.del(self.keys.source_rejections(&source.id)).await?;
        }
        Ok(written)
    }

    /// A page of a tenant's sources, oldest first: `(sources, next offset)`.
    pub async fn list_sources(
        &self,
        tenant: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Source>, Option<usize>)> {
        let (configs, next) = self
            .page_of(&self.keys.tenant_sources(tenant), &self.keys.sources(), offset, limit)
            .await?;
        let sources = configs
            .iter()
            .filter_map(|j| {
                self.source_from(j)
                    .map_err(|e| tracing::error!(error = %e, "a source cannot be read"))
                    .ok()
            })
            .collect();
        Ok((sources, next))
    }

    /// Count one request against a source's limit for the current second; returns the count
    /// so far this second, this one included.
    pub async fn count_source_request(&self, source: &Source, now_ms: u64) -> Result<u64> {
        let key = self.keys.source_rate(&source.tenant, &source.id, now_ms / 1000);
        let reply = self.eval(&scripts::COUNT_SECOND, vec![key], vec![]).await?;
        Ok(reply.as_u64().unwrap_or(0))
    }

    /// Remember a refused request (JSON, without body or secrets); the last 100 are kept, for
    /// at most retention after the last one.
    pub async fn record_rejection(&self, source_id: &str, entry: &serde_json::Value) -> Result<()> {
        let key = self.keys.source_rejections(source_id);
        let pipeline = self.client().pipeline();
        let _: () = pipeline.lpush(&key, entry.to_string()).await?;
        let _: () = pipeline.ltrim(&key, 0, REJECTIONS_KEPT - 1).await?;
        // Gone with its source; if the source went first, within retention.
        let _: () = pipeline.expire(&key, self.retention_s as i64, None).await?;
        let _: Vec<Value> = pipeline.all().await?;
        Ok(())
    }

    /// The source's last refused requests, newest first.
    pub async fn rejections(&self, source_id: &str) -> Result<Vec<serde_json::Value>> {
        let entries: Vec<String> = self
            .client()
            .lrange(self.keys.source_rejections(source_id), 0, REJECTIONS_KEPT - 1)
            .await?;
        Ok(entries.iter().filter_map(|e| serde_json::from_str(e).ok()).collect())
    }
}

/// The source fields whose values the audit log never shows.
pub const SOURCE_SECRETS: [&str; 4] = ["secret", "previous_secrets", "basic", "api_key"];

/// What changed between two versions of a source, for its audit entry.
pub fn source_changes(before: Option<&Source>, after: Option<&Source>) -> serde_json::Map<String, serde_json::Value> {
    let json = |s: Option<&Source>| s.and_then(|s| serde_json::to_value(s).ok());
    super::audit::changes(json(before).as_ref(), json(after).as_ref(), &SOURCE_SECRETS, &[])
}
