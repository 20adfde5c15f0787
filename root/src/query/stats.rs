//! Global BM25 statistics (distributed frequency statistics, "DFS"): for a query's terms, the
//! cluster-wide document frequencies, the total document count (sum of `max_doc`, deleted
//! documents included, as tantivy counts them) and the per-field token totals, summed over
//! shards. Sent with every search so each leaf scores exactly like one index would.
//!
//! Cached per term at the root. Every lookup consults the cluster's generations (the one
//! owner: each replica's state, updated by probes, leaf answers and write acknowledgements,
//! see [`Cluster::generations`]): statistics gathered at other generations are dropped, so
//! a query right after a write is never scored with the statistics from before it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::v1::{FieldTokens, GlobalStats, TermFreq, TermStatsRequest};

use crate::cluster::fanout::{scatter_with, Hedging};
use crate::cluster::Cluster;
use crate::query::stats_table::StatsTable;

/// Most bytes of cached terms (field names and term bytes, plus a fixed cost per entry);
/// past it the cache starts over.
pub const MAX_CACHED_BYTES: usize = 64 << 20;

/// Bytes one cached term is counted for besides its own.
const ENTRY_BYTES: usize = 64;

pub use crate::query::stats_table::Terms;

#[derive(Default)]
struct CacheState {
    /// The cluster's generations (per shard) the cached statistics were gathered at.
    generations: Vec<u64>,
    total_num_docs: Option<u64>,
    field_tokens: HashMap<String, u64>,
    doc_freqs: HashMap<(String, Vec<u8>), u64>,
    /// What `doc_freqs` holds, weighed as [`MAX_CACHED_BYTES`] counts.
    bytes: usize,
}

/// Counters of the statistics cache.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CacheCounters {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that needed a `TermStats` round trip.
    pub misses: u64,
    /// Times the cache was dropped because an index changed.
    pub invalidations: u64,
}

/// Cluster-wide term statistics, cached per term.
#[derive(Default)]
pub struct StatsCache {
    state: Mutex<CacheState>,
    counters: Mutex<CacheCounters>,
}

impl StatsCache {
    /// An empty cache.
    pub fn new() -> Self {
        StatsCache::default()
    }

    /// The global statistics of `terms`, if every one of them is cached and was gathered at
    /// the cluster's current `generations` (a cache at others is dropped).
    pub fn lookup(&self, terms: &Terms, generations: &[u64]) -> Option<GlobalStats> {
        let mut state = self.state.lock().expect("stats cache");
        if state.generations != generations && state.total_num_docs.is_some() {
            clear(&mut state);
            self.counters.lock().expect("stats counters").invalidations += 1;
        }
        let found = build(&state, terms);
        drop(state);
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!("scatter_root_cache_lookups_total", "cache" => "stats", "result" => result)
            .increment(1);
        let mut c = self.counters.lock().expect("stats counters");
        if found.is_some() {
            c.hits += 1;
        } else {
            c.misses += 1;
        }
        found
    }

    /// Stores statistics gathered from every shard while the cluster was at `generations`
    /// (read before gathering, so a write meanwhile makes them stale at once).
    pub fn store(&self, stats: &GlobalStats, generations: &[u64]) {
        let mut state = self.state.lock().expect("stats cache");
        let adding: usize = stats
            .term_freqs
            .iter()
            .map(|tf| tf.field.len() + tf.value.len() + ENTRY_BYTES)
            .sum();
        if state.generations != generations || state.bytes + adding > MAX_CACHED_BYTES {
            clear(&mut state);
        }
        if adding > MAX_CACHED_BYTES {
            return;
        }
        state.generations = generations.to_vec();
        state.total_num_docs = Some(stats.total_num_docs);
        for ft in &stats.field_tokens {
            state
                .field_tokens
                .insert(ft.field.clone(), ft.total_num_tokens);
        }
        for tf in &stats.term_freqs {
            let key = (tf.field.clone(), tf.value.clone());
            if state.doc_freqs.insert(key, tf.doc_freq).is_none() {
                state.bytes += tf.field.len() + tf.value.len() + ENTRY_BYTES;
            }
        }
    }

    /// Hit, miss and invalidation counts.
    pub fn counters(&self) -> CacheCounters {
        *self.counters.lock().expect("stats counters")
    }
}

fn clear(state: &mut CacheState) {
    *state = CacheState::default();
}

fn build(state: &CacheState, terms: &Terms) -> Option<GlobalStats> {
    let mut stats = GlobalStats {
        total_num_docs: state.total_num_docs?,
        ..Default::default()
    };
    let mut fields: Vec<&String> = terms.iter().map(|(f, _)| f).collect();
    fields.dedup();
    for field in fields {
        stats.field_tokens.push(FieldTokens {
            field: field.clone(),
            total_num_tokens: *state.field_tokens.get(field)?,
        });
    }
    for (field, value) in terms {
        stats.term_freqs.push(TermFreq {
            field: field.clone(),
            value: value.clone(),
            doc_freq: *state.doc_freqs.get(&(field.clone(), value.clone()))?,
        });
    }
    Some(stats)
}

pub use scatter_proto::global_stats::sum;

/// A query's text as the leaves must read it.
#[derive(Debug, Clone, Copy)]
pub struct QueryText<'a> {
    /// The text.
    pub text: &'a str,
    /// Read leniently.
    pub lenient: bool,
    /// The point in time read (statistics of its searchers, never cached).
    pub pit: Option<&'a crate::query::pit_id::PitId>,
}

/// Where global statistics came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsSource {
    /// The shards' dictionaries held at the root ([`StatsTable`]).
    Table,
    /// The per-term cache.
    Cache,
    /// A `TermStats` round trip to the leaves.
    Leaves,
}

impl StatsSource {
    /// The name shown in `profile.phases.stats_source`.
    pub fn name(self) -> &'static str {
        match self {
            StatsSource::Table => "table",
            StatsSource::Cache => "cache",
            StatsSource::Leaves => "leaves",
        }
    }
}

/// The global statistics for `query` (whose terms are `terms`): from the statistics tables
/// when they are current, else from the cache, else gathered
/// from one replica of every shard with `TermStats` (and cached when every shard answered).
/// `None` when no shard answered.
pub async fn global_stats(
    cluster: &Cluster,
    hedging: &Hedging,
    cache: &StatsCache,
    table: &StatsTable,
    query: QueryText<'_>,
    terms: &Terms,
    deadline: Instant,
) -> (Option<GlobalStats>, StatsSource) {
    if query.pit.is_none() {
        if let Some(stats) = table.lookup(cluster, terms) {
            return (Some(stats), StatsSource::Table);
        }
    }
    let generations = cluster.generations();
    if query.pit.is_none() {
        if let Some(stats) = cache.lookup(terms, &generations) {
            return (Some(stats), StatsSource::Cache);
        }
    }
    let all: Vec<usize> = (0..cluster.shards.len()).collect();
    let pins = query.pit.map(|p| p.pins()).unwrap_or_default();
    let pits = query.pit.map(|p| p.tokens()).unwrap_or_default();
    let outcomes = scatter_with(
        cluster,
        &all,
        &pins,
        query.pit.is_some(),
        deadline,
        hedging,
        |node, shards, budget: Duration| {
            let client = node.client();
            let req = crate::cluster::request_id::request(
                TermStatsRequest {
                    query: query.text.to_string(),
                    lenient: query.lenient,
                    shards: shards.iter().map(|&s| s as u32).collect(),
                    pits: pits.clone(),
                },
                budget,
            );
            async move {
                let resp = client.term_stats(req).await?.into_inner();
                Ok(resp
                    .shards
                    .into_iter()
                    .map(|s| {
                        let part = if s.error.is_empty() {
                            Ok(scatter_proto::v1::TermStatsResponse {
                                stats: s.stats,
                                generation: s.generation,
                                shards: Vec::new(),
                            })
                        } else {
                            Err(s.error)
                        };
                        (s.shard as usize, part)
                    })
                    .collect())
            }
        },
    )
    .await;
    let answers: Vec<_> = outcomes
        .into_iter()
        .filter_map(|o| o.result.ok().map(|a| a.value))
        .collect();
    if answers.is_empty() {
        return (None, StatsSource::Leaves);
    }
    let parts: Vec<&GlobalStats> = answers.iter().filter_map(|a| a.stats.as_ref()).collect();
    let stats = sum(parts.iter().copied());
    if answers.len() == cluster.shards.len() && query.pit.is_none() {
        cache.store(&stats, &generations);
    }
    (Some(stats), StatsSource::Leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(docs: u64, tokens: u64, df: u64) -> GlobalStats {
        GlobalStats {
            total_num_docs: docs,
            field_tokens: vec![FieldTokens {
                field: "body".into(),
                total_num_tokens: tokens,
            }],
            term_freqs: vec![TermFreq {
                field: "body".into(),
                value: b"sweb".to_vec(),
                doc_freq: df,
            }],
        }
    }

    #[test]
    fn sums_and_caches_until_a_generation_changes() {
        let total = sum(&[part(10, 100, 3), part(5, 40, 1)]);
        assert_eq!(total.total_num_docs, 15);
        assert_eq!(total.field_tokens[0].total_num_tokens, 140);
        assert_eq!(total.term_freqs[0].doc_freq, 4);
        let cache = StatsCache::new();
        let terms = [("body".to_string(), b"sweb".to_vec())];
        assert!(cache.lookup(&terms, &[7, 9]).is_none());
        cache.store(&total, &[7, 9]);
        assert_eq!(cache.lookup(&terms, &[7, 9]), Some(total));
        assert!(cache.lookup(&terms, &[7, 9]).is_some());
        // A write acknowledged on shard 1 changed its generation: never the old statistics.
        assert!(cache.lookup(&terms, &[7, 10]).is_none());
        assert!(
            cache.lookup(&terms, &[7, 9]).is_none(),
            "dropped, not kept aside"
        );
        let c = cache.counters();
        assert_eq!((c.hits, c.misses, c.invalidations), (2, 3, 1));
    }
}
