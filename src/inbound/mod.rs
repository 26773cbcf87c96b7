//! The inbound gateway: receiving webhooks from providers (Stripe, GitHub, Shopify, Standard
//! Webhooks, generic HMAC, basic auth, API keys) on a public route, verifying them, and storing
//! them as ordinary events of a tenant, deduplicated on the provider's id.
//!
//! - `source` — a source as stored, its rules per kind, its verifier.
//! - `verify` — the verifiers, pure functions of the raw request and the time, one file per kind.
//! - `received` — what a verified request becomes: type, payload, provider id, `source` object.
//! - `net` — CIDR ranges and the caller's address behind trusted proxies.
//!
//! The HTTP side is in `api::sources` (the sources API) and `api::inbound` (`POST /in/{id}`);
//! the Redis side in `store::sources`.

pub mod net;
pub mod received;
pub mod source;
pub mod verify;
