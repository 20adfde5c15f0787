//! Result cache at the root: complete answers keyed by the query and its parameters, valid
//! only while every shard still serves the index generation the answer was computed from
//! (leaves report their generation in every response and probe). Bounded in memory; the
//! oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::api::SearchResponse;

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
    pub snippet: crate::root::SnippetOptions,
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
    pub track_total_hits: crate::root::TrackTotalHits,
    /// Aggregations asked (their JSON).
    pub aggs: Option<String>,
}

struct Entry {
    generations: Vec<u64>,
    response: SearchResponse,
    bytes: usize,
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
    /// Approximate bytes held.
    pub bytes: usize,
    /// Capacity in bytes (0: disabled).
    pub capacity_bytes: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<CacheKey, Entry>,
    order: VecDeque<CacheKey>,
    bytes: usize,
}

/// Bounded result cache.
pub struct ResultCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ResultCache {
    /// A cache of at most `capacity` bytes (0 disables it).
    pub fn new(capacity: usize) -> Self {
        ResultCache {
            capacity,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached answer for `key` if it was computed at `generations`.
    pub fn get(&self, key: &CacheKey, generations: &[u64]) -> Option<SearchResponse> {
        if self.capacity == 0 {
            return None;
        }
        let inner = self.inner.lock().expect("result cache");
        let found = inner
            .map
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

    /// Keeps a complete answer computed at `generations`.
    pub fn put(&self, key: CacheKey, generations: Vec<u64>, response: &SearchResponse) {
        if self.capacity == 0 || response.partial {
            return;
        }
        let bytes = approx_size(&key, response);
        if bytes > self.capacity / 4 {
            return;
        }
        let mut inner = self.inner.lock().expect("result cache");
        if let Some(old) = inner.map.remove(&key) {
            inner.bytes -= old.bytes;
            inner.order.retain(|k| k != &key);
        }
        while inner.bytes + bytes > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(old) = inner.map.remove(&oldest) {
                inner.bytes -= old.bytes;
            }
        }
        inner.bytes += bytes;
        inner.order.push_back(key.clone());
        inner.map.insert(
            key,
            Entry {
                generations,
                response: response.clone(),
                bytes,
            },
        );
    }

    /// Hit and miss counts and size.
    pub fn counters(&self) -> ResultCacheCounters {
        let inner = self.inner.lock().expect("result cache");
        ResultCacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: inner.map.len(),
            bytes: inner.bytes,
            capacity_bytes: self.capacity,
        }
    }
}

/// Rough heap size of an entry: the hits' ids and stored fields dominate.
fn approx_size(key: &CacheKey, r: &SearchResponse) -> usize {
    let fields: usize = r
        .hits
        .iter()
        .map(|h| h.id.len() + 64 + h.fields.get().len())
        .sum();
    256 + key.query.len() + fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ShardsReport;

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
            track_total_hits: crate::root::TrackTotalHits::All,
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
        assert!(ResultCache::new(0).get(&key("a"), &[1, 2]).is_none());
    }
}
