//! The cluster as the root sees it: per shard its replicas, each with one reused gRPC channel
//! (HTTP/2, multiplexed, TCP_NODELAY), a health state kept fresh by a background prober
//! (`Info` calls), and the cluster's schema learnt from the leaves.

use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use crate::cluster_schema::ClusterSchema;
use scatter_proto::v1::{InfoRequest, InfoResponse};
use scatter_proto::LeafClient;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::balance::{p2c_order, PeakEwma};
use crate::config::RootConfig;
use crate::hedge::LatencyWindow;

/// Largest gRPC message the root accepts from a leaf.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Consecutive failed calls or probes that eject a replica.
pub const EJECT_AFTER_FAILURES: u32 = 3;
/// Consecutive races lost to a sibling replica (its call was still running when another
/// replica's answer won) that eject a replica as a latency outlier.
pub const EJECT_AFTER_LOST_RACES: u32 = 3;
/// First ejection period; it doubles with each further ejection, up to [`MAX_EJECTION`].
pub const BASE_EJECTION: Duration = Duration::from_secs(1);
/// Longest ejection period.
pub const MAX_EJECTION: Duration = Duration::from_secs(30);

/// Health of one replica, as last observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaState {
    /// Answered its last probe or call and is not ejected.
    pub up: bool,
    /// Why it is down or ejected.
    pub last_error: Option<String>,
    /// Index generation from its last answer.
    pub generation: u64,
    /// Live documents from its last probe.
    pub num_docs: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Races lost to a sibling replica in a row.
    pub consecutive_lost_races: u32,
    /// Times it was ejected.
    pub ejections: u64,
    /// Milliseconds of ejection left (0 when not ejected).
    pub ejected_for_ms: u64,
    /// Serves another shard, shard count or schema: never called.
    pub misconfigured: bool,
    /// Missed writes its peers committed: not searched until repaired from a peer.
    pub stale: bool,
    /// Why it is stale.
    pub stale_reason: Option<String>,
    /// Write operations it has committed in its life (from its last probe or write).
    pub ops: u64,
    /// Segments in its index (0: it never received data).
    pub num_segments: u32,
    /// Probe rounds in a row in which it was behind a peer's operation count.
    pub lag_rounds: u32,
    /// Repairs completed.
    pub repairs: u64,
    #[serde(skip)]
    ejected_until: Option<Instant>,
}

/// Metric handles of one replica, registered once so that a call records without building
/// label sets. (Registered after the process recorder is installed: see `BoundRoot::bind`.)
pub struct ReplicaMetrics {
    ok: metrics::Counter,
    rejected: metrics::Counter,
    timeout: metrics::Counter,
    error: metrics::Counter,
    latency: metrics::Histogram,
}

impl ReplicaMetrics {
    fn new(shard: usize, addr: &str) -> Self {
        let calls = |outcome: &'static str| {
            metrics::counter!("scatter_root_leaf_calls_total",
                "shard" => shard.to_string(), "replica" => addr.to_string(), "outcome" => outcome)
        };
        ReplicaMetrics {
            ok: calls("ok"),
            rejected: calls("rejected"),
            timeout: calls("timeout"),
            error: calls("error"),
            latency: metrics::histogram!("scatter_root_leaf_call_duration_seconds",
                "shard" => shard.to_string(), "replica" => addr.to_string()),
        }
    }

    /// Counts one call (`ok`, `rejected`, `timeout` or `error`) and its latency.
    pub fn record(&self, outcome: &str, took: Duration) {
        match outcome {
            "ok" => &self.ok,
            "rejected" => &self.rejected,
            "timeout" => &self.timeout,
            _ => &self.error,
        }
        .increment(1);
        self.latency.record(took.as_secs_f64());
    }
}

/// One replica of one shard.
pub struct Replica {
    /// `host:port`.
    pub addr: String,
    /// Its metric handles.
    pub metrics: ReplicaMetrics,
    client: LeafClient<Channel>,
    state: Mutex<ReplicaState>,
    load: Mutex<PeakEwma>,
    in_flight: AtomicUsize,
}

impl Replica {
    fn new(shard: usize, addr: &str) -> anyhow::Result<Self> {
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
            metrics: ReplicaMetrics::new(shard, addr),
            client,
            state: Mutex::new(ReplicaState {
                up: false,
                last_error: Some("not probed yet".to_string()),
                ..Default::default()
            }),
            load: Mutex::new(PeakEwma::default()),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// A handle on the replica's channel (cheap clone; the connection is shared).
    pub fn client(&self) -> LeafClient<Channel> {
        self.client.clone()
    }

    /// Current state.
    pub fn state(&self) -> ReplicaState {
        let mut s = self.state.lock().expect("replica state").clone();
        s.ejected_for_ms = s.ejected_until.map_or(0, |t| {
            t.saturating_duration_since(Instant::now()).as_millis() as u64
        });
        s
    }

    /// Serves another shard, shard count or schema (never called).
    pub fn is_misconfigured(&self) -> bool {
        self.state.lock().expect("replica state").misconfigured
    }

    /// Healthy and not ejected: a first choice for calls.
    pub fn is_up(&self) -> bool {
        self.state.lock().expect("replica state").up
    }

    /// Latency estimate (peak EWMA).
    pub fn latency_estimate(&self) -> Duration {
        self.load.lock().expect("replica load").estimate()
    }

    /// Calls outstanding.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Load cost for replica choice: latency estimate × (outstanding + 1).
    pub fn cost(&self) -> f64 {
        self.load
            .lock()
            .expect("replica load")
            .cost(self.in_flight())
    }

    /// Starts tracking one call; the guard records its latency and outcome.
    pub fn start_call(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        CallGuard {
            replica: self.clone(),
            start: Instant::now(),
            done: false,
        }
    }

    /// Records a failure. `hard` (the replica is unreachable) ejects at once; otherwise
    /// [`EJECT_AFTER_FAILURES`] in a row do.
    pub fn record_failure(&self, reason: String, hard: bool) {
        let mut s = self.state.lock().expect("replica state");
        s.consecutive_failures += 1;
        let eject = hard || s.consecutive_failures >= EJECT_AFTER_FAILURES;
        self.note_problem(&mut s, reason, eject);
    }

    /// Records that a sibling replica answered while this one's call was still running;
    /// [`EJECT_AFTER_LOST_RACES`] in a row eject it as a latency outlier.
    pub fn record_lost_race(&self) {
        let mut s = self.state.lock().expect("replica state");
        s.consecutive_lost_races += 1;
        if s.consecutive_lost_races >= EJECT_AFTER_LOST_RACES {
            s.consecutive_lost_races = 0;
            let reason = format!("slow: lost {EJECT_AFTER_LOST_RACES} races in a row");
            self.note_problem(&mut s, reason, true);
        }
    }

    fn note_problem(&self, s: &mut ReplicaState, reason: String, eject: bool) {
        s.last_error = Some(reason);
        let already = s.ejected_until.is_some_and(|t| t > Instant::now());
        if !already && eject {
            let period = BASE_EJECTION
                .saturating_mul(1 << s.ejections.min(5))
                .min(MAX_EJECTION);
            s.ejected_until = Some(Instant::now() + period);
            s.ejections += 1;
            s.up = false;
            tracing::warn!(replica = %self.addr, ?period, "replica ejected");
        }
    }

    /// Records a successful call: clears the failure count (and an ejection, since a call
    /// reached it only because nothing better was left).
    fn record_success(&self) {
        let mut s = self.state.lock().expect("replica state");
        s.consecutive_failures = 0;
        s.consecutive_lost_races = 0;
        if !s.up && !s.misconfigured {
            reinstate_if_due(&mut s);
        }
    }

    /// Missed writes its peers committed (or holds nothing while they hold data): not
    /// searched until repaired.
    pub fn mark_stale(&self, reason: String) {
        let mut s = self.state.lock().expect("replica state");
        if !s.stale {
            tracing::warn!(replica = %self.addr, %reason, "replica is stale");
        }
        s.stale = true;
        s.stale_reason = Some(reason);
    }

    /// Repaired: holds what its peers hold.
    pub fn mark_repaired(&self, generation: u64, ops: u64) {
        let mut s = self.state.lock().expect("replica state");
        s.stale = false;
        s.stale_reason = None;
        s.lag_rounds = 0;
        s.repairs += 1;
        s.generation = generation;
        s.ops = ops;
    }

    /// Declared current without a repair (see `repair::keep_one_current`).
    pub fn clear_stale(&self) {
        let mut s = self.state.lock().expect("replica state");
        s.stale = false;
        s.stale_reason = None;
        s.lag_rounds = 0;
    }

    /// Index generation from its last probe or write, if it is up and not stale (one that
    /// searches may be sent to first).
    pub fn searchable_generation(&self) -> Option<u64> {
        let s = self.state.lock().expect("replica state");
        (s.up && !s.stale).then_some(s.generation)
    }

    /// Must not be searched (stale) or written to.
    pub fn is_stale(&self) -> bool {
        self.state.lock().expect("replica state").stale
    }

    /// Records a committed write: its new generation (so caches keyed by generations see
    /// the change at once) and operation count.
    pub fn note_write(&self, generation: u64, ops: u64) {
        let mut s = self.state.lock().expect("replica state");
        s.generation = generation;
        s.ops = ops;
    }

    /// Updates the lag count: `behind` this round or not; returns the rounds in a row.
    pub fn note_lag(&self, behind: bool) -> u32 {
        let mut s = self.state.lock().expect("replica state");
        s.lag_rounds = if behind { s.lag_rounds + 1 } else { 0 };
        s.lag_rounds
    }

    /// Records a successful probe: back in service once its ejection period is over.
    fn probe_ok(&self, info: &InfoResponse) {
        let mut s = self.state.lock().expect("replica state");
        s.generation = info.generation;
        s.num_docs = info.num_docs;
        s.ops = info.ops;
        s.num_segments = info.num_segments;
        s.misconfigured = false;
        if reinstate_if_due(&mut s) {
            s.consecutive_failures = 0;
        }
    }

    fn mark_misconfigured(&self, reason: String) {
        let mut s = self.state.lock().expect("replica state");
        s.up = false;
        s.misconfigured = true;
        s.last_error = Some(reason);
    }
}

/// Puts a replica back in service unless its ejection period is still running.
fn reinstate_if_due(s: &mut ReplicaState) -> bool {
    if s.ejected_until.is_some_and(|t| t > Instant::now()) {
        return false;
    }
    s.up = true;
    s.ejected_until = None;
    s.last_error = None;
    true
}

/// Tracks one call to a replica: outstanding count and latency estimate. Dropped without
/// [`CallGuard::finish`] (the call was cancelled, e.g. a hedge won), the time it had taken
/// still counts, so a replica whose calls keep losing looks slow.
pub struct CallGuard {
    replica: Arc<Replica>,
    start: Instant,
    done: bool,
}

impl CallGuard {
    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The call answered (`ok`) or failed.
    pub fn finish(mut self, ok: bool) -> Duration {
        self.done = true;
        let elapsed = self.observe();
        if ok {
            self.replica.record_success();
        }
        elapsed
    }

    /// Folds the call's time so far into the replica's latency estimate.
    fn observe(&self) -> Duration {
        let elapsed = self.start.elapsed();
        self.replica
            .load
            .lock()
            .expect("replica load")
            .observe(elapsed);
        elapsed
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.replica.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.done {
            self.observe();
        }
    }
}

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
    /// Held shared by every write to this shard, exclusively by the swapping pass of a
    /// repair: no write lands on the source between the last copy and the swap.
    pub writes: tokio::sync::RwLock<()>,
    /// A repair of one of its replicas is running.
    pub repairing: std::sync::atomic::AtomicBool,
}

impl ShardGroup {
    /// The order in which to try replicas for one call: healthy replicas by power of two
    /// choices over their load cost, then ejected or down ones (tried only as a last resort).
    pub fn replica_order(&self) -> Vec<Arc<Replica>> {
        let usable = self
            .replicas
            .iter()
            .filter(|r| !r.is_misconfigured() && !r.is_stale());
        let (up, down): (Vec<_>, Vec<_>) = usable.cloned().partition(|r| r.is_up());
        let mut order = p2c_order(up.into_iter().map(|r| (r.cost(), r)).collect());
        order.extend(p2c_order(down.into_iter().map(|r| (r.cost(), r)).collect()));
        order
    }

    /// Whether some replica is healthy and current.
    pub fn has_live_replica(&self) -> bool {
        self.replicas.iter().any(|r| r.is_up() && !r.is_stale())
    }
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
                .map(|a| Replica::new(shard, a).map(Arc::new))
                .collect::<anyhow::Result<_>>()?;
            shards.push(ShardGroup {
                shard,
                replicas,
                latency: LatencyWindow::default(),
                counters: ShardCounters::default(),
                writes: tokio::sync::RwLock::new(()),
                repairing: std::sync::atomic::AtomicBool::new(false),
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

    /// Per shard, a fingerprint of the index generations its replicas last reported: it
    /// changes whenever any replica's searchable index changes.
    pub fn generations(&self) -> Vec<u64> {
        self.shards
            .iter()
            .map(|g| {
                g.replicas.iter().fold(0u64, |acc, r| {
                    acc.rotate_left(17) ^ r.state.lock().expect("replica state").generation
                })
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
            Ok(Err(status)) => {
                return replica.record_failure(format!("probe: {}", status.message()), false)
            }
            Err(_) => return replica.record_failure("probe: timed out".to_string(), false),
        };
        match self.check_info(shard, &info) {
            Ok(()) => replica.probe_ok(&info),
            Err(reason) => {
                tracing::error!(replica = %replica.addr, shard, "{reason}");
                replica.mark_misconfigured(reason);
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
            Some(s) if s.routing_json != info.routing_json => Err(format!(
                "misconfigured: routing {} differs from the cluster's {}",
                info.routing_json, s.routing_json
            )),
            Some(_) => Ok(()),
            None => {
                *slot = Some(Arc::new(ClusterSchema::from_info(info)?));
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
                crate::repair::after_probe(&cluster);
            }
        })
    }
}
