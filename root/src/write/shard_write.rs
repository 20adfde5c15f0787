//! One write to every replica of one shard, and what makes it acknowledged.
//!
//! - The call goes to every replica that is up (stale ones too: a write they take is one
//!   less to merge later); one known down is not waited for and counts as failed. Each
//!   replica keeps, per id, the write with the highest version.
//! - A replica answering `superseded` for an operation holds a newer write of that id. The
//!   operation is sent again above that version (at most [`MAX_BUMPS`] times), so an
//!   acknowledged write is never silently older than one it raced with, whatever the roots'
//!   clocks say.
//! - Replicas that failed while others committed are recorded as behind **on the replicas
//!   that committed** (persisted with their next commit, reported by `Info`), so every root
//!   — and this one after a restart — keeps them out of searches until a merge repairs them.
//! - The write is acknowledged only if a replica not known to be stale committed it; if
//!   every committer may lack earlier writes, the answer is 503 (nothing is guessed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use scatter_proto::v1::{IngestRequest, IngestResponse};
use tonic::Code;

use crate::cluster::{Cluster, Replica, ShardGroup};

/// A replica that failed a write.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReplicaFailure {
    /// Shard.
    pub shard: usize,
    /// Replica address.
    pub replica: String,
    /// What went wrong.
    pub reason: String,
    /// Marked stale because a peer committed the write.
    pub marked_stale: bool,
    /// The committing peers recorded it as behind (persisted: every root sees it).
    pub marked_on_peers: bool,
}

/// Most times an operation is re-sent above a newer version a replica holds.
pub const MAX_BUMPS: usize = 3;

/// The outcome of one write to one shard.
pub struct ShardWrite {
    /// A committing replica's answer to the first round (per-document refusals, deletes
    /// found), when the write is acknowledged.
    pub answer: Option<IngestResponse>,
    /// Replicas that committed every round.
    pub committed: usize,
    /// Replicas that failed.
    pub failures: Vec<ReplicaFailure>,
    /// Why the write is not acknowledged (with `answer` None).
    pub refusal: Option<Refusal>,
}

/// Why a shard write was not acknowledged.
pub struct Refusal {
    /// 429 (a replica's write queue is full) or 503.
    pub status: u16,
    /// Machine-readable kind.
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// Sends `req` to every replica of `group` (see the module doc).
pub async fn write_shard(
    cluster: &Cluster,
    group: &ShardGroup,
    req: IngestRequest,
    timeout: Duration,
) -> ShardWrite {
    let _shared = group.writes.read().await;
    let targets: Vec<Arc<Replica>> = group
        .replicas
        .iter()
        .filter(|r| r.takes_writes())
        .cloned()
        .collect();
    // A replica known down (unreachable, ejected) is not waited for: it misses the write
    // at once and is recorded as behind, like one that fails it.
    let mut failed: HashMap<usize, (String, Code)> = targets
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_up())
        .map(|(i, r)| {
            let why = r.state().last_error.unwrap_or_else(|| "down".to_string());
            (
                i,
                (
                    format!("not written: replica down ({why})"),
                    Code::Unavailable,
                ),
            )
        })
        .collect();
    let mut answer = None;
    let mut round = req;
    for bump in 0..=MAX_BUMPS {
        let results = send(&targets, &failed, &round, timeout).await;
        let mut superseded: HashMap<u32, u64> = HashMap::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(resp) if !failed.contains_key(&i) => {
                    cluster.clock.observe(resp.max_version);
                    targets[i].note_write(resp.generation, resp.ops);
                    for s in &resp.superseded {
                        let v = superseded.entry(s.op).or_default();
                        *v = (*v).max(s.current_version);
                    }
                    answer.get_or_insert(resp);
                }
                Ok(_) => {}
                Err(e) => {
                    failed.entry(i).or_insert(e);
                }
            }
        }
        if superseded.is_empty() || bump == MAX_BUMPS || answer.is_none() {
            break;
        }
        round = bumped(cluster, &round, &superseded);
    }
    settle(cluster, group, &targets, answer, failed).await
}

/// The operations of `req` named in `superseded`, versioned above what the replicas hold.
fn bumped(cluster: &Cluster, req: &IngestRequest, superseded: &HashMap<u32, u64>) -> IngestRequest {
    let mut next = IngestRequest {
        shard: req.shard,
        ..Default::default()
    };
    let n = req.upserts.len();
    for (&op, &held) in superseded {
        cluster.clock.observe(held);
        let version = cluster.clock.next();
        let op = op as usize;
        if let Some(doc) = req.upserts.get(op) {
            let mut doc = doc.clone();
            doc.version = version;
            next.upserts.push(doc);
        } else if let Some(id) = req.deletes.get(op - n) {
            next.deletes.push(id.clone());
            next.delete_versions.push(version);
        }
    }
    next
}

/// Sends one round to every target that has not failed yet, at once; per target its answer
/// or (reason, code).
async fn send(
    targets: &[Arc<Replica>],
    failed: &HashMap<usize, (String, Code)>,
    req: &IngestRequest,
    timeout: Duration,
) -> Vec<Result<IngestResponse, (String, Code)>> {
    let calls = targets.iter().enumerate().map(|(i, r)| async move {
        match failed.get(&i) {
            Some(e) => Err(e.clone()),
            None => call(r, req.clone(), timeout).await,
        }
    });
    futures::future::join_all(calls).await
}

async fn call(
    replica: &Replica,
    req: IngestRequest,
    timeout: Duration,
) -> Result<IngestResponse, (String, Code)> {
    let client = replica.client();
    let call = crate::cluster::request_id::request(
        IngestRequest {
            shard: replica.shard_id(),
            ..req
        },
        timeout,
    );
    match tokio::time::timeout(timeout, client.ingest(call)).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err((status.message().to_string(), status.code())),
        Err(_) => Err((
            format!("timed out after {timeout:?}"),
            Code::DeadlineExceeded,
        )),
    }
}

/// Records failed replicas as behind on the committers, and decides the acknowledgement: a
/// write some replica missed is acknowledged only when every committer durably recorded
/// every such replica as behind. A replica whose id this root does not know yet (never
/// probed: it was down since this root started) is probed once; still unknown, it cannot be
/// recorded, and the write is refused with 503 rather than acknowledged weaker than
/// promised.
async fn settle(
    cluster: &Cluster,
    group: &ShardGroup,
    targets: &[Arc<Replica>],
    answer: Option<IngestResponse>,
    failed: HashMap<usize, (String, Code)>,
) -> ShardWrite {
    let committers: Vec<&Arc<Replica>> = (0..targets.len())
        .filter(|i| !failed.contains_key(i))
        .map(|i| &targets[i])
        .collect();
    if answer.is_some() {
        let unknown = failed
            .keys()
            .map(|&i| &targets[i])
            .filter(|r| r.replica_id().is_none());
        futures::future::join_all(unknown.map(|r| cluster.probe(group.shard, r))).await;
    }
    let unknown = failed
        .keys()
        .filter(|&&i| targets[i].replica_id().is_none())
        .count();
    let lagging: Vec<String> = failed
        .keys()
        .filter_map(|&i| targets[i].replica_id())
        .collect();
    let marked = if answer.is_some() && !lagging.is_empty() {
        mark_behind(&committers, &lagging).await
    } else {
        false
    };
    let mut failures = Vec::new();
    let mut overloaded = false;
    for (&i, (reason, code)) in &failed {
        overloaded |= *code == Code::ResourceExhausted;
        if answer.is_some() {
            targets[i].mark_missed_write(format!("missed a write: {reason}"));
        }
        failures.push(ReplicaFailure {
            shard: group.shard,
            replica: targets[i].addr.clone(),
            reason: reason.clone(),
            marked_stale: answer.is_some(),
            marked_on_peers: marked,
        });
    }
    failures.sort_by(|a, b| a.replica.cmp(&b.replica));
    let current = committers.iter().filter(|r| !r.is_stale()).count();
    let refusal = if answer.is_none() {
        Some(if overloaded {
            Refusal {
                status: 429,
                kind: "too_many_requests",
                reason: format!(
                    "shard {} is overloaded: {}",
                    group.shard,
                    reasons(&failures)
                ),
            }
        } else {
            Refusal {
                status: 503,
                kind: "shard_unavailable",
                reason: format!("no replica committed it: {}", reasons(&failures)),
            }
        })
    } else if !failed.is_empty() && (!marked || unknown > 0) {
        Some(Refusal {
            status: 503,
            kind: "not_recorded_behind",
            reason: format!(
                "shard {}: {} replica(s) committed it, but a replica that missed it could not \
                 be durably recorded as behind on them ({}); not acknowledged (it may still \
                 be applied): retry",
                group.shard,
                committers.len(),
                if unknown > 0 {
                    "its replica id is unknown to this root: it has been down since this root \
                     started"
                        .to_string()
                } else {
                    "the record call failed".to_string()
                }
            ),
        })
    } else if current == 0 {
        Some(Refusal {
            status: 503,
            kind: "no_current_replica",
            reason: format!(
                "only replicas of shard {} that may lack earlier writes committed it; it is \
                 not acknowledged until a repair brings them up to date",
                group.shard
            ),
        })
    } else {
        None
    };
    ShardWrite {
        answer: if refusal.is_none() { answer } else { None },
        committed: committers.len(),
        failures,
        refusal,
    }
}

/// Asks every committer to record `lagging` as behind (durably, with a commit); true when
/// all did.
async fn mark_behind(committers: &[&Arc<Replica>], lagging: &[String]) -> bool {
    let req = IngestRequest {
        mark_behind: lagging.to_vec(),
        ..Default::default()
    };
    let calls = committers
        .iter()
        .map(|r| call(r, req.clone(), Duration::from_secs(10)));
    let results = futures::future::join_all(calls).await;
    results.iter().all(|r| r.is_ok())
}

/// The failures as one line.
pub fn reasons(failures: &[ReplicaFailure]) -> String {
    if failures.is_empty() {
        return "no replica to write to".to_string();
    }
    let all: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: {}", f.replica, f.reason))
        .collect();
    all.join("; ")
}
