//! The `basic` kind: `Authorization: Basic base64(username:password)`, both compared in
//! constant time.

use super::{same_secret, RawRequest, Rejection, Verifier};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::time::SystemTime;

pub struct Basic {
    pub username: String,
    pub password: String,
}

impl Verifier for Basic {
    fn verify(&self, req: &RawRequest, _: SystemTime) -> Result<(), Rejection> {
        const HEADER: &str = "authorization";
        let value = req.header(HEADER)?;
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
            .ok_or_else(|| Rejection::MalformedHeader(HEADER.into()))?;
        let decoded = STANDARD
            .decode(encoded.trim())
            .map_err(|_| Rejection::MalformedHeader(HEADER.into()))?;
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return Err(Rejection::MalformedHeader(HEADER.into()));
        };
        let (username, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both compared, whichever is wrong, so the time says nothing about which.
        let user_ok = same_secret(username, self.username.as_bytes());
        let password_ok = same_secret(password, self.password.as_bytes());
        (user_ok & password_ok).then_some(()).ok_or(Rejection::BadCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, headers};
    use super::*;

    #[test]
    fn right_wrong_missing_and_malformed_credentials() {
        let basic = Basic {
            username: "partner".into(),
            password: "p:ss word".into(),
        };
        let check = |value: Option<String>| {
            let map = headers(&value.as_deref().map(|v| vec![("Authorization", v)]).unwrap_or_default());
            basic.verify(
                &RawRequest {
                    headers: &map,
                    body: b"{}",
                },
                at(0),
            )
        };
        let auth = |creds: &str| Some(format!("Basic {}", STANDARD.encode(creds)));
        assert_eq!(check(auth("partner:p:ss word")), Ok(()), "a password may hold a colon");
        assert_eq!(check(auth("partner:wrong")), Err(Rejection::BadCredentials));
        assert_eq!(check(auth("other:p:ss word")), Err(Rejection::BadCredentials));
        assert_eq!(check(None), Err(Rejection::MissingHeader("authorization".into())));
        assert_eq!(
            check(Some("Bearer abc".into())),
            Err(Rejection::MalformedHeader("authorization".into()))
        );
        assert_eq!(
            check(auth("no colon here")),
            Err(Rejection::MalformedHeader("authorization".into()))
        );
    }
}
