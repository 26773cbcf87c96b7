//! Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature` (a
//! space-separated list of `v1,<base64>`), the HMAC-SHA256 under the base64-decoded part of a
//! `whsec_…` secret of `"{id}.{timestamp}.{body}"`. The signature is checked first, then the
//! time.

use super::{in_time, signed_by_any, Algorithm, RawRequest, Rejection, Verifier};
use crate::delivery::sign::decode_secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::time::SystemTime;

pub struct StandardWebhooks {
    /// `whsec_…` secrets.
    pub secrets: Vec<String>,
    pub tolerance_s: u64,
}

impl Verifier for StandardWebhooks {
    fn verify(&self, req: &RawRequest, now: SystemTime) -> Result<(), Rejection> {
        let id = req.header("webhook-id")?;
        let timestamp = req.header("webhook-timestamp")?;
        let signed_s: i64 = timestamp
            .parse()
            .map_err(|_| Rejection::MalformedHeader("webhook-timestamp".into()))?;
        let signatures: Vec<Vec<u8>> = req
            .header("webhook-signature")?
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .collect();
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", req.body];
        let keys = self.secrets.iter().filter_map(|s| decode_secret(s));
        signed_by_any(keys, Algorithm::Sha256, &parts, &signatures)?;
        in_time(signed_s, now, self.tolerance_s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, headers};
    use super::*;

    // The reference vector of the Standard Webhooks libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: u64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check(pairs: &[(&str, &str)], body: &[u8], secrets: &[&str], now: u64) -> Result<(), Rejection> {
        let verifier = StandardWebhooks {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            tolerance_s: 300,
        };
        let map = headers(pairs);
        verifier.verify(&RawRequest { headers: &map, body }, at(now))
    }

    #[test]
    fn the_reference_vector_passes_and_each_fault_has_its_reason() {
        let ts = TS.to_string();
        let good = [
            ("webhook-id", ID),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(check(&good, BODY, &[SECRET], TS), Ok(()));
        let several = format!("v1,bm90IGl0 {SIGNATURE} v2,whatever");
        let listed = [
            ("webhook-id", ID),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", several.as_str()),
        ];
        assert_eq!(
            check(&listed, BODY, &["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SECRET], TS),
            Ok(())
        );
        assert_eq!(
            check(&good, br#"{"test": 2432232315}"#, &[SECRET], TS),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            check(&good, BODY, &["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"], TS),
            Err(Rejection::SignatureMismatch)
        );
        let other_id = [
            ("webhook-id", "msg_other"),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(check(&other_id, BODY, &[SECRET], TS), Err(Rejection::SignatureMismatch));
        assert_eq!(
            check(&good, BODY, &[SECRET], TS + 301),
            Err(Rejection::TimestampOutsideTolerance)
        );
        assert_eq!(
            check(&good[..2], BODY, &[SECRET], TS),
            Err(Rejection::MissingHeader("webhook-signature".into()))
        );
        let bad_ts = [
            ("webhook-id", ID),
            ("webhook-timestamp", "soon"),
            ("webhook-signature", SIGNATURE),
        ];
        assert_eq!(
            check(&bad_ts, BODY, &[SECRET], TS),
            Err(Rejection::MalformedHeader("webhook-timestamp".into()))
        );
    }
}
