//! Tenant API keys, stored by the SHA-256 of the key.

use super::{RedisStore, Result};
use fred::prelude::*;
use fred::types::Value;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant: String,
    pub created_at_ms: u64,
}

impl RedisStore {
    pub async fn put_api_key(&self, key_hash: &str, record: &ApiKeyRecord) -> Result<()> {
        let json = serde_json::to_string(record)?;
        let _: Value = self.client().hset(self.keys.api_keys(), (key_hash, json)).await?;
        Ok(())
    }

    pub async fn get_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let json: Option<String> = self.client().hget(self.keys.api_keys(), key_hash).await?;
        json.map(|j| serde_json::from_str(&j).map_err(super::Error::from))
            .transpose()
    }
}
