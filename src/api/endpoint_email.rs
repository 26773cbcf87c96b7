//! Email endpoints (issue 22, `kind: email`): the `email` field, kept as the endpoint's `url`
//! (`mailto:a@x,b@y`), and what such an endpoint may and may not have.

use super::error::{ApiError, ApiResult};
use hookline_actors::model::EndpointKind;
use hookline_actors::EndpointConfig;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most recipients an email endpoint has.
pub const MAX_RECIPIENTS: usize = 20;

/// `kind: email`: who gets each delivery.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailFields {
    /// 1 to 20 addresses (`ops@example.com`, `Ops <ops@example.com>`).
    #[schema(min_items = 1, max_items = 20)]
    pub to: Vec<String>,
}

impl EmailFields {
    /// The endpoint's `url` for these recipients.
    pub fn url(&self) -> String {
        format!(
            "mailto:{}",
            self.to.iter().map(|a| a.trim()).collect::<Vec<_>>().join(",")
        )
    }

    /// The recipients of an email endpoint, as shown (`None` for other kinds).
    pub fn of(cfg: &EndpointConfig) -> Option<EmailFields> {
        let list = cfg
            .url
            .strip_prefix("mailto:")
            .filter(|_| cfg.kind == EndpointKind::Email)?;
        Some(EmailFields {
            to: list.split(',').map(str::to_string).collect(),
        })
    }
}

/// An email endpoint's rules: recipients that are addresses, and none of what only an HTTP
/// receiver has (headers, a client certificate, OAuth2, a transform).
pub fn check(cfg: &EndpointConfig) -> ApiResult<()> {
    let Some(fields) = EmailFields::of(cfg) else {
        return Err(ApiError::invalid("email: is required for kind email (instead of url)"));
    };
    if fields.to.is_empty() || fields.to.len() > MAX_RECIPIENTS {
        return Err(ApiError::invalid(format!("email.to: 1 to {MAX_RECIPIENTS} addresses")));
    }
    for address in &fields.to {
        if address.is_empty() || address.chars().count() > 254 || address.contains([',', '\r', '\n']) {
            return Err(ApiError::invalid(format!("email.to: {address:?} is not an address")));
        }
    }
    crate::delivery::email::recipients(&cfg.url).map_err(|e| ApiError::invalid(format!("email.to: {e}")))?;
    let http_only = [
        ("headers", !cfg.headers.is_empty()),
        ("tls", cfg.tls.is_some()),
        ("oauth2", cfg.oauth2.is_some()),
        ("transform", cfg.transform.is_some()),
    ];
    if let Some((field, _)) = http_only.iter().find(|(_, set)| *set) {
        return Err(ApiError::invalid(format!("{field}: not for kind email")));
    }
    Ok(())
}
