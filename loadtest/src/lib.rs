//! Load-test tools for Hookline: a receiver (`sink`) and a driver (`drive`).
//!
//! The sink is also a library so that the integration tests use the same receiver in-process.

pub mod sink;
