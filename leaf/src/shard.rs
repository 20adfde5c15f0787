//! One shard: a tantivy index on disk, its reader (reused across requests, reloaded on
//! commit) and the operations a leaf serves: search, fetch by id, term statistics, info.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use scatter_core::query::ScatterQueryParser;
use scatter_core::ShardMeta;
use scatter_proto::v1::{
    InfoResponse, ScoredHit, SearchRequest, SearchResponse, TermStatsResponse,
};
use tantivy::collector::{Count, TopDocs};
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, ReloadPolicy, Score, Searcher, Term, TERMINATED,
};

use crate::commit::CommitPayload;
use crate::counting::{check_window, Counting};
use crate::error::ShardError;
use crate::ids::IdCache;
use crate::plan::SearchPlan;
use crate::scoring::ScoringWith;
use crate::stats::local_stats;
use crate::ties::TiedIds;
use crate::versions::{self, VersionLog};

pub use scatter_core::limits::MAX_WINDOW;

/// An open shard.
pub struct Shard {
    path: PathBuf,
    meta: ShardMeta,
    index: Index,
    reader: IndexReader,
    /// Write operations committed in this replica's life (from the last commit's payload).
    ops: AtomicU64,
    /// The version log; the writer holds it from applying a group to its commit.
    versions: Mutex<VersionLog>,
    /// This replica's identity (see [`versions::replica_id`]).
    replica_id: String,
    schema: Schema,
    id_field: Field,
    parser: ScatterQueryParser,
    ids: IdCache,
    pits: crate::pit::Pits,
    /// Set when a commit or fsync failed: writes are refused until a restart recovers.
    write_failure: std::sync::OnceLock<String>,
    /// A root confirmed this replica's history against its peers since it was opened (see
    /// `InfoResponse.unverified`).
    verified: std::sync::atomic::AtomicBool,
    /// Random, drawn at open (see `InfoResponse.incarnation`).
    incarnation: u64,
    /// What `Info` reports of the version log, as of the last time the log was free: a
    /// probe never waits for a commit (which holds the log through its fsyncs).
    log_summary: Mutex<LogSummary>,
}

/// The version log's state as `Info` reports it.
#[derive(Debug, Clone, Default)]
struct LogSummary {
    digest: u64,
    max_version: u64,
    behind: Vec<String>,
    versioned: u64,
}

impl LogSummary {
    fn of(log: &VersionLog) -> Self {
        LogSummary {
            digest: log.digest(),
            max_version: log.max_version(),
            behind: log.behind(),
            versioned: log.len() as u64,
        }
    }
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
        let meta_id_field = meta.schema.id_field.clone();
        let parser = ScatterQueryParser::new(&meta.schema, &schema);
        let payload = CommitPayload::parse(index.load_metas()?.payload.as_deref());
        let versions = VersionLog::open(path, payload.versions_len, payload.versions_gen)?;
        let log_summary = Mutex::new(LogSummary::of(&versions));
        let replica_id = versions::replica_id(path)?;
        Ok(Shard {
            path: path.to_path_buf(),
            meta,
            index,
            ops: AtomicU64::new(payload.ops),
            versions: Mutex::new(versions),
            replica_id,
            reader,
            schema,
            id_field,
            parser,
            ids: IdCache::new(&meta_id_field),
            pits: Default::default(),
            write_failure: Default::default(),
            verified: Default::default(),
            incarnation: scatter_core::random::SharedRng::new(scatter_core::random::os_seed())
                .next_u64()
                | 1,
            log_summary,
        })
    }

    /// Creates an empty shard in `path` (which must not hold one yet) and opens it.
    pub fn create(path: &Path, meta: &ShardMeta) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating shard directory {}", path.display()))?;
        Index::builder()
            .schema(meta.schema.tantivy_schema())
            .settings(meta.schema.index_settings())
            .create_in_dir(path)
            .with_context(|| format!("creating tantivy index in {}", path.display()))?;
        meta.save(path)?;
        std::fs::write(path.join(versions::AWAITING_COPY_FILE), b"")?;
        std::fs::File::open(path)?.sync_all()?;
        Shard::open(path)
    }

    /// The tantivy index (for the writer and for snapshots).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Makes the last commit searchable now (instead of after the reload delay).
    pub fn reload(&self) -> tantivy::Result<()> {
        self.reader.reload()
    }

    /// Write operations committed in this replica's life.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Acquire)
    }

    /// Records the operation count of a new commit (called by the writer after committing).
    pub fn set_ops(&self, ops: u64) {
        self.ops.store(ops, Ordering::Release);
    }

    /// The version log (locked by the writer for a whole group commit; held briefly by
    /// everyone else).
    pub fn versions(&self) -> MutexGuard<'_, VersionLog> {
        self.versions.lock().expect("version log")
    }

    /// The external ids of `searcher`'s documents.
    pub fn ids_of(
        &self,
        searcher: &Searcher,
    ) -> tantivy::Result<std::sync::Arc<crate::ids::SearcherIds>> {
        self.ids.get(searcher)
    }

    /// This replica's identity.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Directory of the index.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tantivy schema (the same on every shard of a cluster).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Shard metadata (id, schema, routing).
    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    /// The current searcher (cheap: an `Arc` clone of the reader's current searcher).
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The searcher a call reads: the point in time `pits` names for this shard (its
    /// keep-alive extended by `keep_alive_ms`), or the current one.
    pub fn searcher_for(
        &self,
        pits: &std::collections::HashMap<u32, u64>,
        keep_alive_ms: u64,
    ) -> Result<Searcher, ShardError> {
        match pits.get(&self.meta.shard) {
            Some(&token) => self.pits.get(token, keep_alive_ms),
            None => Ok(self.searcher()),
        }
    }

    /// The shard's open points in time.
    pub fn pits(&self) -> &crate::pit::Pits {
        &self.pits
    }

    /// The version log's state: read now when the log is free, else as last read (a commit
    /// holds it).
    fn log_summary(&self) -> LogSummary {
        let mut cached = self.log_summary.lock().expect("log summary");
        match self.versions.try_lock() {
            Ok(log) => *cached = LogSummary::of(&log),
            Err(std::sync::TryLockError::WouldBlock) => {}
            Err(std::sync::TryLockError::Poisoned(e)) => panic!("version log poisoned: {e}"),
        }
        cached.clone()
    }

    /// Records the version log's state after a commit (the writer holds the log), so that a
    /// probe answered while the next commit holds it reports the last committed state.
    pub fn note_committed_log(&self, log: &VersionLog) {
        *self.log_summary.lock().expect("log summary") = LogSummary::of(log);
    }

    /// Identity and state of the shard (and a sweep of expired points in time: roots ask
    /// every probe interval).
    pub fn info(&self) -> InfoResponse {
        self.pits.sweep();
        let searcher = self.searcher();
        let versions = self.log_summary();
        InfoResponse {
            replica_id: self.replica_id.clone(),
            versions_digest: versions.digest,
            max_version: versions.max_version,
            behind: versions.behind,
            versioned: versions.versioned,
            awaiting_copy: self.path.join(versions::AWAITING_COPY_FILE).exists(),
            write_failure: self.write_failure().unwrap_or_default().to_string(),
            unverified: self.is_unverified(),
            incarnation: self.incarnation,
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
            ops: self.ops(),
            num_segments: searcher.segment_readers().len() as u32,
            node_shards: vec![self.meta.shard],
        }
    }

    /// Stops this shard taking writes: a commit or an fsync failed, so what is durable is
    /// uncertain (the first reason is kept). Only a restart, which recovers from what is on
    /// disk, takes writes again — as PostgreSQL does after an fsync error.
    pub fn fail_writes(&self, reason: String) {
        let _ = self.write_failure.set(reason);
    }

    /// Records that a root confirmed this replica's history against its peers (a matching
    /// peer, or a merge that brought it the union of their writes) in `incarnation` (a
    /// confirmation of an earlier opening confirms nothing).
    pub fn confirm_history(&self, incarnation: u64) {
        if incarnation != self.incarnation {
            return;
        }
        if !self.verified.swap(true, Ordering::AcqRel) {
            tracing::info!(replica = %self.replica_id, "history confirmed against peers");
        }
    }

    /// Opened since a root last confirmed its history (see [`Shard::confirm_history`]).
    pub fn is_unverified(&self) -> bool {
        !self.verified.load(Ordering::Acquire)
    }

    /// This opening's incarnation when its history is unverified, else 0.
    pub fn unverified_incarnation(&self) -> u64 {
        if self.is_unverified() {
            self.incarnation
        } else {
            0
        }
    }

    /// Why this shard refuses writes, if it does.
    pub fn write_failure(&self) -> Option<&str> {
        self.write_failure.get().map(String::as_str)
    }

    /// Parses `text` with the shard's schema (every shard of a cluster reads it alike).
    pub fn parse(&self, text: &str) -> Result<Box<dyn tantivy::query::Query>, ShardError> {
        Ok(self.parser.parse(text)?)
    }

    /// Parses `text` (leniently if asked) as the root does.
    pub fn parse_in(
        &self,
        text: &str,
        lenient: bool,
    ) -> Result<Box<dyn tantivy::query::Query>, ShardError> {
        Ok(self.parser.parse_in(text, crate::plan::mode(lenient))?)
    }

    /// The shard's query parser.
    pub fn parser(&self) -> &ScatterQueryParser {
        &self.parser
    }

    /// [`Shard::search`] of a request prepared once for all the node's shards, without the
    /// documents: they are fetched with [`Shard::fetch_hits`] for the hits that survive the
    /// node's cut.
    pub fn search_located(
        &self,
        plan: &SearchPlan,
    ) -> Result<(SearchResponse, Located), ShardError> {
        let start = std::time::Instant::now();
        let (req, query) = (&*plan.req, &*plan.query);
        let window = check_window(req)?;
        let searcher = self.searcher_for(&req.pits, req.pit_keep_alive_ms)?;
        let opened = if req.pit_keep_alive_ms > 0 && !req.pits.contains_key(&self.meta.shard) {
            self.pits.open(searcher.clone(), req.pit_keep_alive_ms)?
        } else {
            0
        };
        let scoring = ScoringWith {
            stats: plan.stats.as_ref(),
            weight: plan.shared_weight(&searcher)?,
        };
        let counting = Counting::of(req);
        let mut aggs = crate::aggs::Fused::new(&searcher, req.aggs.as_ref())?;
        let (total_hits, exact, hits) = if !req.sort.is_empty() {
            let (total, mut hits) =
                self.top_by_sort(&searcher, query, req, window, scoring, &mut aggs)?;
            hits.drain(..(req.offset as usize).min(hits.len()));
            (total, true, hits)
        } else if window == 0 && counting == Counting::All && req.aggs.is_some() {
            // Facets without hits: count and aggregate in one pass.
            let (total, fruit) = searcher.search(query, &(Count, aggs.collector()))?;
            aggs.gathered(fruit);
            (total as u64, true, Vec::new())
        } else if window == 0 {
            let (total, exact) = counting.count(&searcher, query, 0)?;
            (total, exact, Vec::new())
        } else {
            let (total, exact, mut hits) =
                self.top_by_score(&searcher, query, window, scoring, counting, &mut aggs)?;
            hits.drain(..(req.offset as usize).min(hits.len()));
            (total, exact, hits)
        };
        let (hits, addrs) = hits.into_iter().unzip();
        let aggs = aggs.finish(&searcher, query)?;
        let resp = SearchResponse {
            aggs: aggs.tantivy,
            terms: aggs.terms,
            pit: opened,
            hits,
            total_hits,
            took_micros: start.elapsed().as_micros() as u64,
            generation: generation(&searcher),
            shard_id: self.meta.shard,
            total_hits_exact: exact,
            docs: Vec::new(),
            shards: Vec::new(),
        };
        Ok((resp, Located { searcher, addrs }))
    }

    /// The top `window` hits by (score desc, id asc) and the match count. Top `window + 1`
    /// by score alone, ids looked up for those only. When the hit after the cut ties with the
    /// last one kept, which tied documents make the cut depends on their ids: a second pass
    /// ([`TiedIds`]) finds the smallest ids among all documents with that score. Each hit
    /// comes with its address when known (not for hits found by the tie pass). Returns the
    /// match count as [`Counting`] asks, and whether it is exact.
    /// The first `window` matches in the request's sort order (see [`crate::sort`]), and
    /// the count of every match.
    fn top_by_sort(
        &self,
        searcher: &Searcher,
        query: &dyn tantivy::query::Query,
        req: &SearchRequest,
        window: usize,
        scoring: ScoringWith<'_>,
        aggs: &mut crate::aggs::Fused,
    ) -> Result<(u64, Vec<LocatedHit>), ShardError> {
        let keys = crate::sort::resolve(&self.meta.schema, &req.sort)?;
        let after = (!req.search_after_json.is_empty())
            .then(|| crate::sort::after_key(&keys, &req.search_after_json))
            .transpose()?;
        let ids = self.ids.get(searcher)?;
        let collector = crate::sort::SortCollector {
            keys,
            window,
            ids: ids.clone(),
            after,
        };
        let (count, sorted) = match aggs.collector() {
            None => scoring.search(searcher, query, &collector)?,
            Some(with) => {
                let (sorted, fruit) = scoring.search(searcher, query, &(collector, with))?;
                aggs.gathered(Some(fruit));
                sorted
            }
        };
        let hits = sorted
            .into_iter()
            .map(|s| {
                let hit = ScoredHit {
                    id: ids.id(s.addr).unwrap_or_default().to_string(),
                    score: s.score,
                    shard: self.meta.shard,
                    sort_key: s.key,
                    sort_values_json: serde_json::Value::from(s.values).to_string(),
                };
                (hit, Some(s.addr))
            })
            .collect();
        Ok((count, hits))
    }

    fn top_by_score(
        &self,
        searcher: &Searcher,
        query: &dyn tantivy::query::Query,
        window: usize,
        scoring: ScoringWith<'_>,
        counting: Counting,
        aggs: &mut crate::aggs::Fused,
    ) -> Result<(u64, bool, Vec<LocatedHit>), ShardError> {
        let top_docs = TopDocs::with_limit(window + 1).order_by_score();
        let (count, exact, top) = if counting == Counting::All {
            // Every match is read: the aggregations ride along (no extra collector without).
            // `Watching`: the collector ticks the watch, not a callback around it.
            use crate::watched_query::Watching;
            let (count, top) = match aggs.collector() {
                None => scoring.search(searcher, query, &Watching((Count, top_docs)))?,
                Some(with) => {
                    let (count, top, fruit) =
                        scoring.search(searcher, query, &Watching((Count, top_docs, with)))?;
                    aggs.gathered(Some(fruit));
                    (count, top)
                }
            };
            (count as u64, true, top)
        } else {
            // Without a full count the collection can skip non-competitive documents
            // (block-max WAND). Fewer than `window + 1` collected: nothing was skipped, so
            // that is the exact count; otherwise count as asked (bounded, or not at all).
            let top = scoring.search(searcher, query, &top_docs)?;
            let (count, exact) = if top.len() <= window {
                (top.len() as u64, true)
            } else {
                counting.count(searcher, query, top.len() as u64)?
            };
            (count, exact, top)
        };
        let boundary_tie = top.len() > window && top[window].0 == top[window - 1].0;
        let by_score_then_id = |a: &(ScoredHit, _), b: &(ScoredHit, _)| {
            (b.0.score.total_cmp(&a.0.score)).then_with(|| a.0.id.cmp(&b.0.id))
        };
        if !boundary_tie {
            let mut hits = self.with_ids(searcher, &top[..top.len().min(window)])?;
            hits.sort_by(by_score_then_id);
            return Ok((count, exact, hits));
        }
        let tied_score = top[window - 1].0;
        let above = top
            .iter()
            .take_while(|(score, _)| *score > tied_score)
            .count();
        let tied = TiedIds {
            score: tied_score,
            ids: self.ids.get(searcher)?,
            need: window - above,
        };
        let tied_ids = scoring.search(searcher, query, &tied)?;
        let mut hits = self.with_ids(searcher, &top[..above])?;
        hits.sort_by(by_score_then_id);
        hits.extend(tied_ids.into_iter().map(|id| {
            let hit = ScoredHit {
                id,
                score: tied_score,
                shard: self.meta.shard,
                ..Default::default()
            };
            (hit, None)
        }));
        Ok((count, exact, hits))
    }

    /// External ids of scored documents, from the id fast field.
    fn with_ids(
        &self,
        searcher: &Searcher,
        top: &[(Score, DocAddress)],
    ) -> Result<Vec<LocatedHit>, ShardError> {
        let ids = self.ids.get(searcher)?;
        let shard = self.meta.shard;
        Ok(top
            .iter()
            .map(|&(score, addr)| {
                let id = ids.id(addr).unwrap_or_default().to_string();
                let hit = ScoredHit {
                    id,
                    score,
                    shard,
                    ..Default::default()
                };
                (hit, Some(addr))
            })
            .collect())
    }

    /// The live document with external id `id`, if any.
    pub fn find(&self, searcher: &Searcher, id: &str) -> tantivy::Result<Option<DocAddress>> {
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
        let query = self.parse(query)?;
        let (stats, generation) = self.term_stats_query(&*query, &Default::default())?;
        Ok(TermStatsResponse {
            stats: Some(stats),
            generation,
            shards: Vec::new(),
        })
    }

    /// This shard's statistics for the terms of a parsed query, and its generation.
    pub fn term_stats_query(
        &self,
        query: &dyn tantivy::query::Query,
        pits: &std::collections::HashMap<u32, u64>,
    ) -> Result<(scatter_proto::v1::GlobalStats, u64), ShardError> {
        let searcher = self.searcher_for(pits, 0)?;
        Ok((local_stats(&searcher, query)?, generation(&searcher)))
    }
}

/// A hit and, when known, its document's address in the searcher it was found with.
type LocatedHit = (ScoredHit, Option<DocAddress>);

/// Where a search's hits live: the searcher it ran on and each hit's address when known
/// (in hit order), so their documents are read without looking the ids up again.
pub struct Located {
    /// The searcher the search ran on.
    pub searcher: Searcher,
    /// Each hit's address when known, in hit order.
    pub addrs: Vec<Option<DocAddress>>,
}

/// Generation of what a searcher sees: a hash of its segments and their deletes. It changes
/// whenever a commit becomes visible, and is equal on replicas with identical index files.
pub fn generation(searcher: &Searcher) -> u64 {
    use std::hash::{Hash, Hasher};
    // Hashing the segment ids directly: no string per segment on every request.
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for segment in searcher.segment_readers() {
        segment.segment_id().hash(&mut h);
        h.write_u64(segment.delete_opstamp().unwrap_or(0));
    }
    h.finish()
}
