//! One shard: a tantivy index on disk, its reader (reused across requests, reloaded on
//! commit) and the operations a leaf serves: search, fetch by id, term statistics, info.

use std::path::{Path, PathBuf};

use anyhow::Context;
use scatter_core::document::stored_fields_json;
use scatter_core::query::{QueryError, ScatterQueryParser};
use scatter_core::ShardMeta;
use scatter_proto::v1::{
    FetchResponse, FetchedDoc, InfoResponse, ScoredHit, SearchRequest, SearchResponse,
    TermStatsResponse,
};
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByString};
use tantivy::collector::{Count, TopDocs};
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, Order, ReloadPolicy, Searcher, TantivyDocument, Term,
    TERMINATED,
};

use crate::stats::{local_stats, GlobalStatsProvider};

/// Largest `k + offset` a leaf accepts (the root enforces the same window).
pub const MAX_WINDOW: u64 = 10_000;

/// Why a shard operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The request itself is wrong (bad query, window too large): the caller's fault.
    #[error("{0}")]
    InvalidArgument(String),
    /// The index failed: try another replica.
    #[error("index error: {0}")]
    Internal(#[from] tantivy::TantivyError),
}

impl From<QueryError> for ShardError {
    fn from(e: QueryError) -> Self {
        ShardError::InvalidArgument(e.to_string())
    }
}

/// An open shard.
pub struct Shard {
    path: PathBuf,
    meta: ShardMeta,
    reader: IndexReader,
    schema: Schema,
    id_field: Field,
    parser: ScatterQueryParser,
}

impl Shard {
    /// Opens the shard in `path` (an index directory written by `scatter index build`).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let meta = ShardMeta::load(path)
            .with_context(|| format!("{} is not a Scatter shard directory", path.display()))?;
        let index = Index::open_in_dir(path)
            .with_context(|| format!("opening tantivy index in {}", path.display()))?;
        let schema = index.schema();
        anyhow::ensure!(
            schema == meta.schema.tantivy_schema(),
            "index schema in {} does not match its scatter-shard.json",
            path.display()
        );
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        let id_field = schema.get_field(&meta.schema.id_field)?;
        let parser = ScatterQueryParser::new(&meta.schema, &schema);
        Ok(Shard {
            path: path.to_path_buf(),
            meta,
            reader,
            schema,
            id_field,
            parser,
        })
    }

    /// Directory of the index.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shard metadata (id, schema, routing).
    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    /// The current searcher (cheap: an `Arc` clone of the reader's current searcher).
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// Identity and state of the shard.
    pub fn info(&self) -> InfoResponse {
        let searcher = self.searcher();
        InfoResponse {
            shard_id: self.meta.shard,
            num_shards: self.meta.num_shards,
            num_docs: searcher.num_docs(),
            max_doc: searcher
                .segment_readers()
                .iter()
                .map(|s| u64::from(s.max_doc()))
                .sum(),
            generation: generation(&searcher),
            schema_fingerprint: self.meta.schema.fingerprint(),
            schema_json: self.meta.schema.to_json(),
            routing_json: serde_json::to_string(&self.meta.routing).unwrap_or_default(),
        }
    }

    /// Ranked search: hits sorted by score descending, ties by external id ascending.
    /// Scores with the request's global statistics when given, else with local ones.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse, ShardError> {
        let start = std::time::Instant::now();
        let window = u64::from(req.k) + u64::from(req.offset);
        if window > MAX_WINDOW {
            return Err(ShardError::InvalidArgument(format!(
                "k + offset = {window} exceeds {MAX_WINDOW}"
            )));
        }
        let query = self.parser.parse(&req.query)?;
        let searcher = self.searcher();
        let provider = req
            .stats
            .as_ref()
            .map(|s| GlobalStatsProvider::new(s, &self.schema));
        let (total_hits, hits) = if req.k == 0 {
            (searcher.search(&*query, &Count)?, Vec::new())
        } else {
            let top = TopDocs::with_limit(req.k as usize)
                .and_offset(req.offset as usize)
                .order_by((
                    (SortBySimilarityScore, Order::Desc),
                    (
                        SortByString::for_field(&self.meta.schema.id_field),
                        Order::Asc,
                    ),
                ));
            let collector = (Count, top);
            let (count, top) = match &provider {
                Some(p) => searcher.search_with_statistics_provider(&*query, &collector, p)?,
                None => searcher.search(&*query, &collector)?,
            };
            let hits = top
                .into_iter()
                .map(|((score, id), _addr)| ScoredHit {
                    id: id.unwrap_or_default(),
                    score,
                })
                .collect();
            (count, hits)
        };
        Ok(SearchResponse {
            hits,
            total_hits: total_hits as u64,
            took_micros: start.elapsed().as_micros() as u64,
            generation: generation(&searcher),
            shard_id: self.meta.shard,
        })
    }

    /// Stored fields of the documents with these external ids (unknown ids are skipped).
    pub fn fetch(&self, ids: &[String]) -> Result<FetchResponse, ShardError> {
        let searcher = self.searcher();
        let mut docs = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(addr) = self.find(&searcher, id)? else {
                continue;
            };
            let doc: TantivyDocument = searcher.doc(addr)?;
            let mut fields = stored_fields_json(&doc, &self.schema);
            fields.remove(&self.meta.schema.id_field);
            docs.push(FetchedDoc {
                id: id.clone(),
                fields_json: serde_json::Value::Object(fields).to_string(),
            });
        }
        Ok(FetchResponse {
            docs,
            generation: generation(&searcher),
        })
    }

    /// The live document with external id `id`, if any.
    fn find(&self, searcher: &Searcher, id: &str) -> tantivy::Result<Option<DocAddress>> {
        let term = Term::from_field_text(self.id_field, id);
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let inverted = segment.inverted_index(self.id_field)?;
            let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)?
            else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if segment
                    .alive_bitset()
                    .is_none_or(|alive| alive.is_alive(doc))
                {
                    return Ok(Some(DocAddress::new(ord as u32, doc)));
                }
                doc = postings.advance();
            }
        }
        Ok(None)
    }

    /// This shard's statistics for the terms of `query` (for the root to sum).
    pub fn term_stats(&self, query: &str) -> Result<TermStatsResponse, ShardError> {
        let query = self.parser.parse(query)?;
        let searcher = self.searcher();
        Ok(TermStatsResponse {
            stats: Some(local_stats(&searcher, &*query)?),
            generation: generation(&searcher),
        })
    }
}

/// Generation of what a searcher sees: a hash of its segments and their deletes. It changes
/// whenever a commit becomes visible, and is equal on replicas with identical index files.
pub fn generation(searcher: &Searcher) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for segment in searcher.segment_readers() {
        h.update(segment.segment_id().uuid_string().as_bytes());
        h.update(&segment.delete_opstamp().unwrap_or(0).to_le_bytes());
    }
    h.digest()
}
