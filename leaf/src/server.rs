//! Running a leaf: bind, serve `scatter.v1.Leaf` and the standard gRPC health service on
//! one port with TCP_NODELAY on every accepted socket, stop gracefully on a signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use scatter_proto::v1::FaultSettings;
use scatter_proto::LeafServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::faults::Faults;
use crate::service::LeafService;
use crate::shard::Shard;

/// Largest gRPC message a leaf accepts or sends.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How to run a leaf.
#[derive(Debug, Clone)]
pub struct LeafConfig {
    /// Shard directory (`DIR/shard-K` of a build).
    pub index: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Injected faults (none by default).
    pub faults: FaultSettings,
    /// Where to serve `/metrics` (Prometheus text) over HTTP, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// A leaf bound to its address, not yet serving.
pub struct BoundLeaf {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shard: Arc<Shard>,
    faults: Arc<Faults>,
}

impl BoundLeaf {
    /// Opens the shard and binds the listener.
    pub async fn bind(config: &LeafConfig) -> anyhow::Result<Self> {
        let path = config.index.clone();
        let shard = tokio::task::spawn_blocking(move || Shard::open(&path)).await??;
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
        Ok(BoundLeaf {
            listener,
            metrics_listener,
            shard: Arc::new(shard),
            faults: Arc::new(Faults::new(f.delay_ms, f.delay_rate, f.error_rate)),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The shard served.
    pub fn shard(&self) -> &Arc<Shard> {
        &self.shard
    }

    /// Serves until `shutdown` completes, then drains in-flight calls.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_serving::<LeafServer<LeafService>>().await;
        let leaf = LeafServer::new(LeafService::new(self.shard.clone(), self.faults.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let metrics = self.metrics_listener.map(|listener| {
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(|| async { scatter_core::telemetry::render() }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await })
        });
        let served = Server::builder()
            .add_service(health)
            .add_service(leaf)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("leaf server failed");
        if let Some(task) = metrics {
            task.abort();
        }
        served
    }
}

/// Opens the shard, binds and serves until `shutdown`.
pub async fn serve(
    config: LeafConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    BoundLeaf::bind(&config).await?.serve(shutdown).await
}
