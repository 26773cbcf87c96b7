//! The `api_key` kind: a configured header carries a shared key, compared in constant time.

use super::{same_secret, RawRequest, Rejection, Verifier};
use std::time::SystemTime;

pub struct ApiKey {
    /// The header carrying the key (any case).
    pub header: String,
    pub value: String,
}

impl Verifier for ApiKey {
    fn verify(&self, req: &RawRequest, _: SystemTime) -> Result<(), Rejection> {
        let presented = req.header(&self.header)?;
        same_secret(presented.as_bytes(), self.value.as_bytes())
            .then_some(())
            .ok_or(Rejection::BadCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, headers};
    use super::*;

    #[test]
    fn right_wrong_and_missing_keys() {
        let verifier = ApiKey {
            header: "x-api-key".into(),
            value: "k_live_123".into(),
        };
        let check = |pairs: &[(&str, &str)]| {
            let map = headers(pairs);
            verifier.verify(
                &RawRequest {
                    headers: &map,
                    body: b"",
                },
                at(0),
            )
        };
        assert_eq!(check(&[("X-Api-Key", "k_live_123")]), Ok(()));
        assert_eq!(check(&[("X-Api-Key", "k_live_12")]), Err(Rejection::BadCredentials));
        assert_eq!(
            check(&[("X-Other", "k_live_123")]),
            Err(Rejection::MissingHeader("x-api-key".into()))
        );
    }
}
