//! `GET /cluster/replicas/check`: compares every replica of every shard **by document**. Each
//! replica lists every live document (id and version; 0 for bulk-built ones) and every
//! tombstone (`Versions` with `documents`), read under its commit so the list is one
//! consistent state; the lists are compared id by id, each with a hash of the document's
//! stored fields as the replica's *index* holds them (what searches read, bulk-built
//! documents included), besides the version and the log's tiebreak. The
//! proof users run after faults, as `index verify` proves ranking.
//!
//! Leaves stream their listings sorted by id; the root compares them by a merge-join, one
//! chunk per replica in memory at a time, so neither side holds a listing whole.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use scatter_proto::leaf_api::LeafStream;
use scatter_proto::v1::{VersionEntry, VersionsChunk, VersionsRequest};
use serde::Serialize;
use tokio::time::Instant;

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
    let deadline = Instant::now() + timeout;
    let shards = futures::future::join_all(
        cluster
            .shards
            .iter()
            .map(|g| compare(g.shard, &g.replicas, deadline)),
    )
    .await;
    let consistent = shards
        .iter()
        .all(|s| s.differing == 0 && s.replicas.iter().all(|r| r.error.is_none()));
    ReplicaCheck { consistent, shards }
}

/// One replica's listing, read chunk by chunk.
struct Listing {
    stream: Option<LeafStream<VersionsChunk>>,
    buf: VecDeque<VersionEntry>,
    listing: ReplicaListing,
}

impl Listing {
    async fn open(replica: &Replica, deadline: Instant) -> Listing {
        let listing = VersionsRequest {
            shard: replica.shard_id(),
            documents: true,
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        let req = crate::cluster::request_id::request(listing, timeout);
        let client = replica.client();
        let call = client.versions(req);
        let (stream, error) = match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(resp)) => (Some(resp.into_inner()), None),
            Ok(Err(s)) => (None, Some(s.message().to_string())),
            Err(_) => (None, Some("timed out".to_string())),
        };
        Listing {
            stream,
            buf: VecDeque::new(),
            listing: ReplicaListing {
                replica: replica.addr.clone(),
                documents: 0,
                tombstones: 0,
                error,
            },
        }
    }

    /// The next entry's id, reading a chunk when needed; None at the end or on an error.
    async fn head(&mut self, deadline: Instant) -> Option<&str> {
        while self.buf.is_empty() {
            let stream = self.stream.as_mut()?;
            match tokio::time::timeout_at(deadline, stream.message()).await {
                Ok(Ok(Some(chunk))) => self.buf.extend(chunk.entries),
                Ok(Ok(None)) => self.stream = None,
                Ok(Err(s)) => self.fail(s.message().to_string()),
                Err(_) => self.fail("timed out".to_string()),
            }
        }
        self.buf.front().map(|e| e.id.as_str())
    }

    fn fail(&mut self, error: String) {
        self.stream = None;
        self.buf.clear();
        self.listing.error = Some(error);
    }

    /// Takes every entry of `id` at the front: what this replica holds for it.
    async fn take(&mut self, id: &str, deadline: Instant) -> Option<String> {
        let mut held: Option<String> = None;
        while self.head(deadline).await == Some(id) {
            let e = self.buf.pop_front().expect("a head");
            let this = if e.deleted {
                self.listing.tombstones += 1;
                format!("deleted@{}", e.version)
            } else {
                self.listing.documents += 1;
                format!("v{}:{:x}:{:x}", e.version, e.tiebreak, e.content)
            };
            // Two entries for one id on one replica (a live document and a tombstone) is
            // itself a difference: keep both.
            held = Some(match held {
                Some(prev) => format!("{prev}+{this}"),
                None => this,
            });
        }
        held
    }
}

async fn compare(shard: usize, replicas: &[Arc<Replica>], deadline: Instant) -> ShardCheck {
    let mut lists =
        futures::future::join_all(replicas.iter().map(|r| Listing::open(r, deadline))).await;
    let (mut differing, mut differences) = (0, Vec::new());
    loop {
        let mut next: Option<String> = None;
        for l in &mut lists {
            if let Some(id) = l.head(deadline).await {
                if next.as_deref().is_none_or(|n| id < n) {
                    next = Some(id.to_string());
                }
            }
        }
        let Some(id) = next else { break };
        let mut held = Vec::with_capacity(lists.len());
        for l in &mut lists {
            held.push(l.take(&id, deadline).await);
        }
        let answered: Vec<usize> = (0..lists.len())
            .filter(|&i| lists[i].listing.error.is_none())
            .collect();
        let first = answered.first().map(|&i| &held[i]);
        if answered.iter().all(|&i| Some(&held[i]) == first) {
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
        replicas: lists.into_iter().map(|l| l.listing).collect(),
        differing,
        differences,
    }
}
