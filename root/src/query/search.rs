//! A search as the root runs it: the validated request ([`Search`] and its options), how a
//! node's answer splits by shard, and the checks and counts that do not need the cluster.

use tokio::time::Instant;

use scatter_proto::v1::{FetchedDoc, ScoredHit, SearchResponse as LeafResponse, ShardStatus};

use crate::cluster::fanout::ShardParts;
use crate::error::ApiError;

/// How scores are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// BM25 with cluster-wide statistics: the same scores as one index (default).
    Global,
    /// BM25 with each shard's own statistics: one round trip less, scores depend on layout.
    Local,
}

/// Memory a search with aggregations is counted for: shards' parts and the merged answer
/// of up to 65,000 buckets.
pub const AGGS_MEMORY_ESTIMATE: usize = 16 << 20;

/// Bytes the root's exact terms tables may hold for the terms aggregations of `aggs`: each
/// shard's first-round terms (`shard_size`, by default `size` × 1.5 + 10), ~128 bytes each.
fn terms_tables(aggs: &serde_json::Value, shards: usize) -> usize {
    let Some(named) = aggs.as_object() else {
        return 0;
    };
    named
        .values()
        .filter_map(|a| a.get("terms"))
        .map(|t| {
            let n = |k: &str| t.get(k).and_then(serde_json::Value::as_u64);
            let size = n("size").unwrap_or(10).min(10_000) as usize;
            let shard_size = n("shard_size").map_or(size * 3 / 2 + 10, |s| s.min(10_000) as usize);
            shard_size.max(size) * shards * 128
        })
        .sum()
}

/// A validated search request.
#[derive(Debug, Clone)]
pub struct Search {
    /// Query text.
    pub query: String,
    /// Read the text leniently (`query_mode=lenient`).
    pub lenient: bool,
    /// Filter clauses (restrict matches, never change scores).
    pub filters: Vec<String>,
    /// Page size.
    pub size: usize,
    /// Page offset.
    pub from: usize,
    /// When the answer is due.
    pub deadline: Instant,
    /// Answer with the shards that responded when some did not.
    pub allow_partial: bool,
    /// Global or local statistics.
    pub scoring: Scoring,
    /// Fields to return highlighted snippets of.
    pub snippet_fields: Vec<String>,
    /// Snippet length and highlight tags.
    pub snippet: SnippetOptions,
    /// Explain each hit's score.
    pub explain: bool,
    /// Sort keys (empty: by score).
    pub sort: Vec<scatter_proto::v1::SortField>,
    /// Only hits after this one (its `sort` array as JSON).
    pub search_after: Option<String>,
    /// Report what happened at each shard.
    pub profile: bool,
    /// How matches are counted.
    pub track_total_hits: TrackTotalHits,
    /// Aggregations asked (`aggs`), checked against the schema when the search runs.
    pub aggs: Option<serde_json::Value>,
    /// The point in time read or opened (`pit`, `pit_id`).
    pub pit: Option<crate::query::pit_id::PitUse>,
}

impl Search {
    /// The point in time this search reads, once opened.
    pub fn pit_id(&self) -> Option<&crate::query::pit_id::PitId> {
        self.pit.as_ref()?.id.as_ref()
    }

    /// The memory this search may hold at the root over `shards` shards, for the process's
    /// budget ([`crate::api::memory`]): each shard's hit list, the page's documents with their
    /// snippets and explanations, and aggregation state. An estimate from the parameters,
    /// on the high side.
    pub fn memory_estimate(&self, shards: usize) -> usize {
        let window = self.from + self.size;
        let hits = window * shards * 256;
        let per_doc = 8 * 1024
            + self.snippet_fields.len() * (self.snippet.max_chars.max(150) as usize * 4 + 256)
            + if self.explain { 16 * 1024 } else { 0 };
        let aggs = self
            .aggs
            .as_ref()
            .map_or(0, |a| AGGS_MEMORY_ESTIMATE + terms_tables(a, shards));
        64 * 1024 + hits + self.size * per_doc + aggs + self.query.len() * 4
    }

    /// The point in time's tokens by shard (empty without one).
    pub fn pit_tokens(&self) -> std::collections::HashMap<u32, u64> {
        self.pit_id().map(|p| p.tokens()).unwrap_or_default()
    }
}

/// How snippets are made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SnippetOptions {
    /// Longest snippet in characters (0: the leaves' default, 150).
    pub max_chars: u32,
    /// Text before and after each match (None: `<b>`, `</b>`).
    pub tags: Option<(String, String)>,
}

impl SnippetOptions {
    /// The tags as leaf requests carry them (empty: the leaves' `<b>`, `</b>`).
    pub fn wire_tags(&self) -> (String, String) {
        self.tags.clone().unwrap_or_default()
    }
}

/// How a search counts its matches (`track_total_hits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackTotalHits {
    /// Every match (`true`).
    All,
    /// Exactly up to N, then `gte` (a number).
    UpTo(u64),
    /// Not at all: a lower bound (`false`).
    None,
}

/// One shard's part of a node's search answer.
#[derive(Debug, Default)]
pub struct ShardSearch {
    /// Its hits that made the node's cut, by (score desc, id asc).
    pub hits: Vec<ScoredHit>,
    /// Its counts, generation and time.
    pub status: ShardStatus,
    /// With query-and-fetch: its hits' documents.
    pub docs: Vec<FetchedDoc>,
}

/// One node-level `Search` call for `shards`, carrying `request`'s parameters and the
/// request id, within `budget`, and the root's parse of its text (used by an in-process
/// node; never sent); its answer split by shard.
pub fn search_node(
    node: &crate::cluster::leaf_node::LeafNode,
    shards: &[usize],
    budget: std::time::Duration,
    request: &scatter_proto::v1::SearchRequest,
    parsed: Option<&std::sync::Arc<scatter_core::query::ParsedText>>,
) -> impl std::future::Future<Output = Result<ShardParts<ShardSearch>, tonic::Status>> + Send + 'static
{
    let client = node.client();
    let mut req = crate::cluster::request_id::request(
        scatter_proto::v1::SearchRequest {
            shards: shards.iter().map(|&s| s as u32).collect(),
            ..request.clone()
        },
        budget,
    );
    if let Some(parsed) = parsed {
        req.extensions_mut().insert(parsed.clone());
    }
    async move { Ok(split_search(client.search(req).await?.into_inner())) }
}

/// Splits a node's search answer by shard (a shard that failed inside the node gets its
/// error; the fan-out sends it to another replica).
pub fn split_search(resp: LeafResponse) -> ShardParts<ShardSearch> {
    let mut parts: Vec<(usize, Result<ShardSearch, String>)> = resp
        .shards
        .into_iter()
        .map(|status| {
            let shard = status.shard as usize;
            if status.error.is_empty() {
                let part = ShardSearch {
                    status,
                    ..Default::default()
                };
                (shard, Ok(part))
            } else {
                (shard, Err(status.error))
            }
        })
        .collect();
    fn slot(
        parts: &mut [(usize, Result<ShardSearch, String>)],
        shard: u32,
    ) -> Option<&mut ShardSearch> {
        let i = parts.iter().position(|(s, _)| *s == shard as usize)?;
        parts[i].1.as_mut().ok()
    }
    for hit in resp.hits {
        if let Some(p) = slot(&mut parts, hit.shard) {
            p.hits.push(hit);
        }
    }
    for doc in resp.docs {
        if let Some(p) = slot(&mut parts, doc.shard) {
            p.docs.push(doc);
        }
    }
    parts
}

/// The reported hit count and its relation: with `track_total_hits=N`, exact (`eq`) up to
/// N, else N with `gte`, as one index counting up to N would report whatever the layout.
pub fn total_of(track: TrackTotalHits, sum: u64, exact: bool) -> (u64, &'static str) {
    match track {
        TrackTotalHits::All => (sum, "eq"),
        TrackTotalHits::None => (sum, "gte"),
        TrackTotalHits::UpTo(n) if exact && sum <= n => (sum, "eq"),
        TrackTotalHits::UpTo(n) => (n, "gte"),
    }
}

/// Snippets are made of stored text fields only: refused before any fan-out.
pub fn check_snippet_fields(
    schema: &scatter_core::ScatterSchema,
    fields: &[String],
) -> Result<(), ApiError> {
    for name in fields {
        match schema.field(name) {
            Some(f) if f.kind == scatter_core::FieldKind::Text && f.stored && f.indexed => {}
            _ => {
                return Err(ApiError::bad_param(format!(
                    "snippet field {name:?} is not a stored, indexed text field"
                )))
            }
        }
    }
    Ok(())
}
