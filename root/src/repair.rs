//! Stale replicas and their repair. A replica is stale when it missed a write a peer
//! committed (seen at once by [`crate::ingest`]), when it stays behind a peer's committed
//! operation count for [`LAG_ROUNDS`] probe rounds (seen after a root restart), or when it
//! holds no segment while a peer holds documents (a new, empty replica). Stale replicas are
//! not searched. After each probe round the root repairs each reachable stale replica from a
//! current peer in two passes: a bulk copy while writes go on, then — with the shard's
//! writes held off — a short copy of what changed meanwhile and the swap.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use scatter_proto::v1::{RepairRequest, RepairResponse};

use crate::cluster::{Cluster, Replica, ReplicaState, ShardGroup};

/// Probe rounds in a row a replica must be behind a peer to be declared stale.
pub const LAG_ROUNDS: u32 = 3;

/// Longest a repair pass may take.
pub const REPAIR_TIMEOUT: Duration = Duration::from_secs(3600);

/// After a probe round: finds lagging replicas and starts repairs.
pub fn after_probe(cluster: &Arc<Cluster>) {
    for (k, group) in cluster.shards.iter().enumerate() {
        find_lagging(group);
        let stale = group.replicas.iter().filter(|r| r.is_stale()).count();
        metrics::gauge!("scatter_root_stale_replicas", "shard" => k.to_string()).set(stale as f64);
        start_repair(cluster, k);
    }
}

/// Marks replicas stale that are behind a current peer (see the module doc).
fn find_lagging(group: &ShardGroup) {
    keep_one_current(group);
    let states: Vec<(&Arc<Replica>, ReplicaState)> = group
        .replicas
        .iter()
        .map(|r| (r, r.state()))
        .filter(|(_, s)| s.up && !s.misconfigured && !s.stale)
        .collect();
    let max_ops = states.iter().map(|(_, s)| s.ops).max().unwrap_or(0);
    let peer_has_docs = states.iter().any(|(_, s)| s.num_docs > 0);
    for (replica, s) in &states {
        if s.num_segments == 0 && peer_has_docs {
            replica.mark_stale("empty while a peer holds documents".to_string());
            continue;
        }
        let rounds = replica.note_lag(s.ops < max_ops);
        // Only with no write of this root in flight: a write still on its way to one
        // replica is not a missed write.
        if rounds >= LAG_ROUNDS && group.writes.try_write().is_ok() {
            replica.mark_stale(format!(
                "missed writes: {} operations committed, a peer has {max_ops}",
                s.ops
            ));
        }
    }
}

/// Concurrent writes that failed on different replicas can leave every replica of a shard
/// stale (each missed a write the other committed). Rather than losing the shard, the one
/// with the most committed operations is declared current (the others are then repaired from
/// it); the writes only the others had are lost, and this is logged as an error.
fn keep_one_current(group: &ShardGroup) {
    let usable: Vec<(&Arc<Replica>, ReplicaState)> = group
        .replicas
        .iter()
        .map(|r| (r, r.state()))
        .filter(|(_, s)| s.up && !s.misconfigured)
        .collect();
    if usable.is_empty() || usable.iter().any(|(_, s)| !s.stale) {
        return;
    }
    let (best, s) = usable.iter().max_by_key(|(_, s)| s.ops).expect("a replica");
    tracing::error!(
        shard = group.shard, replica = %best.addr, ops = s.ops,
        "every replica of the shard missed writes; serving the one with the most"
    );
    best.clear_stale();
}

/// Starts repairing one reachable stale replica of shard `k` from a current one, unless a
/// repair of the shard is running.
fn start_repair(cluster: &Arc<Cluster>, k: usize) {
    let group = &cluster.shards[k];
    let ok = |r: &&Arc<Replica>| r.is_up() && !r.is_misconfigured();
    let Some(stale) = group.replicas.iter().filter(ok).find(|r| r.is_stale()) else {
        return;
    };
    let Some(source) = group.replicas.iter().filter(ok).find(|r| !r.is_stale()) else {
        return;
    };
    if group.repairing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (cluster, stale, source) = (cluster.clone(), stale.clone(), source.clone());
    tokio::spawn(async move {
        let group = &cluster.shards[k];
        match repair(group, &stale, &source).await {
            Ok(done) => {
                metrics::counter!("scatter_root_repairs_total", "outcome" => "ok").increment(1);
                tracing::warn!(
                    replica = %stale.addr, source = %source.addr,
                    files = done.files_copied, bytes = done.bytes_copied, "replica repaired"
                );
            }
            Err(e) => {
                metrics::counter!("scatter_root_repairs_total", "outcome" => "error").increment(1);
                tracing::error!(replica = %stale.addr, source = %source.addr, "repair failed: {e:#}");
                // Counts towards ejection, so a replica that keeps failing is left alone
                // until probes find it healthy again.
                stale.record_failure(format!("repair failed: {e:#}"), false);
            }
        }
        group.repairing.store(false, Ordering::Release);
    });
}

/// Two passes: copy while writes go on, then hold the shard's writes, copy the rest, swap,
/// and put the replica back in service before any further write.
async fn repair(
    group: &ShardGroup,
    stale: &Replica,
    source: &Replica,
) -> anyhow::Result<RepairResponse> {
    let call = |swap| {
        let mut req = crate::request_id::request(RepairRequest {
            source: source.addr.clone(),
            swap,
            shard: stale.shard_id(),
        });
        req.set_timeout(REPAIR_TIMEOUT);
        let mut client = stale.client();
        async move { client.repair(req).await.map(|r| r.into_inner()) }
    };
    call(false).await?;
    let _exclusive = group.writes.write().await;
    let done = call(true).await?;
    stale.mark_repaired(done.generation, done.ops);
    Ok(done)
}
