//! What an endpoint's fields must be (`validate`): a URL the SSRF guard allows (and
//! `delivery.require_https`, for a URL being set: `check_https`), event type patterns, limits, a secret, headers the node
//! does not set itself. The OpenAPI patterns in `schema` say the same, and its tests hold them
//! to this.

use super::error::ApiError;
use crate::delivery::sign;
use hookline_actors::EndpointConfig;

/// `delivery.require_https`: a URL given in a request must be `https://` (unless private
/// networks are allowed). Only a URL being set is checked: an endpoint stored before the
/// setting keeps its URL and can still be changed otherwise.
pub fn check_https(field: &str, url: &str, rules: &crate::config::Delivery) -> Result<(), ApiError> {
    if rules.require_https && !rules.allow_private_networks && url.to_ascii_lowercase().starts_with("http://") {
        return Err(ApiError::invalid(format!(
            "{field}: must be https:// (delivery.require_https is on)"
        )));
    }
    Ok(())
}

pub fn validate(cfg: &EndpointConfig, rules: &crate::config::Delivery) -> Result<(), ApiError> {
    match cfg.kind {
        hookline_actors::model::EndpointKind::Email => super::endpoint_email::check(cfg)?,
        _ => super::endpoint_auth::check_url("url", &cfg.url, rules)?,
    }
    if cfg.event_types.is_empty() || cfg.event_types.len() > 100 {
        return Err(ApiError::invalid(
            "event_types: between 1 and 100 patterns (omit it for every event)",
        ));
    }
    if let Some(bad) = cfg.event_types.iter().find(|t| !crate::ids::is_event_type_pattern(t)) {
        return Err(ApiError::invalid(format!(
            "event_types: {bad:?} is not an event type, \"*\" or \"prefix.*\""
        )));
    }
    // Limits count characters, as the document's `maxLength` does (not UTF-8 bytes).
    if cfg.description.as_ref().is_some_and(|d| d.chars().count() > 1024) {
        return Err(ApiError::invalid("description: at most 1024 characters"));
    }
    crate::event::check_metadata(&cfg.metadata).map_err(ApiError::invalid)?;
    if !sign::is_valid_secret(&cfg.secret) {
        return Err(ApiError::invalid(
            "secret: must be whsec_ followed by base64 of 24 to 64 bytes",
        ));
    }
    if cfg.rate_limit_per_s == Some(0) || cfg.rate_limit_per_s.is_some_and(|r| r > 100_000) {
        return Err(ApiError::invalid(
            "rate_limit_per_s: between 1 and 100000 (omit it for no limit)",
        ));
    }
    if cfg.max_in_flight.is_some_and(|m| !(1..=1_000).contains(&m)) {
        return Err(ApiError::invalid("max_in_flight: between 1 and 1000"));
    }
    if cfg.timeout_ms.is_some_and(|t| !(100..=300_000).contains(&t)) {
        return Err(ApiError::invalid("timeout_ms: between 100 and 300000"));
    }
    if let Some(schedule) = &cfg.retry_schedule_s {
        if schedule.len() > 50 || schedule.iter().any(|s| *s > 7 * 86_400) {
            return Err(ApiError::invalid(
                "retry_schedule_s: at most 50 delays, each at most 604800 seconds",
            ));
        }
    }
    if cfg.headers.len() > 20 {
        return Err(ApiError::invalid("headers: at most 20"));
    }
    for (name, value) in &cfg.headers {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(format!(
                "headers: {name:?} is not a valid header name"
            )));
        }
        if hookline_actors::transport::RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ApiError::invalid(format!(
                "headers: {name:?} is set by the node and cannot be overridden"
            )));
        }
        if axum::http::HeaderValue::from_str(value).is_err() || value.chars().count() > 4096 {
            return Err(ApiError::invalid(format!(
                "headers: the value of {name:?} is not a valid header value"
            )));
        }
    }
    super::endpoint_filter::check(cfg)?;
    super::endpoint_auth::check(cfg, rules)
}
