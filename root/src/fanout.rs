//! The scatter: call every shard in parallel under one deadline. Within a shard, replicas are
//! tried one after the other (healthy first): on an error the next replica is called at once,
//! while the deadline lasts; each call carries the remaining budget as its gRPC deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use scatter_proto::LeafClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::api::ShardFailure;
use crate::cluster_client::{Cluster, ShardGroup};

/// A shard's answer and the replica that gave it.
#[derive(Debug)]
pub struct Answer<T> {
    /// The leaf's response.
    pub value: T,
    /// Address of the replica that answered.
    pub replica: String,
}

/// Why a shard gave no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardError {
    /// Every replica failed.
    Exhausted,
    /// The deadline passed first.
    TimedOut,
    /// A leaf refused the request itself (its fault is the caller's): do not retry.
    Rejected(String),
}

/// What happened at one shard.
#[derive(Debug)]
pub struct ShardOutcome<T> {
    /// Shard number.
    pub shard: usize,
    /// The answer, or why there is none.
    pub result: Result<Answer<T>, ShardError>,
    /// Failed attempts, in order (also when a later replica answered).
    pub attempts_failed: Vec<ShardFailure>,
}

/// Calls one shard: replicas in turn until one answers, the deadline passes, or the request
/// is rejected. `call` gets a replica's client and the remaining budget.
pub async fn call_shard<T, F, Fut>(
    group: &ShardGroup,
    deadline: Instant,
    call: F,
) -> ShardOutcome<T>
where
    F: Fn(LeafClient<Channel>, Duration) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut failed = Vec::new();
    let mut result = Err(ShardError::Exhausted);
    for replica in group.replica_order() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            result = Err(ShardError::TimedOut);
            break;
        }
        let failure = |reason: String| ShardFailure {
            shard: group.shard,
            replica: Some(replica.addr.clone()),
            reason,
        };
        match tokio::time::timeout(remaining, call(replica.client(), remaining)).await {
            Ok(Ok(resp)) => {
                result = Ok(Answer {
                    value: resp.into_inner(),
                    replica: replica.addr.clone(),
                });
                break;
            }
            Ok(Err(status)) if status.code() == Code::InvalidArgument => {
                result = Err(ShardError::Rejected(status.message().to_string()));
                break;
            }
            Ok(Err(status)) if status.code() == Code::DeadlineExceeded || past(deadline) => {
                failed.push(failure("deadline exceeded".to_string()));
                result = Err(ShardError::TimedOut);
                break;
            }
            Ok(Err(status)) => {
                let reason = describe(&status);
                replica.mark_down(reason.clone());
                failed.push(failure(reason));
            }
            Err(_) => {
                replica.mark_down("timed out".to_string());
                failed.push(failure("timed out".to_string()));
                result = Err(ShardError::TimedOut);
                break;
            }
        }
    }
    if matches!(result, Err(ShardError::TimedOut)) && failed.is_empty() {
        failed.push(ShardFailure {
            shard: group.shard,
            replica: None,
            reason: "deadline passed before a replica could be called".to_string(),
        });
    }
    ShardOutcome {
        shard: group.shard,
        result,
        attempts_failed: failed,
    }
}

/// Calls every shard in parallel under one deadline; outcomes in shard order.
pub async fn scatter<T, F, Fut>(
    cluster: &Cluster,
    deadline: Instant,
    call: F,
) -> Vec<ShardOutcome<T>>
where
    F: Fn(usize, LeafClient<Channel>, Duration) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let calls = cluster.shards.iter().map(|group| {
        let call = &call;
        call_shard(group, deadline, move |client, budget| {
            call(group.shard, client, budget)
        })
    });
    futures::future::join_all(calls).await
}

/// Whether `deadline` has (all but) passed: a call that failed then failed for lack of time,
/// whatever status the client library reported.
fn past(deadline: Instant) -> bool {
    deadline.saturating_duration_since(Instant::now()) < Duration::from_millis(1)
}

/// A short description of a failed gRPC call.
fn describe(status: &Status) -> String {
    let msg = status.message();
    let msg = if msg.is_empty() { "no message" } else { msg };
    format!("{:?}: {msg}", status.code())
}
