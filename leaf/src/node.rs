//! A leaf node: the shards one process serves (one or many, as an Elasticsearch node holds
//! several shards), and how a node-level answer is put together from its shards' answers.
//!
//! Every shard of a node belongs to the same cluster (same shard count, schema and routing),
//! so a query is parsed once per call and read identically by every shard.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use scatter_core::ShardMeta;
use scatter_proto::v1::{SearchResponse, ShardStatus};
use tonic::Status;

use crate::data_calls::PerShard;
use crate::error::ShardError;
use crate::live::LiveShard;
use crate::plan::SearchPlan;
use crate::shard::{Located, Shard};

/// The shards a node serves, by shard id.
pub struct ShardSet {
    shards: BTreeMap<u32, Arc<LiveShard>>,
}

impl ShardSet {
    /// Opens every shard directory (creating an empty shard where `create` says so and
    /// there is none). Refuses shards of different clusters or the same shard twice.
    pub fn open(paths: &[PathBuf], create: Option<&ShardMeta>) -> anyhow::Result<Self> {
        anyhow::ensure!(!paths.is_empty(), "a leaf needs at least one --index");
        let mut shards = BTreeMap::new();
        let mut first: Option<ShardMeta> = None;
        for path in paths {
            // Several shards created at once: each takes its id from its directory name.
            let create = match create {
                Some(meta) if paths.len() > 1 => {
                    let k = shard_of_dir(path).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--create with several --index: {} must be named shard-K",
                            path.display()
                        )
                    })?;
                    Some(ShardMeta {
                        shard: k,
                        ..meta.clone()
                    })
                }
                other => other.cloned(),
            };
            let live = crate::live::open_or_create(path, create.as_ref())?;
            let meta = live.shard().meta().clone();
            if let Some(f) = &first {
                anyhow::ensure!(
                    (f.num_shards, f.schema.fingerprint(), &f.routing)
                        == (meta.num_shards, meta.schema.fingerprint(), &meta.routing),
                    "{} belongs to another cluster than {} (shard count, schema or routing differ)",
                    path.display(),
                    paths[0].display()
                );
            }
            anyhow::ensure!(
                !shards.contains_key(&meta.shard),
                "shard {} given twice ({})",
                meta.shard,
                path.display()
            );
            shards.insert(meta.shard, Arc::new(live));
            first.get_or_insert(meta);
        }
        Ok(ShardSet { shards })
    }

    /// A node serving one shard.
    pub fn single(shard: Arc<LiveShard>) -> Self {
        let id = shard.shard().meta().shard;
        ShardSet {
            shards: BTreeMap::from([(id, shard)]),
        }
    }

    /// Shard ids served, ascending.
    pub fn ids(&self) -> Vec<u32> {
        self.shards.keys().copied().collect()
    }

    /// Every shard served.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<LiveShard>> {
        self.shards.values()
    }

    /// The shard a single-shard call names; absent: the node's only shard.
    pub fn get(&self, shard: Option<u32>) -> Result<&Arc<LiveShard>, Status> {
        match shard {
            Some(id) => self
                .shards
                .get(&id)
                .ok_or_else(|| Status::not_found(format!("shard {id} is not served here"))),
            None if self.shards.len() == 1 => Ok(self.shards.values().next().expect("one")),
            None => Err(Status::invalid_argument(format!(
                "this node serves shards {:?}: the call must name one",
                self.ids()
            ))),
        }
    }

    /// The shards a data call names (empty: all), each with its open shard or `None` when
    /// this node does not serve it.
    pub fn select(&self, ids: &[u32]) -> Vec<(u32, Option<Arc<Shard>>)> {
        if ids.is_empty() {
            return self
                .shards
                .iter()
                .map(|(id, s)| (*id, Some(s.shard())))
                .collect();
        }
        ids.iter()
            .map(|id| (*id, self.shards.get(id).map(|s| s.shard())))
            .collect()
    }

    /// Flags the statuses of shards whose history is unverified (see
    /// `InfoResponse.unverified`), so a root does not trust their answers alone.
    pub fn note_unverified(&self, statuses: &mut [ShardStatus]) {
        for status in statuses {
            if let Some(live) = self.shards.get(&status.shard) {
                status.unverified_incarnation = live.shard().unverified_incarnation();
            }
        }
    }

    /// Any open shard (they share schema and parser).
    pub fn any(&self) -> Arc<Shard> {
        self.shards
            .values()
            .next()
            .expect("a node serves a shard")
            .shard()
    }
}

/// `K` of a directory named `shard-K`.
fn shard_of_dir(path: &std::path::Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_prefix("shard-")?
        .parse()
        .ok()
}

/// The status of a shard that failed inside a node-level call.
pub fn failed_status(shard: u32, error: &ShardError) -> ShardStatus {
    ShardStatus {
        shard,
        error: error.to_string(),
        ..Default::default()
    }
}

/// Merges the shards' search answers into the node's answer: one list by (score desc,
/// id asc), cut to `window` (the caller asked for `offset + k` from each shard and passes
/// the offset as 0, so the cut is exact: a hit below it has `window` better hits here), and
/// one status per shard. A shard's error does not fail the others; a request error (bad
/// query) fails the call. Documents are read afterwards, for the kept hits only
/// ([`fetch_kept`]).
pub fn merge_search(
    parts: PerShard<SearchResponse>,
    window: usize,
) -> Result<SearchResponse, ShardError> {
    if parts.len() == 1 {
        let (id, part) = parts.into_iter().next().expect("one");
        return Ok(match part {
            Ok(mut r) => {
                r.shards = vec![status_of(&mut r)];
                r
            }
            Err(e @ ShardError::InvalidArgument(_)) => return Err(e),
            Err(e) => SearchResponse {
                shards: vec![failed_status(id, &e)],
                ..Default::default()
            },
        });
    }
    let mut out = SearchResponse::default();
    for (id, part) in parts {
        match part {
            Ok(mut r) => {
                out.shards.push(status_of(&mut r));
                out.total_hits += r.total_hits;
                out.took_micros = out.took_micros.max(r.took_micros);
                out.hits.append(&mut r.hits);
            }
            Err(e @ ShardError::InvalidArgument(_)) => return Err(e),
            Err(e) => out.shards.push(failed_status(id, &e)),
        }
    }
    out.hits.sort_by(|a, b| {
        // Sorted searches carry keys (values, then id); ranked ones compare score, then id
        // (the keys are empty then: not compared, this sort is on every search's path).
        let keyed = if a.sort_key.is_empty() && b.sort_key.is_empty() {
            std::cmp::Ordering::Equal
        } else {
            a.sort_key.cmp(&b.sort_key)
        };
        keyed
            .then_with(|| b.score.total_cmp(&a.score))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.shard.cmp(&b.shard))
    });
    out.hits.truncate(window);
    out.total_hits_exact = out.shards.iter().all(|s| s.total_hits_exact);
    Ok(out)
}

/// Splits the shards' (answer, where its hits live) pairs.
pub fn split_located(
    parts: PerShard<(SearchResponse, Located)>,
) -> (PerShard<SearchResponse>, HashMap<u32, Located>) {
    let mut located = HashMap::new();
    let parts = parts
        .into_iter()
        .map(|(id, part)| {
            let part = part.map(|(resp, loc)| {
                located.insert(id, loc);
                resp
            });
            (id, part)
        })
        .collect();
    (parts, located)
}

/// Query-and-fetch after the node's cut: the documents of the merged hits, each read from
/// the searcher its shard's search ran on (a shard reads only its hits that were kept, not
/// its whole `window`). A shard whose read fails brings no documents; the root fetches what
/// is missing.
pub fn fetch_kept(
    merged: &mut SearchResponse,
    plan: &SearchPlan,
    shards: &[(u32, Option<Arc<Shard>>)],
    located: &HashMap<u32, Located>,
) {
    for (id, shard) in shards {
        let (Some(shard), Some(loc)) = (shard, located.get(id)) else {
            continue;
        };
        let ids: Vec<String> = merged
            .hits
            .iter()
            .filter(|h| h.shard == *id)
            .map(|h| h.id.clone())
            .collect();
        match shard.fetch_hits(plan, &ids, loc) {
            Ok(mut docs) => merged.docs.append(&mut docs),
            Err(e) => tracing::warn!(shard = id, "reading the hits' documents failed: {e}"),
        }
    }
}

/// A shard's status in a node-level answer, from its own answer (its aggregation parts
/// move into it).
fn status_of(r: &mut SearchResponse) -> ShardStatus {
    ShardStatus {
        aggs: std::mem::take(&mut r.aggs),
        terms: std::mem::take(&mut r.terms),
        pit: r.pit,
        shard: r.shard_id,
        total_hits: r.total_hits,
        total_hits_exact: r.total_hits_exact,
        generation: r.generation,
        took_micros: r.took_micros,
        error: String::new(),
        unverified_incarnation: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scatter_proto::v1::ScoredHit;

    fn part(shard: u32, hits: &[(&str, f32)]) -> SearchResponse {
        SearchResponse {
            hits: hits
                .iter()
                .map(|(id, score)| ScoredHit {
                    id: id.to_string(),
                    score: *score,
                    shard,
                    ..Default::default()
                })
                .collect(),
            total_hits: hits.len() as u64 * 10,
            total_hits_exact: true,
            shard_id: shard,
            generation: 7,
            ..Default::default()
        }
    }

    #[test]
    fn merges_by_score_then_id_and_cuts() {
        let merged = merge_search(
            vec![
                (0, Ok(part(0, &[("b", 3.0), ("d", 1.0)]))),
                (1, Ok(part(1, &[("a", 3.0), ("c", 2.0)]))),
                (2, Err(ShardError::Skipped)),
            ],
            3,
        )
        .unwrap();
        let ids: Vec<_> = merged.hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(merged.total_hits, 40);
        assert_eq!(merged.shards.len(), 3);
        assert!(!merged.shards[2].error.is_empty());
        assert!(merge_search(
            vec![
                (0, Ok(part(0, &[]))),
                (1, Err(ShardError::InvalidArgument("bad".into())))
            ],
            3
        )
        .is_err());
    }
}
