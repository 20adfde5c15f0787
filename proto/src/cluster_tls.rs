//! Mutual TLS inside the cluster (`--cluster-ca`, `--cluster-cert`, `--cluster-key` on roots
//! and leaves): every root→leaf and leaf→leaf call runs over TLS, and *both* ends prove they
//! hold a certificate signed by the cluster's CA before a byte of the request — the cluster
//! secret included — moves. A process at a dead leaf's address without such a certificate
//! gets no call (the root's handshake fails) and is never repaired from; a client without one
//! is refused by every leaf. Certificates name the cluster's nodes by [`NODE_NAME`] (so a node
//! may move between addresses); `scatter certs` makes a CA and node certificates.
//!
//! One configuration per process, set once at start; without it calls are plain HTTP/2 (for
//! loopback development; the processes warn).

use std::sync::OnceLock;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The name every node certificate carries (a subject alternative name), checked by the
/// calling side instead of the address it dialled.
pub const NODE_NAME: &str = "scatter-node";

struct NodeTls {
    ca: Certificate,
    identity: Identity,
}

static TLS: OnceLock<NodeTls> = OnceLock::new();

/// Sets this process's CA and certificate (PEM texts). At most once.
pub fn set(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<(), String> {
    for (what, pem) in [("CA", ca_pem), ("certificate", cert_pem), ("key", key_pem)] {
        if !pem.contains("-----BEGIN") {
            return Err(format!("the cluster {what} file is not PEM"));
        }
    }
    TLS.set(NodeTls {
        ca: Certificate::from_pem(ca_pem),
        identity: Identity::from_pem(cert_pem, key_pem),
    })
    .map_err(|_| "cluster TLS is already set".to_string())
}

/// Whether calls inside the cluster use mutual TLS.
pub fn is_set() -> bool {
    TLS.get().is_some()
}

/// The endpoint of a leaf at `host:port`: `https` with this node's certificate and the
/// cluster CA when set, else plain `http`.
pub fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    match TLS.get() {
        None => Endpoint::from_shared(format!("http://{addr}")),
        Some(tls) => Endpoint::from_shared(format!("https://{addr}"))?.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(tls.ca.clone())
                .identity(tls.identity.clone())
                .domain_name(NODE_NAME),
        ),
    }
    .map(|e| e.connect_timeout(Duration::from_secs(5)))
}

/// A leaf's server configuration: its certificate, and client certificates required,
/// signed by the cluster CA. `None` without cluster TLS.
pub fn server_config() -> Option<ServerTlsConfig> {
    TLS.get().map(|tls| {
        ServerTlsConfig::new()
            .identity(tls.identity.clone())
            .client_ca_root(tls.ca.clone())
    })
}
