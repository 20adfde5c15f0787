//! Result cache at the root: complete answers keyed by the query and its parameters, valid
//! only while every shard still serves the index generation the answer was computed from
//! (leaves report their generation in every response and probe). Bounded in memory: every
//! entry is weighed by the bytes it holds, key included (quick_cache with a weigher).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::api_types::SearchResponse;

/// Cache key: everything that shapes an answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Query text.
    pub query: String,
    /// Read leniently.
    pub lenient: bool,
    /// Filter clauses.
    pub filters: Vec<String>,
    /// Snippet length and tags.
    pub snippet: crate::query::search::SnippetOptions,
    /// Score explanations asked.
    pub explain: bool,
    /// Sort keys (field, descending).
    pub sort: Vec<(String, bool)>,
    /// The page's start (`search_after`).
    pub search_after: Option<String>,
    /// Page size.
    pub size: usize,
    /// Page offset.
    pub from: usize,
    /// `global` or `local` scoring.
    pub scoring: &'static str,
    /// Snippet fields.
    pub snippet_fields: Vec<String>,
    /// Exact hit count asked.
    pub track_total_hits: crate::query::search::TrackTotalHits,
    /// Aggregations asked (their JSON).
    pub aggs: Option<String>,
}

/// A cached answer with the generations it was computed at, and its weight.
struct Entry {
    generations: Vec<u64>,
    response: SearchResponse,
    bytes: u64,
}

/// Counters of the result cache.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ResultCacheCounters {
    /// Answers served from the cache.
    pub hits: u64,
    /// Lookups that found nothing valid.
    pub misses: u64,
    /// Entries currently held.
    pub entries: usize,
    /// Bytes held (keys and answers, as weighed by [`weight`]).
    pub bytes: usize,
    /// Capacity in bytes (0: disabled).
    pub capacity_bytes: usize,
}

/// Weighs entries by the bytes [`weight`] gave them when they were put.
#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<CacheKey, Arc<Entry>> for ByBytes {
    fn weight(&self, _key: &CacheKey, entry: &Arc<Entry>) -> u64 {
        entry.bytes
    }
}

/// Bounded result cache (quick_cache's S3-FIFO, weighed in bytes: keys and answers).
pub struct ResultCache {
    capacity: usize,
    cache: quick_cache::sync::Cache<CacheKey, Arc<Entry>, ByBytes>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ResultCache {
    /// A cache of at most `capacity` bytes (0 disables it).
    pub fn new(capacity: usize) -> Self {
        ResultCache {
            capacity,
            // Sized for entries of ~4 KB; the weight, not the count, bounds it.
            cache: quick_cache::sync::Cache::with_weighter(
                (capacity / 4096).clamp(16, 1 << 20),
                capacity.max(1) as u64,
                ByBytes,
            ),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached answer for `key` if it was computed at `generations`.
    pub fn get(&self, key: &CacheKey, generations: &[u64]) -> Option<SearchResponse> {
        if self.capacity == 0 {
            return None;
        }
        let found = self
            .cache
            .get(key)
            .filter(|e| e.generations == generations)
            .map(|e| e.response.clone());
        let (counter, result) = if found.is_some() {
            (&self.hits, "hit")
        } else {
            (&self.misses, "miss")
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("scatter_root_cache_lookups_total", "cache" => "results", "result" => result)
            .increment(1);
        found
    }

    /// Keeps a complete answer computed at `generations` (one larger than a quarter of the
    /// cache is not kept).
    pub fn put(&self, key: CacheKey, generations: Vec<u64>, response: &SearchResponse) {
        if self.capacity == 0 || response.partial {
            return;
        }
        let bytes = weight(&key, response);
        if bytes > self.capacity / 4 {
            return;
        }
        let entry = Entry {
            generations,
            response: response.clone(),
            bytes: bytes as u64,
        };
        self.cache.insert(key, Arc::new(entry));
    }

    /// Hit and miss counts and size.
    pub fn counters(&self) -> ResultCacheCounters {
        ResultCacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.cache.len(),
            bytes: self.cache.weight() as usize,
            capacity_bytes: self.capacity,
        }
    }
}

/// Heap bytes of an entry, key included: every string and list it holds, plus a fixed
/// cost per allocation. An over-estimate is harmless, an under-estimate lets the cache
/// outgrow its budget (as it did when only ids and fields were counted).
pub fn weight(key: &CacheKey, r: &SearchResponse) -> usize {
    const ALLOC: usize = 32;
    let strings = |v: &[String]| v.iter().map(|s| s.len() + ALLOC).sum::<usize>();
    let key_bytes = std::mem::size_of::<CacheKey>()
        + key.query.len()
        + strings(&key.filters)
        + strings(&key.snippet_fields)
        + key.sort.iter().map(|(f, _)| f.len() + ALLOC).sum::<usize>()
        + key.search_after.as_ref().map_or(0, String::len)
        + key.aggs.as_ref().map_or(0, String::len)
        + key
            .snippet
            .tags
            .as_ref()
            .map_or(0, |(a, b)| a.len() + b.len());
    let hits: usize = r
        .hits
        .iter()
        .map(|h| {
            std::mem::size_of_val(h)
                + h.id.len()
                + h.fields.get().len()
                + h.explanation.as_ref().map_or(0, |e| e.get().len())
                + h.sort.as_ref().map_or(0, |s| s.get().len())
                + h.snippets.as_ref().map_or(0, |m| {
                    m.iter()
                        .map(|(k, v)| k.len() + json_bytes(v) + 2 * ALLOC)
                        .sum()
                })
                + 4 * ALLOC
        })
        .sum();
    let aggs = r
        .aggregations
        .as_ref()
        .map_or(0, |m| m.iter().map(|(k, v)| k.len() + json_bytes(v)).sum());
    let profile = r.profile.as_ref().map_or(0, |p| {
        (p.search.len() + p.fetch.len() + p.aggregations.len()) * 512
    });
    std::mem::size_of::<SearchResponse>()
        + key_bytes
        + hits
        + aggs
        + profile
        + r.pit_id.as_ref().map_or(0, String::len)
        + 2 * ALLOC
}

/// Heap bytes of a JSON value, roughly (48 per node plus its strings).
fn json_bytes(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    48 + match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(json_bytes).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + 32 + json_bytes(v)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_types::ShardsReport;

    fn response(partial: bool) -> SearchResponse {
        SearchResponse {
            took_ms: 1,
            timed_out: false,
            partial,
            total_hits: 1,
            total_hits_relation: "eq",
            shards: ShardsReport::default(),
            hits: vec![],
            profile: None,
            aggregations: None,
            pit_id: None,
        }
    }

    fn key(q: &str) -> CacheKey {
        CacheKey {
            query: q.into(),
            lenient: false,
            filters: vec![],
            snippet: Default::default(),
            explain: false,
            sort: vec![],
            search_after: None,
            size: 10,
            from: 0,
            scoring: "global",
            snippet_fields: vec![],
            track_total_hits: crate::query::search::TrackTotalHits::All,
            aggs: None,
        }
    }

    #[test]
    fn valid_only_at_the_same_generations_and_bounded() {
        let c = ResultCache::new(4096);
        c.put(key("a"), vec![1, 2], &response(false));
        assert!(c.get(&key("a"), &[1, 2]).is_some());
        assert!(c.get(&key("a"), &[1, 3]).is_none());
        c.put(key("p"), vec![1, 2], &response(true));
        assert!(
            c.get(&key("p"), &[1, 2]).is_none(),
            "partial answers are not cached"
        );
        for i in 0..100 {
            c.put(key(&format!("q{i}")), vec![1, 2], &response(false));
        }
        let n = c.counters();
        assert!(n.bytes <= 4096 && n.entries < 100);
        // Keys weigh what they hold: a key of 32 filters of 8 KB is not "a few bytes".
        let mut big = key("b");
        big.filters = vec!["x".repeat(8192); 32];
        assert!(weight(&big, &response(false)) > 32 * 8192);
        let c = ResultCache::new(1 << 20);
        for i in 0..100 {
            let mut k = big.clone();
            k.query = format!("q{i}");
            c.put(k, vec![1], &response(false));
        }
        assert!(c.counters().bytes <= 1 << 20, "{:?}", c.counters());
        assert!(ResultCache::new(0).get(&key("a"), &[1, 2]).is_none());
    }
}
