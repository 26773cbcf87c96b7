//! Integration tests: a real Redis, the real node binary, real HTTP receivers on loopback.
//! One binary with a module per area (each file in tests/ would be its own link).

mod support;

mod audit;
mod auth;
mod catalogue;
mod cluster;
mod console;
mod deploy;
mod ed25519;
mod egress;
mod email;
mod faults;
mod filters;
mod fuzz;
mod health;
mod inbound;
mod inbound_faults;
mod inbound_guard;
mod ingest;
mod ingress;
mod keys;
mod layout;
mod lifecycle;
mod loadtest;
mod metadata;
mod notifications;
mod oauth;
mod observability;
mod openapi;
mod ordering;
mod pipeline;
mod portal;
mod portal_pages;
mod queries;
mod repair;
mod replicas;
mod retention;
mod search;
mod secrets;
mod stats;
mod store;
mod supervision;
mod thin;
mod transform;
mod validation;
