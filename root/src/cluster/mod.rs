//! The cluster as the root sees it: per shard its replicas, the leaf nodes serving them
//! (one gRPC channel per node, whatever number of shards it serves), and the cluster's
//! schema learnt from the leaves. Health probing is in [`crate::write::prober`].
//!
//! Below it: [`leaf_node`] (one node: its [`scatter_proto::leaf_api::LeafHandle`] and load),
//! [`replica`] (one shard on one node: health, ejection, staleness), [`fanout`] (one call per
//! node, every shard under one deadline, failover and hedging per shard), [`retry`] (what a
//! call's result means), [`hedge`] (hedge delay and budget), [`balance`] (power of two
//! choices over peak-EWMA load), [`request_id`] (the envelope of every leaf call: request id
//! and deadline), [`cluster_schema`] and [`clock`] (the version clock of writes).

pub mod balance;
pub mod clock;
pub mod cluster_schema;
pub mod fanout;
pub mod hedge;
pub mod leaf_node;
pub mod replica;
pub mod request_id;
pub mod retry;

use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

use crate::cluster::balance::p2c_order;
pub use crate::cluster::cluster_schema::ClusterSchema;
use crate::cluster::hedge::LatencyWindow;
use crate::cluster::leaf_node::LeafNode;
pub use crate::cluster::replica::{Replica, ReplicaState};

/// Counters of one shard's calls.
#[derive(Debug, Default)]
pub struct ShardCounters {
    /// Shard calls (one per phase per request).
    pub calls: AtomicU64,
    /// Hedged calls sent.
    pub hedges: AtomicU64,
    /// Hedged calls that answered first.
    pub hedge_wins: AtomicU64,
    /// Calls sent to another replica after an error.
    pub failovers: AtomicU64,
}

/// The replicas of one shard.
pub struct ShardGroup {
    /// Shard number.
    pub shard: usize,
    /// Replicas, in configuration order.
    pub replicas: Vec<Arc<Replica>>,
    /// Recent call latencies (for the hedge delay).
    pub latency: LatencyWindow,
    /// Call counters.
    pub counters: ShardCounters,
    /// Held shared by every write of this root to this shard, exclusively by the swapping
    /// pass of a copy repair (other roots' writes that land meanwhile are merged in after).
    pub writes: tokio::sync::RwLock<()>,
    /// A repair of one of its replicas is running.
    pub repairing: std::sync::atomic::AtomicBool,
    /// Failed repairs in a row, and when the next may start (failures back off).
    pub repair_backoff: std::sync::Mutex<(u32, Option<Instant>)>,
}

impl ShardGroup {
    /// Replica `addr` answered that its history is unverified in `incarnation` (see
    /// `crate::write::history`): with peers configured, unless this root confirmed that
    /// incarnation, it is stale until a probe round confirms it.
    pub fn note_unverified(&self, addr: &str, incarnation: u64) {
        if incarnation == 0 || self.replicas.len() < 2 {
            return; // the common case: a verified answer, nothing to look up
        }
        if let Some(r) = self.replicas.iter().find(|r| r.addr == addr) {
            if r.is_unconfirmed(incarnation) && !r.is_stale() {
                r.set_stale(Some(crate::cluster::replica::UNVERIFIED_REASON.to_string()));
            }
        }
    }

    /// The order in which to try replicas for one call: healthy current replicas by power of
    /// two choices over their load cost, then ejected, down or stale ones (tried only as a
    /// last resort: a stale replica's answer beats none).
    pub fn replica_order(&self) -> Vec<Arc<Replica>> {
        let usable = self.replicas.iter().filter(|r| !r.is_misconfigured());
        let (up, down): (Vec<_>, Vec<_>) =
            usable.cloned().partition(|r| r.is_up() && !r.is_stale());
        let mut order = p2c_order(up.into_iter().map(|r| (r.node.cost(), r)).collect());
        order.extend(p2c_order(
            down.into_iter().map(|r| (r.node.cost(), r)).collect(),
        ));
        order
    }

    /// [`ShardGroup::replica_order`] for one request over many shards: replicas ranked by
    /// their node's place in `node_rank` (one power-of-two-choices ranking of the nodes per
    /// request), so that shards sharing nodes go to the same node and the request makes one
    /// call per node; healthy current replicas first, then ejected, down or stale ones.
    pub fn replica_order_by(&self, node_rank: &dyn Fn(&LeafNode) -> usize) -> Vec<Arc<Replica>> {
        let usable = self.replicas.iter().filter(|r| !r.is_misconfigured());
        let mut order: Vec<_> = usable.cloned().collect();
        order.sort_by_key(|r| (!r.is_up() || r.is_stale(), node_rank(&r.node)));
        order
    }

    /// Whether some replica is healthy and current.
    pub fn has_live_replica(&self) -> bool {
        self.replicas.iter().any(|r| r.is_up() && !r.is_stale())
    }
}

/// All shards, their replicas and the leaf nodes serving them.
pub struct Cluster {
    /// Shards in order.
    pub shards: Vec<ShardGroup>,
    /// Every leaf node, once (a node serving several shards appears in several groups).
    pub nodes: Vec<Arc<LeafNode>>,
    pub(crate) schema: RwLock<Option<Arc<ClusterSchema>>>,
    /// The clock every write's version comes from.
    pub clock: crate::cluster::clock::VersionClock,
    pub(crate) probe_interval: Duration,
}

impl Cluster {
    /// Creates one channel (lazily connected) per leaf node of `layout` (per shard, its
    /// replicas' addresses): an address named for several shards is one node serving them.
    /// Replicas are probed every `probe_interval`.
    pub fn new(layout: &[Vec<String>], probe_interval: Duration) -> anyhow::Result<Arc<Self>> {
        let mut shards = Vec::new();
        let mut nodes: Vec<Arc<LeafNode>> = Vec::new();
        for (shard, addrs) in layout.iter().enumerate() {
            let mut replicas = Vec::new();
            for addr in addrs {
                let node = match nodes.iter().find(|n| &n.addr == addr) {
                    Some(n) => n.clone(),
                    None => {
                        let n = Arc::new(LeafNode::connect_lazy(addr)?);
                        nodes.push(n.clone());
                        n
                    }
                };
                replicas.push(Arc::new(Replica::new(shard, node)));
            }
            shards.push(ShardGroup {
                shard,
                replicas,
                latency: LatencyWindow::default(),
                counters: ShardCounters::default(),
                writes: tokio::sync::RwLock::new(()),
                repairing: std::sync::atomic::AtomicBool::new(false),
                repair_backoff: std::sync::Mutex::new((0, None)),
            });
        }
        Ok(Arc::new(Cluster {
            shards,
            nodes,
            schema: RwLock::new(None),
            clock: crate::cluster::clock::VersionClock::default(),
            probe_interval,
        }))
    }

    /// The cluster schema, learnt from the first replica that answers; if none has answered
    /// yet, probes all replicas and returns as soon as one does (or at `deadline`).
    pub async fn schema(&self, deadline: Instant) -> Option<Arc<ClusterSchema>> {
        if let Some(s) = self.schema.read().expect("schema lock").clone() {
            return Some(s);
        }
        let budget = deadline.saturating_duration_since(Instant::now());
        let mut probes: FuturesUnordered<_> = self
            .shards
            .iter()
            .flat_map(|g| g.replicas.iter().map(move |r| self.probe(g.shard, r)))
            .collect();
        let first_schema = async {
            while probes.next().await.is_some() {
                if let Some(s) = self.schema.read().expect("schema lock").clone() {
                    return Some(s);
                }
            }
            None
        };
        tokio::time::timeout(budget, first_schema)
            .await
            .ok()
            .flatten()
    }

    /// Per shard, a fingerprint of the index generations its replicas last reported: it
    /// changes whenever any replica's searchable index changes.
    pub fn generations(&self) -> Vec<u64> {
        self.shards
            .iter()
            .map(|g| {
                g.replicas
                    .iter()
                    .fold(0u64, |acc, r| acc.rotate_left(17) ^ r.generation())
            })
            .collect()
    }

    /// Shards with no healthy replica.
    pub fn unavailable_shards(&self) -> Vec<usize> {
        self.shards
            .iter()
            .filter(|g| !g.has_live_replica())
            .map(|g| g.shard)
            .collect()
    }
}
