//! The inbound gateway (issue 17): receiving webhooks from providers (Stripe, GitHub, Shopify,
//! Standard Webhooks, generic HMAC, basic auth, API keys) on a public route, verifying them,
//! and storing them as ordinary events of a tenant.
//!
//! Built so far: the verifiers (`verify`), pure functions of the raw request and the time, one
//! file per kind. Not built yet: sources (their API and store), the `/in/{source_id}` route,
//! dedup, rejections, metrics (see the issue).

pub mod verify;
