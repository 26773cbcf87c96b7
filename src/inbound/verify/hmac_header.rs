//! The generic `hmac` kind: a partner's own scheme, described by the source: which header
//! carries the signature, the algorithm (SHA-256 or SHA-512), the encoding (hex or base64) and
//! an optional prefix (e.g. `sha256=`), over the body alone.

use super::{from_hex, signed_by_any, RawRequest, Rejection, Verifier};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

pub struct HmacHeader {
    /// The header carrying the signature (any case).
    pub header: String,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    pub prefix: String,
    pub secrets: Vec<String>,
}

impl Verifier for HmacHeader {
    fn verify(&self, req: &RawRequest, _: SystemTime) -> Result<(), Rejection> {
        let value = req.header(&self.header)?;
        let encoded = value
            .strip_prefix(self.prefix.as_str())
            .ok_or(Rejection::MalformedHeader(self.header.clone()))?;
        let signature = match self.encoding {
            Encoding::Hex => from_hex(encoded),
            Encoding::Base64 => STANDARD.decode(encoded).ok(),
        }
        .ok_or(Rejection::MalformedHeader(self.header.clone()))?;
        let keys = self.secrets.iter().map(String::as_bytes);
        signed_by_any(keys, self.algorithm, &[req.body], &[signature])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{at, headers, hex};
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha512;

    #[test]
    fn each_algorithm_and_encoding_as_configured() {
        let body = b"partner payload";
        let mut mac = <Hmac<Sha512> as hmac::digest::KeyInit>::new_from_slice(b"k").unwrap();
        mac.update(body);
        let sha512 = mac.finalize().into_bytes().to_vec();
        let sha256 = super::super::test_support::hmac_sha256(b"k", body);
        let cases = [
            (Algorithm::Sha512, Encoding::Hex, "", hex(&sha512)),
            (
                Algorithm::Sha512,
                Encoding::Base64,
                "sig=",
                format!("sig={}", STANDARD.encode(&sha512)),
            ),
            (
                Algorithm::Sha256,
                Encoding::Hex,
                "sha256=",
                format!("sha256={}", hex(&sha256)),
            ),
        ];
        for (algorithm, encoding, prefix, value) in cases {
            let verifier = HmacHeader {
                header: "x-signature".into(),
                algorithm,
                encoding,
                prefix: prefix.into(),
                secrets: vec!["k".into()],
            };
            let map = headers(&[("X-Signature", value.as_str())]);
            let ok = RawRequest { headers: &map, body };
            assert_eq!(verifier.verify(&ok, at(0)), Ok(()), "{algorithm:?} {encoding:?}");
            let tampered = RawRequest {
                headers: &map,
                body: b"partner payloaD",
            };
            assert_eq!(verifier.verify(&tampered, at(0)), Err(Rejection::SignatureMismatch));
        }
        // The wrong algorithm, a missing prefix, a missing header.
        let verifier = HmacHeader {
            header: "x-signature".into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: "sha256=".into(),
            secrets: vec!["k".into()],
        };
        let check = |pairs: &[(&str, &str)]| {
            let map = headers(pairs);
            verifier.verify(&RawRequest { headers: &map, body }, at(0))
        };
        let sha512_hex = format!("sha256={}", hex(&sha512));
        assert_eq!(
            check(&[("x-signature", &sha512_hex)]),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(
            check(&[("x-signature", &hex(&sha256))]),
            Err(Rejection::MalformedHeader("x-signature".into()))
        );
        assert_eq!(check(&[]), Err(Rejection::MissingHeader("x-signature".into())));
    }
}
