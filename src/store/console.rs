//! Console sign-in sessions: `P:console:<sha256(session id)>` holds the session's JSON (who
//! signed in, its CSRF token) for as long as the session lives (a Redis TTL). The id itself is
//! only in the operator's HttpOnly cookie.

use super::{RedisStore, Result};
use fred::prelude::*;
use fred::types::Expiration;

impl RedisStore {
    pub async fn put_console_session(&self, id_hash: &str, json: &str, ttl_s: u64) -> Result<()> {
        let key = self.keys.console_session(id_hash);
        let _: () = self
            .client()
            .set(key, json, Some(Expiration::EX(ttl_s as i64)), None, false)
            .await?;
        Ok(())
    }

    pub async fn get_console_session(&self, id_hash: &str) -> Result<Option<String>> {
        Ok(self.client().get(self.keys.console_session(id_hash)).await?)
    }

    pub async fn delete_console_session(&self, id_hash: &str) -> Result<()> {
        let _: i64 = self.client().del(self.keys.console_session(id_hash)).await?;
        Ok(())
    }
}
