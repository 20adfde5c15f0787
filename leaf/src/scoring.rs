//! How a shard's search scores: with the root's global statistics (or the shard's own), and
//! with the query's weight made once for every shard of a node's call when it can be
//! ([`crate::plan::SearchPlan::shared_weight`]), so that a node searching many shards pays
//! for the weight (its BM25 tables, one per term) once.

use tantivy::Searcher;

use crate::stats::GlobalStatsProvider;

/// Scores with the given statistics provider, or with the searcher's own statistics; with
/// a weight made once for every shard of the call when there is one (and the collector
/// scores).
#[derive(Clone, Copy)]
pub struct ScoringWith<'a> {
    /// The request's global statistics (absent: the searcher's own).
    pub stats: Option<&'a GlobalStatsProvider>,
    /// The query's weight made once for the call's shards, if any.
    pub weight: Option<&'a dyn tantivy::query::Weight>,
}

impl ScoringWith<'_> {
    /// `collector`'s fruit of `query` on `searcher`.
    pub fn search<C: tantivy::collector::Collector>(
        self,
        searcher: &Searcher,
        query: &dyn tantivy::query::Query,
        collector: &C,
    ) -> tantivy::Result<C::Fruit> {
        match (self.weight, self.stats) {
            (Some(weight), _) if collector.requires_scoring() => {
                search_weighted(searcher, weight, collector)
            }
            (_, Some(p)) => searcher.search_with_statistics_provider(query, collector, p),
            (_, None) => searcher.search(query, collector),
        }
    }
}

/// What `Searcher::search` does once it has the weight: each segment, then the merge.
fn search_weighted<C: tantivy::collector::Collector>(
    searcher: &Searcher,
    weight: &dyn tantivy::query::Weight,
    collector: &C,
) -> tantivy::Result<C::Fruit> {
    collector.check_schema(searcher.schema())?;
    let segments = searcher.segment_readers();
    let mut fruits = Vec::with_capacity(segments.len());
    for (ord, segment) in segments.iter().enumerate() {
        fruits.push(collector.collect_segment(weight, ord as u32, segment)?);
    }
    collector.merge_fruits(fruits)
}
