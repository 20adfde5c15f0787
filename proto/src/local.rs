//! **In-process leaves.** A leaf node served by this process registers its gRPC service under
//! the address it listens on; a [`crate::cluster_auth::Client`] made for that address calls
//! the service directly — no socket, HTTP/2 framing, TLS or hop through the network threads
//! (Quickwit's local `SearchServiceClient`, Elasticsearch's local shard calls). Messages,
//! metadata (request id, deadline, cluster secret) and the service's own checks are exactly
//! those of a remote call, so a local replica is one replica among others: failover,
//! hedging and coverage work the same. Peers on other hosts still reach the node over its
//! listener.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{OnceLock, RwLock};

use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

/// Boxed error of a transport.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A transport's error (a concrete type: a boxed trait object here trips the compiler's
/// `Send` inference of the futures that await a call).
#[derive(Debug)]
pub struct TransportError(BoxError);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The transport under every leaf client: a gRPC channel or an in-process service.
pub type Transport = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, TransportError>;

fn registry() -> &'static RwLock<HashMap<String, Transport>> {
    static LOCAL: OnceLock<RwLock<HashMap<String, Transport>>> = OnceLock::new();
    LOCAL.get_or_init(Default::default)
}

/// Registers `service` as the leaf served by this process at `addr` (`host:port`).
pub fn register<S, B>(addr: &str, service: S)
where
    S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let transport = BoxCloneSyncService::new(
        service
            .map_response(|r: http::Response<B>| r.map(Body::new))
            .map_err(|e: Infallible| match e {}),
    );
    registry()
        .write()
        .expect("local registry")
        .insert(addr.to_string(), transport);
}

/// Removes the leaf registered at `addr` (it stopped serving).
pub fn unregister(addr: &str) {
    registry().write().expect("local registry").remove(addr);
}

/// The in-process leaf at `addr`, if this process serves one there.
pub fn lookup(addr: &str) -> Option<Transport> {
    registry()
        .read()
        .expect("local registry")
        .get(addr)
        .cloned()
}

/// Boxes a channel (or any remote transport) as a [`Transport`].
pub fn remote<S>(service: S) -> Transport
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_err(|e: S::Error| TransportError(e.into())))
}
