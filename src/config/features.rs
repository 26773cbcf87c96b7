//! `transform.*`: the worker processes that run endpoints' jq transforms (`crate::transform`);
//! `notifications.*`: the node's operational events to tenants (issue 22); `tracing.*`: its
//! OpenTelemetry traces (`crate::traces`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transform {
    /// Worker processes, started when the first transform runs (none on a node without
    /// transforms). Each runs one program at a time.
    pub workers: usize,
    /// Longest one run may take; past it the worker is stopped and the delivery dead-lettered
    /// (`transform_failed`).
    pub timeout_ms: u64,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            workers: 2,
            timeout_ms: 10,
        }
    }
}

impl Transform {
    /// The first wrong key and what is wrong with it.
    pub fn checked(&self) -> Result<(), (&'static str, String)> {
        if !(1..=64).contains(&self.workers) {
            return Err(("transform.workers", "must be between 1 and 64".into()));
        }
        if !(1..=10_000).contains(&self.timeout_ms) {
            return Err(("transform.timeout_ms", "must be between 1 and 10000".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notifications {
    /// At most one `hookline.endpoint.dead_letters` event per endpoint this often.
    pub dead_letter_interval_s: u64,
    /// A source refusing this many requests within a wall-clock minute…
    pub source_rejections_per_minute: u64,
    /// …makes a `hookline.source.rejections` event, at most one per source this often.
    pub source_rejection_interval_s: u64,
    /// Where `kind: email` endpoints' mail goes: `smtp://[user:pass@]host[:port]` (no TLS) or
    /// `smtps://…` (TLS). Empty: email endpoints wait (retried) until it is set.
    pub smtp_url: String,
    /// The sender of those emails.
    pub email_from: String,
    /// The console's address as a mail reader reaches it (`https://hooks.example.com`): emails
    /// link to the endpoint's page there. Empty: no link.
    pub console_url: String,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            dead_letter_interval_s: 3_600,
            source_rejections_per_minute: 10,
            source_rejection_interval_s: 3_600,
            smtp_url: String::new(),
            email_from: "Hookline <hookline@localhost>".into(),
            console_url: String::new(),
        }
    }
}

impl Notifications {
    /// The first wrong key and what is wrong with it.
    pub fn checked(&self) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("notifications.dead_letter_interval_s", self.dead_letter_interval_s),
            (
                "notifications.source_rejection_interval_s",
                self.source_rejection_interval_s,
            ),
        ] {
            if !(1..=7 * 86_400).contains(&value) {
                return Err((key, "must be between 1 and 604800".into()));
            }
        }
        if !(self.smtp_url.is_empty() || self.smtp_url.starts_with("smtp://") || self.smtp_url.starts_with("smtps://"))
        {
            return Err((
                "notifications.smtp_url",
                "must start with smtp:// or smtps:// (or be empty)".into(),
            ));
        }
        if !self.console_url.is_empty() && !self.console_url.starts_with("http") {
            return Err((
                "notifications.console_url",
                "must be an http(s) address (or empty)".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.source_rejections_per_minute) {
            return Err((
                "notifications.source_rejections_per_minute",
                "must be between 1 and 1000000".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tracing {
    /// The OTLP/HTTP (protobuf) collector: `http://collector:4318` (`/v1/traces` is added when
    /// the address has no path) or the full traces URL. Empty: tracing is off.
    pub otlp_endpoint: String,
    /// The share of traces kept (by trace id), 0.0 to 1.0; a producer's `traceparent` decides
    /// for its own events (its sampled flag).
    pub sample_ratio: f64,
    /// `service.name` of the node's spans.
    pub service_name: String,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
            service_name: "hookline".into(),
        }
    }
}

impl Tracing {
    /// The first wrong key and what is wrong with it.
    pub fn checked(&self) -> Result<(), (&'static str, String)> {
        if !(self.otlp_endpoint.is_empty() || self.traces_url().is_some()) {
            return Err((
                "tracing.otlp_endpoint",
                "must be an http(s) address such as http://collector:4318 (or be empty)".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(("tracing.sample_ratio", "must be between 0.0 and 1.0".into()));
        }
        if self.service_name.trim().is_empty() || self.service_name.len() > 128 {
            return Err(("tracing.service_name", "must be 1 to 128 characters".into()));
        }
        Ok(())
    }

    /// Where spans are posted: `otlp_endpoint`, with `/v1/traces` added to an address without a
    /// path. `None` when tracing is off or the address is not http(s).
    pub fn traces_url(&self) -> Option<String> {
        let url = self.otlp_endpoint.trim();
        let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || host.contains(char::is_whitespace) || url.contains(['?', '#']) {
            return None;
        }
        Some(match path {
            "" => format!("{}/v1/traces", url.trim_end_matches('/')),
            _ => url.to_string(),
        })
    }
}
