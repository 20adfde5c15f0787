//! The scatter: call every shard in parallel under one deadline. Within a shard (see
//! [`call_shard`]): the first replica by power of two choices; on an error the next replica
//! at once (failover); if no answer after the hedge delay, the next replica too (hedge, within
//! the budget); the first good answer wins and the calls still running are cancelled. Never
//! more than one call per replica per request; each call carries the remaining budget as its
//! gRPC deadline.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use scatter_proto::LeafClient;
use serde::Serialize;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::api::ShardFailure;
use crate::cluster_client::{Cluster, Replica, ShardGroup};
use crate::hedge::{HedgeBudget, HedgeConfig};

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

/// One call to one replica, for `profile=true`.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptProfile {
    /// Replica address.
    pub replica: String,
    /// `ok`, `cancelled` (another call won), `timed out`, or the error.
    pub outcome: String,
    /// Milliseconds from the shard call's start to this call's launch.
    pub started_ms: f64,
    /// Milliseconds the call took (until its answer or cancellation).
    pub took_ms: f64,
    /// Sent as a hedge (not after an error).
    pub hedge: bool,
}

/// What happened at one shard, for `profile=true`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardProfile {
    /// Shard number.
    pub shard: usize,
    /// Replica whose answer was used.
    pub replica: Option<String>,
    /// A hedge was sent.
    pub hedged: bool,
    /// Every call made.
    pub attempts: Vec<AttemptProfile>,
    /// Milliseconds until the shard's outcome.
    pub took_ms: f64,
    /// Milliseconds the answering leaf reports it spent on the call (search calls), so the
    /// root's own cost (transport, queueing, gather) is `took_ms - leaf_took_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_took_ms: Option<f64>,
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
    /// The calls made.
    pub profile: ShardProfile,
}

/// Hedging as applied by one root: its settings and its budget.
#[derive(Debug)]
pub struct Hedging {
    /// Settings.
    pub config: HedgeConfig,
    /// Shared budget.
    pub budget: HedgeBudget,
}

impl Hedging {
    /// Hedging with `config`.
    pub fn new(config: HedgeConfig) -> Self {
        Hedging {
            budget: HedgeBudget::new(config.budget_ratio),
            config,
        }
    }
}

enum CallResult<T> {
    Ok(T),
    Rejected(String),
    TimedOut,
    /// Failed; `true` when the replica looks unreachable.
    Failed(String, bool),
}

fn classify<T>(
    r: Result<Result<tonic::Response<T>, Status>, tokio::time::error::Elapsed>,
    deadline: Instant,
) -> CallResult<T> {
    match r {
        Ok(Ok(resp)) => CallResult::Ok(resp.into_inner()),
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

/// Calls one shard (see the module doc). `call` gets a replica's client and the remaining
/// budget.
pub async fn call_shard<T, F, Fut>(
    group: &ShardGroup,
    deadline: Instant,
    hedging: &Hedging,
    call: F,
) -> ShardOutcome<T>
where
    F: Fn(LeafClient<Channel>, Duration) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let start = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let order = group.replica_order();
    group.counters.calls.fetch_add(1, Ordering::Relaxed);
    hedging.budget.deposit();
    let launch = |idx: usize, replica: &Arc<Replica>| {
        let guard = replica.start_call();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let fut = tokio::time::timeout(remaining, call(replica.client(), remaining));
        async move { (idx, guard, fut.await) }
    };
    let mut in_flight = FuturesUnordered::new();
    let mut profile = ShardProfile {
        shard: group.shard,
        ..Default::default()
    };
    let mut failed = Vec::new();
    let mut next = 0;
    let mut pending: Vec<usize> = Vec::new();
    if let Some(first) = order.first() {
        in_flight.push(launch(0, first));
        pending.push(0);
        profile.attempts.push(attempt(first, 0.0, false));
        next = 1;
    }
    let hedge_delay = group.latency.hedge_delay(hedging.config.min_delay);
    let mut hedge_timer = pin!(tokio::time::sleep_until((start + hedge_delay).into()));
    let mut may_hedge = hedging.config.enabled && order.len() > 1;
    let mut deadline_timer = pin!(tokio::time::sleep_until(deadline.into()));
    let result = loop {
        if in_flight.is_empty() {
            break Err(if past(deadline) {
                ShardError::TimedOut
            } else {
                ShardError::Exhausted
            });
        }
        tokio::select! {
            Some((idx, guard, r)) = in_flight.next() => {
                pending.retain(|p| *p != idx);
                let replica = &order[idx];
                let a = &mut profile.attempts[idx];
                let r = classify(r, deadline);
                record_call(replica, &r, guard.elapsed());
                match r {
                    CallResult::Ok(value) => {
                        let took = guard.finish(true);
                        group.latency.record(took);
                        (a.outcome, a.took_ms) = ("ok".into(), ms(took));
                        if a.hedge {
                            group.counters.hedge_wins.fetch_add(1, Ordering::Relaxed);
                        }
                        for other in &pending {
                            order[*other].record_lost_race();
                        }
                        profile.replica = Some(replica.addr.clone());
                        break Ok(Answer { value, replica: replica.addr.clone() });
                    }
                    CallResult::Rejected(reason) => {
                        guard.finish(true);
                        break Err(ShardError::Rejected(reason));
                    }
                    CallResult::TimedOut => {
                        let took = guard.finish(false);
                        (a.outcome, a.took_ms) = ("timed out".into(), ms(took));
                        failed.push(failure(group, replica, "timed out".into()));
                    }
                    CallResult::Failed(reason, hard) => {
                        let took = guard.finish(false);
                        (a.outcome, a.took_ms) = (reason.clone(), ms(took));
                        replica.record_failure(reason.clone(), hard);
                        failed.push(failure(group, replica, reason));
                        if next < order.len() && !past(deadline) {
                            group.counters.failovers.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("scatter_root_failovers_total", "shard" => group.shard.to_string())
                                .increment(1);
                            in_flight.push(launch(next, &order[next]));
                            pending.push(next);
                            profile.attempts.push(attempt(&order[next], ms(start.elapsed()), false));
                            next += 1;
                        }
                    }
                }
            }
            _ = &mut hedge_timer, if may_hedge => {
                may_hedge = false;
                if next < order.len() && hedging.budget.try_spend() {
                    group.counters.hedges.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("scatter_root_hedges_total", "shard" => group.shard.to_string())
                        .increment(1);
                    profile.hedged = true;
                    in_flight.push(launch(next, &order[next]));
                    pending.push(next);
                    profile.attempts.push(attempt(&order[next], ms(start.elapsed()), true));
                    next += 1;
                }
            }
            _ = &mut deadline_timer => {
                for idx in &pending {
                    failed.push(failure(group, &order[*idx], "timed out".into()));
                }
                break Err(ShardError::TimedOut);
            }
        }
    };
    drop(in_flight);
    for a in &mut profile.attempts {
        if a.outcome.is_empty() {
            a.outcome = if result.is_ok() {
                "cancelled"
            } else {
                "timed out"
            }
            .into();
        }
    }
    if matches!(result, Err(ShardError::TimedOut)) && failed.is_empty() {
        failed.push(ShardFailure {
            shard: group.shard,
            replica: None,
            reason: "deadline passed before a replica could be called".to_string(),
        });
    }
    profile.took_ms = ms(start.elapsed());
    ShardOutcome {
        shard: group.shard,
        result,
        attempts_failed: failed,
        profile,
    }
}

/// Per-replica call count by outcome and latency, for `/metrics`.
fn record_call<T>(replica: &Replica, r: &CallResult<T>, took: Duration) {
    let outcome = match r {
        CallResult::Ok(_) => "ok",
        CallResult::Rejected(_) => "rejected",
        CallResult::TimedOut => "timeout",
        CallResult::Failed(..) => "error",
    };
    replica.metrics.record(outcome, took);
}

fn attempt(replica: &Replica, started_ms: f64, hedge: bool) -> AttemptProfile {
    AttemptProfile {
        replica: replica.addr.clone(),
        outcome: String::new(),
        started_ms,
        took_ms: 0.0,
        hedge,
    }
}

fn failure(group: &ShardGroup, replica: &Replica, reason: String) -> ShardFailure {
    ShardFailure {
        shard: group.shard,
        replica: Some(replica.addr.clone()),
        reason,
    }
}

/// Calls every shard in parallel under one deadline; outcomes in shard order.
pub async fn scatter<T, F, Fut>(
    cluster: &Cluster,
    deadline: Instant,
    hedging: &Hedging,
    call: F,
) -> Vec<ShardOutcome<T>>
where
    F: Fn(usize, LeafClient<Channel>, Duration) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let calls = cluster.shards.iter().map(|group| {
        let call = &call;
        call_shard(group, deadline, hedging, move |client, budget| {
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
