//! A leaf node as the root sees it: one [`LeafHandle`] — a gRPC channel (HTTP/2,
//! multiplexed, TCP_NODELAY) or the node itself when this process serves it — shared by every
//! shard the node serves, and the node's load: a peak-EWMA latency estimate (decaying on
//! read) and the calls outstanding.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::leaf_api::{self, LeafHandle};

use crate::cluster::balance::PeakEwma;

pub use scatter_core::limits::MAX_MESSAGE_BYTES;

/// One leaf node: its address, channel and load.
pub struct LeafNode {
    /// `host:port`.
    pub addr: String,
    client: LeafHandle,
    load: Mutex<PeakEwma>,
    in_flight: AtomicUsize,
}

impl LeafNode {
    /// A node at `addr` (`host:port`), connected on first use.
    pub fn connect_lazy(addr: &str) -> anyhow::Result<Self> {
        let endpoint = scatter_proto::cluster_tls::endpoint(addr)?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        // A node this process serves is called in-process (see `scatter_proto::leaf_api`).
        let client = leaf_api::connect(addr, MAX_MESSAGE_BYTES, || endpoint.connect_lazy());
        Ok(LeafNode {
            addr: addr.to_string(),
            client,
            load: Mutex::new(PeakEwma::default()),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// A handle on the node (cheap clone; the connection is shared). Every call's envelope
    /// comes from [`crate::cluster::request_id::request`] (request id and deadline).
    pub fn client(&self) -> LeafHandle {
        self.client.clone()
    }

    /// Load cost for replica choice: latency estimate × (outstanding + 1), read now.
    pub fn cost(&self) -> f64 {
        self.load.lock().expect("node load").cost(self.in_flight())
    }

    /// Latency estimate, read now.
    pub fn latency_estimate(&self) -> Duration {
        self.load.lock().expect("node load").estimate()
    }

    /// Node-level calls outstanding from this root.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one call as outstanding until the guard is dropped, and then folds its time
    /// into the estimate (also when it was cancelled: a node whose calls keep losing races
    /// looks slow).
    pub fn track(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            node: self,
            start: Instant::now(),
        }
    }
}

/// One call outstanding on a node.
pub struct InFlight<'a> {
    node: &'a LeafNode,
    start: Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Ordering::Relaxed);
        let took = self.start.elapsed();
        self.node.load.lock().expect("node load").observe(took);
    }
}
