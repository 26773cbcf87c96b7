//! Verifying an inbound request: one [`Verifier`] per provider kind, each a pure function of
//! the raw request (headers and the exact body bytes) and the time, so the tables of signed,
//! unsigned, tampered and stale requests in each file's tests are exact.
//!
//! Every comparison of a signature or credential is constant-time: MACs through
//! `hmac::Mac::verify_slice`, credentials on their SHA-256 digests ([`same_secret`]). Every
//! kind that signs takes several secrets: during a rotation's overlap any of them passes.

mod api_key;
mod basic;
mod github;
mod hmac_header;
mod shopify;
mod standard_webhooks;
mod stripe;

pub use api_key::ApiKey;
pub use basic::Basic;
pub use github::GitHub;
pub use hmac_header::{Algorithm, Encoding, HmacHeader};
pub use shopify::Shopify;
pub use standard_webhooks::StandardWebhooks;
pub use stripe::Stripe;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::time::SystemTime;

/// What a verifier sees: the request's headers and its body, byte for byte.
pub struct RawRequest<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl RawRequest<'_> {
    /// A header's value as text; `MissingHeader` if absent, `MalformedHeader` if not text.
    pub fn header(&self, name: &str) -> Result<&str, Rejection> {
        let value = self
            .headers
            .get(name)
            .ok_or_else(|| Rejection::MissingHeader(name.to_ascii_lowercase()))?;
        value
            .to_str()
            .map_err(|_| Rejection::MalformedHeader(name.to_ascii_lowercase()))
    }
}

/// Why a request was refused (the `reason` of a rejection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The header (lower case) the kind needs is absent.
    MissingHeader(String),
    /// The header is there but cannot be read as the kind writes it.
    MalformedHeader(String),
    SignatureMismatch,
    TimestampOutsideTolerance,
    BadCredentials,
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) => "missing_header",
            Rejection::MalformedHeader(_) => "malformed_header",
            Rejection::SignatureMismatch => "signature_mismatch",
            Rejection::TimestampOutsideTolerance => "timestamp_outside_tolerance",
            Rejection::BadCredentials => "bad_credentials",
        }
    }

    /// For people: what was wrong, never a secret or the body.
    pub fn message(&self) -> String {
        match self {
            Rejection::MissingHeader(h) => format!("the {h} header is missing"),
            Rejection::MalformedHeader(h) => format!("the {h} header is not in the provider's format"),
            Rejection::SignatureMismatch => "no signature matches the body under the source's secret".into(),
            Rejection::TimestampOutsideTolerance => {
                "the signed timestamp is outside the source's tolerance_s (a stale or replayed request)".into()
            }
            Rejection::BadCredentials => "the credentials do not match the source's".into(),
        }
    }
}

pub trait Verifier: Send + Sync {
    fn verify(&self, req: &RawRequest, now: SystemTime) -> Result<(), Rejection>;
}

/// The `none` kind: anyone may post (a source protected by `allowed_ips` alone, or none).
pub struct Unverified;

impl Verifier for Unverified {
    fn verify(&self, _: &RawRequest, _: SystemTime) -> Result<(), Rejection> {
        Ok(())
    }
}

/// Are two secrets the same? Compared in constant time on their SHA-256 digests, so neither
/// their contents nor their lengths leak through timing.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b): ([u8; 32], [u8; 32]) = (Sha256::digest(a).into(), Sha256::digest(b).into());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Does `expected` equal the HMAC of the concatenated `parts` under `key` (constant-time)?
fn mac_matches(algorithm: Algorithm, key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    fn check<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
        let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            return false;
        };
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(expected).is_ok()
    }
    match algorithm {
        Algorithm::Sha256 => check::<Hmac<Sha256>>(key, parts, expected),
        Algorithm::Sha512 => check::<Hmac<Sha512>>(key, parts, expected),
    }
}

/// `Ok` if one of `signatures` is the HMAC of the concatenated `parts` under one of `keys`.
fn signed_by_any<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    algorithm: Algorithm,
    parts: &[&[u8]],
    signatures: &[Vec<u8>],
) -> Result<(), Rejection> {
    let matched = keys.into_iter().any(|key| {
        signatures
            .iter()
            .any(|sig| mac_matches(algorithm, key.as_ref(), parts, sig))
    });
    matched.then_some(()).ok_or(Rejection::SignatureMismatch)
}

/// `Ok` if the signed Unix time `signed_s` is within `tolerance_s` of `now`, either way.
fn in_time(signed_s: i64, now: SystemTime, tolerance_s: u64) -> Result<(), Rejection> {
    within_tolerance(signed_s, now, tolerance_s)
        .then_some(())
        .ok_or(Rejection::TimestampOutsideTolerance)
}

/// Bytes from lower- or upper-case hex; `None` if it is not hex.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            // Digits only: `from_str_radix` alone would take a sign ("+f").
            [high, low] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()
            }
            _ => None,
        })
        .collect()
}

/// Is the signed Unix time `signed_s` within `tolerance_s` of `now`, either way?
fn within_tolerance(signed_s: i64, now: SystemTime, tolerance_s: u64) -> bool {
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now_s.abs_diff(signed_s) <= tolerance_s
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    /// A header map from pairs.
    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// `SystemTime` at a Unix time.
    pub fn at(unix_s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix_s)
    }

    /// HMAC-SHA256, written out by the test (not through the verifiers' helpers).
    pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    pub fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_whatever_their_length() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
        assert!(!same_secret(b"s3cret", b"S3cret"));
        assert!(!same_secret(b"", b"x"));
    }

    #[test]
    fn reasons_are_the_rejection_log_names() {
        let reasons = [
            (Rejection::MissingHeader("x".into()), "missing_header"),
            (Rejection::MalformedHeader("x".into()), "malformed_header"),
            (Rejection::SignatureMismatch, "signature_mismatch"),
            (Rejection::TimestampOutsideTolerance, "timestamp_outside_tolerance"),
            (Rejection::BadCredentials, "bad_credentials"),
        ];
        for (rejection, reason) in reasons {
            assert_eq!(rejection.reason(), reason);
        }
    }

    #[test]
    fn the_none_kind_takes_anything() {
        let map = test_support::headers(&[]);
        let req = RawRequest {
            headers: &map,
            body: b"anything",
        };
        assert_eq!(Unverified.verify(&req, test_support::at(0)), Ok(()));
    }

    #[test]
    fn hex_is_read_strictly() {
        assert_eq!(from_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(from_hex("00FF"), Some(vec![0, 255]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é1"), None);
        assert_eq!(from_hex("+f"), None);
    }

    #[test]
    fn tolerance_holds_both_ways() {
        let now = test_support::at(1_000_000);
        assert!(within_tolerance(1_000_000 - 300, now, 300));
        assert!(within_tolerance(1_000_000 + 300, now, 300));
        assert!(!within_tolerance(1_000_000 - 301, now, 300));
        assert!(!within_tolerance(1_000_000 + 301, now, 300));
    }
}
