//! A search prepared once for every shard a node searches in one call: the query parsed once
//! (the shards share the schema), the root's global statistics indexed once, and the query
//! text of snippets and explanations parsed once. What is left per shard is the shard's own
//! work: collecting its matches and reading its kept hits.

use std::sync::Arc;

use scatter_core::query::{ParsedText, ScatterQueryParser};
use scatter_proto::v1::{FetchRequest, SearchRequest};
use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::schema::Schema;
use tantivy::Searcher;

use crate::error::ShardError;
use crate::stats::GlobalStatsProvider;

/// Snippet length when a request gives none.
pub const DEFAULT_SNIPPET_CHARS: usize = 150;

/// What to read of each document besides its stored fields.
pub struct DocsPlan<'a> {
    /// The query text parsed (no filters): its terms are highlighted and explained. Only
    /// when snippets or explanations are asked.
    pub text_query: Option<&'a dyn Query>,
    /// The request's global statistics (absent: each shard's own).
    pub stats: Option<&'a GlobalStatsProvider>,
    /// Fields to make snippets of.
    pub snippet_fields: &'a [String],
    /// Snippet length (0: [`DEFAULT_SNIPPET_CHARS`]).
    pub snippet_max_chars: u32,
    /// Highlight tags (both empty: `<b>`, `</b>`).
    pub tags: (&'a str, &'a str),
    /// Add each document's BM25 explanation.
    pub explain: bool,
}

impl<'a> DocsPlan<'a> {
    /// Whether the plan needs the query text parsed.
    pub fn needs_query(snippet_fields: &[String], explain: bool) -> bool {
        explain || !snippet_fields.is_empty()
    }

    /// The plan of a fetch call, with its parsed text query and statistics.
    pub fn of_fetch(
        req: &'a FetchRequest,
        text_query: Option<&'a dyn Query>,
        stats: Option<&'a GlobalStatsProvider>,
    ) -> Self {
        DocsPlan {
            text_query,
            stats,
            snippet_fields: &req.snippet_fields,
            snippet_max_chars: req.snippet_max_chars,
            tags: (&req.snippet_pre_tag, &req.snippet_post_tag),
            explain: req.explain,
        }
    }
}

/// Most postings (the query terms' cluster-wide document frequencies, scaled to the shards a
/// node searches) of a search that a node runs on the calling thread, one shard after another:
/// below it the thread hand-off of a parallel call (a wake-up of a blocking-pool thread and a
/// futex round trip, 10–30 µs of CPU) costs more than searching the shards in parallel saves.
pub const INLINE_MAX_POSTINGS: u64 = 50_000;

/// Most postings of a search that a saturated node runs on the calling thread (see
/// `Spread::InlineWhenBusy`): a bound on how long such work holds that thread (tens of
/// milliseconds at most), so that a stream of costly queries cannot keep the async threads
/// from answering probes and refusing load.
pub const INLINE_WHEN_BUSY_MAX_POSTINGS: u64 = 1_000_000;

/// How a node spreads a search over threads: aggregations are heavy; a search of known cost
/// runs inline when light, inline when the node is busy when bounded, else in parallel.
pub fn spread_of(aggs: bool, postings: Option<u64>) -> crate::data_calls::Spread {
    use crate::data_calls::Spread;
    match postings {
        _ if aggs => Spread::Heavy,
        Some(p) if p <= INLINE_MAX_POSTINGS => Spread::Inline,
        Some(p) if p <= INLINE_WHEN_BUSY_MAX_POSTINGS => Spread::InlineWhenBusy,
        _ => Spread::Parallel,
    }
}

/// A search request with everything shared by its shards prepared.
pub struct SearchPlan {
    /// The request.
    pub req: Arc<SearchRequest>,
    /// Its query: text (leniently if asked) and filters, under the deadline watch.
    pub query: Box<dyn Query>,
    /// Its global statistics (absent: each shard scores with its own).
    pub stats: Option<GlobalStatsProvider>,
    /// The query text alone, when the kept hits' snippets or explanations are asked.
    text_query: Option<Box<dyn Query>>,
    /// Whether the query's terms are known before any shard is read: strict syntax without
    /// filters or `*`/`~` words (whose expansions depend on each shard's dictionary).
    plain_terms: bool,
    /// The query's scoring weight, made once for every shard of the call (see
    /// [`SearchPlan::shared_weight`]).
    weight: std::sync::OnceLock<Option<Box<dyn Weight>>>,
}

impl SearchPlan {
    /// Prepares `req` with a shard's parser and schema (any shard of the cluster: they share
    /// them); its text as `parsed` gives it when that is the parse of the request's text (an
    /// in-process caller's), else parsed here.
    pub fn new(
        parser: &ScatterQueryParser,
        schema: &Schema,
        req: Arc<SearchRequest>,
        parsed: Option<&ParsedText>,
    ) -> Result<Self, ShardError> {
        let query = match parsed.and_then(|p| p.query_for(&req.query, req.lenient)) {
            Some(text) => parser.with_filters(text, &req.filters)?,
            None => parser.parse_search(&req.query, mode(req.lenient), &req.filters)?,
        };
        let query: Box<dyn Query> = Box::new(crate::watched_query::Watched(query));
        let stats = req
            .stats
            .as_ref()
            .map(|s| GlobalStatsProvider::new(s, schema));
        let text_query = match req.fetch && DocsPlan::needs_query(&req.snippet_fields, req.explain)
        {
            true => Some(parser.parse_in(&req.query, mode(req.lenient))?),
            false => None,
        };
        Ok(SearchPlan {
            query,
            stats,
            text_query,
            plain_terms: !req.lenient && req.filters.is_empty() && !req.query.contains(['*', '~']),
            req,
            weight: std::sync::OnceLock::new(),
        })
    }

    /// The query's scoring weight for every shard of the call, made once (on the first
    /// shard's `searcher`) instead of once per shard: under the root's global statistics a
    /// weight does not depend on the shard (the shards share the schema; the statistics are
    /// the cluster's). `None` where it could: local statistics, and queries whose weight
    /// reads the searcher it is made on (`*`/`~` words and the search box's variants check
    /// their width on each shard's dictionaries; filters are left to the per-shard path too).
    pub fn shared_weight(&self, searcher: &Searcher) -> Result<Option<&dyn Weight>, ShardError> {
        let (Some(stats), true) = (self.stats.as_ref(), self.plain_terms) else {
            return Ok(None);
        };
        if let Some(made) = self.weight.get() {
            return Ok(made.as_deref());
        }
        let scoring = EnableScoring::enabled_from_statistics_provider(stats, searcher);
        let weight = self.query.weight(scoring)?;
        Ok(self.weight.get_or_init(|| Some(weight)).as_deref())
    }

    /// The postings this search reads on a node searching `node_shards` shards of `shard`'s
    /// cluster: its terms' cluster-wide document frequencies, scaled to those shards. `None`
    /// when unknown: local statistics, filters, aggregations, the search box's typo and prefix
    /// variants and explicit `*`/`~` words (their expansions carry no document frequencies).
    pub fn postings(&self, node_shards: usize, shard: &crate::shard::Shard) -> Option<u64> {
        let req = &*self.req;
        let stats = req.stats.as_ref()?;
        if !self.plain_terms || req.aggs.is_some() {
            return None;
        }
        let postings = stats
            .term_freqs
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.doc_freq));
        let num_shards = u64::from(shard.meta().num_shards.max(1));
        Some(postings.saturating_mul(node_shards as u64) / num_shards)
    }

    /// What to read of the kept hits' documents.
    pub fn docs(&self) -> DocsPlan<'_> {
        let req = &*self.req;
        DocsPlan {
            text_query: self.text_query.as_deref(),
            stats: self.stats.as_ref(),
            snippet_fields: &req.snippet_fields,
            snippet_max_chars: req.snippet_max_chars,
            tags: (&req.snippet_pre_tag, &req.snippet_post_tag),
            explain: req.explain,
        }
    }
}

/// The query mode a request's `lenient` flag asks for.
pub fn mode(lenient: bool) -> scatter_core::query::QueryMode {
    if lenient {
        scatter_core::query::QueryMode::Lenient
    } else {
        scatter_core::query::QueryMode::Strict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_calls::Spread;

    #[test]
    fn only_searches_of_known_bounded_cost_hold_the_calling_thread() {
        assert_eq!(spread_of(true, Some(1)), Spread::Heavy);
        assert_eq!(spread_of(false, Some(INLINE_MAX_POSTINGS)), Spread::Inline);
        let medium = Some(INLINE_MAX_POSTINGS + 1);
        assert_eq!(spread_of(false, medium), Spread::InlineWhenBusy);
        let big = Some(INLINE_WHEN_BUSY_MAX_POSTINGS + 1);
        assert_eq!(spread_of(false, big), Spread::Parallel);
        assert_eq!(spread_of(false, None), Spread::Parallel);
    }
}
