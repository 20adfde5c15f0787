//! The scatter: every shard asked under one deadline, with **one call per leaf node** per
//! round, carrying all the shards the request sends to that node (as Quickwit sends one
//! `LeafSearchRequest` per searcher node). Replica choice, failover and hedging stay exact
//! per shard:
//!
//! - the nodes are ranked once per request by power of two choices over their load; each
//!   shard's replicas are tried in that node order (healthy ones first), so shards that share
//!   nodes share calls;
//! - a failed call (or a shard failing inside a call) sends each of its unanswered shards to
//!   its next replica at once (failover), grouped by node again;
//! - if shards are still unanswered after the hedge delay, they go to their next replicas
//!   too (hedge, within the budget); the first good answer for a shard wins;
//! - a call whose shards have all been answered elsewhere is cancelled;
//! - never more than one call per replica per request; each call carries the remaining
//!   budget as its gRPC deadline.
//!
//! The transport is a closure (`call(node, shards, budget)`), so tests drive this logic with
//! a fake one and paused time (see `fanout_tests.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use futures::future::{AbortHandle, Abortable};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::error::Elapsed;
use tonic::Status;

pub use crate::cluster::retry::{classify, past, CallResult};

use crate::api_types::{AttemptProfile, ShardFailure, ShardProfile};
use crate::cluster::balance::p2c_order;
use crate::cluster::hedge::{HedgeBudget, HedgeConfig};
use crate::cluster::leaf_node::LeafNode;
use crate::cluster::{Cluster, Replica, ShardGroup};

/// A shard's answer and the replica that gave it.
#[derive(Debug)]
pub struct Answer<T> {
    /// The shard's part of the node's response.
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

/// A node's answer to one call, split by shard: each shard's part, or why that shard
/// failed inside the node (the other shards' parts stand).
pub type ShardParts<T> = Vec<(usize, Result<T, String>)>;

/// One shard's progress within a request.
struct Slot<'a, T> {
    group: &'a ShardGroup,
    order: Vec<Arc<Replica>>,
    /// Next replica (index in `order`) not tried yet.
    next: usize,
    /// Replicas (indices in `order`) with a call in flight, and their attempt numbers.
    pending: Vec<(usize, usize)>,
    result: Option<Result<Answer<T>, ShardError>>,
    failed: Vec<ShardFailure>,
    profile: ShardProfile,
}

/// One node-level call in flight or done.
struct NodeCall {
    /// (slot, replica index in that slot's order) per shard carried.
    shards: Vec<(usize, usize)>,
    started: Instant,
    abort: AbortHandle,
    done: bool,
}

/// A node-level call in flight: its number and its result (or the deadline's).
type CallFuture<'f, T> = std::pin::Pin<
    Box<dyn Future<Output = (usize, Result<Result<ShardParts<T>, Status>, Elapsed>)> + Send + 'f>,
>;

/// Asks every shard in `shards` (cluster shard numbers) under one deadline; outcomes in the
/// same order. `call(node, shards, budget)` makes one node-level call.
pub async fn scatter<'f, T: Send + 'f, F, Fut>(
    cluster: &Cluster,
    shards: &[usize],
    deadline: Instant,
    hedging: &Hedging,
    call: F,
) -> Vec<ShardOutcome<T>>
where
    F: Fn(&LeafNode, &[usize], Duration) -> Fut,
    Fut: Future<Output = Result<ShardParts<T>, Status>> + Send + 'f,
{
    scatter_with(cluster, shards, &[], false, deadline, hedging, call).await
}

/// [`scatter`], trying first for each shard the replica `prefer` names for it (the fetch
/// phase and aggregation rounds read the replica that answered the search), then the usual
/// order — or, with `only`, that replica alone (a point in time lives on one replica: no
/// failover, no hedge).
pub async fn scatter_with<'f, T: Send + 'f, F, Fut>(
    cluster: &Cluster,
    shards: &[usize],
    prefer: &[(usize, String)],
    only: bool,
    deadline: Instant,
    hedging: &Hedging,
    call: F,
) -> Vec<ShardOutcome<T>>
where
    F: Fn(&LeafNode, &[usize], Duration) -> Fut,
    Fut: Future<Output = Result<ShardParts<T>, Status>> + Send + 'f,
{
    let start = Instant::now();
    let mut run = Run::new(cluster, shards, hedging, deadline);
    for slot in run.slots.iter_mut() {
        let shard = slot.profile.shard;
        let wanted = prefer.iter().find(|(s, _)| *s == shard);
        let found = wanted.and_then(|(_, addr)| slot.order.iter().position(|r| &r.addr == addr));
        if let Some(i) = found {
            let preferred = slot.order.remove(i);
            slot.order.insert(0, preferred);
        }
        if only {
            slot.order.truncate(found.map_or(0, |_| 1));
        }
    }
    let mut in_flight: FuturesUnordered<Abortable<CallFuture<'f, T>>> = FuturesUnordered::new();
    run.launch(&mut in_flight, &call, (0..shards.len()).collect(), false);
    for slot in run.slots.iter_mut() {
        if slot.pending.is_empty() && slot.result.is_none() {
            slot.result = Some(Err(ShardError::Exhausted));
        }
    }
    let hedge_delay = run
        .slots
        .iter()
        .map(|s| s.group.latency.hedge_delay(hedging.config.min_delay))
        .max()
        .unwrap_or_default();
    let mut hedge_timer = pin!(tokio::time::sleep_until(start + hedge_delay));
    let mut may_hedge = hedging.config.enabled;
    let mut deadline_timer = pin!(tokio::time::sleep_until(deadline));
    while run.slots.iter().any(|s| s.result.is_none()) {
        tokio::select! {
            Some(done) = in_flight.next() => {
                let Ok((id, r)) = done else { continue }; // cancelled
                let retry = run.answered(id, classify(r, deadline));
                run.launch(&mut in_flight, &call, retry, false);
                cancel_settled(&run.slots, &mut run.calls);
            }
            _ = &mut hedge_timer, if may_hedge => {
                may_hedge = false;
                let which = hedgeable(&mut run.slots, hedging);
                run.launch(&mut in_flight, &call, which, true);
            }
            _ = &mut deadline_timer => run.time_out(),
        }
    }
    for call in run.calls.iter().filter(|c| !c.done) {
        call.abort.abort();
    }
    drop(in_flight);
    run.slots.into_iter().map(|s| outcome(s, start)).collect()
}

/// One request's scatter: its shards' progress and its calls.
struct Run<'a, T> {
    slots: Vec<Slot<'a, T>>,
    calls: Vec<NodeCall>,
    start: Instant,
    deadline: Instant,
}

impl<'a, T> Run<'a, T> {
    /// A run over `shards`: each shard's replicas in this request's node order.
    fn new(cluster: &'a Cluster, shards: &[usize], hedging: &Hedging, deadline: Instant) -> Self {
        let rank = node_ranking(cluster);
        let rank_of = |n: &LeafNode| rank.get(n.addr.as_str()).copied().unwrap_or(usize::MAX);
        let slots = shards
            .iter()
            .map(|&s| {
                let group = &cluster.shards[s];
                group.counters.calls.fetch_add(1, Ordering::Relaxed);
                hedging.budget.deposit();
                Slot {
                    group,
                    order: group.replica_order_by(&rank_of),
                    next: 0,
                    pending: Vec::new(),
                    result: None,
                    failed: Vec::new(),
                    profile: ShardProfile {
                        shard: s,
                        ..Default::default()
                    },
                }
            })
            .collect();
        Run {
            slots,
            calls: Vec::new(),
            start: Instant::now(),
            deadline,
        }
    }

    /// Applies call `id`'s result; returns the shards to fail over now.
    fn answered(&mut self, id: usize, r: CallResult<ShardParts<T>>) -> Vec<usize> {
        self.calls[id].done = true;
        let retry = settle(&mut self.slots, &self.calls[id], r);
        let retry: Vec<usize> = retry
            .into_iter()
            .filter(|&s| finish_if_exhausted(&mut self.slots[s], self.deadline))
            .collect();
        for &s in &retry {
            let g = self.slots[s].group;
            g.counters.failovers.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("scatter_root_failovers_total", "shard" => g.shard.to_string())
                .increment(1);
        }
        retry
    }

    /// The deadline passed: every unanswered shard timed out, its pending calls with it.
    fn time_out(&mut self) {
        for slot in self.slots.iter_mut().filter(|s| s.result.is_none()) {
            for (idx, _) in std::mem::take(&mut slot.pending) {
                let f = failure(slot.group, &slot.order[idx], "timed out".into());
                slot.failed.push(f);
            }
            slot.result = Some(Err(ShardError::TimedOut));
        }
    }

    /// Sends the slots in `which` to their next replicas, one call per node.
    fn launch<'f, F, Fut>(
        &mut self,
        in_flight: &mut FuturesUnordered<Abortable<CallFuture<'f, T>>>,
        call: &F,
        which: Vec<usize>,
        hedge: bool,
    ) where
        T: Send + 'f,
        F: Fn(&LeafNode, &[usize], Duration) -> Fut,
        Fut: Future<Output = Result<ShardParts<T>, Status>> + Send + 'f,
    {
        for (node, carried) in next_replicas(&mut self.slots, which) {
            let id = self.calls.len();
            let ids: Vec<usize> = carried
                .iter()
                .map(|(s, _)| self.slots[*s].group.shard)
                .collect();
            for &(s, idx) in &carried {
                let slot = &mut self.slots[s];
                slot.pending.push((idx, slot.profile.attempts.len()));
                slot.profile.attempts.push(AttemptProfile {
                    replica: node.addr.clone(),
                    outcome: String::new(),
                    started_ms: ms(self.start.elapsed()),
                    took_ms: 0.0,
                    hedge,
                    node_shards: carried.len(),
                });
            }
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let (abort, registration) = AbortHandle::new_pair();
            let fut = tokio::time::timeout(remaining, call(&node, &ids, remaining));
            let tracked = node.clone();
            let fut: CallFuture<'f, T> = Box::pin(async move {
                let _in_flight = tracked.track();
                (id, fut.await)
            });
            in_flight.push(Abortable::new(fut, registration));
            self.calls.push(NodeCall {
                shards: carried,
                started: Instant::now(),
                abort,
                done: false,
            });
        }
    }
}

/// The nodes ranked for one request: power of two choices over their load, the rest by
/// load. Every shard's replicas are tried in this order.
fn node_ranking(cluster: &Cluster) -> HashMap<&str, usize> {
    let ranked = p2c_order(cluster.nodes.iter().map(|n| (n.cost(), n)).collect());
    ranked
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n.addr.as_str(), i))
        .collect()
}

/// A node and the (slot, replica index) pairs one call to it carries.
type NodeBatch = (Arc<LeafNode>, Vec<(usize, usize)>);

/// The next replica of each slot in `which` that has one, grouped by node: one call each.
fn next_replicas<T>(slots: &mut [Slot<'_, T>], which: Vec<usize>) -> Vec<NodeBatch> {
    let mut by_node: Vec<NodeBatch> = Vec::new();
    for s in which {
        let slot = &mut slots[s];
        if slot.result.is_some() || slot.next >= slot.order.len() {
            continue;
        }
        let idx = slot.next;
        slot.next += 1;
        let node = &slot.order[idx].node;
        match by_node.iter_mut().find(|(n, _)| Arc::ptr_eq(n, node)) {
            Some((_, carried)) => carried.push((s, idx)),
            None => by_node.push((node.clone(), vec![(s, idx)])),
        }
    }
    by_node
}

/// What a finished call says about the shards it carried, besides their parts.
enum Verdict {
    /// The node answered; each shard's part tells.
    Answered,
    /// The request is wrong.
    Rejected(String),
    /// The deadline passed.
    TimedOut,
    /// The node failed (`true`: unreachable).
    Failed(String, bool),
}

/// Applies a finished call to its shards; returns the slots that lost their only pending
/// call to a failure (candidates for failover).
fn settle<T>(
    slots: &mut [Slot<'_, T>],
    call: &NodeCall,
    r: CallResult<ShardParts<T>>,
) -> Vec<usize> {
    let took = call.started.elapsed();
    let mut parts: HashMap<usize, Result<T, String>> = HashMap::new();
    let verdict = match r {
        CallResult::Ok(p) => {
            parts = p.into_iter().collect();
            Verdict::Answered
        }
        CallResult::Rejected(reason) => Verdict::Rejected(reason),
        CallResult::TimedOut => Verdict::TimedOut,
        CallResult::Failed(reason, hard) => Verdict::Failed(reason, hard),
    };
    let mut retry = Vec::new();
    for &(s, idx) in &call.shards {
        let slot = &mut slots[s];
        let part = parts.remove(&slot.group.shard);
        if settle_shard(slot, idx, part, &verdict, took) {
            retry.push(s);
        }
    }
    retry
}

/// Applies a finished call to one shard it carried (replica `idx` of the slot's order):
/// its answer, or a failure booked on the replica. True when the shard has no call left
/// and may fail over.
fn settle_shard<T>(
    slot: &mut Slot<'_, T>,
    idx: usize,
    part: Option<Result<T, String>>,
    verdict: &Verdict,
    took: Duration,
) -> bool {
    let Some(pos) = slot.pending.iter().position(|(i, _)| *i == idx) else {
        return false;
    };
    let (_, attempt) = slot.pending.remove(pos);
    let replica = slot.order[idx].clone();
    let a = &mut slot.profile.attempts[attempt];
    a.took_ms = ms(took);
    let outcome = match (verdict, &part) {
        (Verdict::Answered, Some(Ok(_))) => "ok",
        (Verdict::Answered, _) | (Verdict::Failed(..), _) => "error",
        (Verdict::Rejected(_), _) => "rejected",
        (Verdict::TimedOut, _) => "timeout",
    };
    replica.metrics.record(outcome, took);
    if slot.result.is_some() {
        a.outcome = "late".into();
        return false;
    }
    let (reason, hard) = match (part, verdict) {
        (Some(Ok(value)), _) => {
            a.outcome = "ok".into();
            replica.record_success();
            slot.group.latency.record(took);
            if a.hedge {
                slot.group
                    .counters
                    .hedge_wins
                    .fetch_add(1, Ordering::Relaxed);
            }
            slot.profile.replica = Some(replica.addr.clone());
            let replica = replica.addr.clone();
            slot.result = Some(Ok(Answer { value, replica }));
            return false;
        }
        (_, Verdict::Rejected(reason)) => {
            a.outcome = format!("rejected: {reason}");
            slot.result = Some(Err(ShardError::Rejected(reason.clone())));
            return false;
        }
        (_, Verdict::TimedOut) => ("timed out".to_string(), None),
        (_, Verdict::Failed(reason, hard)) => (reason.clone(), Some(*hard)),
        (Some(Err(reason)), Verdict::Answered) => (reason, Some(false)),
        (None, Verdict::Answered) => ("the node's answer left this shard out".into(), Some(false)),
    };
    if let Some(hard) = hard {
        replica.record_failure(reason.clone(), hard);
    }
    a.outcome = reason.clone();
    slot.failed.push(failure(slot.group, &replica, reason));
    slot.pending.is_empty() && !matches!(verdict, Verdict::TimedOut)
}

/// Whether a slot that lost its last pending call may go on to another replica; if not,
/// its result is set (exhausted, or timed out when the deadline has passed).
fn finish_if_exhausted<T>(slot: &mut Slot<'_, T>, deadline: Instant) -> bool {
    if slot.result.is_some() {
        return false;
    }
    if slot.next < slot.order.len() && !past(deadline) {
        return true;
    }
    slot.result = Some(Err(if past(deadline) {
        ShardError::TimedOut
    } else {
        ShardError::Exhausted
    }));
    false
}

/// Cancels calls whose shards have all been settled by other calls; their replicas lost a
/// race.
fn cancel_settled<T>(slots: &[Slot<'_, T>], calls: &mut [NodeCall]) {
    for call in calls.iter_mut().filter(|c| !c.done) {
        if call.shards.iter().all(|(s, _)| slots[*s].result.is_some()) {
            call.done = true;
            call.abort.abort();
            for &(s, idx) in &call.shards {
                let won = slots[s].result.as_ref().is_some_and(|r| r.is_ok());
                if won {
                    slots[s].order[idx].record_lost_race();
                }
            }
        }
    }
}

/// Unanswered slots with a replica left, each holding a hedge token.
fn hedgeable<T>(slots: &mut [Slot<'_, T>], hedging: &Hedging) -> Vec<usize> {
    let mut which = Vec::new();
    for (s, slot) in slots.iter_mut().enumerate() {
        if slot.result.is_none() && slot.next < slot.order.len() && hedging.budget.try_spend() {
            let g = slot.group;
            g.counters.hedges.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("scatter_root_hedges_total", "shard" => g.shard.to_string())
                .increment(1);
            slot.profile.hedged = true;
            which.push(s);
        }
    }
    which
}

/// A slot's outcome, with its profile completed.
fn outcome<T>(mut slot: Slot<'_, T>, start: Instant) -> ShardOutcome<T> {
    let result = slot.result.take().unwrap_or(Err(ShardError::TimedOut));
    for a in &mut slot.profile.attempts {
        if a.outcome.is_empty() {
            a.outcome = if result.is_ok() {
                "cancelled"
            } else {
                "timed out"
            }
            .into();
        }
    }
    if matches!(result, Err(ShardError::TimedOut)) && slot.failed.is_empty() {
        slot.failed.push(ShardFailure {
            shard: slot.group.shard,
            replica: None,
            reason: "deadline passed before a replica could be called".to_string(),
        });
    }
    if slot.order.is_empty() && matches!(result, Err(ShardError::Exhausted)) {
        slot.failed.push(ShardFailure {
            shard: slot.group.shard,
            replica: None,
            reason: "no usable replica".to_string(),
        });
    }
    slot.profile.took_ms = ms(start.elapsed());
    ShardOutcome {
        shard: slot.group.shard,
        result,
        attempts_failed: slot.failed,
        profile: slot.profile,
    }
}

fn failure(group: &ShardGroup, replica: &Replica, reason: String) -> ShardFailure {
    ShardFailure {
        shard: group.shard,
        replica: Some(replica.addr.clone()),
        reason,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
