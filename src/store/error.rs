//! The store's one error conversion: every failed Redis command and every stored JSON that
//! does not parse becomes an [`Error`] through `?`, keeping its cause. At the boundaries it
//! becomes the actors' `StoreError` (see `adapter.rs`) or the API's `ApiError`.

use hookline_actors::StoreError;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("redis: {0}")]
    Redis(#[source] fred::error::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A write refused because this node no longer holds the shard's lease.
    #[error("not the lease holder of shard {0}: write refused")]
    Fenced(u32),
    /// A compare-and-set write that lost to other writers too many times in a row.
    #[error("{0} kept changing under this write; retry")]
    Contended(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A reply of a shape the store did not write.
    pub fn corrupt(what: &str) -> Self {
        Error::Corrupt(Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(what)))
    }
}

/// Every failed Redis command passes here (`hookline_redis_errors_total`).
impl From<fred::error::Error> for Error {
    fn from(e: fred::error::Error) -> Self {
        metrics::counter!(hookline_actors::names::REDIS_ERRORS).increment(1);
        Error::Redis(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corrupt(Arc::new(e))
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Redis(e) => StoreError::Unavailable(Arc::new(e)),
            Error::Corrupt(e) => StoreError::Corrupt(e),
            Error::Fenced(shard) => StoreError::Fenced(shard),
            e @ Error::Contended(_) => StoreError::Unavailable(Arc::new(e)),
        }
    }
}
