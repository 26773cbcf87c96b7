//! Endpoints: their configs, the per-tenant index and version, change notifications, and what
//! deleting or disabling one does to its work.

use super::audit::{AuditEntry, Kind, Target, Write, Written};
use super::{scripts, RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use hookline_actors::EndpointConfig;

impl RedisStore {
    /// An endpoint as stored: its secrets sealed.
    pub(super) fn endpoint_json(&self, cfg: &EndpointConfig) -> Result<String> {
        let mut sealed = cfg.clone();
        sealed.secret = self.sealer.seal(&cfg.secret);
        for previous in &mut sealed.previous_secrets {
            previous.secret = self.sealer.seal(&previous.secret);
        }
        if let Some(key) = sealed
            .tls
            .as_mut()
            .and_then(|t| std::sync::Arc::make_mut(t).client_key_pem.as_mut())
        {
            *key = self.sealer.seal(key);
        }
        if let Some(oauth) = sealed.oauth2.as_mut() {
            let oauth = std::sync::Arc::make_mut(oauth);
            oauth.client_secret = self.sealer.seal(&oauth.client_secret);
        }
        Ok(serde_json::to_string(&sealed)?)
    }

    /// An endpoint as read back: its secrets opened.
    pub(super) fn endpoint_from(&self, json: &str) -> Result<EndpointConfig> {
        let mut cfg: EndpointConfig = serde_json::from_str(json)?;
        let open = |stored: &str| {
            self.sealer
                .open(stored)
                .map_err(|e| super::Error::corrupt(&format!("endpoint {}: {e}", cfg.id)))
        };
        cfg.secret = open(&cfg.secret)?;
        let previous: Result<Vec<String>> = cfg.previous_secrets.iter().map(|p| open(&p.secret)).collect();
        for (p, clear) in cfg.previous_secrets.iter_mut().zip(previous?) {
            p.secret = clear;
        }
        let key = cfg
            .tls
            .as_ref()
            .and_then(|t| t.client_key_pem.as_deref())
            .map(open)
            .transpose()?;
        let client_secret = cfg.oauth2.as_ref().map(|o| open(&o.client_secret)).transpose()?;
        if let (Some(tls), Some(key)) = (cfg.tls.as_mut(), key) {
            std::sync::Arc::make_mut(tls).client_key_pem = Some(key);
        }
        if let (Some(oauth), Some(secret)) = (cfg.oauth2.as_mut(), client_secret) {
            std::sync::Arc::make_mut(oauth).client_secret = secret;
        }
        Ok(cfg)
    }

    /// Endpoints as read back; one that cannot be read is logged and left out (it cannot be
    /// delivered to anyway), not allowed to hide the others.
    fn endpoints_from(&self, stored: impl IntoIterator<Item = String>) -> Vec<EndpointConfig> {
        stored
            .into_iter()
            .filter_map(|json| {
                self.endpoint_from(&json)
                    .map_err(|e| tracing::error!(error = %e, "an endpoint cannot be read"))
                    .ok()
            })
            .collect()
    }

    /// Store a new endpoint (or one written whatever is there: repairs) with the entry that
    /// records it, then tell every node.
    pub async fn put_endpoint(&self, cfg: &EndpointConfig, shard: u32, entry: &AuditEntry) -> Result<()> {
        let json = self.endpoint_json(cfg)?;
        self.audited(Kind::Endpoints, &cfg.id, Write::Set(&json), None, entry)
            .await?;
        self.endpoint_saved(cfg, shard).await
    }

    /// Change a stored endpoint: `change` gets it as stored and returns it changed, with the
    /// entry that records the change (or nothing: no write, the endpoint as stored). It is written only if nothing changed it meanwhile; if
    /// something did, it is read and changed again (so no write is lost and every entry's
    /// `from` is what was there). Its `updated_at_ms` moves forward by at least 1 ms. `None`:
    /// no such endpoint.
    pub async fn change_endpoint<E: From<super::Error>>(
        &self,
        endpoint_id: &str,
        mut change: impl FnMut(&EndpointConfig) -> std::result::Result<Option<(EndpointConfig, AuditEntry)>, E>,
    ) -> std::result::Result<Option<EndpointConfig>, E> {
        for _ in 0..CHANGE_TRIES {
            let Some(current) = self.get_endpoint(endpoint_id).await? else {
                return Ok(None);
            };
            let Some((mut next, entry)) = change(&current)? else {
                return Ok(Some(current));
            };
            next.updated_at_ms = hookline_actors::now_ms().max(current.updated_at_ms + 1);
            let json = self.endpoint_json(&next)?;
            let guard = Some(current.updated_at_ms);
            match self
                .audited(Kind::Endpoints, endpoint_id, Write::Set(&json), guard, &entry)
                .await?
            {
                Written::Done => {
                    let shard = hookline_actors::shard::shard_of(endpoint_id, self.shard_count);
                    self.endpoint_saved(&next, shard).await?;
                    return Ok(Some(next));
                }
                Written::Gone => return Ok(None),
                Written::Changed => continue,
            }
        }
        Err(super::Error::Contended(format!("endpoint {endpoint_id}")).into())
    }

    /// After an endpoint's record is written: its place in the tenant's index, a due entry
    /// in its shard if it is enabled (so the shard's owner looks at its queue again even if
    /// the change notification is lost: that resumes an endpoint just enabled), the tenant's
    /// version, the notification.
    async fn endpoint_saved(&self, cfg: &EndpointConfig, shard: u32) -> Result<()> {
        let client = self.client();
        let _: Value = client
            .zadd(
                self.keys.tenant_endpoints(&cfg.tenant),
                None,
                None,
                false,
                false,
                (cfg.created_at_ms as f64, cfg.id.as_str()),
            )
            .await?;
        if !cfg.disabled {
            let now = hookline_actors::now_ms() as f64;
            let _: Value = client
                .zadd(
                    self.keys.due(shard),
                    None,
                    Some(fred::types::sorted_sets::Ordering::LessThan),
                    false,
                    false,
                    (now, cfg.id.as_str()),
                )
                .await?;
        }
        self.bump_tenant_version(&cfg.tenant).await?;
        self.announce_change(&cfg.id).await
    }

    /// Routers compare this before routing a batch: an endpoint saved before an event was
    /// ingested is seen by whichever router routes it, even if the change notification is late.
    pub async fn bump_tenant_version(&self, tenant: &str) -> Result<()> {
        let _: Value = self.client().incr(self.keys.tenant_version(tenant)).await?;
        Ok(())
    }

    pub async fn announce_change(&self, endpoint_id: &str) -> Result<()> {
        let _: Value = self.client().publish(self.keys.changes_channel(), endpoint_id).await?;
        Ok(())
    }

    /// Calls `on_endpoint(endpoint_id)` for every endpoint change notification,
    /// `on_catalogue(tenant)` for every change of a tenant's event types or settings, and
    /// `on_work(pairs)` for work announced for `(endpoint id, shard)` pairs (`announce_work`),
    /// from any node, for as long as the process runs; re-subscribes after reconnects.
    pub async fn watch_changes(
        &self,
        on_endpoint: impl Fn(String) + Send + 'static,
        on_catalogue: impl Fn(String) + Send + 'static,
        on_work: impl Fn(Vec<(String, u32)>) + Send + 'static,
    ) -> Result<()> {
        let mut rx = self.subscriber.message_rx();
        let (endpoints, catalogue) = (self.keys.changes_channel(), self.keys.catalogue_channel());
        let work = self.keys.work_channel();
        self.subscriber.manage_subscriptions();
        self.subscriber
            .subscribe(vec![endpoints.clone(), catalogue.clone(), work.clone()])
            .await?;
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(msg) => {
                        let Some(id) = msg.value.as_string() else { continue };
                        if *msg.channel == *endpoints {
                            on_endpoint(id);
                        } else if *msg.channel == *catalogue {
                            on_catalogue(id);
                        } else if *msg.channel == *work {
                            let pairs = id.lines().filter_map(|line| {
                                let (shard, endpoint_id) = line.split_once(':')?;
                                Some((endpoint_id.to_string(), shard.parse().ok()?))
                            });
                            on_work(pairs.collect());
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(())
    }

    /// Delete an endpoint (as read at `cfg.updated_at_ms`) with the entry that records it, and
    /// its pending work; returns how many pending deliveries were dropped, or `Written::Gone`
    /// / `Changed` if it is not there as read (nothing done).
    pub async fn delete_endpoint(
        &self,
        cfg: &EndpointConfig,
        shard: u32,
        entry: &AuditEntry,
    ) -> Result<std::result::Result<u64, Written>> {
        let guard = Some(cfg.updated_at_ms);
        match self
            .audited(Kind::Endpoints, &cfg.id, Write::Delete, guard, entry)
            .await?
        {
            Written::Done => {}
            other => return Ok(Err(other)),
        }
        let _: Value = self
            .client()
            .zrem(self.keys.tenant_endpoints(&cfg.tenant), cfg.id.as_str())
            .await?;
        let dropped = self.forget_endpoint(&cfg.id, shard).await?;
        self.bump_tenant_version(&cfg.tenant).await?;
        self.announce_change(&cfg.id).await?;
        Ok(Ok(dropped))
    }

    /// A page of a tenant's endpoints, oldest first: `(endpoints, next offset)`.
    pub async fn list_endpoints(
        &self,
        tenant: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<EndpointConfig>, Option<usize>)> {
        let (configs, next) = self
            .page_of(
                &self.keys.tenant_endpoints(tenant),
                &self.keys.endpoints(),
                offset,
                limit,
            )
            .await?;
        Ok((self.endpoints_from(configs), next))
    }

    /// Up to `limit` of the tenant's endpoints that `keep` holds for, in list order from
    /// position `offset`, looking at no more than `budget` of them: the page and the position
    /// to go on from (`None` once the list is done). A page may be short and still go on.
    pub async fn find_endpoints(
        &self,
        tenant: &str,
        offset: usize,
        limit: usize,
        budget: usize,
        keep: impl Fn(&EndpointConfig) -> bool,
    ) -> Result<(Vec<EndpointConfig>, Option<usize>)> {
        const BATCH: usize = 100;
        let client = self.client();
        let (ids_key, records) = (self.keys.tenant_endpoints(tenant), self.keys.endpoints());
        let (mut found, mut at) = (Vec::new(), offset);
        loop {
            let ids: Vec<String> = client
                .zrange(&ids_key, at as i64, (at + BATCH - 1) as i64, None, false, None, false)
                .await?;
            if ids.is_empty() {
                return Ok((found, None));
            }
            let read = ids.len();
            let values: Vec<Option<String>> = client.hmget(&records, ids).await?;
            // Positions stay exact even where a record is missing: each value is at `at + i`.
            for (i, value) in values.into_iter().enumerate() {
                let Some(cfg) = value.and_then(|json| self.endpoints_from([json]).pop()) else {
                    continue;
                };
                if keep(&cfg) {
                    found.push(cfg);
                    if found.len() == limit {
                        return Ok((found, Some(at + i + 1)));
                    }
                }
            }
            at += read;
            if read < BATCH {
                return Ok((found, None));
            }
            if at - offset >= budget {
                return Ok((found, Some(at)));
            }
        }
    }

    /// A page of the hash `records`, in the order of the index `ids` (a zset of its fields):
    /// the stored values and the offset of the next page, if any.
    pub(super) async fn page_of(
        &self,
        ids: &str,
        records: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<String>, Option<usize>)> {
        let client = self.client();
        let page: Vec<String> = client
            .zrange(ids, offset as i64, (offset + limit) as i64, None, false, None, false)
            .await?;
        let more = page.len() > limit;
        let page: Vec<String> = page.into_iter().take(limit).collect();
        if page.is_empty() {
            return Ok((Vec::new(), None));
        }
        let values: Vec<Option<String>> = client.hmget(records, page).await?;
        Ok((values.into_iter().flatten().collect(), more.then_some(offset + limit)))
    }

    /// Pending deliveries queued for an endpoint.
    pub async fn backlog(&self, endpoint_id: &str, shard: u32) -> Result<u64> {
        Ok(self.client().zcard(self.keys.queue(shard, endpoint_id)).await?)
    }

    pub async fn get_endpoint(&self, endpoint_id: &str) -> Result<Option<EndpointConfig>> {
        let json: Option<String> = self.client().hget(self.keys.endpoints(), endpoint_id).await?;
        json.map(|j| self.endpoint_from(&j)).transpose()
    }

    pub async fn load_endpoints(&self) -> Result<Vec<EndpointConfig>> {
        let all: std::collections::HashMap<String, String> = self.client().hgetall(self.keys.endpoints()).await?;
        Ok(self.endpoints_from(all.into_values()))
    }

    pub async fn tenant_versions(&self, tenants: &[String]) -> Result<Vec<u64>> {
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        // One pipelined GET per tenant, not MGET: the keys are in different cluster slots.
        let pipeline = self.client().pipeline();
        for tenant in tenants {
            let _: () = pipeline.get(self.keys.tenant_version(tenant)).await?;
        }
        let versions: Vec<Option<u64>> = pipeline.all().await?;
        Ok(versions.into_iter().map(|v| v.unwrap_or(0)).collect())
    }

    pub async fn tenant_endpoints(&self, tenant: &str) -> Result<Vec<EndpointConfig>> {
        let ids = self.tenant_endpoint_ids(tenant).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let configs: Vec<Option<String>> = self.client().hmget(self.keys.endpoints(), ids).await?;
        Ok(self.endpoints_from(configs.into_iter().flatten()))
    }

    pub async fn forget_endpoint(&self, endpoint_id: &str, shard: u32) -> Result<u64> {
        let keys = vec![
            self.keys.queue(shard, endpoint_id),
            self.keys.due(shard),
            self.keys.dead_letters(shard, endpoint_id),
            self.keys.health(shard, endpoint_id),
            self.keys.delivery_log(shard, endpoint_id),
            self.keys.dropped(shard, endpoint_id),
        ];
        let args = vec![endpoint_id.to_string(), self.retention_s.to_string()];
        let dropped = self
            .eval(&scripts::DELETE_ENDPOINT_WORK, keys, args)
            .await?
            .as_u64()
            .unwrap_or(0);
        if dropped > 0 {
            // The janitor marks their records dead in bounded steps (a crash before this line
            // leaves them pending until retention: the `dropped` set has a TTL).
            let _: Value = self
                .client()
                .sadd(self.keys.dropping(), format!("{shard}:{endpoint_id}"))
                .await?;
            metrics::counter!(crate::telemetry::names::DELIVERIES_DROPPED).increment(dropped);
        }
        Ok(dropped)
    }

    /// The node disables an endpoint by itself (410, failing too long), if it is still
    /// enabled and at the version the endpoint actor acted on (`seen_at_ms`): recorded in the
    /// audit log as `endpoint.disabled` by `system`.
    pub async fn disable_endpoint(
        &self,
        endpoint_id: &str,
        seen_at_ms: u64,
        reason: &str,
    ) -> Result<Option<EndpointConfig>> {
        self.change_endpoint(endpoint_id, |current| {
            if current.disabled || current.updated_at_ms != seen_at_ms {
                return Ok(None);
            }
            let mut next = current.clone();
            next.disabled = true;
            next.disabled_reason = Some(reason.to_string());
            let entry = AuditEntry::by_system(
                "endpoint_actor",
                &current.tenant,
                "endpoint.disabled",
                Target::new("endpoint", endpoint_id),
                endpoint_changes(Some(current), Some(&next)),
            );
            Ok::<_, super::Error>(Some((next, entry)))
        })
        .await
    }
}

/// Tries of a compare-and-set change before it gives up (each lost to another writer).
pub const CHANGE_TRIES: usize = 16;

/// The endpoint fields whose values the audit log never shows.
pub const ENDPOINT_SECRETS: [&str; 2] = ["secret", "previous_secrets"];

/// What changed between two versions of an endpoint, for its audit entry.
pub fn endpoint_changes(
    before: Option<&EndpointConfig>,
    after: Option<&EndpointConfig>,
) -> serde_json::Map<String, serde_json::Value> {
    let json = |cfg: Option<&EndpointConfig>| cfg.and_then(|c| serde_json::to_value(c).ok());
    let mut changes = super::audit::changes(
        json(before).as_ref(),
        json(after).as_ref(),
        &ENDPOINT_SECRETS,
        &["headers"],
    );
    // `tls` and `oauth2` show all but their secret part.
    for (field, secret) in [("tls", "client_key_pem"), ("oauth2", "client_secret")] {
        let Some(change) = changes.get_mut(field) else { continue };
        for side in ["from", "to"] {
            if let Some(value) = change.get_mut(side).and_then(|v| v.get_mut(secret)) {
                *value = serde_json::Value::from("***");
            }
        }
    }
    changes
}
