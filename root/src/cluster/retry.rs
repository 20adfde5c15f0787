//! The retry policy of a node-level call: what its result means for the shards it carried
//! (answered; the request is wrong, so no replica would answer; the deadline passed; or the
//! node failed and the shards go to other replicas), as a small tested function apart from
//! the fan-out's bookkeeping.

use std::time::Duration;
use tokio::time::Instant;

use tokio::time::error::Elapsed;
use tonic::{Code, Status};

/// The retry policy's reading of one node-level call's result.
#[derive(Debug)]
pub enum CallResult<T> {
    /// Answered (shards may still have failed inside).
    Ok(T),
    /// The request itself is wrong: no replica would answer it.
    Rejected(String),
    /// The deadline passed.
    TimedOut,
    /// Failed; `true` when the node looks unreachable. The shards go to other replicas.
    Failed(String, bool),
}

/// The retry policy: what a call's result means for its shards.
pub fn classify<T>(r: Result<Result<T, Status>, Elapsed>, deadline: Instant) -> CallResult<T> {
    match r {
        Ok(Ok(v)) => CallResult::Ok(v),
        Ok(Err(s)) if s.code() == Code::InvalidArgument => {
            CallResult::Rejected(s.message().to_string())
        }
        Ok(Err(s)) if s.code() == Code::DeadlineExceeded || past(deadline) => CallResult::TimedOut,
        Ok(Err(s)) => {
            let msg = if s.message().is_empty() {
                "no message"
            } else {
                s.message()
            };
            let unreachable = s.code() == Code::Unavailable
                && (msg.contains("transport") || msg.contains("connect"));
            CallResult::Failed(format!("{:?}: {msg}", s.code()), unreachable)
        }
        Err(_) => CallResult::TimedOut,
    }
}

/// Whether `deadline` has (all but) passed: a call that failed then failed for lack of time,
/// whatever status the client library reported.
pub fn past(deadline: Instant) -> bool {
    deadline.saturating_duration_since(Instant::now()) < Duration::from_millis(1)
}
