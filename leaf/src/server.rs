//! Running a leaf: bind, serve `scatter.v1.Leaf` and the standard gRPC health service on
//! one port with TCP_NODELAY on every accepted socket, stop gracefully on a signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use scatter_core::limits::{H2_MAX_PENDING_RESETS, H2_MAX_STREAMS};
use scatter_proto::v1::FaultSettings;
use scatter_proto::LeafServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use scatter_core::ShardMeta;

use crate::faults::Faults;
use crate::node::ShardSet;
use crate::service::LeafService;

pub use scatter_core::limits::MAX_MESSAGE_BYTES;

/// How to run a leaf node.
#[derive(Debug, Clone)]
pub struct LeafConfig {
    /// Shard directories (`DIR/shard-K` of a build): the shards this node serves.
    pub indexes: Vec<PathBuf>,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Injected faults (none by default).
    pub faults: FaultSettings,
    /// Where to serve `/metrics` (Prometheus text) over HTTP, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// When an index directory holds no shard yet: create an empty one with this identity (a new
    /// replica that a root then repairs from a peer, or the first replicas of an empty
    /// cluster filled through live ingest).
    pub create: Option<ShardMeta>,
    /// Most bytes of ingest calls queued per shard (beyond: RESOURCE_EXHAUSTED, which the
    /// root answers with 429).
    pub max_write_queue_bytes: usize,
    /// How long tombstones are kept before compaction may drop them (see
    /// [`crate::compaction`]).
    pub tombstone_retention: std::time::Duration,
}

impl LeafConfig {
    /// A leaf node serving the shards in `indexes` on `listen`, without faults or metrics
    /// listener.
    pub fn new(indexes: Vec<PathBuf>, listen: SocketAddr) -> Self {
        LeafConfig {
            indexes,
            listen,
            faults: FaultSettings::default(),
            metrics_listen: None,
            create: None,
            max_write_queue_bytes: scatter_core::limits::MAX_QUEUED_WRITE_BYTES,
            tombstone_retention: crate::compaction::DEFAULT_TOMBSTONE_RETENTION,
        }
    }
}

/// A leaf bound to its address, not yet serving.
pub struct BoundLeaf {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    node: Arc<ShardSet>,
    service: Arc<LeafService>,
}

/// The gRPC service of a leaf node: its calls checked for the cluster secret, messages up to
/// the cluster's size limit.
type CheckedLeaf = tonic::service::interceptor::InterceptedService<
    LeafServer<LeafService>,
    fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
>;

fn checked_leaf(service: &Arc<LeafService>) -> CheckedLeaf {
    let leaf = LeafServer::from_arc(service.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // With a cluster secret, every Leaf call must carry it (health stays open).
    tonic::service::interceptor::InterceptedService::new(leaf, scatter_proto::cluster_auth::check)
}

impl BoundLeaf {
    /// Opens the shards and binds the listener.
    pub async fn bind(config: &LeafConfig) -> anyhow::Result<Self> {
        let (paths, create) = (config.indexes.clone(), config.create.clone());
        let node =
            tokio::task::spawn_blocking(move || ShardSet::open(&paths, create.as_ref())).await??;
        for live in node.iter() {
            live.set_write_queue_limit(config.max_write_queue_bytes);
            live.set_tombstone_retention(config.tombstone_retention);
            live.finish_swap().await?;
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics address {addr}"))?,
            ),
            None => None,
        };
        scatter_core::telemetry::prometheus();
        let f = &config.faults;
        let node = Arc::new(node);
        let faults = Arc::new(Faults::new(f.delay_ms, f.delay_rate, f.error_rate));
        let service = Arc::new(LeafService::new(node.clone(), faults));
        // A root (or a peer) in this process calls it without the network.
        let addr = listener.local_addr()?.to_string();
        let local = scatter_proto::leaf_api::InProcess(service.clone());
        scatter_proto::local::register(&addr, Arc::new(local));
        Ok(BoundLeaf {
            listener,
            metrics_listener,
            node,
            service,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The shards served.
    pub fn node(&self) -> Arc<ShardSet> {
        self.node.clone()
    }

    /// Serves until `shutdown` completes, then drains in-flight calls.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_serving::<LeafServer<LeafService>>().await;
        let leaf = checked_leaf(&self.service);
        let addr = self.local_addr().to_string();
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let metrics = self.metrics_listener.map(|listener| {
            // `/healthz` for probes that cannot speak gRPC over mutual TLS (Kubernetes').
            let app = axum::Router::new()
                .route(
                    "/metrics",
                    axum::routing::get(|| async { scatter_core::telemetry::render() }),
                )
                .route("/healthz", axum::routing::get(|| async { "ok\n" }));
            tokio::spawn(async move { axum::serve(listener, app).await })
        });
        let mut builder = Server::builder();
        if let Some(tls) = scatter_proto::cluster_tls::server_config() {
            builder = builder.tls_config(tls).context("cluster TLS")?;
        }
        let served = builder
            // Deadlines and hedging make a root cancel streams often; h2's default of 20
            // reset streams pending accept made a leaf drop every stream of a busy root
            // ("remotely-reset pending-accept streams reached limit") and get ejected.
            .http2_max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
            .max_concurrent_streams(H2_MAX_STREAMS)
            .add_service(health)
            .add_service(leaf)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("leaf server failed");
        scatter_proto::local::unregister(&addr);
        if let Some(task) = metrics {
            task.abort();
        }
        served
    }
}

/// Opens the shards, binds and serves until `shutdown`.
pub async fn serve(
    config: LeafConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    BoundLeaf::bind(&config).await?.serve(shutdown).await
}
