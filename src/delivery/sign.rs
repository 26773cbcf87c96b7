//! Standard Webhooks signatures of `"{id}.{timestamp}.{body}"`, by the kind of secret:
//! - `whsec_<base64 key>`: `v1,<base64 HMAC-SHA256(key, content)>` (symmetric);
//! - `whsk_<base64 32-byte seed>`: `v1a,<base64 Ed25519 signature>` (asymmetric: receivers
//!   verify with the public key `whpk_<base64 32 bytes>` and cannot sign).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// How an endpoint signs; its secret says which (`whsec_` or `whsk_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    HmacSha256,
    Ed25519,
}

impl Scheme {
    pub fn of(secret: &str) -> Scheme {
        if secret.starts_with(SIGNING_KEY_PREFIX) {
            Scheme::Ed25519
        } else {
            Scheme::HmacSha256
        }
    }

    /// A new secret of this scheme.
    pub fn new_secret(self) -> String {
        match self {
            Scheme::HmacSha256 => new_secret(),
            Scheme::Ed25519 => {
                let seed: [u8; 32] = rand::random();
                format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(seed))
            }
        }
    }
}

fn signing_key(secret: &str) -> Option<ed25519_dalek::SigningKey> {
    let seed: [u8; 32] = STANDARD
        .decode(secret.strip_prefix(SIGNING_KEY_PREFIX)?)
        .ok()?
        .try_into()
        .ok()?;
    Some(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// The `whpk_…` public key of a `whsk_…` secret (`None` for an HMAC secret).
pub fn public_key(secret: &str) -> Option<String> {
    let key = signing_key(secret)?;
    Some(format!(
        "{PUBLIC_KEY_PREFIX}{}",
        STANDARD.encode(key.verifying_key().as_bytes())
    ))
}

/// A secret the node can sign with, of either scheme.
pub fn is_valid_secret(secret: &str) -> bool {
    decode_secret(secret).is_some() || signing_key(secret).is_some()
}

/// The key bytes of a `whsec_…` secret, if it is one with 24 to 64 bytes of key.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// A new secret with 32 random bytes.
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` value: one `v1,…` or `v1a,…` per secret, separated by spaces.
pub fn signature_header(secrets: &[String], msg_id: &str, timestamp: u64, body: &str) -> String {
    let head = format!("{msg_id}.{timestamp}.");
    secrets
        .iter()
        .filter_map(|secret| {
            if let Some(key) = decode_secret(secret) {
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
                mac.update(head.as_bytes());
                mac.update(body.as_bytes());
                return Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));
            }
            use ed25519_dalek::Signer;
            let key = signing_key(secret)?;
            let content = [head.as_bytes(), body.as_bytes()].concat();
            Some(format!("v1a,{}", STANDARD.encode(key.sign(&content).to_bytes())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let got = signature_header(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(got, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_checked() {
        assert!(decode_secret(&new_secret()).is_some());
        assert!(decode_secret("whsec_short").is_none());
        assert!(decode_secret("nope_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
    }

    #[test]
    fn ed25519_keys_sign_v1a_and_verify_with_their_public_key() {
        use ed25519_dalek::Verifier;
        let secret = Scheme::Ed25519.new_secret();
        assert!(is_valid_secret(&secret) && Scheme::of(&secret) == Scheme::Ed25519);
        let public = public_key(&secret).unwrap();
        let raw: [u8; 32] = STANDARD
            .decode(public.strip_prefix("whpk_").unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let verifier = ed25519_dalek::VerifyingKey::from_bytes(&raw).unwrap();
        let header = signature_header(&[secret, new_secret()], "evt_1", 1614265330, r#"{"a":1}"#);
        let (ed, hmac) = header.split_once(' ').unwrap();
        assert!(hmac.starts_with("v1,"), "{header}");
        let sig: [u8; 64] = STANDARD
            .decode(ed.strip_prefix("v1a,").unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let content = br#"evt_1.1614265330.{"a":1}"#;
        assert!(verifier
            .verify(content, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok());
        assert!(verifier
            .verify(b"evt_1.1614265330.{}", &ed25519_dalek::Signature::from_bytes(&sig))
            .is_err());
        assert_eq!(public_key(&new_secret()), None);
        assert!(!is_valid_secret("whsk_short"));
    }

    #[test]
    fn one_signature_per_secret() {
        let h = signature_header(&[new_secret(), new_secret()], "evt_1", 1, "{}");
        assert_eq!(h.split(' ').count(), 2);
        assert!(h.split(' ').all(|s| s.starts_with("v1,")));
    }
}
