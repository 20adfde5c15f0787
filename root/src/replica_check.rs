//! `GET /cluster/replicas/check`: compares every replica of every shard **by document**. Each
//! replica lists every live document (id and version; 0 for bulk-built ones) and every
//! tombstone (`Versions` with `documents`), read under its commit so the list is one
//! consistent state; the lists are compared id by id, each with a hash of the document's
//! stored fields as the replica's *index* holds them (what searches read, bulk-built
//! documents included), besides the version and the log's tiebreak. The
//! proof users run after faults, as `index verify` proves ranking.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use scatter_proto::v1::{VersionEntry, VersionsRequest};
use serde::Serialize;

use crate::cluster::{Cluster, Replica};

/// Most differing ids listed per shard (all are counted).
pub const MAX_LISTED: usize = 100;

/// The comparison of every shard's replicas.
#[derive(Debug, Serialize)]
pub struct ReplicaCheck {
    /// Every replica of every shard answered and all agree.
    pub consistent: bool,
    /// Per shard.
    pub shards: Vec<ShardCheck>,
}

/// One shard's comparison.
#[derive(Debug, Serialize)]
pub struct ShardCheck {
    /// Shard number.
    pub shard: usize,
    /// Per replica: address, live documents, tombstones, or why it could not be read.
    pub replicas: Vec<ReplicaListing>,
    /// Ids on which the replicas that answered differ.
    pub differing: usize,
    /// The first [`MAX_LISTED`] of them: per replica what it holds.
    pub differences: Vec<Difference>,
}

/// What one replica reported.
#[derive(Debug, Serialize)]
pub struct ReplicaListing {
    /// Address.
    pub replica: String,
    /// Live documents.
    pub documents: usize,
    /// Tombstones.
    pub tombstones: usize,
    /// Why it could not be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One id the replicas disagree on: per replica (in order) `v<version>:<hash>`,
/// `deleted@<version>` or `absent`.
#[derive(Debug, Serialize)]
pub struct Difference {
    /// External id.
    pub id: String,
    /// What each replica holds.
    pub held: Vec<String>,
}

/// Compares every shard's replicas.
pub async fn check(cluster: &Cluster, timeout: Duration) -> ReplicaCheck {
    let shards = futures::future::join_all(cluster.shards.iter().map(|g| async move {
        let lists = futures::future::join_all(g.replicas.iter().map(|r| list(r, timeout))).await;
        compare(g.shard, &g.replicas, lists)
    }))
    .await;
    let consistent = shards
        .iter()
        .all(|s| s.differing == 0 && s.replicas.iter().all(|r| r.error.is_none()));
    ReplicaCheck { consistent, shards }
}

async fn list(replica: &Replica, timeout: Duration) -> Result<Vec<VersionEntry>, String> {
    let mut req = tonic::Request::new(VersionsRequest {
        shard: replica.shard_id(),
        documents: true,
    });
    req.set_timeout(timeout);
    let read = async {
        let mut stream = replica
            .client()
            .versions(req)
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        let mut entries = Vec::new();
        while let Some(chunk) = stream.next().await {
            entries.extend(chunk.map_err(|s| s.message().to_string())?.entries);
        }
        Ok(entries)
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
}

fn compare(
    shard: usize,
    replicas: &[std::sync::Arc<Replica>],
    lists: Vec<Result<Vec<VersionEntry>, String>>,
) -> ShardCheck {
    let mut by_id: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let n = lists.len();
    let mut listings = Vec::new();
    for (i, (replica, list)) in replicas.iter().zip(&lists).enumerate() {
        let (entries, error) = match list {
            Ok(e) => (e.as_slice(), None),
            Err(e) => (&[][..], Some(e.clone())),
        };
        let tombstones = entries.iter().filter(|e| e.deleted).count();
        listings.push(ReplicaListing {
            replica: replica.addr.clone(),
            documents: entries.len() - tombstones,
            tombstones,
            error,
        });
        for e in entries {
            let held = if e.deleted {
                format!("deleted@{}", e.version)
            } else {
                format!("v{}:{:x}:{:x}", e.version, e.tiebreak, e.content)
            };
            let slot = by_id.entry(e.id.clone()).or_insert_with(|| vec![None; n]);
            // Two entries for one id on one replica (a live document and a tombstone) is
            // itself a difference: keep both.
            slot[i] = Some(match slot[i].take() {
                Some(prev) => format!("{prev}+{held}"),
                None => held,
            });
        }
    }
    let answered: Vec<usize> = (0..n).filter(|&i| lists[i].is_ok()).collect();
    let mut differing = 0;
    let mut differences = Vec::new();
    for (id, held) in by_id {
        let first = &held[answered.first().copied().unwrap_or(0)];
        if answered.iter().all(|&i| &held[i] == first) {
            continue;
        }
        differing += 1;
        if differences.len() < MAX_LISTED {
            differences.push(Difference {
                id,
                held: held
                    .into_iter()
                    .map(|h| h.unwrap_or_else(|| "absent".to_string()))
                    .collect(),
            });
        }
    }
    ShardCheck {
        shard,
        replicas: listings,
        differing,
        differences,
    }
}
