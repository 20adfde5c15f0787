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

use scatter_core::limits::{MAX_PIT_KEEP_ALIVE_MS, PIT_EXPIRED};
use scatter_proto::v1::{ClosePitRequest, SearchRequest};

use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::fanout::{scatter, Hedging, ShardError};

/// One shard's part of a point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitEntry {
    /// The shard.
    pub shard: usize,
    /// The replica holding the searcher.
    pub replica: String,
    /// The searcher's token there.
    pub token: u64,
}

/// A point in time: where every shard's searcher is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitId {
    /// One entry per shard.
    pub entries: Vec<PitEntry>,
}

/// A search's use of a point in time (`pit`, `pit_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitUse {
    /// Keep it open this much longer (0: as it is).
    pub keep_alive_ms: u64,
    /// The point in time read (None: open one first).
    pub id: Option<PitId>,
}

impl PitId {
    /// The opaque, URL-safe text of the id (hex of `shard@replica#token;...`).
    pub fn encode(&self) -> String {
        let text: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{}@{}#{:x}", e.shard, e.replica, e.token))
            .collect();
        text.join(";").bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads an id made by [`PitId::encode`].
    pub fn decode(text: &str) -> Result<PitId, String> {
        let bad = || format!("pit_id {text:?} is not a point in time id");
        if !text.len().is_multiple_of(2) || text.len() > 64 * 1024 {
            return Err(bad());
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let entries = text
            .split(';')
            .map(|part| {
                let (shard, rest) = part.split_once('@')?;
                let (replica, token) = rest.rsplit_once('#')?;
                Some(PitEntry {
                    shard: shard.parse().ok()?,
                    replica: replica.to_string(),
                    token: u64::from_str_radix(token, 16).ok()?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        Ok(PitId { entries })
    }

    /// Tokens by shard, as leaf requests carry them.
    pub fn tokens(&self) -> HashMap<u32, u64> {
        self.entries
            .iter()
            .map(|e| (e.shard as u32, e.token))
            .collect()
    }

    /// The replica of each shard.
    pub fn pins(&self) -> Vec<(usize, String)> {
        self.entries
            .iter()
            .map(|e| (e.shard, e.replica.clone()))
            .collect()
    }
}

/// `1m`, `30s`, `500ms`, `2h`: a keep-alive, at most an hour.
pub fn parse_keep_alive(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("pit must be a duration such as 30s, 1m or 500ms (at most 1h), got {text:?}");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(bad()),
    };
    if ms == 0 || ms > MAX_PIT_KEEP_ALIVE_MS {
        return Err(bad());
    }
    Ok(Duration::from_millis(ms))
}

/// Whether a leaf's refusal says a point in time is not open.
pub fn is_expired(reason: &str) -> bool {
    reason.contains(PIT_EXPIRED)
}

/// The 404 of a point in time that is not open.
pub fn expired(reason: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, PIT_EXPIRED, reason)
}

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
        crate::search::search_node(node, shards, budget, &request)
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
        let req = crate::request_id::request(ClosePitRequest { pits }, Duration::from_secs(5));
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
