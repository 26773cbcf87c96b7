//! Secrets at rest: endpoint signing secrets and source secrets and credentials are stored
//! sealed with AES-256-GCM under `security.encryption_keys` (`"<key id>:<base64 of 32 bytes>"`,
//! the first seals, every one opens), never in Redis themselves. A sealed value is
//! `enc:v1:<key id>:<base64 of nonce ‖ ciphertext>`; a value written without a key stays clear
//! (as before this existed) and is read as it is; a clear value that happens to begin with
//! `enc:` or `clr:` is kept as `clr:<value>`.
//!
//! The store keeps a key check (`P:keycheck`, a sealed constant): a node whose keys cannot open
//! it refuses to start, rather than failing on its first delivery.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

const SEALED: &str = "enc:v1:";
const CLEAR: &str = "clr:";
/// What the key check holds, sealed.
pub const KEY_CHECK: &str = "hookline-key-check-v1";

pub struct Sealer {
    /// The first seals; every one opens what was sealed under its id.
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "Sealer({ids:?})")
    }
}

/// A key of `security.encryption_keys`: its id and its 32 bytes; `Err` says what is wrong
/// (never the key itself).
pub fn parse_key(spec: &str) -> Result<(String, [u8; 32]), String> {
    let (id, key) = spec
        .split_once(':')
        .ok_or("each key is \"<key id>:<base64 of 32 bytes>\"")?;
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)) {
        return Err(format!("key id {id:?}: 1 to 32 of [a-zA-Z0-9_-]"));
    }
    let bytes = STANDARD
        .decode(key.trim())
        .map_err(|_| format!("key {id:?}: not base64"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("key {id:?}: {} bytes, not 32", b.len()))?;
    Ok((id.to_string(), bytes))
}

impl Sealer {
    /// From `security.encryption_keys` (already checked by the configuration).
    pub fn new(specs: &[String]) -> Result<Sealer, String> {
        let mut keys = Vec::new();
        for spec in specs {
            let (id, bytes) = parse_key(spec)?;
            if keys.iter().any(|(other, _)| *other == id) {
                return Err(format!("key id {id:?} appears twice"));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| format!("key {id:?}: not a key"))?;
            keys.push((id, cipher));
        }
        Ok(Sealer { keys })
    }

    pub fn encrypts(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals.
    pub fn sealing_key(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// What to store for `clear`: sealed under the first key, or clear when there is none.
    pub fn seal(&self, clear: &str) -> String {
        let Some((id, cipher)) = self.keys.first() else {
            if clear.starts_with(SEALED) || clear.starts_with(CLEAR) {
                return format!("{CLEAR}{clear}");
            }
            return clear.to_string();
        };
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), clear.as_bytes())
            .expect("AES-GCM seals any length this node stores");
        format!("{SEALED}{id}:{}", STANDARD.encode([&nonce[..], &sealed].concat()))
    }

    /// The clear value of what was stored; `Err` names the key id it needs when no key here
    /// opens it.
    pub fn open(&self, stored: &str) -> Result<String, String> {
        if let Some(clear) = stored.strip_prefix(CLEAR) {
            return Ok(clear.to_string());
        }
        let Some(rest) = stored.strip_prefix(SEALED) else {
            return Ok(stored.to_string());
        };
        let (id, data) = rest.split_once(':').ok_or("a sealed value without its key id")?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| format!("sealed under key {id:?}, which security.encryption_keys does not hold"))?;
        let data = STANDARD.decode(data).map_err(|_| "a sealed value that is not base64")?;
        if data.len() < 12 {
            return Err("a sealed value too short to hold its nonce".into());
        }
        let (nonce, sealed) = data.split_at(12);
        let clear = cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| format!("key {id:?} does not open this value (a different key under the same id?)"))?;
        String::from_utf8(clear).map_err(|_| "a sealed value that is not text".into())
    }

    /// Is `stored` sealed under the key that seals now?
    pub fn is_current(&self, stored: &str) -> bool {
        match self.sealing_key() {
            Some(id) => stored.starts_with(&format!("{SEALED}{id}:")),
            None => !stored.starts_with(SEALED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; 32]))
    }

    #[test]
    fn sealed_values_open_with_any_listed_key_and_hide_the_secret() {
        let old = Sealer::new(&[key("k1", 1)]).unwrap();
        let sealed = old.seal("whsec_top-secret");
        assert!(sealed.starts_with("enc:v1:k1:"), "{sealed}");
        assert!(!sealed.contains("top-secret"));
        assert_ne!(sealed, old.seal("whsec_top-secret"), "a fresh nonce each time");
        let both = Sealer::new(&[key("k2", 2), key("k1", 1)]).unwrap();
        assert_eq!(both.open(&sealed).unwrap(), "whsec_top-secret");
        assert!(both.seal("x").starts_with("enc:v1:k2:"), "the first key seals");
        assert!(!both.is_current(&sealed) && both.is_current(&both.seal("x")));
        let other = Sealer::new(&[key("k2", 2)]).unwrap();
        assert!(other.open(&sealed).unwrap_err().contains("\"k1\""));
        let impostor = Sealer::new(&[key("k1", 9)]).unwrap();
        assert!(impostor.open(&sealed).is_err(), "a different key under the same id");
    }

    #[test]
    fn without_keys_values_stay_clear_and_clear_values_still_open() {
        let none = Sealer::new(&[]).unwrap();
        assert!(!none.encrypts());
        assert_eq!(none.seal("whsec_abc"), "whsec_abc");
        assert_eq!(none.open("whsec_abc").unwrap(), "whsec_abc");
        // A clear value that looks sealed is escaped, and read back as it was.
        assert_eq!(none.open(&none.seal("enc:v1:looks")).unwrap(), "enc:v1:looks");
        let keyed = Sealer::new(&[key("k1", 1)]).unwrap();
        assert_eq!(keyed.open("whsec_written_before").unwrap(), "whsec_written_before");
        assert!(none.open(&keyed.seal("s")).is_err());
    }

    #[test]
    fn keys_are_checked_naming_what_is_wrong() {
        assert!(parse_key("nocolon").is_err());
        assert!(parse_key("bad id:AAAA").unwrap_err().contains("key id"));
        assert!(parse_key("k:notbase64!").unwrap_err().contains("base64"));
        assert!(parse_key(&format!("k:{}", STANDARD.encode([0u8; 16])))
            .unwrap_err()
            .contains("16 bytes"));
        assert!(Sealer::new(&[key("k", 1), key("k", 2)]).unwrap_err().contains("twice"));
    }
}
