//! The event catalogue in Redis: event types (one hash for all tenants, a per-tenant index
//! ordered active first, then by name), tenant settings, and the change notification every
//! node's catalogue cache follows (`catalogue::cache`).

use super::audit::{AuditEntry, Kind, Write, Written};
use super::{RedisStore, Result};
use crate::catalogue::{EventType, TenantSettings};
use fred::prelude::*;
use fred::types::Value;

/// The field of an event type in the types hash (and its member in the tenant's index).
fn field(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

impl RedisStore {
    pub async fn get_event_type(&self, tenant: &str, name: &str) -> Result<Option<EventType>> {
        let json: Option<String> = self.client().hget(self.keys.event_types(), field(tenant, name)).await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Save an event type (new, replaced or archived) with the entry that records it. `guard`:
    /// its `updated_at_ms` as read (`None`: it did not exist); the write happens only if it
    /// still is so (else `Written::Changed`, or `Gone`).
    pub async fn put_event_type(
        &self,
        event_type: &EventType,
        guard: Option<u64>,
        entry: &AuditEntry,
    ) -> Result<Written> {
        let json = serde_json::to_string(event_type)?;
        let member = field(&event_type.tenant, &event_type.name);
        let write = match guard {
            Some(_) => Write::Set(&json),
            None => Write::Create(&json),
        };
        let written = self.audited(Kind::EventTypes, &member, write, guard, entry).await?;
        if written == Written::Done {
            let score = if event_type.archived { 1.0 } else { 0.0 };
            let _: Value = self
                .client()
                .zadd(
                    self.keys.tenant_event_types(&event_type.tenant),
                    None,
                    None,
                    false,
                    false,
                    (score, member.as_str()),
                )
                .await?;
            self.catalogue_changed(&event_type.tenant).await?;
        }
        Ok(written)
    }

    /// How many event types the tenant has (archived ones too).
    pub async fn count_event_types(&self, tenant: &str) -> Result<u64> {
        Ok(self.client().zcard(self.keys.tenant_event_types(tenant)).await?)
    }

    /// A page of the tenant's event types by name (active ones; with `archived`, then the
    /// archived ones): `(types, next offset)`.
    pub async fn list_event_types(
        &self,
        tenant: &str,
        archived: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<EventType>, Option<usize>)> {
        let client = self.client();
        let highest: i64 = if archived { 1 } else { 0 };
        let page: Vec<String> = client
            .zrangebyscore(
                self.keys.tenant_event_types(tenant),
                0_i64,
                highest,
                false,
                Some((offset as i64, limit as i64 + 1)),
            )
            .await?;
        let more = page.len() > limit;
        let page: Vec<String> = page.into_iter().take(limit).collect();
        if page.is_empty() {
            return Ok((Vec::new(), None));
        }
        let values: Vec<Option<String>> = client.hmget(self.keys.event_types(), page).await?;
        let types = values
            .into_iter()
            .flatten()
            .map(|j| serde_json::from_str(&j))
            .collect::<std::result::Result<Vec<EventType>, _>>()?;
        Ok((types, more.then_some(offset + limit)))
    }

    pub async fn tenant_settings(&self, tenant: &str) -> Result<TenantSettings> {
        let json: Option<String> = self.client().hget(self.keys.tenant_settings(), tenant).await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?.unwrap_or_default())
    }

    /// Replace the tenant's settings with the entry that records the change.
    pub async fn put_tenant_settings(&self, tenant: &str, settings: &TenantSettings, entry: &AuditEntry) -> Result<()> {
        let json = serde_json::to_string(settings)?;
        self.audited(Kind::Settings, tenant, Write::Set(&json), None, entry)
            .await?;
        self.catalogue_changed(tenant).await
    }

    /// What a node's catalogue cache keeps of a tenant: its settings and, when validation is
    /// on, every event type (archived ones too: with `enforce` their events are refused).
    /// and the tenant's version, read first (a change after it shows as a newer one).
    pub async fn load_catalogue(&self, tenant: &str) -> Result<(TenantSettings, Vec<EventType>, u64)> {
        let version: Option<u64> = self.client().hget(self.keys.catalogue_versions(), tenant).await?;
        let version = version.unwrap_or(0);
        let settings = self.tenant_settings(tenant).await?;
        if settings.validation == crate::catalogue::Validation::Off {
            return Ok((settings, Vec::new(), version));
        }
        let mut types = Vec::new();
        let mut offset = 0;
        loop {
            let (page, next) = self.list_event_types(tenant, true, offset, 500).await?;
            types.extend(page);
            match next {
                Some(n) => offset = n,
                None => break,
            }
        }
        Ok((settings, types, version))
    }

    /// The versions of these tenants' catalogues (0: never changed), in order.
    pub async fn catalogue_versions(&self, tenants: &[String]) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(tenants.len());
        for chunk in tenants.chunks(1_000) {
            let versions: Vec<Option<u64>> = self
                .client()
                .hmget(self.keys.catalogue_versions(), chunk.to_vec())
                .await?;
            out.extend(versions.into_iter().map(|v| v.unwrap_or(0)));
        }
        Ok(out)
    }

    /// The version every change of any tenant's catalogue bumps (each tenant's own is in
    /// `catalogue_versions`).
    pub async fn catalogue_version(&self) -> Result<u64> {
        let v: Option<u64> = self.client().get(self.keys.catalogue_version()).await?;
        Ok(v.unwrap_or(0))
    }

    /// After a change of `tenant`'s event types or settings: the version, the notification.
    async fn catalogue_changed(&self, tenant: &str) -> Result<()> {
        let client = self.client();
        let _: Value = client.hincrby(self.keys.catalogue_versions(), tenant, 1).await?;
        let _: Value = client.incr(self.keys.catalogue_version()).await?;
        let _: Value = client.publish(self.keys.catalogue_channel(), tenant).await?;
        Ok(())
    }
}
