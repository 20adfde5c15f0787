//! One replica of one shard as the root sees it: its health (up, ejected, stale, why),
//! its index generation and operation count, and its metric handles.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::v1::InfoResponse;
use serde::Serialize;

use crate::cluster::leaf_node::LeafNode;

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
    #[serde(serialize_with = "crate::api_types::u64_as_string")]
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
    /// May lack writes its peers hold (it missed a write of this root, a peer records it as
    /// behind, or it is empty while a peer holds documents): not searched, and writes it
    /// alone commits are not acknowledged, until a repair brings it up to date.
    pub stale: bool,
    /// Missed a write of this root (this root's own knowledge; peers persist theirs).
    pub missed_write: bool,
    /// Its replica id (from its last probe).
    pub replica_id: String,
    /// Digest of its versioned entries (from its last probe).
    #[serde(serialize_with = "crate::api_types::u64_as_string")]
    pub versions_digest: u64,
    /// Versioned entries it holds.
    pub versioned: u64,
    /// Replica ids of peers it records as lacking some of its writes.
    pub behind: Vec<String>,
    /// Created empty and not yet copied from a peer.
    pub awaiting_copy: bool,
    /// Why it stopped taking writes (a commit or fsync failed there), from its last probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_failure: Option<String>,
    /// Opened since a root last confirmed its history against its peers (see
    /// `crate::write::history`): its last probe said so, for an incarnation this root has not
    /// confirmed.
    pub unverified: bool,
    /// The opening of the shard its last probe reported (see `InfoResponse.incarnation`).
    #[serde(serialize_with = "crate::api_types::u64_as_string")]
    pub incarnation: u64,
    /// The incarnation this root confirmed last.
    #[serde(serialize_with = "crate::api_types::u64_as_string")]
    pub confirmed_incarnation: u64,
    /// Its last probe still said unverified for the incarnation this root confirmed (the
    /// confirmation was lost or is in flight): sent again.
    #[serde(skip)]
    pub confirm_due: bool,
    /// When its last successful probe was sent (what it reports is at least that fresh).
    #[serde(skip)]
    pub probed_at: Option<Instant>,
    /// Why it is stale.
    pub stale_reason: Option<String>,
    /// Write operations it has committed in its life (from its last probe or write).
    pub ops: u64,
    /// Segments in its index (0: it never received data).
    pub num_segments: u32,
    /// Probe rounds in a row in which its version digest differed from a peer's.
    pub lag_rounds: u32,
    /// Probe rounds in a row in which its version digest did not change (no write landed).
    pub quiet_rounds: u32,
    /// Repairs completed.
    pub repairs: u64,
    #[serde(skip)]
    ejected_until: Option<Instant>,
    /// When what `generation` reports was true: a write's acknowledgement, or the start of
    /// the call (probe, search, fetch) that reported it. An answer from a call started
    /// earlier never overwrites it (a probe in flight across a write would bring the old
    /// generation back, and with it statistics from before the write).
    #[serde(skip)]
    generation_as_of: Option<Instant>,
}

/// Why a replica whose history is unverified is stale (see `crate::write::history`).
pub const UNVERIFIED_REASON: &str =
    "opened since its history was last confirmed against its peers (restart, restore or copy)";

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

/// One replica of one shard: that shard as served by one leaf node. Its health (up,
/// ejected, stale) is its own; its channel and load estimate are its node's, shared with the
/// node's other shards.
pub struct Replica {
    /// Shard number.
    pub shard: usize,
    /// `host:port` of its node.
    pub addr: String,
    /// The node serving it.
    pub node: Arc<LeafNode>,
    /// Its metric handles.
    pub metrics: ReplicaMetrics,
    state: Mutex<ReplicaState>,
}

impl Replica {
    /// The replica of `shard` on `node`, not probed yet.
    pub fn new(shard: usize, node: Arc<LeafNode>) -> Self {
        Replica {
            shard,
            addr: node.addr.clone(),
            metrics: ReplicaMetrics::new(shard, &node.addr),
            node,
            state: Mutex::new(ReplicaState {
                up: false,
                last_error: Some("not probed yet".to_string()),
                ..Default::default()
            }),
        }
    }

    /// A handle on its node's channel (cheap clone; the connection is shared).
    pub fn client(&self) -> scatter_proto::leaf_api::LeafHandle {
        self.node.client()
    }

    /// The `shard` field of a single-shard call to this replica (its node may serve several).
    pub fn shard_id(&self) -> Option<u32> {
        Some(self.shard as u32)
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
    pub fn record_success(&self) {
        let mut s = self.state.lock().expect("replica state");
        s.consecutive_failures = 0;
        s.consecutive_lost_races = 0;
        if !s.up && !s.misconfigured {
            reinstate_if_due(&mut s);
        }
    }

    /// Missed a write of this root: stale at once (until repaired).
    pub fn mark_missed_write(&self, reason: String) {
        let mut s = self.state.lock().expect("replica state");
        s.missed_write = true;
        set_stale(&self.addr, &mut s, Some(reason));
    }

    /// Sets whether it is stale, and why (see [`ReplicaState::stale`]).
    pub fn set_stale(&self, reason: Option<String>) {
        set_stale(
            &self.addr,
            &mut self.state.lock().expect("replica state"),
            reason,
        );
    }

    /// Repaired: holds what its peers held when the repair read them.
    pub fn mark_repaired(&self, generation: u64, ops: u64) {
        let mut s = self.state.lock().expect("replica state");
        s.missed_write = false;
        s.lag_rounds = 0;
        s.repairs += 1;
        s.generation = generation;
        s.ops = ops;
        set_stale(&self.addr, &mut s, None);
    }

    /// Its history was confirmed (see `crate::write::history`); returns the incarnation confirmed.
    pub fn mark_confirmed(&self) -> u64 {
        let incarnation = self.state.lock().expect("replica state").incarnation;
        self.confirm_incarnation(incarnation);
        incarnation
    }

    /// Its history was confirmed in `incarnation` (see `crate::write::history`).
    pub fn confirm_incarnation(&self, incarnation: u64) {
        let mut s = self.state.lock().expect("replica state");
        s.confirmed_incarnation = incarnation;
        if s.incarnation == incarnation {
            s.unverified = false;
        }
    }

    /// Whether an answer saying "unverified in `incarnation`" is news: not the incarnation
    /// this root confirmed (whose confirmation may still be in flight).
    pub fn is_unconfirmed(&self, incarnation: u64) -> bool {
        incarnation != 0
            && self
                .state
                .lock()
                .expect("replica state")
                .confirmed_incarnation
                != incarnation
    }

    /// Index generation from its last probe or write, whatever its health.
    pub fn generation(&self) -> u64 {
        self.state.lock().expect("replica state").generation
    }

    /// Index generation from its last probe or write, if it is up and not stale (one that
    /// searches may be sent to first).
    pub fn searchable_generation(&self) -> Option<u64> {
        let s = self.state.lock().expect("replica state");
        (s.up && !s.stale).then_some(s.generation)
    }

    /// Takes writes: not misconfigured, and not an empty replica waiting for a copy (its
    /// writes would be dropped by the copy).
    pub fn takes_writes(&self) -> bool {
        let s = self.state.lock().expect("replica state");
        !(s.misconfigured || s.awaiting_copy && s.stale)
    }

    /// May lack writes its peers hold (see [`ReplicaState::stale`]).
    pub fn is_stale(&self) -> bool {
        self.state.lock().expect("replica state").stale
    }

    /// Records a committed write: its new generation (so caches keyed by generations see
    /// the change at once) and operation count.
    pub fn note_write(&self, generation: u64, ops: u64) {
        let mut s = self.state.lock().expect("replica state");
        // Acknowledgements of concurrent writes can arrive out of commit order; the
        // operation count orders them.
        if ops >= s.ops && set_generation(&mut s, generation, Instant::now()) {
            s.ops = ops;
        }
    }

    /// Records the generation an answer of this replica reported, for a call started at
    /// `as_of` (a write another root made shows here before the next probe).
    pub fn observe_generation(&self, generation: u64, as_of: Instant) {
        set_generation(
            &mut self.state.lock().expect("replica state"),
            generation,
            as_of,
        );
    }

    /// Its replica id, once a probe has told it.
    pub fn replica_id(&self) -> Option<String> {
        let s = self.state.lock().expect("replica state");
        (!s.replica_id.is_empty()).then(|| s.replica_id.clone())
    }

    /// Updates the lag count: `behind` this round or not; returns the rounds in a row.
    pub fn note_lag(&self, behind: bool) -> u32 {
        let mut s = self.state.lock().expect("replica state");
        s.lag_rounds = if behind { s.lag_rounds + 1 } else { 0 };
        s.lag_rounds
    }

    /// Rounds in a row its digest stayed the same (counted by [`Replica::probe_ok`]).
    pub fn quiet_rounds(&self) -> u32 {
        self.state.lock().expect("replica state").quiet_rounds
    }

    /// Records a successful probe sent at `sent`: back in service once its ejection period
    /// is over.
    pub fn probe_ok(&self, info: &InfoResponse, sent: Instant) {
        let mut s = self.state.lock().expect("replica state");
        if set_generation(&mut s, info.generation, sent) {
            s.ops = info.ops;
        }
        s.num_docs = info.num_docs;
        s.num_segments = info.num_segments;
        s.replica_id.clone_from(&info.replica_id);
        s.quiet_rounds = if s.versions_digest == info.versions_digest {
            s.quiet_rounds + 1
        } else {
            0
        };
        s.versions_digest = info.versions_digest;
        s.versioned = info.versioned;
        s.behind.clone_from(&info.behind);
        s.awaiting_copy = info.awaiting_copy;
        s.incarnation = info.incarnation;
        s.probed_at = Some(sent);
        let confirmed = info.incarnation == s.confirmed_incarnation;
        s.unverified = info.unverified && !confirmed;
        s.confirm_due = info.unverified && confirmed;
        s.write_failure = (!info.write_failure.is_empty()).then(|| info.write_failure.clone());
        s.misconfigured = false;
        if reinstate_if_due(&mut s) {
            s.consecutive_failures = 0;
        }
    }

    /// Serves another shard, shard count or schema than configured: never called.
    pub fn mark_misconfigured(&self, reason: String) {
        let mut s = self.state.lock().expect("replica state");
        s.up = false;
        s.misconfigured = true;
        s.last_error = Some(reason);
    }
}

/// Sets the generation unless what is recorded is newer than `as_of`; whether it did.
fn set_generation(s: &mut ReplicaState, generation: u64, as_of: Instant) -> bool {
    if s.generation_as_of.is_some_and(|t| t > as_of) {
        return false;
    }
    s.generation = generation;
    s.generation_as_of = Some(as_of);
    true
}

fn set_stale(addr: &str, s: &mut ReplicaState, reason: Option<String>) {
    match (&reason, s.stale) {
        // Every start of a leaf is unverified until a probe round confirms it: expected.
        (Some(r), false) if r == UNVERIFIED_REASON => {
            tracing::info!(replica = %addr, reason = %r, "replica is stale")
        }
        (Some(r), false) => tracing::warn!(replica = %addr, reason = %r, "replica is stale"),
        (None, true) => tracing::info!(replica = %addr, "replica is current again"),
        _ => {}
    }
    s.stale = reason.is_some();
    s.stale_reason = reason;
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
