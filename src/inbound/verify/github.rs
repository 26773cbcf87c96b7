//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` under the webhook
//! secret. GitHub signs no timestamp.

use super::{from_hex, signed_by_any, Algorithm, RawRequest, Rejection, Verifier};
use std::time::SystemTime;

pub struct GitHub {
    pub secrets: Vec<String>,
}

impl Verifier for GitHub {
    fn verify(&self, req: &RawRequest, _: SystemTime) -> Result<(), Rejection> {
        const HEADER: &str = "x-hub-signature-256";
        let value = req.header(HEADER)?;
        let signature = value
            .strip_prefix("sha256=")
            .and_then(from_hex)
            .ok_or_else(|| Rejection::MalformedHeader(HEADER.into()))?;
        let keys = self.secrets.iter().map(String::as_bytes);
        signed_by_any(keys, Algorithm::Sha256, &[req.body], &[signature])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, headers, hex, hmac_sha256};
    use super::*;

    #[test]
    fn signed_tampered_unsigned_and_malformed_requests() {
        let body = br#"{"action":"opened"}"#;
        let github = GitHub {
            secrets: vec!["old".into(), "It's a Secret to Everybody".into()],
        };
        let check = |value: Option<String>, body: &[u8]| {
            let map = headers(
                &value
                    .as_deref()
                    .map(|v| vec![("X-Hub-Signature-256", v)])
                    .unwrap_or_default(),
            );
            github.verify(&RawRequest { headers: &map, body }, at(0))
        };
        let sign = |secret: &str, body: &[u8]| format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body)));
        assert_eq!(check(Some(sign("It's a Secret to Everybody", body)), body), Ok(()));
        assert_eq!(
            check(Some(sign("old", body)), body),
            Ok(()),
            "either secret of a rotation"
        );
        assert_eq!(
            check(Some(sign("wrong", body)), body),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            check(Some(sign("old", body)), br#"{"action":"closed"}"#),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            check(None, body),
            Err(Rejection::MissingHeader("x-hub-signature-256".into()))
        );
        assert_eq!(
            check(Some("sha1=00".into()), body),
            Err(Rejection::MalformedHeader("x-hub-signature-256".into()))
        );
    }

    #[test]
    fn matches_githubs_documented_example() {
        // GitHub's documentation: secret "It's a Secret to Everybody", payload "Hello, World!".
        let github = GitHub {
            secrets: vec!["It's a Secret to Everybody".into()],
        };
        let map = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        let req = RawRequest {
            headers: &map,
            body: b"Hello, World!",
        };
        assert_eq!(github.verify(&req, at(0)), Ok(()));
    }
}
