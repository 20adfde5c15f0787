//! **Unverified histories.** A leaf reports every shard it opened as *unverified*
//! (`InfoResponse.unverified`) until a root confirms it: a restart, or a directory restored
//! from a backup, copied or moved, may hold an older history than its peers recorded — and
//! a copy's new replica id escapes the marks its peers hold for the original. An unverified
//! replica counts as stale (not searched first, not trusted alone) until one of:
//!
//! - it is the shard's only configured replica (no peer could hold more);
//! - a *trusted* peer (up, verified, not stale) reports the same version digest;
//! - every configured replica is up and all report the same digest (a whole-cluster start);
//! - a merge brought it the union of writes of every configured replica, or of a set whose
//!   reference was trusted (see `crate::write::repair`).
//!
//! Confirming is an `Ingest` call whose `clear_behind` names the replica itself and, as the
//! mark's position, the incarnation (opening) confirmed; the leaf
//! keeps the confirmation in memory only, so the next start is unverified again. This is
//! Elasticsearch's rule that a copy is in sync only when the primary says so, without a
//! primary: any trusted peer (or the whole group) vouches.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::v1::{BehindMark, IngestRequest};

use crate::cluster::{Replica, ReplicaState};

pub use crate::cluster::replica::UNVERIFIED_REASON;

/// Whether `s` (the state of `r`, unverified) can be confirmed now; `all` holds every
/// configured replica of the shard that is not misconfigured, `configured` how many the
/// shard has in all. Only what peers answered in the probe round started at `round`
/// counts: a peer that died since its last answer still looks up, with the digest it had.
pub fn confirmable(
    r: &Replica,
    s: &ReplicaState,
    all: &[(&Arc<Replica>, ReplicaState)],
    configured: usize,
    round: Instant,
) -> bool {
    if configured <= 1 {
        return true;
    }
    let fresh = |ps: &ReplicaState| ps.up && ps.probed_at.is_some_and(|t| t >= round);
    let peers = || all.iter().filter(|(p, _)| p.addr != r.addr);
    let trusted_twin = peers().any(|(p, ps)| {
        fresh(ps) && !ps.unverified && !p.is_stale() && ps.versions_digest == s.versions_digest
    });
    let whole_group_alike = all.len() == configured
        && all
            .iter()
            .all(|(_, ps)| fresh(ps) && ps.versions_digest == s.versions_digest);
    trusted_twin || whole_group_alike
}

/// Tells each of `replicas` that its history is confirmed in the given incarnation (a
/// failure only delays it to the next probe round, which asks again).
pub async fn confirm(replicas: Vec<(Arc<Replica>, u64)>) {
    for (r, incarnation) in replicas {
        let Some(id) = r.replica_id() else { continue };
        let req = crate::cluster::request_id::request(
            IngestRequest {
                clear_behind: vec![BehindMark {
                    replica_id: id,
                    position: incarnation,
                }],
                shard: r.shard_id(),
                ..Default::default()
            },
            Duration::from_secs(30),
        );
        match r.client().ingest(req).await {
            Ok(_) => {}
            Err(s) => {
                tracing::warn!(replica = %r.addr, "confirming its history failed: {}", s.message())
            }
        }
    }
}
