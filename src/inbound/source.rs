//! A source: where a tenant receives one provider's webhooks (`/in/src_…`), how they are
//! verified, and what the node does with them. Stored as JSON; checked as a whole by
//! [`Source::check`] after every create or change, so a wrong combination of `kind` and fields
//! is refused naming the field.

use super::net::Cidr;
use super::verify::{self, Algorithm, Encoding, Verifier};
use hookline_actors::model::PreviousSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a source's requests are verified (and where its provider id and type come from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stripe,
    Github,
    Shopify,
    StandardWebhooks,
    Hmac,
    Basic,
    ApiKey,
    None,
}

impl Kind {
    /// Every kind, in the order the contract lists them.
    pub const ALL: [Kind; 8] = [
        Kind::Stripe,
        Kind::Github,
        Kind::Shopify,
        Kind::StandardWebhooks,
        Kind::Hmac,
        Kind::Basic,
        Kind::ApiKey,
        Kind::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Stripe => "stripe",
            Kind::Github => "github",
            Kind::Shopify => "shopify",
            Kind::StandardWebhooks => "standard_webhooks",
            Kind::Hmac => "hmac",
            Kind::Basic => "basic",
            Kind::ApiKey => "api_key",
            Kind::None => "none",
        }
    }

    /// Kinds that sign with a shared secret (`secret` required, rotation applies).
    pub fn signs(self) -> bool {
        matches!(
            self,
            Kind::Stripe | Kind::Github | Kind::Shopify | Kind::StandardWebhooks | Kind::Hmac
        )
    }

    /// Kinds whose provider names each delivery (else the dedup key is `dedup_header` or the
    /// body's SHA-256).
    pub fn has_provider_id(self) -> bool {
        matches!(
            self,
            Kind::Stripe | Kind::Github | Kind::Shopify | Kind::StandardWebhooks
        )
    }

    /// Kinds whose secret the node can mint on rotation (the others' come from the provider).
    pub fn node_may_mint(self) -> bool {
        matches!(self, Kind::Github | Kind::StandardWebhooks | Kind::Hmac)
    }
}

/// The generic `hmac` kind's scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacScheme {
    /// The header carrying the signature (any case).
    pub header: String,
    /// Default `sha256`.
    #[serde(default = "sha256")]
    pub algorithm: AlgorithmName,
    /// Default `hex`.
    #[serde(default = "hex")]
    pub encoding: EncodingName,
    /// Text before the encoded signature in the header, e.g. `sha256=` (default none).
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlgorithmName {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingName {
    Hex,
    Base64,
}

fn sha256() -> AlgorithmName {
    AlgorithmName::Sha256
}
fn hex() -> EncodingName {
    EncodingName::Hex
}

/// The `basic` kind's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentials {
    pub username: String,
    pub password: String,
}

/// The `api_key` kind's header and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyHeader {
    /// Default `X-Api-Key`.
    #[serde(default = "api_key_header")]
    pub header: String,
    pub value: String,
}

fn api_key_header() -> String {
    "X-Api-Key".into()
}

/// A source as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub kind: Kind,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub previous_secrets: Vec<PreviousSecret>,
    #[serde(default)]
    pub hmac: Option<HmacScheme>,
    #[serde(default)]
    pub basic: Option<BasicCredentials>,
    #[serde(default)]
    pub api_key: Option<ApiKeyHeader>,
    pub tolerance_s: u64,
    #[serde(default)]
    pub type_prefix: String,
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    #[serde(default)]
    pub rate_limit_per_s: Option<u32>,
    pub dedup_window_s: u64,
    /// For the kinds without a provider id: the header naming each delivery.
    #[serde(default)]
    pub dedup_header: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Headers that carry credentials whatever the kind: never a dedup key, never kept on an event.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

pub const DEFAULT_TOLERANCE_S: u64 = 300;
pub const DEFAULT_DEDUP_WINDOW_S: u64 = 86_400;
pub const MAX_DEDUP_WINDOW_S: u64 = 30 * 86_400;
const MAX_TYPE_PREFIX: usize = 64;

impl Source {
    /// A new source of `kind` with every optional setting at its default.
    pub fn new(id: String, tenant: String, name: String, kind: Kind, now_ms: u64) -> Source {
        Source {
            id,
            tenant,
            name,
            kind,
            secret: None,
            previous_secrets: Vec::new(),
            hmac: None,
            basic: None,
            api_key: None,
            tolerance_s: DEFAULT_TOLERANCE_S,
            type_prefix: String::new(),
            allowed_ips: Vec::new(),
            rate_limit_per_s: None,
            dedup_window_s: DEFAULT_DEDUP_WINDOW_S,
            dedup_header: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// Every rule a source keeps; `Err` names the field (`"field: problem"`).
    pub fn check(&self) -> Result<(), String> {
        self.check_values()?;
        self.check_kind()
    }

    /// The rules each field keeps whatever the kind (what the document's schemas say).
    pub fn check_values(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.chars().count() > 128 {
            return Err("name: between 1 and 128 characters".into());
        }
        if let Some(secret) = &self.secret {
            if secret.is_empty() || secret.chars().count() > 512 {
                return Err("secret: between 1 and 512 characters".into());
            }
        }
        if let Some(scheme) = &self.hmac {
            check_header_name("hmac.header", &scheme.header)?;
            if scheme.prefix.chars().count() > 64 {
                return Err("hmac.prefix: at most 64 characters".into());
            }
        }
        if let Some(b) = &self.basic {
            if b.username.is_empty() || b.username.chars().count() > 256 || b.username.contains(':') {
                return Err("basic.username: 1 to 256 characters, without ':'".into());
            }
            if b.password.is_empty() || b.password.chars().count() > 256 {
                return Err("basic.password: 1 to 256 characters".into());
            }
        }
        if let Some(a) = &self.api_key {
            check_header_name("api_key.header", &a.header)?;
            // What a client can send and the node read back the same: visible ASCII, no
            // space at either end (HTTP drops it).
            let sendable = a.value.bytes().all(|b| (0x20..0x7f).contains(&b)) && a.value.trim() == a.value;
            if a.value.is_empty() || a.value.len() > 256 || !sendable {
                return Err("api_key.value: 1 to 256 visible ASCII characters, no space at either end".into());
            }
        }
        if !(1..=86_400).contains(&self.tolerance_s) {
            return Err("tolerance_s: between 1 and 86400".into());
        }
        if self.type_prefix.len() > MAX_TYPE_PREFIX
            || !self
                .type_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
        {
            return Err("type_prefix: at most 64 of [a-zA-Z0-9_.:-]".into());
        }
        if self.allowed_ips.len() > 100 {
            return Err("allowed_ips: at most 100 addresses or CIDR ranges".into());
        }
        if let Some(bad) = self.allowed_ips.iter().find(|c| c.parse::<Cidr>().is_err()) {
            return Err(format!(
                "allowed_ips: {bad:?} is not an IP address or CIDR range (203.0.113.0/24, 2001:db8::/32)"
            ));
        }
        if self.rate_limit_per_s.is_some_and(|r| !(1..=100_000).contains(&r)) {
            return Err("rate_limit_per_s: between 1 and 100000 (omit it for no limit)".into());
        }
        if !(1..=MAX_DEDUP_WINDOW_S).contains(&self.dedup_window_s) {
            return Err(format!("dedup_window_s: between 1 and {MAX_DEDUP_WINDOW_S}"));
        }
        if let Some(h) = &self.dedup_header {
            check_header_name("dedup_header", h)?;
            // A credential would be copied onto every event, and make every later request a
            // duplicate of the first. (The kind's own key or signature header is never used as
            // the dedup key either: `received` skips it.)
            if CREDENTIAL_HEADERS.iter().any(|c| h.eq_ignore_ascii_case(c)) {
                return Err(format!("dedup_header: {h:?} carries credentials"));
            }
        }
        Ok(())
    }

    /// The rules of the kind: which fields it needs, which it refuses, what its secret looks like.
    pub fn check_kind(&self) -> Result<(), String> {
        let kind = self.kind.name();
        match (&self.secret, self.kind.signs()) {
            (None, true) => return Err(format!("secret: required for kind {kind}")),
            (Some(_), false) => return Err(format!("secret: not used by kind {kind} (omit it)")),
            (Some(secret), true) => check_secret(self.kind, secret)?,
            (None, false) => {}
        }
        let needs = |field: &str, wanted: Kind, present: bool| match (present, self.kind == wanted) {
            (false, true) => Err(format!("{field}: required for kind {kind}")),
            (true, false) => Err(format!("{field}: only for kind {}, not {kind}", wanted.name())),
            _ => Ok(()),
        };
        needs("hmac", Kind::Hmac, self.hmac.is_some())?;
        needs("basic", Kind::Basic, self.basic.is_some())?;
        needs("api_key", Kind::ApiKey, self.api_key.is_some())?;
        if self.dedup_header.is_some() && self.kind.has_provider_id() {
            return Err(format!(
                "dedup_header: kind {kind} deduplicates on its provider's id (omit it)"
            ));
        }
        Ok(())
    }

    /// Secrets that verify a request at `now_ms`: the current one, then those still in their
    /// rotation overlap.
    pub fn live_secrets(&self, now_ms: u64) -> Vec<String> {
        self.secret
            .iter()
            .cloned()
            .chain(
                self.previous_secrets
                    .iter()
                    .filter(|p| p.expires_at_ms > now_ms)
                    .map(|p| p.secret.clone()),
            )
            .collect()
    }

    /// The verifier of this source's requests at `now_ms`.
    pub fn verifier(&self, now_ms: u64) -> Box<dyn Verifier> {
        let secrets = self.live_secrets(now_ms);
        let tolerance_s = self.tolerance_s;
        match self.kind {
            Kind::Stripe => Box::new(verify::Stripe { secrets, tolerance_s }),
            Kind::Github => Box::new(verify::GitHub { secrets }),
            Kind::Shopify => Box::new(verify::Shopify { secrets }),
            Kind::StandardWebhooks => Box::new(verify::StandardWebhooks { secrets, tolerance_s }),
            Kind::Hmac => {
                let scheme = self.hmac.clone().unwrap_or(HmacScheme {
                    header: String::new(),
                    algorithm: AlgorithmName::Sha256,
                    encoding: EncodingName::Hex,
                    prefix: String::new(),
                });
                Box::new(verify::HmacHeader {
                    header: scheme.header,
                    algorithm: match scheme.algorithm {
                        AlgorithmName::Sha256 => Algorithm::Sha256,
                        AlgorithmName::Sha512 => Algorithm::Sha512,
                    },
                    encoding: match scheme.encoding {
                        EncodingName::Hex => Encoding::Hex,
                        EncodingName::Base64 => Encoding::Base64,
                    },
                    prefix: scheme.prefix,
                    secrets,
                })
            }
            Kind::Basic => {
                let b = self.basic.clone().unwrap_or(BasicCredentials {
                    username: String::new(),
                    password: String::new(),
                });
                Box::new(verify::Basic {
                    username: b.username,
                    password: b.password,
                })
            }
            Kind::ApiKey => {
                let a = self.api_key.clone().unwrap_or(ApiKeyHeader {
                    header: api_key_header(),
                    value: String::new(),
                });
                Box::new(verify::ApiKey {
                    header: a.header,
                    value: a.value,
                })
            }
            Kind::None => Box::new(verify::Unverified),
        }
    }

    /// Every header that carries this source's signature or credentials (lower case): the
    /// fixed ones, the providers' signature headers, and the kind's configured header.
    pub fn secret_headers(&self) -> Vec<String> {
        let fixed = CREDENTIAL_HEADERS.iter().chain(&[
            "stripe-signature",
            "x-hub-signature",
            "x-hub-signature-256",
            "x-shopify-hmac-sha256",
            "webhook-signature",
        ]);
        let own = [
            self.api_key.as_ref().map(|a| a.header.as_str()),
            self.hmac.as_ref().map(|s| s.header.as_str()),
        ];
        fixed
            .copied()
            .chain(own.into_iter().flatten())
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// The parsed `allowed_ips` (empty: every caller).
    pub fn allowed_ranges(&self) -> Vec<Cidr> {
        self.allowed_ips.iter().filter_map(|c| c.parse().ok()).collect()
    }

    pub fn ingest_path(&self) -> String {
        format!("/in/{}", self.id)
    }
}

fn check_secret(kind: Kind, secret: &str) -> Result<(), String> {
    if kind == Kind::StandardWebhooks {
        return crate::delivery::sign::decode_secret(secret)
            .map(|_| ())
            .ok_or_else(|| "secret: kind standard_webhooks needs whsec_ followed by base64".to_string());
    }
    Ok(())
}

fn check_header_name(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 128 || axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{field}: {name:?} is not a header name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(kind: Kind) -> Source {
        Source::new("src_x".into(), "t".into(), "n".into(), kind, 0)
    }

    #[test]
    fn kind_decides_which_fields_are_required_and_which_are_refused() {
        let mut s = source(Kind::Stripe);
        assert_eq!(s.check().unwrap_err(), "secret: required for kind stripe");
        s.secret = Some("whsec_abc".into());
        assert_eq!(s.check(), Ok(()));
        s.basic = Some(BasicCredentials {
            username: "u".into(),
            password: "p".into(),
        });
        assert!(s.check().unwrap_err().starts_with("basic: only for kind basic"));

        let mut s = source(Kind::Basic);
        assert!(s.check().unwrap_err().starts_with("basic: required"));
        s.basic = Some(BasicCredentials {
            username: "u".into(),
            password: "p".into(),
        });
        assert_eq!(s.check(), Ok(()));
        s.secret = Some("x".into());
        assert!(s.check().unwrap_err().starts_with("secret: not used by kind basic"));

        let mut s = source(Kind::Hmac);
        s.secret = Some("k".into());
        assert!(s.check().unwrap_err().starts_with("hmac: required"));
        s.hmac = Some(HmacScheme {
            header: "X-Signature".into(),
            algorithm: AlgorithmName::Sha512,
            encoding: EncodingName::Base64,
            prefix: "sha512=".into(),
        });
        assert_eq!(s.check(), Ok(()));

        let mut s = source(Kind::ApiKey);
        assert!(s.check().unwrap_err().starts_with("api_key: required"));
        s.api_key = Some(ApiKeyHeader {
            header: "X-Key".into(),
            value: "v".into(),
        });
        assert_eq!(s.check(), Ok(()));

        assert_eq!(source(Kind::None).check(), Ok(()));
    }

    #[test]
    fn each_field_names_itself_when_wrong() {
        type Spoil = Box<dyn Fn(&mut Source)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("name", Box::new(|s| s.name = String::new())),
            ("tolerance_s", Box::new(|s| s.tolerance_s = 0)),
            ("type_prefix", Box::new(|s| s.type_prefix = "a b".into())),
            ("allowed_ips", Box::new(|s| s.allowed_ips = vec!["10.0.0.0/33".into()])),
            ("rate_limit_per_s", Box::new(|s| s.rate_limit_per_s = Some(0))),
            ("dedup_window_s", Box::new(|s| s.dedup_window_s = 0)),
            ("dedup_header", Box::new(|s| s.dedup_header = Some("bad header".into()))),
        ];
        for (field, spoil) in cases {
            let mut s = source(Kind::None);
            spoil(&mut s);
            let message = s.check().unwrap_err();
            assert!(message.starts_with(&format!("{field}: ")), "{field}: {message}");
        }
        let mut s = source(Kind::StandardWebhooks);
        s.secret = Some("not-whsec".into());
        assert!(s.check().unwrap_err().starts_with("secret: "));
        s.secret = Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        assert_eq!(s.check(), Ok(()));
        s.dedup_header = Some("X-Id".into());
        assert!(s.check().unwrap_err().starts_with("dedup_header: "));

        // A credential header cannot be the dedup key (it would be copied onto every event).
        let mut s = source(Kind::ApiKey);
        s.api_key = Some(ApiKeyHeader {
            header: "X-Key".into(),
            value: "v".into(),
        });
        for header in ["Authorization", "cookie", "Proxy-Authorization"] {
            s.dedup_header = Some(header.into());
            assert!(s.check_values().unwrap_err().starts_with("dedup_header: "), "{header}");
        }
        assert!(s.secret_headers().contains(&"x-key".to_string()));
        s.dedup_header = Some("X-Request-Id".into());
        assert_eq!(s.check(), Ok(()));
        for value in [" v", "v ", "é", ""] {
            s.api_key.as_mut().unwrap().value = value.into();
            assert!(
                s.check_values().unwrap_err().starts_with("api_key.value: "),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_rotated_out_secret_verifies_until_its_overlap_ends() {
        let mut s = source(Kind::Github);
        s.secret = Some("new".into());
        s.previous_secrets = vec![PreviousSecret {
            secret: "old".into(),
            expires_at_ms: 1_000,
        }];
        assert_eq!(s.live_secrets(999), vec!["new".to_string(), "old".to_string()]);
        assert_eq!(s.live_secrets(1_000), vec!["new".to_string()]);
    }
}
