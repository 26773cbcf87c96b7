//! The re-sealing pass (`hookline secrets rotate`): every stored secret (and the key check)
//! sealed again under the first of `security.encryption_keys`, so an older key can then be
//! dropped; secrets stored in clear are sealed on the way. Bounded batches (HSCAN), each value
//! replaced only if nobody changed it meanwhile, so it runs while nodes serve and can simply be
//! run again after an interruption (what is current already is skipped).

use super::seal::KEY_CHECK;
use super::{scripts, text, RedisStore, Result};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};

/// Values one HSCAN step reads.
const BATCH: usize = 200;

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResealReport {
    pub endpoints_resealed: u64,
    pub sources_resealed: u64,
    /// Values changed by someone else between the read and the write (written by a node, so
    /// sealed by it: run the pass again once every node seals with the new key).
    pub skipped_changed: u64,
}

impl RedisStore {
    /// Seal every stored secret under the first key (see the module's doc). Needs a key.
    pub async fn reseal_all(&self) -> Result<ResealReport> {
        let mut report = ResealReport::default();
        if !self.sealer.encrypts() {
            return Ok(report);
        }
        for endpoints in [true, false] {
            let hash = if endpoints {
                self.keys.endpoints()
            } else {
                self.keys.sources()
            };
            let mut cursor = "0".to_string();
            loop {
                let reply: Value = self
                    .client()
                    .custom(
                        CustomCommand::new_static("HSCAN", ClusterHash::FirstKey, false),
                        vec![hash.clone(), cursor.clone(), "COUNT".into(), BATCH.to_string()],
                    )
                    .await?;
                let mut parts = reply.into_array().into_iter();
                cursor = parts.next().as_ref().and_then(text).unwrap_or_else(|| "0".into());
                let fields: Vec<String> = parts
                    .next()
                    .map(|f| f.into_array())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(text)
                    .collect();
                for pair in fields.chunks(2) {
                    let [id, old] = pair else { continue };
                    if self.all_current(old) {
                        continue;
                    }
                    let new = if endpoints {
                        let cfg = self.endpoint_from(old)?;
                        self.endpoint_json(&cfg)?
                    } else {
                        let source = self.source_from(old)?;
                        self.source_json(&source)?
                    };
                    let args = vec![id.clone(), old.clone(), new];
                    let written = self.eval(&scripts::REPLACE_FIELD_IF, vec![hash.clone()], args).await?;
                    match (written.as_i64(), endpoints) {
                        (Some(1), true) => report.endpoints_resealed += 1,
                        (Some(1), false) => report.sources_resealed += 1,
                        _ => report.skipped_changed += 1,
                    }
                }
                if cursor == "0" {
                    break;
                }
            }
        }
        // The key check too, so a node with the new key alone can start.
        let check: Option<String> = self.client().get(self.keys.key_check()).await?;
        if check.is_none_or(|c| !self.sealer.is_current(&c)) {
            let _: Value = self
                .client()
                .set(self.keys.key_check(), self.sealer.seal(KEY_CHECK), None, None, false)
                .await?;
        }
        Ok(report)
    }

    /// Are all the secrets of a stored endpoint or source already sealed under the current key?
    fn all_current(&self, old: &str) -> bool {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(old) else {
            return false;
        };
        let mut secrets = Vec::new();
        collect_secrets(&value, &mut secrets);
        secrets.iter().all(|s| self.sealer.is_current(s))
    }
}

/// The secret-holding strings of an endpoint's or a source's JSON: `secret`,
/// `previous_secrets[].secret`, `tls.client_key_pem`, `oauth2.client_secret`, `basic.password`,
/// `api_key.value`.
fn collect_secrets<'a>(value: &'a serde_json::Value, into: &mut Vec<&'a str>) {
    let paths: [&[&str]; 5] = [
        &["secret"],
        &["tls", "client_key_pem"],
        &["oauth2", "client_secret"],
        &["basic", "password"],
        &["api_key", "value"],
    ];
    for path in paths {
        let found = path.iter().try_fold(value, |v, key| v.get(key));
        if let Some(s) = found.and_then(|v| v.as_str()) {
            into.push(s);
        }
    }
    for previous in value["previous_secrets"].as_array().into_iter().flatten() {
        if let Some(s) = previous["secret"].as_str() {
            into.push(s);
        }
    }
}
