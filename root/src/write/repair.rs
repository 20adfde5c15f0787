//! Stale and diverging replicas, and their repair. After each probe round, per shard:
//!
//! - **Stale** (not searched first; writes only they commit are not acknowledged): a replica
//!   some peer records as behind (persisted on that peer, so every root agrees), one that
//!   missed a write of this root, or one created empty while a peer holds a bulk build.
//! - **Diverging**: replicas whose version digests differ while no write lands on them for
//!   [`LAG_ROUNDS`] rounds in a row (a write reaches replicas a moment apart, so a difference
//!   under writes proves nothing), or differ for [`FORCE_ROUNDS`] rounds in a row whatever
//!   the writes (a merge lists every versioned entry: not every round under load).
//!
//! Repair is a **merge** (see `scatter_leaf::merge`): a reference replica takes every newer
//! write from each other replica, then each takes every newer write from the reference. The
//! newest write of every id ends on every replica; nothing any replica committed is dropped,
//! whichever replica was "stale". Then the marks the merge covered are cleared on the peers
//! that held them. Only a replica created empty is first **copied** (files, by checksum)
//! from a peer holding the bulk build, after that peer merged in the writes the empty one
//! took; a merge round follows.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::v1::{BehindMark, IngestRequest, RepairRequest, RepairResponse};

use crate::cluster::{Cluster, Replica, ReplicaState, ShardGroup};
use crate::write::history;

/// Probe rounds in a row replicas' digests must differ, unchanged, before they are merged.
pub const LAG_ROUNDS: u32 = 2;

/// Probe rounds in a row after which differing digests are merged even under writes.
pub const FORCE_ROUNDS: u32 = 20;

/// Wait after a failed repair of a shard; doubles with each failure in a row.
pub const REPAIR_BACKOFF: Duration = Duration::from_secs(1);

/// Longest wait between repair attempts.
pub const MAX_REPAIR_BACKOFF: Duration = Duration::from_secs(30);

/// Longest a repair pass may take.
pub const REPAIR_TIMEOUT: Duration = Duration::from_secs(3600);

/// What a shard's replicas need.
enum Plan {
    /// `empty` lacks the bulk build `source` holds.
    Copy {
        empty: Arc<Replica>,
        source: Arc<Replica>,
    },
    /// Bring these replicas to the union of their writes.
    Merge(Vec<Arc<Replica>>),
}

/// After a probe round started at `round`: updates staleness and starts the repairs
/// needed.
pub fn after_probe(cluster: &Arc<Cluster>, round: Instant) {
    for (k, group) in cluster.shards.iter().enumerate() {
        let plan = assess(group, round);
        let stale = group.replicas.iter().filter(|r| r.is_stale()).count();
        metrics::gauge!("scatter_root_stale_replicas", "shard" => k.to_string()).set(stale as f64);
        if let Some(plan) = plan {
            start(cluster, k, plan);
        }
    }
}

/// Sets each replica's staleness from what every replica reported; returns the repair the
/// shard needs, if any.
fn assess(group: &ShardGroup, round: Instant) -> Option<Plan> {
    let all: Vec<(&Arc<Replica>, ReplicaState)> = group
        .replicas
        .iter()
        .map(|r| (r, r.state()))
        .filter(|(_, s)| !s.misconfigured)
        .collect();
    let has_bulk = |s: &ReplicaState| s.up && !s.awaiting_copy;
    let bulk_peer = all.iter().find(|(_, s)| has_bulk(s)).map(|(r, _)| *r);
    let configured = group.replicas.len();
    let mut confirm = Vec::new();
    for (r, s) in &all {
        let unverified = s.up && s.unverified;
        let vouched = unverified && history::confirmable(r, s, &all, configured, round);
        if vouched {
            confirm.push(((*r).clone(), r.mark_confirmed()));
        } else if s.up && s.confirm_due {
            confirm.push(((*r).clone(), s.confirmed_incarnation));
        }
        let reason = stale_reason(r, s, &all, bulk_peer.is_some())
            .or_else(|| (unverified && !vouched).then(|| history::UNVERIFIED_REASON.to_string()));
        r.set_stale(reason);
    }
    if !confirm.is_empty() {
        tokio::spawn(history::confirm(confirm));
    }
    let up: Vec<&(&Arc<Replica>, ReplicaState)> = all.iter().filter(|(_, s)| s.up).collect();
    if up.len() < 2 {
        return None;
    }
    if let (Some(source), Some((empty, _))) = (
        bulk_peer,
        up.iter()
            .find(|(_, s)| s.awaiting_copy && bulk_peer.is_some()),
    ) {
        return Some(Plan::Copy {
            empty: (*empty).clone(),
            source: source.clone(),
        });
    }
    let digests: HashSet<u64> = up.iter().map(|(_, s)| s.versions_digest).collect();
    let differing = up
        .iter()
        .map(|(r, _)| r.note_lag(digests.len() > 1))
        .max()
        .unwrap_or(0);
    let quiet = up.iter().map(|(r, _)| r.quiet_rounds()).min().unwrap_or(0);
    let diverged = (differing >= LAG_ROUNDS && quiet >= LAG_ROUNDS) || differing >= FORCE_ROUNDS;
    let any_stale = up.iter().any(|(r, _)| r.is_stale());
    (diverged || any_stale).then(|| Plan::Merge(up.iter().map(|(r, _)| (*r).clone()).collect()))
}

/// Why `r` may lack writes its peers hold, if it may.
fn stale_reason(
    r: &Replica,
    s: &ReplicaState,
    all: &[(&Arc<Replica>, ReplicaState)],
    bulk_peer: bool,
) -> Option<String> {
    if s.awaiting_copy && bulk_peer {
        return Some("created empty; waiting for a copy of a peer's shard".to_string());
    }
    let marked_by: Vec<&str> = all
        .iter()
        .filter(|(p, _)| p.addr != r.addr && !s.replica_id.is_empty())
        .filter(|(_, ps)| ps.behind.contains(&s.replica_id))
        .map(|(p, _)| p.addr.as_str())
        .collect();
    if !marked_by.is_empty() {
        return Some(format!(
            "{} records it as lacking writes",
            marked_by.join(", ")
        ));
    }
    s.missed_write.then(|| {
        s.stale_reason
            .clone()
            .unwrap_or_else(|| "missed a write".to_string())
    })
}

/// Runs `plan` in the background unless a repair of shard `k` is running.
fn start(cluster: &Arc<Cluster>, k: usize, plan: Plan) {
    let group = &cluster.shards[k];
    let due = group
        .repair_backoff
        .lock()
        .expect("repair backoff")
        .1
        .is_none_or(|t| t <= Instant::now());
    if !due || group.repairing.swap(true, Ordering::AcqRel) {
        return;
    }
    let cluster = cluster.clone();
    tokio::spawn(async move {
        let group = &cluster.shards[k];
        let (kind, done) = match plan {
            Plan::Copy { empty, source } => ("copy", copy(group, &empty, &source).await),
            Plan::Merge(replicas) => ("merge", merge(&replicas, group.replicas.len()).await),
        };
        let mut backoff = *group.repair_backoff.lock().expect("repair backoff");
        match done {
            Ok(()) => {
                metrics::counter!("scatter_root_repairs_total", "kind" => kind, "outcome" => "ok")
                    .increment(1);
                backoff = (0, None);
            }
            Err(e) => {
                metrics::counter!("scatter_root_repairs_total", "kind" => kind, "outcome" => "error")
                    .increment(1);
                let wait = REPAIR_BACKOFF
                    .saturating_mul(1 << backoff.0.min(5))
                    .min(MAX_REPAIR_BACKOFF);
                tracing::error!(shard = k, kind, ?wait, "repair failed: {e:#}");
                backoff = (backoff.0 + 1, Some(Instant::now() + wait));
            }
        }
        *group.repair_backoff.lock().expect("repair backoff") = backoff;
        group.repairing.store(false, Ordering::Release);
    });
}

/// Asks `target` to take what it lacks from `source` (merge) or to copy it.
async fn repair_call(
    target: &Replica,
    source: &Replica,
    merge: bool,
    swap: bool,
) -> anyhow::Result<RepairResponse> {
    let req = crate::cluster::request_id::request(
        RepairRequest {
            source: source.addr.clone(),
            swap,
            shard: target.shard_id(),
            merge,
        },
        REPAIR_TIMEOUT,
    );
    let resp = target.client().repair(req).await.map_err(|s| {
        target.record_failure(format!("repair failed: {}", s.message()), false);
        anyhow::anyhow!("{} from {}: {}", target.addr, source.addr, s.message())
    })?;
    Ok(resp.into_inner())
}

/// Merges the replicas to the union of their writes (see the module doc), then clears the
/// marks the merge covered; confirms their histories when the merge covered every one of
/// the shard's `configured` replicas or its reference was trusted (see `crate::write::history`).
async fn merge(replicas: &[Arc<Replica>], configured: usize) -> anyhow::Result<()> {
    let reference = replicas
        .iter()
        .find(|r| !r.is_stale())
        .unwrap_or(&replicas[0])
        .clone();
    let trusted = !reference.is_stale() && !reference.state().unverified;
    let incarnations: Vec<u64> = replicas.iter().map(|r| r.state().incarnation).collect();
    let others: Vec<&Arc<Replica>> = replicas
        .iter()
        .filter(|r| r.addr != reference.addr)
        .collect();
    // Per replica: its log position the reference read it at.
    let mut read_at: HashMap<&str, u64> = HashMap::new();
    let mut merged = 0;
    for r in &others {
        let done = repair_call(&reference, r, true, false).await?;
        read_at.insert(r.addr.as_str(), done.source_position);
        merged += done.docs_merged;
    }
    let mut clears: HashMap<&str, Vec<BehindMark>> = HashMap::new();
    for r in &others {
        let done = repair_call(r, &reference, true, false).await?;
        merged += done.docs_merged;
        let Some(id) = r.replica_id() else { continue };
        // `r` now holds what the reference held at `source_position`, which includes what
        // every other replica held when the reference read it.
        let mut positions = vec![(reference.addr.as_str(), done.source_position)];
        positions.extend(read_at.iter().map(|(a, p)| (*a, *p)));
        for (holder, position) in positions.into_iter().filter(|(a, _)| *a != r.addr) {
            clears.entry(holder).or_default().push(BehindMark {
                replica_id: id.clone(),
                position,
            });
        }
        r.mark_repaired(done.generation, done.ops);
    }
    if let Some(id) = reference.replica_id() {
        for (addr, position) in &read_at {
            clears.entry(addr).or_default().push(BehindMark {
                replica_id: id.clone(),
                position: *position,
            });
        }
    }
    let ref_state = reference.state();
    reference.mark_repaired(ref_state.generation, ref_state.ops);
    clear_marks(replicas, clears).await;
    if trusted || replicas.len() == configured {
        for (r, incarnation) in replicas.iter().zip(&incarnations) {
            r.confirm_incarnation(*incarnation);
        }
        let confirmed = replicas.iter().cloned().zip(incarnations);
        history::confirm(confirmed.collect()).await;
    }
    tracing::info!(
        shard = reference.shard, reference = %reference.addr, merged,
        "replicas merged"
    );
    Ok(())
}

/// Sends each holder the marks to clear (a failure only delays clearing to the next round).
async fn clear_marks(replicas: &[Arc<Replica>], clears: HashMap<&str, Vec<BehindMark>>) {
    for (addr, marks) in clears {
        let Some(holder) = replicas.iter().find(|r| r.addr == addr) else {
            continue;
        };
        let req = crate::cluster::request_id::request(
            IngestRequest {
                clear_behind: marks,
                shard: holder.shard_id(),
                ..Default::default()
            },
            Duration::from_secs(30),
        );
        if let Err(s) = holder.client().ingest(req).await {
            tracing::warn!(replica = %holder.addr, "clearing marks failed: {}", s.message());
        }
    }
}

/// Copies the shard from `source` into the empty replica: first the source merges what the
/// empty one took meanwhile, then a bulk copy while writes go on, then — with this root's
/// writes to the shard held off — a short copy of what changed and the swap.
async fn copy(group: &ShardGroup, empty: &Replica, source: &Replica) -> anyhow::Result<()> {
    repair_call(source, empty, true, false).await?;
    repair_call(empty, source, false, false).await?;
    let _exclusive = group.writes.write().await;
    let done = repair_call(empty, source, false, true).await?;
    empty.mark_repaired(done.generation, done.ops);
    tracing::warn!(
        replica = %empty.addr, source = %source.addr,
        files = done.files_copied, bytes = done.bytes_copied, "replica copied"
    );
    Ok(())
}
