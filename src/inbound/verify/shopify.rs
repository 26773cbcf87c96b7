//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>` under the app's secret.
//! Shopify signs no timestamp.

use super::{signed_by_any, Algorithm, RawRequest, Rejection, Verifier};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::time::SystemTime;

pub struct Shopify {
    pub secrets: Vec<String>,
}

impl Verifier for Shopify {
    fn verify(&self, req: &RawRequest, _: SystemTime) -> Result<(), Rejection> {
        const HEADER: &str = "x-shopify-hmac-sha256";
        let signature = STANDARD
            .decode(req.header(HEADER)?.trim())
            .map_err(|_| Rejection::MalformedHeader(HEADER.into()))?;
        let keys = self.secrets.iter().map(String::as_bytes);
        signed_by_any(keys, Algorithm::Sha256, &[req.body], &[signature])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, headers, hmac_sha256};
    use super::*;

    #[test]
    fn signed_tampered_unsigned_and_malformed_requests() {
        let body = br#"{"id":820982911946154508}"#;
        let shopify = Shopify {
            secrets: vec!["shpss_secret".into()],
        };
        let check = |name: &str, value: &str, body: &[u8]| {
            let map = headers(&[(name, value)]);
            shopify.verify(&RawRequest { headers: &map, body }, at(0))
        };
        let good = STANDARD.encode(hmac_sha256(b"shpss_secret", body));
        assert_eq!(check("X-Shopify-Hmac-Sha256", &good, body), Ok(()));
        assert_eq!(
            check("x-shopify-hmac-SHA256", &good, body),
            Ok(()),
            "header names ignore case"
        );
        assert_eq!(
            check("X-Shopify-Hmac-Sha256", &good, b"{}"),
            Err(Rejection::SignatureMismatch)
        );
        let wrong = STANDARD.encode(hmac_sha256(b"other", body));
        assert_eq!(
            check("X-Shopify-Hmac-Sha256", &wrong, body),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            check("X-Other", &good, body),
            Err(Rejection::MissingHeader("x-shopify-hmac-sha256".into()))
        );
        assert_eq!(
            check("X-Shopify-Hmac-Sha256", "not base64!", body),
            Err(Rejection::MalformedHeader("x-shopify-hmac-sha256".into()))
        );
    }
}
