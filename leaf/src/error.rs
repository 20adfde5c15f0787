//! Why a shard operation failed.

use scatter_core::query::QueryError;

/// Why a shard operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The request itself is wrong (bad query, window too large): the caller's fault.
    #[error("{0}")]
    InvalidArgument(String),
    /// The index failed: try another replica.
    #[error("index error: {0}")]
    Internal(tantivy::TantivyError),
    /// Not done: the caller went away or its deadline passed before the work started.
    #[error("skipped: the caller is gone or its deadline passed")]
    Skipped,
    /// A node-level call named a shard this node does not serve.
    #[error("shard {0} is not served by this node")]
    NotServed(u32),
}

impl From<QueryError> for ShardError {
    fn from(e: QueryError) -> Self {
        ShardError::InvalidArgument(e.to_string())
    }
}

impl From<tantivy::TantivyError> for ShardError {
    fn from(e: tantivy::TantivyError) -> Self {
        match e {
            // A prefix standing for too many terms: the query's fault, not the index's.
            tantivy::TantivyError::InvalidArgument(m)
                if m.starts_with(scatter_core::expansion::TOO_WIDE) =>
            {
                ShardError::InvalidArgument(m)
            }
            e => ShardError::Internal(e),
        }
    }
}
