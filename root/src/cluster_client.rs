//! The cluster as the root sees it: per shard its replicas, each with one reused gRPC channel
//! (HTTP/2, multiplexed, TCP_NODELAY), a health state kept fresh by a background prober
//! (`Info` calls), and the cluster's schema learnt from the leaves.

use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use scatter_core::query::ScatterQueryParser;
use scatter_core::ScatterSchema;
use scatter_proto::v1::{InfoRequest, InfoResponse};
use scatter_proto::LeafClient;
use serde::Serialize;
use tantivy::schema::Schema;
use tonic::transport::{Channel, Endpoint};

use crate::config::RootConfig;

/// Largest gRPC message the root accepts from a leaf.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Health of one replica, as last observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaState {
    /// Answered its last probe or call.
    pub up: bool,
    /// Why it is down or excluded.
    pub last_error: Option<String>,
    /// Index generation from its last answer.
    pub generation: u64,
    /// Live documents from its last probe.
    pub num_docs: u64,
}

/// One replica of one shard.
pub struct Replica {
    /// `host:port`.
    pub addr: String,
    client: LeafClient<Channel>,
    state: Mutex<ReplicaState>,
}

impl Replica {
    fn new(addr: &str) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let client = LeafClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Replica {
            addr: addr.to_string(),
            client,
            state: Mutex::new(ReplicaState {
                up: false,
                last_error: Some("not probed yet".to_string()),
                ..Default::default()
            }),
        })
    }

    /// A handle on the replica's channel (cheap clone; the connection is shared).
    pub fn client(&self) -> LeafClient<Channel> {
        self.client.clone()
    }

    /// Current state.
    pub fn state(&self) -> ReplicaState {
        self.state.lock().expect("replica state").clone()
    }

    /// Whether the replica is considered healthy.
    pub fn is_up(&self) -> bool {
        self.state.lock().expect("replica state").up
    }

    /// Records a failed call or probe: the replica is avoided until a probe succeeds.
    pub fn mark_down(&self, reason: String) {
        let mut s = self.state.lock().expect("replica state");
        s.up = false;
        s.last_error = Some(reason);
    }

    fn mark_up(&self, info: &InfoResponse) {
        let mut s = self.state.lock().expect("replica state");
        s.up = true;
        s.last_error = None;
        s.generation = info.generation;
        s.num_docs = info.num_docs;
    }
}

/// The replicas of one shard.
pub struct ShardGroup {
    /// Shard number.
    pub shard: usize,
    /// Replicas, in configuration order.
    pub replicas: Vec<Arc<Replica>>,
    next: AtomicUsize,
}

impl ShardGroup {
    /// The order in which to try replicas for one call: healthy replicas first, each group
    /// rotated round-robin so load spreads over replicas.
    pub fn replica_order(&self) -> Vec<Arc<Replica>> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let rotated = (0..n).map(|i| self.replicas[(start + i) % n].clone());
        let (up, down): (Vec<_>, Vec<_>) = rotated.partition(|r| r.is_up());
        up.into_iter().chain(down).collect()
    }

    /// Whether some replica is healthy.
    pub fn has_live_replica(&self) -> bool {
        self.replicas.iter().any(|r| r.is_up())
    }
}

/// The cluster's schema and the query parser built from it (the same as the leaves').
pub struct ClusterSchema {
    /// The Scatter schema.
    pub schema: ScatterSchema,
    /// Its tantivy form.
    pub tantivy: Schema,
    /// Parser identical to the leaves'.
    pub parser: ScatterQueryParser,
    /// Schema fingerprint every replica must match.
    pub fingerprint: String,
}

/// All shards and their replicas.
pub struct Cluster {
    /// Shards in order.
    pub shards: Vec<ShardGroup>,
    schema: RwLock<Option<Arc<ClusterSchema>>>,
    probe_interval: Duration,
}

impl Cluster {
    /// Creates channels (lazily connected) for every replica in `config`.
    pub fn new(config: &RootConfig) -> anyhow::Result<Arc<Self>> {
        config.validate()?;
        let mut shards = Vec::new();
        for (shard, addrs) in config.shards.iter().enumerate() {
            let replicas = addrs
                .iter()
                .map(|a| Replica::new(a).map(Arc::new))
                .collect::<anyhow::Result<_>>()?;
            shards.push(ShardGroup {
                shard,
                replicas,
                next: AtomicUsize::new(0),
            });
        }
        Ok(Arc::new(Cluster {
            shards,
            schema: RwLock::new(None),
            probe_interval: config.probe_interval,
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

    /// Shards with no healthy replica.
    pub fn unavailable_shards(&self) -> Vec<usize> {
        self.shards
            .iter()
            .filter(|g| !g.has_live_replica())
            .map(|g| g.shard)
            .collect()
    }

    /// Probes every replica once, concurrently.
    pub async fn probe_all(&self) {
        let probes = self
            .shards
            .iter()
            .flat_map(|g| g.replicas.iter().map(move |r| self.probe(g.shard, r)));
        futures::future::join_all(probes).await;
    }

    async fn probe(&self, shard: usize, replica: &Replica) {
        let mut req = tonic::Request::new(InfoRequest {});
        req.set_timeout(Duration::from_secs(1));
        let mut client = replica.client();
        let call = client.info(req);
        let info = match tokio::time::timeout(Duration::from_secs(1), call).await {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => return replica.mark_down(format!("probe: {}", status.message())),
            Err(_) => return replica.mark_down("probe: timed out".to_string()),
        };
        match self.check_info(shard, &info) {
            Ok(()) => replica.mark_up(&info),
            Err(reason) => {
                tracing::error!(replica = %replica.addr, shard, "{reason}");
                replica.mark_down(reason);
            }
        }
    }

    /// Rejects a replica that serves another shard, was built for another shard count, or
    /// has another schema: routing and scoring would silently go wrong with it.
    fn check_info(&self, shard: usize, info: &InfoResponse) -> Result<(), String> {
        if info.shard_id as usize != shard || info.num_shards as usize != self.shards.len() {
            return Err(format!(
                "misconfigured: replica serves shard {} of {}, configured as shard {} of {}",
                info.shard_id,
                info.num_shards,
                shard,
                self.shards.len()
            ));
        }
        let mut slot = self.schema.write().expect("schema lock");
        match &*slot {
            Some(s) if s.fingerprint != info.schema_fingerprint => Err(format!(
                "misconfigured: schema fingerprint {} differs from the cluster's {}",
                info.schema_fingerprint, s.fingerprint
            )),
            Some(_) => Ok(()),
            None => {
                let schema = ScatterSchema::from_json(&info.schema_json)
                    .map_err(|e| format!("bad schema from replica: {e:#}"))?;
                let tantivy = schema.tantivy_schema();
                let parser = ScatterQueryParser::new(&schema, &tantivy);
                *slot = Some(Arc::new(ClusterSchema {
                    fingerprint: schema.fingerprint(),
                    schema,
                    tantivy,
                    parser,
                }));
                Ok(())
            }
        }
    }

    /// Probes all replicas every probe interval until `stop` fires.
    pub fn spawn_prober(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let cluster = Arc::downgrade(self);
        let interval = self.probe_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                cluster.probe_all().await;
            }
        })
    }
}
