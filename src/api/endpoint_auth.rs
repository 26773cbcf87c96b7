//! How an endpoint proves itself to its receiver beyond the signature: `tls` (a client
//! certificate, a CA of its own) and `oauth2` (client credentials). The fields as the API takes
//! and shows them (write-only parts never shown), their checks, their OpenAPI schemas. And the
//! other names the endpoint fields take: its signature scheme, its payload mode.

use super::error::ApiError;
use crate::delivery::sign;
use crate::delivery::ssrf;
use hookline_actors::model::EndpointKind;
use hookline_actors::{ClientTls, EndpointConfig, OAuth2Client, OAuth2ClientAuth, PayloadMode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// A PEM block or bundle, as far as a pattern can tell (the content must also parse):
/// `pem_framed`.
pub const PEM: &str = r"^[ \t\r\n]*-----BEGIN [A-Z0-9 ]{1,40}-----[\s\S]*-----END [A-Z0-9 ]{1,40}-----[ \t\r\n]*$";
/// The labels of private keys the node reads (PKCS#8, PKCS#1, SEC1).
const KEY_LABELS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// `label-----` at the start of `text` (a label of 1 to 40 of `[A-Z0-9 ]`): the label and what
/// follows.
fn label_then_dashes(text: &str) -> Option<(&str, &str)> {
    let end = text.find("-----")?;
    let label = &text[..end];
    let valid = (1..=40).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
    valid.then(|| (label, &text[end + 5..]))
}

/// What `PEM` says: `-----BEGIN <label>-----`, anything, `-----END <label>-----`, with only
/// spaces, tabs and line breaks around.
pub fn pem_framed(text: &str) -> bool {
    let text = text.trim_matches([' ', '\t', '\r', '\n']);
    let Some(after_begin) = text
        .strip_prefix("-----BEGIN ")
        .and_then(label_then_dashes)
        .map(|(_, rest)| rest)
    else {
        return false;
    };
    // The last `-----END ` that leaves a whole footer at the end.
    after_begin
        .match_indices("-----END ")
        .any(|(at, _)| label_then_dashes(&after_begin[at + 9..]).is_some_and(|(_, rest)| rest.is_empty()))
}

/// The labels of the PEM blocks in `text`, in order.
fn pem_labels(text: &str) -> Vec<&str> {
    text.match_indices("-----BEGIN ")
        .filter_map(|(at, _)| label_then_dashes(&text[at + 11..]).map(|(label, _)| label))
        .collect()
}
/// Longest PEM text taken.
pub const PEM_MAX: usize = 65_536;
/// A string without control characters.
const PLAIN: &str = "^[^\\x00-\\x1f\\x7f]*$";

/// `tls`: a client certificate with its key (together), and a CA trusted beside the system
/// roots. The object replaces the stored one whole (`null` removes it).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFields {
    #[serde(default, deserialize_with = "not_null")]
    client_cert_pem: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    client_key_pem: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    ca_pem: Option<String>,
}

/// An optional field that, when present, is a value (the document does not allow null in
/// these objects).
fn not_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `oauth2`: the receiver's token URL and this endpoint's client there.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Fields {
    token_url: String,
    client_id: String,
    client_secret: String,
    #[serde(default, deserialize_with = "not_null")]
    scope: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    audience: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    auth: Option<ClientAuthName>,
}

/// How the client's credentials reach the token URL: HTTP Basic (default) or the form body.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthName {
    ClientSecretBasic,
    ClientSecretPost,
}

/// An endpoint's `tls` as shown: never its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct TlsOut {
    client_cert_pem: Option<String>,
    ca_pem: Option<String>,
}

/// An endpoint's `oauth2` as shown: never its client secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuth2Out {
    token_url: String,
    client_id: String,
    scope: Option<String>,
    audience: Option<String>,
    auth: ClientAuthName,
}

impl OAuth2Fields {
    pub fn token_url(&self) -> &str {
        &self.token_url
    }
}

impl From<TlsFields> for ClientTls {
    fn from(f: TlsFields) -> ClientTls {
        ClientTls {
            client_cert_pem: f.client_cert_pem,
            client_key_pem: f.client_key_pem,
            ca_pem: f.ca_pem,
        }
    }
}

impl From<OAuth2Fields> for OAuth2Client {
    fn from(f: OAuth2Fields) -> OAuth2Client {
        OAuth2Client {
            token_url: f.token_url,
            client_id: f.client_id,
            client_secret: f.client_secret,
            scope: f.scope,
            audience: f.audience,
            auth: match f.auth {
                Some(ClientAuthName::ClientSecretPost) => OAuth2ClientAuth::ClientSecretPost,
                _ => OAuth2ClientAuth::ClientSecretBasic,
            },
        }
    }
}

pub fn tls_out(tls: Option<&ClientTls>) -> Option<TlsOut> {
    tls.map(|t| TlsOut {
        client_cert_pem: t.client_cert_pem.clone(),
        ca_pem: t.ca_pem.clone(),
    })
}

pub fn oauth2_out(oauth: Option<&OAuth2Client>) -> Option<OAuth2Out> {
    oauth.map(|o| OAuth2Out {
        token_url: o.token_url.clone(),
        client_id: o.client_id.clone(),
        scope: o.scope.clone(),
        audience: o.audience.clone(),
        auth: match o.auth {
            OAuth2ClientAuth::ClientSecretBasic => ClientAuthName::ClientSecretBasic,
            OAuth2ClientAuth::ClientSecretPost => ClientAuthName::ClientSecretPost,
        },
    })
}

/// Set or remove (`None`) `tls` or `oauth2` from a body.
pub fn apply(cfg: &mut EndpointConfig, tls: Option<Option<TlsFields>>, oauth2: Option<Option<OAuth2Fields>>) {
    if let Some(tls) = tls {
        // `{}` asks for nothing: the same as null.
        let tls = tls.map(ClientTls::from);
        cfg.tls = tls
            .filter(|t| t.client_cert_pem.is_some() || t.client_key_pem.is_some() || t.ca_pem.is_some())
            .map(Arc::new);
    }
    if let Some(oauth2) = oauth2 {
        cfg.oauth2 = oauth2.map(|o| Arc::new(o.into()));
    }
}

/// An http(s) URL the node may send to (the endpoint's `url`, `oauth2.token_url`): 400 naming
/// `field` otherwise.
pub fn check_url(field: &str, raw: &str, rules: &crate::config::Delivery) -> Result<(), ApiError> {
    let url = reqwest::Url::parse(raw).map_err(|e| ApiError::invalid(format!("{field}: not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::invalid(format!("{field}: the scheme must be http or https")));
    }
    let host = url
        .host_str()
        .ok_or_else(|| ApiError::invalid(format!("{field}: a host is required")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::invalid(format!(
            "{field}: credentials in the URL are not allowed"
        )));
    }
    if raw.len() > 2048 {
        return Err(ApiError::invalid(format!("{field}: at most 2048 characters")));
    }
    if !rules.allow_private_networks {
        if let Some(ip) = ssrf::literal_ip(host) {
            if ssrf::is_blocked(ip) {
                return Err(ApiError::invalid(format!(
                    "{field}: {ip} is a loopback, private, link-local or metadata address (set delivery.allow_private_networks to allow it)"
                )));
            }
        }
        if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
            return Err(ApiError::invalid(format!("{field}: localhost is not a public address")));
        }
    }
    Ok(())
}

/// The rules of `tls` and `oauth2` (400 naming the field).
pub fn check(cfg: &EndpointConfig, rules: &crate::config::Delivery) -> Result<(), ApiError> {
    if let Some(tls) = &cfg.tls {
        for (field, value) in [
            ("tls.client_cert_pem", &tls.client_cert_pem),
            ("tls.client_key_pem", &tls.client_key_pem),
            ("tls.ca_pem", &tls.ca_pem),
        ] {
            let Some(value) = value else { continue };
            if value.chars().count() > PEM_MAX {
                return Err(ApiError::invalid(format!("{field}: at most {PEM_MAX} characters")));
            }
            if !pem_framed(value) {
                return Err(ApiError::invalid(format!(
                    "{field}: must be PEM (-----BEGIN …----- … -----END …-----), nothing around it"
                )));
            }
            // Certificates are shown and stored as they are: a key pasted among them would be
            // too. The key field holds one key and nothing else.
            let labels = pem_labels(value);
            let fits = match field {
                "tls.client_key_pem" => labels.len() == 1 && KEY_LABELS.contains(&labels[0]),
                _ => labels.iter().all(|l| *l == "CERTIFICATE"),
            };
            if !fits {
                return Err(ApiError::invalid(match field {
                    "tls.client_key_pem" => format!(
                        "{field}: exactly one PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block, nothing else"
                    ),
                    _ => format!("{field}: CERTIFICATE blocks only (a private key goes in tls.client_key_pem)"),
                }));
            }
        }
        crate::delivery::check_tls(tls).map_err(ApiError::invalid)?;
    }
    if let Some(oauth) = &cfg.oauth2 {
        check_url("oauth2.token_url", &oauth.token_url, rules)?;
        for (field, value, min, max) in [
            ("oauth2.client_id", Some(&oauth.client_id), 1, 256),
            ("oauth2.client_secret", Some(&oauth.client_secret), 1, 1024),
            ("oauth2.scope", oauth.scope.as_ref(), 0, 1024),
            ("oauth2.audience", oauth.audience.as_ref(), 0, 1024),
        ] {
            let Some(value) = value else { continue };
            let length = value.chars().count();
            // Control characters as the document's pattern says: C0 and DEL.
            if length < min || length > max || value.chars().any(|c| c < ' ' || c == '\x7f') {
                return Err(ApiError::invalid(format!(
                    "{field}: {min} to {max} characters, no control characters"
                )));
            }
        }
    }
    Ok(())
}

fn pem(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(PEM))
        .max_length(Some(PEM_MAX))
        .description(Some(description))
}

/// `tls`: one of an object with the certificate and its key (and perhaps a CA), an object
/// with a CA alone (or nothing), or null.
pub fn tls_schema() -> RefOr<Schema> {
    let cert = || pem("The client certificate (chain): PEM CERTIFICATE blocks that parse.");
    let key = || {
        pem(
            "Its private key: one PEM block (PKCS#8, PKCS#1 or SEC1) that fits the certificate; write-only, \
             stored like a secret.",
        )
    };
    let ca =
        || pem("CA certificates trusted for this endpoint beside the system roots: PEM CERTIFICATE blocks that parse.");
    let with_certificate = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .property("client_cert_pem", cert())
        .property("client_key_pem", key())
        .property("ca_pem", ca())
        .required("client_cert_pem")
        .required("client_key_pem")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let ca_only = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .property("ca_pem", ca())
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let null = ObjectBuilder::new().schema_type(SchemaType::new(Type::Null));
    RefOr::T(Schema::OneOf(
        OneOfBuilder::new()
            .item(with_certificate)
            .item(ca_only)
            .item(null)
            .description(Some(
                "Mutual TLS: a client certificate presented to the receiver (with its key), and a CA \
                 trusted for this endpoint only. Replaces the stored object whole; null (or {}) removes it. \
                 PEM that does not parse, or a key that does not fit the certificate, is a 400 naming the field.",
            ))
            .build(),
    ))
}

/// `oauth2`: the client-credentials settings, or null.
pub fn oauth2_schema() -> RefOr<Schema> {
    let plain = |min: usize, max: usize, description: &str| {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .pattern(Some(PLAIN))
            .min_length(Some(min))
            .max_length(Some(max))
            .description(Some(description))
    };
    let mut token_url = super::schema::url(false);
    token_url.description =
        Some("The token URL (client-credentials grant): an http or https URL the SSRF guard allows, as `url`.".into());
    let settings = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .property("token_url", token_url)
        .property("client_id", plain(1, 256, "The client id."))
        .property(
            "client_secret",
            plain(1, 1024, "The client secret; write-only, stored like a secret."),
        )
        .property("scope", plain(0, 1024, "Sent as `scope` when given."))
        .property("audience", plain(0, 1024, "Sent as `audience` when given."))
        .property("auth", <ClientAuthName as utoipa::PartialSchema>::schema())
        .required("token_url")
        .required("client_id")
        .required("client_secret")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    RefOr::T(Schema::OneOf(
        OneOfBuilder::new()
            .item(settings)
            .item(ObjectBuilder::new().schema_type(SchemaType::new(Type::Null)))
            .description(Some(
                "OAuth2 client credentials: the node fetches a token and sends `Authorization: Bearer …`. \
                 Replaces the stored object whole; null removes it.",
            ))
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_framing_is_what_the_pattern_says() {
        let pattern = regex::Regex::new(PEM).unwrap();
        let block = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let cases = [
            block.to_string(),
            format!("\n {block}\r\n\t"),
            format!("{block}\n{block}"),
            format!("junk\n{block}"),
            format!("{block}\ntrailer"),
            "-----BEGIN A-----END A-----".into(),
            "-----BEGIN A----------END A-----".into(),
            "-----BEGIN a-----x-----END A-----".into(),
            format!("-----BEGIN {}-----x-----END A-----", "A".repeat(41)),
            "-----BEGIN -----x-----END A-----".into(),
            "\u{1c}-----BEGIN A-----x-----END A-----".into(),
            "-----BEGIN A-----x-----END A----- -----END B-----".into(),
            "-----BEGIN A-----x-----END A----------END B".into(),
            String::new(),
        ];
        for case in cases {
            assert_eq!(pem_framed(&case), pattern.is_match(&case), "{case:?}");
        }
        assert_eq!(
            pem_labels(&format!(
                "{block}\n-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----"
            )),
            ["CERTIFICATE", "EC PRIVATE KEY"]
        );
    }
}

/// How an endpoint's deliveries are signed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub(super) scheme: SchemeName,
}

/// `hmac_sha256`: `v1,` signatures with the shared `secret` (Standard Webhooks, symmetric).
/// `ed25519`: `v1a,` signatures with a key the node keeps; receivers verify with `public_key`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemeName {
    HmacSha256,
    Ed25519,
}

impl From<SchemeName> for sign::Scheme {
    fn from(name: SchemeName) -> sign::Scheme {
        match name {
            SchemeName::HmacSha256 => sign::Scheme::HmacSha256,
            SchemeName::Ed25519 => sign::Scheme::Ed25519,
        }
    }
}

impl Signature {
    pub(super) fn of(secret: &str) -> Signature {
        let scheme = match sign::Scheme::of(secret) {
            sign::Scheme::HmacSha256 => SchemeName::HmacSha256,
            sign::Scheme::Ed25519 => SchemeName::Ed25519,
        };
        Signature { scheme }
    }
}

/// What an endpoint's deliveries carry (`hookline_actors::PayloadMode`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayloadModeName {
    Full,
    Thin,
}

impl From<PayloadModeName> for PayloadMode {
    fn from(name: PayloadModeName) -> PayloadMode {
        match name {
            PayloadModeName::Full => PayloadMode::Full,
            PayloadModeName::Thin => PayloadMode::Thin,
        }
    }
}

impl From<PayloadMode> for PayloadModeName {
    fn from(mode: PayloadMode) -> PayloadModeName {
        match mode {
            PayloadMode::Full => PayloadModeName::Full,
            PayloadMode::Thin => PayloadModeName::Thin,
        }
    }
}

/// What an endpoint is (`hookline_actors::model::EndpointKind`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    Webhook,
    Slack,
    Email,
}

impl From<KindName> for EndpointKind {
    fn from(name: KindName) -> EndpointKind {
        match name {
            KindName::Webhook => EndpointKind::Webhook,
            KindName::Slack => EndpointKind::Slack,
            KindName::Email => EndpointKind::Email,
        }
    }
}

impl From<EndpointKind> for KindName {
    fn from(kind: EndpointKind) -> KindName {
        match kind {
            EndpointKind::Webhook => KindName::Webhook,
            EndpointKind::Slack => KindName::Slack,
            EndpointKind::Email => KindName::Email,
        }
    }
}
