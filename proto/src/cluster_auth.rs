//! The cluster's shared secret (`--cluster-secret-file` on roots and leaves): every call a
//! root or a leaf makes to a leaf carries `authorization: Bearer SECRET`; a leaf started with a
//! secret refuses every `scatter.v1.Leaf` call without it (UNAUTHENTICATED) — searches, writes
//! (`Ingest`), admin (`SetFaults`, `Repair`, `Snapshot`, `Versions`, `Sources`, `ClosePit`)
//! alike; only gRPC health stays open. One secret per process, set once at start.

use std::sync::OnceLock;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::LeafClient;

static SECRET: OnceLock<MetadataValue<Ascii>> = OnceLock::new();

/// A leaf client whose calls carry the secret (see [`crate::leaf_api`] for the seam every
/// caller uses).
pub type Client = LeafClient<InterceptedService<Channel, ClusterAuth>>;

/// Sets this process's secret (read from a file: surrounding whitespace dropped). At most once.
pub fn set_secret(secret: &str) -> Result<(), String> {
    let secret = secret.trim();
    if secret.len() < 16 {
        return Err("the cluster secret must be at least 16 characters".into());
    }
    let value: MetadataValue<Ascii> = format!("Bearer {secret}")
        .parse()
        .map_err(|_| "the cluster secret must be printable ASCII".to_string())?;
    SECRET
        .set(value)
        .map_err(|_| "the cluster secret is already set".to_string())
}

/// Adds the secret (when set) to every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterAuth;

impl tonic::service::Interceptor for ClusterAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = SECRET.get() {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A client on `channel` whose calls carry the secret.
pub fn client(channel: Channel) -> Client {
    LeafClient::with_interceptor(channel, ClusterAuth)
}

/// The leaf's check: with a secret set, a call must carry it (compared in constant time).
pub fn check(req: Request<()>) -> Result<Request<()>, Status> {
    let Some(want) = SECRET.get() else {
        return Ok(req);
    };
    let given = req
        .metadata()
        .get("authorization")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if constant_time_eq(want.as_bytes(), given) {
        Ok(req)
    } else {
        Err(Status::unauthenticated(
            "this leaf takes calls from its cluster only: the cluster secret is missing or wrong",
        ))
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        diff |= u64::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    std::hint::black_box(diff) == 0
}
