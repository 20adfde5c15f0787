//! Points in time at the root. `pit=1m` on a search opens one: every shard keeps the searcher
//! that one replica reads now (its token), and the answer carries a `pit_id` naming, per
//! shard, that replica and token. Pages asked with the `pit_id` read exactly those searchers
//! — statistics, search, fetch and aggregation rounds alike — so they see the same documents
//! while writes land, through any root (the id holds everything; the root keeps nothing).
//! A replica that is gone, or a point in time that expired or was closed, makes the search a
//! 404 `pit_expired`. `DELETE /pit` closes one.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::v1::{ClosePitRequest, SearchRequest};

use crate::cluster::fanout::{scatter, Hedging, ShardError};
use crate::cluster::Cluster;
use crate::error::ApiError;

pub use crate::query::pit_id::{expired, is_expired, parse_keep_alive, PitEntry, PitId, PitUse};

/// Opens a point in time on one replica of every shard (a count-free, hit-free search that
/// keeps its searcher). Every shard must take part: otherwise those opened are closed again
/// and the search fails (503).
pub async fn open(
    cluster: &Cluster,
    hedging: &Hedging,
    keep_alive_ms: u64,
    deadline: Instant,
) -> Result<PitId, ApiError> {
    let all: Vec<usize> = (0..cluster.shards.len()).collect();
    let request = SearchRequest {
        query: "*".into(),
        k: 0,
        skip_total_count: true,
        pit_keep_alive_ms: keep_alive_ms,
        ..Default::default()
    };
    let outcomes = scatter(cluster, &all, deadline, hedging, |node, shards, budget| {
        crate::query::search::search_node(node, shards, budget, &request, None)
    })
    .await;
    let mut entries = Vec::new();
    let mut missing = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(answer) if answer.value.status.pit != 0 => entries.push(PitEntry {
                shard: o.shard,
                replica: answer.replica,
                token: answer.value.status.pit,
            }),
            Ok(_) => missing.push(format!("shard {}: no point in time opened", o.shard)),
            Err(ShardError::Rejected(reason)) => {
                missing.push(format!("shard {}: {reason}", o.shard))
            }
            Err(e) => missing.push(format!("shard {}: {e:?}", o.shard)),
        }
    }
    let pit = PitId { entries };
    if missing.is_empty() {
        return Ok(pit);
    }
    let _ = close(cluster, &pit).await;
    Err(ApiError::unavailable(format!(
        "a point in time needs every shard: {}",
        missing.join("; ")
    )))
}

/// Closes a point in time on every replica holding part of it; how many parts were open.
pub async fn close(cluster: &Cluster, pit: &PitId) -> Result<u32, ApiError> {
    let mut by_replica: BTreeMap<&str, HashMap<u32, u64>> = BTreeMap::new();
    for e in &pit.entries {
        by_replica
            .entry(e.replica.as_str())
            .or_default()
            .insert(e.shard as u32, e.token);
    }
    let mut freed = 0;
    for (addr, pits) in by_replica {
        let node = cluster
            .shards
            .iter()
            .flat_map(|g| g.replicas.iter())
            .find(|r| r.addr == addr)
            .map(|r| r.node.clone());
        let Some(node) = node else { continue };
        let req =
            crate::cluster::request_id::request(ClosePitRequest { pits }, Duration::from_secs(5));
        if let Ok(resp) = node.client().close_pit(req).await {
            freed += resp.into_inner().freed;
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_is_refused() {
        let pit = PitId {
            entries: vec![
                PitEntry {
                    shard: 0,
                    replica: "127.0.0.1:7001".into(),
                    token: u64::MAX,
                },
                PitEntry {
                    shard: 1,
                    replica: "leaf-1.scatter:7000".into(),
                    token: 42,
                },
            ],
        };
        let text = pit.encode();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(PitId::decode(&text).unwrap(), pit);
        for bad in ["", "zz", "abc", "41", &"7".repeat(70_000)] {
            assert!(PitId::decode(bad).is_err(), "{bad}");
        }
        assert_eq!(pit.tokens()[&1], 42);
    }

    #[test]
    fn keep_alives() {
        assert_eq!(parse_keep_alive("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(
            parse_keep_alive("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_keep_alive("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "1", "m", "0s", "2h", "1d", "-1m", "1.5m"] {
            assert!(parse_keep_alive(bad).is_err(), "{bad}");
        }
    }
}
