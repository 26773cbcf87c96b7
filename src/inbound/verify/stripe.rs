//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, the HMAC-SHA256 under the
//! endpoint secret (the whole `whsec_…` string as key) of `"{t}.{body}"`; any `v1` may match.
//! The signature is checked first, then the time: a genuine but stale request is
//! `timestamp_outside_tolerance`.

use super::{from_hex, in_time, signed_by_any, Algorithm, RawRequest, Rejection, Verifier};
use std::time::SystemTime;

pub struct Stripe {
    pub secrets: Vec<String>,
    pub tolerance_s: u64,
}

impl Verifier for Stripe {
    fn verify(&self, req: &RawRequest, now: SystemTime) -> Result<(), Rejection> {
        const HEADER: &str = "stripe-signature";
        let value = req.header(HEADER)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in value.split(',') {
            match item.trim().split_once('=') {
                Some(("t", t)) => timestamp = Some(t),
                Some(("v1", sig)) => {
                    signatures.push(from_hex(sig).ok_or_else(|| Rejection::MalformedHeader(HEADER.into()))?)
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or_else(|| Rejection::MalformedHeader(HEADER.into()))?;
        let signed_s: i64 = timestamp
            .parse()
            .map_err(|_| Rejection::MalformedHeader(HEADER.into()))?;
        let parts: [&[u8]; 3] = [timestamp.as_bytes(), b".", req.body];
        let keys = self.secrets.iter().map(String::as_bytes);
        signed_by_any(keys, Algorithm::Sha256, &parts, &signatures)?;
        in_time(signed_s, now, self.tolerance_s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, headers, hex, hmac_sha256};
    use super::*;

    const SECRET: &str = "whsec_test_stripe_secret";
    const NOW: u64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;

    fn header(secret: &str, t: u64, body: &[u8]) -> String {
        let signed = [t.to_string().as_bytes(), b".", body].concat();
        format!("t={t},v1={},v0=ignored", hex(&hmac_sha256(secret.as_bytes(), &signed)))
    }

    fn verify(value: Option<&str>, body: &[u8], secrets: &[&str]) -> Result<(), Rejection> {
        let stripe = Stripe {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            tolerance_s: 300,
        };
        let map = headers(&value.map(|v| vec![("Stripe-Signature", v)]).unwrap_or_default());
        stripe.verify(&RawRequest { headers: &map, body }, at(NOW))
    }

    #[test]
    fn signed_tampered_unsigned_and_stale_requests() {
        let good = header(SECRET, NOW - 10, BODY);
        assert_eq!(verify(Some(&good), BODY, &[SECRET]), Ok(()));
        let tampered = br#"{"id":"evt_1","type":"charge.succeedeD"}"#;
        assert_eq!(
            verify(Some(&good), tampered, &[SECRET]),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            verify(Some(&good), BODY, &["whsec_other"]),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            verify(None, BODY, &[SECRET]),
            Err(Rejection::MissingHeader("stripe-signature".into()))
        );
        let stale = header(SECRET, NOW - 301, BODY);
        assert_eq!(
            verify(Some(&stale), BODY, &[SECRET]),
            Err(Rejection::TimestampOutsideTolerance)
        );
        assert_eq!(
            verify(Some("t=abc,v1=00"), BODY, &[SECRET]),
            Err(Rejection::MalformedHeader("stripe-signature".into()))
        );
    }

    #[test]
    fn any_v1_and_any_secret_of_a_rotation_pass() {
        let theirs = header("whsec_new", NOW, BODY);
        let mixed = format!("{theirs},v1={}", "ab".repeat(32));
        assert_eq!(verify(Some(&mixed), BODY, &[SECRET, "whsec_new"]), Ok(()));
        assert_eq!(verify(Some(&mixed), BODY, &[SECRET]), Err(Rejection::SignatureMismatch));
    }
}
