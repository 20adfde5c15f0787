//! One search, end to end: validate the query against the cluster schema, gather global term
//! statistics (cached), scatter the search to one replica of every shard, merge the ranked
//! lists, fetch the page's documents, and report coverage honestly (which shards answered,
//! which did not and why).

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use axum::http::StatusCode;
use scatter_core::query::query_terms_wire;
use scatter_proto::v1::{GlobalStats, SearchRequest};

use crate::api_types::ShardProfile;
use crate::api_types::{Hit, Phases, Profile, SearchResponse, ShardFailure, ShardsReport};
use crate::cluster::fanout::{Hedging, ShardError, ShardOutcome};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::query::cache::{CacheKey, ResultCache};
use scatter_core::query::QueryMode;

use crate::query::search::{check_snippet_fields, total_of};
pub use crate::query::search::{
    split_search, Scoring, Search, ShardSearch, SnippetOptions, TrackTotalHits,
};

use crate::cluster::hedge::HedgeConfig;
use crate::query::fetch::{fetch_page, FetchOptions, Fetched};
use crate::query::stats::{global_stats, StatsCache, StatsSource};
use crate::query::stats_table::StatsTable;
use scatter_core::merge::{merge_top, ShardHit};

/// Default of [`Root::fuse_fetch_max_docs`]: size 10 on up to 10 shards.
pub const DEFAULT_FUSE_FETCH_MAX_DOCS: usize = 100;

/// The root: the cluster and what the root keeps about it.
pub struct Root {
    /// Shards and replicas.
    pub cluster: Arc<Cluster>,
    /// Global term statistics cache.
    pub stats: StatsCache,
    /// Every shard's term dictionary, when small enough: statistics without a round trip.
    pub table: StatsTable,
    /// Hedging settings and budget.
    pub hedging: Hedging,
    /// Complete answers by query and parameters.
    pub results: ResultCache,
    /// Query-and-fetch when `(from + size) × shards` is at most this (0: always
    /// query-then-fetch).
    pub fuse_fetch_max_docs: usize,
}

/// The search phase's results, gathered from every shard.
#[derive(Default)]
struct Gathered {
    lists: Vec<Vec<ShardHit>>,
    total_hits: u64,
    failures: Vec<ShardFailure>,
    failed_shards: Vec<usize>,
    timed_out: bool,
    /// Every answering shard counted its matches exactly.
    total_exact: bool,
    profiles: Vec<ShardProfile>,
    /// Hits of the page whose documents could not be fetched (named in `failures`).
    unfetched: usize,
    /// Documents brought by query-and-fetch, per shard by id, as the leaves sent them
    /// (converted only when on the page).
    docs: Vec<std::collections::HashMap<String, scatter_proto::v1::FetchedDoc>>,
    /// Each answering shard's first-round aggregation parts.
    agg_parts: Vec<crate::query::aggregate::ShardAggParts>,
    /// Shards that failed an aggregation's later round (named in `failures`).
    agg_failures: usize,
    /// Shards answered only by a replica known to lack writes (named in `failures`).
    stale_answers: usize,
}

impl Gathered {
    /// The replica that answered each shard's search.
    fn answered_by(&self) -> Vec<(usize, String)> {
        self.profiles
            .iter()
            .filter_map(|p| Some((p.shard, p.replica.clone()?)))
            .collect()
    }
}

impl Root {
    /// A root over `cluster`, hedging by `hedge`, with a result cache of `cache_bytes`.
    pub fn new(cluster: Arc<Cluster>, hedge: HedgeConfig, cache_bytes: usize) -> Self {
        let stats = StatsCache::new();
        let table = StatsTable::new(
            cluster.shards.len(),
            crate::query::stats_table::DEFAULT_MAX_TERMS,
            crate::query::stats_table::MIN_INTERVAL,
        );
        Root {
            cluster,
            stats,
            table,
            hedging: Hedging::new(hedge),
            results: ResultCache::new(cache_bytes),
            fuse_fetch_max_docs: DEFAULT_FUSE_FETCH_MAX_DOCS,
        }
    }

    /// Runs one search, from the result cache when it holds a valid answer.
    pub async fn search(&self, search: Search) -> Result<SearchResponse, ApiError> {
        let start = Instant::now();
        if search.profile || search.pit.is_some() {
            return self.search_uncached(search).await;
        }
        let key = CacheKey {
            query: search.query.clone(),
            lenient: search.lenient,
            filters: search.filters.clone(),
            snippet: search.snippet.clone(),
            explain: search.explain,
            sort: search
                .sort
                .iter()
                .map(|s| (s.field.clone(), s.desc))
                .collect(),
            search_after: search.search_after.clone(),
            size: search.size,
            from: search.from,
            scoring: match search.scoring {
                Scoring::Global => "global",
                Scoring::Local => "local",
            },
            snippet_fields: search.snippet_fields.clone(),
            track_total_hits: search.track_total_hits,
            aggs: search.aggs.as_ref().map(|a| a.to_string()),
        };
        let generations = self.cluster.generations();
        if let Some(mut cached) = self.results.get(&key, &generations) {
            cached.took_ms = start.elapsed().as_millis() as u64;
            return Ok(cached);
        }
        let response = self.search_uncached(search).await?;
        self.results.put(key, generations, &response);
        Ok(response)
    }

    /// Runs one search on the cluster: statistics, search (with the documents under
    /// query-and-fetch), merge, fetch of what is missing, response.
    pub async fn search_uncached(&self, mut search: Search) -> Result<SearchResponse, ApiError> {
        let start = Instant::now();
        let schema = self.cluster.schema(search.deadline).await.ok_or_else(|| {
            ApiError::unavailable("no replica has answered yet, so the cluster schema is unknown")
        })?;
        let mode = if search.lenient {
            QueryMode::Lenient
        } else {
            QueryMode::Strict
        };
        let query: std::sync::Arc<dyn tantivy::query::Query> = schema
            .parser
            .parse_in(&search.query, mode)
            .map_err(|e| ApiError::query_parse(e.to_string()))?
            .into();
        if !search.filters.is_empty() {
            // Refused here, before any fan-out, as the leaves would refuse them.
            schema
                .parser
                .with_filters(query.box_clone(), &search.filters)
                .map_err(|e| ApiError::query_parse(e.to_string()))?;
        }
        check_snippet_fields(&schema.schema, &search.snippet_fields)?;
        for key in &search.sort {
            schema
                .schema
                .sort_kind(&key.field)
                .map_err(ApiError::bad_param)?;
        }
        let plan = search
            .aggs
            .as_ref()
            .map(|a| crate::query::aggs::plan(a, &schema.schema))
            .transpose()
            .map_err(ApiError::bad_param)?;
        let mut phases = Phases {
            parse_ms: ms(start),
            ..Phases::default()
        };
        let phase_deadline = search_phase_deadline(start, search.deadline);
        if let Some(pit) = search.pit_id() {
            let mut shards: Vec<usize> = pit.entries.iter().map(|e| e.shard).collect();
            shards.sort_unstable();
            if shards != (0..self.cluster.shards.len()).collect::<Vec<_>>() {
                return Err(ApiError::bad_param(
                    "pit_id does not name one replica of every shard of this cluster",
                ));
            }
            let known = |e: &crate::query::pit_id::PitEntry| {
                self.cluster.shards[e.shard]
                    .replicas
                    .iter()
                    .any(|r| r.addr == e.replica)
            };
            if !pit.entries.iter().all(known) {
                return Err(crate::query::pit::expired(
                    "pit_id names a replica this cluster does not have: the point in time is \
                     gone (or the id was not issued here)",
                ));
            }
        }
        if let Some(pit) = search.pit.as_mut().filter(|p| p.id.is_none()) {
            let opened = crate::query::pit::open(
                &self.cluster,
                &self.hedging,
                pit.keep_alive_ms,
                phase_deadline,
            );
            pit.id = Some(opened.await?);
        }
        let mark = Instant::now();
        let stats = match search.scoring {
            Scoring::Local => None,
            Scoring::Global => {
                let terms = query_terms_wire(&*query, &schema.tantivy);
                let (stats, source) = self.stats_phase(&search, &terms, phase_deadline).await;
                phases.stats_cached = source != StatsSource::Leaves;
                phases.stats_source = Some(source.name().to_string());
                stats
            }
        };
        phases.stats_ms = ms(mark);
        let mark = Instant::now();
        // In-process nodes take this parse instead of parsing the text again.
        let parsed = std::sync::Arc::new(scatter_core::query::ParsedText {
            text: search.query.clone(),
            lenient: search.lenient,
            query,
        });
        let (mut gathered, fused) = self
            .search_phase(&search, &stats, plan.as_ref(), &parsed, phase_deadline)
            .await?;
        phases.search_ms = ms(mark);
        phases.fused_fetch = fused;
        let mark = Instant::now();
        let page = merge_top(&gathered.lists, search.from, search.size);
        phases.merge_ms = ms(mark);
        let mark = Instant::now();
        let agg_parts = std::mem::take(&mut gathered.agg_parts);
        // Later calls read the replica that answered each shard's search (only it, under a
        // point in time).
        let prefer = match search.pit_id() {
            Some(pit) => pit.pins(),
            None => gathered.answered_by(),
        };
        self.report_stale_answers(&prefer, &mut gathered);
        let rounds = crate::query::aggregate::RoundContext {
            cluster: &self.cluster,
            hedging: &self.hedging,
            search: &search,
            prefer: &prefer,
        };
        // The page's documents and the aggregations' later rounds, at the same time.
        let (fetched, aggregated) = tokio::join!(
            self.fetch_phase(&search, stats, &page, &prefer, &mut gathered),
            async {
                match &plan {
                    Some(plan) => crate::query::aggregate::aggregate(&rounds, plan, agg_parts)
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            }
        );
        let (mut fetched, mut aggregated) = (fetched?, aggregated?);
        phases.fetch_ms = ms(mark);
        if let Some(a) = aggregated.as_mut() {
            gathered.agg_failures += a.failures.len();
            gathered.failures.append(&mut a.failures);
        }
        let hits = page
            .into_iter()
            .map(|h| {
                let doc = fetched.docs.remove(&(h.shard, h.id.clone()));
                let (fields, snippets, explanation) = doc.unwrap_or_else(|| {
                    (crate::query::fetch::no_fields(), Default::default(), None)
                });
                Hit {
                    fields,
                    snippets: (!search.snippet_fields.is_empty()).then_some(snippets),
                    explanation,
                    // Ranked hits carry [score, id]: what `search_after` takes to page on.
                    sort: serde_json::value::RawValue::from_string(
                        h.sort_values
                            .unwrap_or_else(|| serde_json::json!([h.score, h.id]).to_string()),
                    )
                    .ok(),
                    id: h.id,
                    score: h.score,
                    shard: h.shard,
                }
            })
            .collect();
        phases.total_ms = ms(start);
        let profile = search.profile.then(|| Profile {
            phases,
            search: std::mem::take(&mut gathered.profiles),
            fetch: std::mem::take(&mut fetched.profiles),
            aggregations: aggregated
                .as_mut()
                .map(|a| std::mem::take(&mut a.profile))
                .unwrap_or_default(),
        });
        let mut response = self.respond(start, &search, gathered, hits)?;
        response.profile = profile;
        response.pit_id = search.pit_id().map(|p| p.encode());
        response.aggregations = aggregated.map(|a| a.results);
        Ok(response)
    }

    /// Global statistics, in at most half the search phase: a shard too slow to give
    /// statistics in time is left out of the sums rather than starving the search itself.
    async fn stats_phase(
        &self,
        search: &Search,
        terms: &crate::query::stats::Terms,
        phase_deadline: Instant,
    ) -> (Option<GlobalStats>, StatsSource) {
        let now = Instant::now();
        let stats_deadline = now + phase_deadline.saturating_duration_since(now) / 2;
        global_stats(
            &self.cluster,
            &self.hedging,
            &self.stats,
            &self.table,
            crate::query::stats::QueryText {
                text: &search.query,
                lenient: search.lenient,
                pit: search.pit_id(),
            },
            terms,
            stats_deadline,
        )
        .await
    }

    /// The scatter of `Search` calls and the gather of their answers. Query-and-fetch when
    /// the page is small: every shard returns its candidates' documents with its hits, which
    /// saves the fetch round trip at the cost of fetching `from + size` documents per shard
    /// instead of the page's. Returns whether it was used.
    async fn search_phase(
        &self,
        search: &Search,
        stats: &Option<GlobalStats>,
        plan: Option<&crate::query::aggs::AggsPlan>,
        parsed: &std::sync::Arc<scatter_core::query::ParsedText>,
        phase_deadline: Instant,
    ) -> Result<(Gathered, bool), ApiError> {
        let window = search.from + search.size;
        let fuse =
            search.size > 0 && window * self.cluster.shards.len() <= self.fuse_fetch_max_docs;
        let (snippet_pre_tag, snippet_post_tag) = search.snippet.wire_tags();
        let request = SearchRequest {
            query: search.query.clone(),
            lenient: search.lenient,
            filters: search.filters.clone(),
            k: window as u32,
            offset: 0,
            stats: stats.clone(),
            skip_total_count: search.track_total_hits == TrackTotalHits::None,
            count_up_to: match search.track_total_hits {
                // One more than asked: a shard with exactly N matches counts them exactly.
                TrackTotalHits::UpTo(n) => n.saturating_add(1),
                _ => 0,
            },
            fetch: fuse,
            snippet_fields: if fuse {
                search.snippet_fields.clone()
            } else {
                Vec::new()
            },
            snippet_max_chars: search.snippet.max_chars,
            snippet_pre_tag,
            snippet_post_tag,
            explain: search.explain,
            sort: search.sort.clone(),
            search_after_json: search.search_after.clone().unwrap_or_default(),
            shards: Vec::new(),
            aggs: plan.map(crate::query::aggregate::first_round),
            pits: search.pit_tokens(),
            pit_keep_alive_ms: search.pit.as_ref().map_or(0, |p| p.keep_alive_ms),
        };
        let all: Vec<usize> = (0..self.cluster.shards.len()).collect();
        let sent = Instant::now();
        let pins = search.pit_id().map(|p| p.pins()).unwrap_or_default();
        let outcomes = crate::cluster::fanout::scatter_with(
            &self.cluster,
            &all,
            &pins,
            search.pit.is_some(),
            phase_deadline,
            &self.hedging,
            |node, shards, budget| {
                crate::query::search::search_node(node, shards, budget, &request, Some(parsed))
            },
        )
        .await;
        Ok((self.gather(outcomes, sent)?, fuse))
    }

    /// Fetches the page's documents that query-and-fetch did not bring (normally none when
    /// it was used) and books the fetch failures into `gathered`.
    async fn fetch_phase(
        &self,
        search: &Search,
        stats: Option<GlobalStats>,
        page: &[ShardHit],
        prefer: &[(usize, String)],
        gathered: &mut Gathered,
    ) -> Result<Fetched, ApiError> {
        let options = FetchOptions {
            query: &search.query,
            lenient: search.lenient,
            snippet: &search.snippet,
            explain: search.explain,
            stats,
            snippet_fields: &search.snippet_fields,
            pit: search.pit_id(),
        };
        let mut brought = Vec::new();
        let mut missing = Vec::new();
        for hit in page {
            match gathered
                .docs
                .get_mut(hit.shard)
                .and_then(|d| d.remove(&hit.id))
            {
                Some(doc) => brought.push((hit, doc)),
                None => missing.push(hit.clone()),
            }
        }
        let fetch_sent = Instant::now();
        let mut fetched = fetch_page(
            &self.cluster,
            &self.hedging,
            &missing,
            prefer,
            search.deadline,
            &options,
        )
        .await?;
        for (hit, doc) in brought {
            // The leaf's id was moved into the map key; the hit carries the same id.
            let (_, doc) = crate::query::fetch::convert(doc);
            fetched.docs.insert((hit.shard, hit.id.clone()), doc);
        }
        let unfetched = crate::query::fetch::unfetched(page, &fetched);
        gathered.unfetched += unfetched.len();
        gathered.failures.extend(unfetched);
        gathered.timed_out |= fetched.timed_out;
        gathered.failures.append(&mut fetched.failures);
        gathered
            .failed_shards
            .extend(fetched.failed_shards.iter().copied());
        gathered.failed_shards.sort_unstable();
        gathered.failed_shards.dedup();
        for (shard, replica, generation) in fetched.generations.drain(..) {
            self.observe_generation(shard, replica.as_deref(), generation, fetch_sent);
        }
        Ok(fetched)
    }

    /// Notes that `replica` of `shard` answered at `generation`: its state (the owner of
    /// generations, which every cache consults) learns it, and a statistics table read at
    /// another generation is set aside.
    fn observe_generation(
        &self,
        shard: usize,
        replica: Option<&str>,
        generation: u64,
        as_of: Instant,
    ) {
        if let Some(r) = self.cluster.shards[shard]
            .replicas
            .iter()
            .find(|r| Some(r.addr.as_str()) == replica)
        {
            r.observe_generation(generation, as_of);
        }
        self.table.observe(shard, generation);
    }

    /// Collects the shards' ranked lists and failures; a rejected query fails the request.
    fn gather(
        &self,
        outcomes: Vec<ShardOutcome<ShardSearch>>,
        sent: Instant,
    ) -> Result<Gathered, ApiError> {
        let mut g = Gathered {
            total_exact: true,
            ..Default::default()
        };
        for mut outcome in outcomes {
            if let Ok(answer) = &outcome.result {
                let micros = answer.value.status.took_micros;
                outcome.profile.leaf_took_ms = Some(micros as f64 / 1000.0);
            }
            let replica = outcome.profile.replica.clone();
            g.profiles.push(outcome.profile);
            match outcome.result {
                Ok(answer) => {
                    let mut resp = answer.value;
                    if !resp.status.aggs.is_empty() || !resp.status.terms.is_empty() {
                        g.agg_parts.push(crate::query::aggregate::ShardAggParts {
                            shard: outcome.shard,
                            tantivy: std::mem::take(&mut resp.status.aggs),
                            terms: std::mem::take(&mut resp.status.terms),
                        });
                    }
                    let generation = resp.status.generation;
                    self.observe_generation(outcome.shard, replica.as_deref(), generation, sent);
                    if let Some(addr) = replica.as_deref() {
                        let incarnation = resp.status.unverified_incarnation;
                        self.cluster.shards[outcome.shard].note_unverified(addr, incarnation);
                    }
                    g.total_hits += resp.status.total_hits;
                    g.total_exact &= resp.status.total_hits_exact;
                    if g.docs.len() <= outcome.shard {
                        g.docs.resize_with(outcome.shard + 1, Default::default);
                    }
                    let docs = resp.docs.into_iter();
                    g.docs[outcome.shard].extend(docs.map(|mut d| (std::mem::take(&mut d.id), d)));
                    g.lists.push(
                        resp.hits
                            .into_iter()
                            .map(|h| ShardHit {
                                id: h.id,
                                score: h.score,
                                shard: outcome.shard,
                                sort_values: (!h.sort_values_json.is_empty())
                                    .then_some(h.sort_values_json),
                                sort_key: h.sort_key,
                            })
                            .collect(),
                    );
                }
                Err(ShardError::Rejected(reason)) if crate::query::pit::is_expired(&reason) => {
                    return Err(crate::query::pit::expired(reason))
                }
                Err(ShardError::Rejected(reason)) => return Err(ApiError::query_parse(reason)),
                Err(err) => {
                    if let Some(f) = outcome
                        .attempts_failed
                        .iter()
                        .find(|f| crate::query::pit::is_expired(&f.reason))
                    {
                        return Err(crate::query::pit::expired(f.reason.clone()));
                    }
                    g.timed_out |= err == ShardError::TimedOut;
                    g.failed_shards.push(outcome.shard);
                    g.failures.extend(outcome.attempts_failed);
                }
            }
        }
        Ok(g)
    }

    /// The response, or the 503/504 error when shards are missing and partial answers are
    /// refused.
    /// Names every shard whose search only a replica known to lack writes answered (no
    /// current one could): its hits may miss acknowledged writes, so the answer is partial.
    fn report_stale_answers(&self, answered: &[(usize, String)], g: &mut Gathered) {
        for (shard, addr) in answered {
            let stale = self.cluster.shards[*shard]
                .replicas
                .iter()
                .any(|r| &r.addr == addr && r.is_stale());
            if stale {
                g.stale_answers += 1;
                g.failures.push(ShardFailure {
                    shard: *shard,
                    replica: Some(addr.clone()),
                    reason: "answered by a replica that may lack recent writes (no current \
                             replica answered)"
                        .into(),
                });
            }
        }
    }

    fn respond(
        &self,
        start: Instant,
        search: &Search,
        g: Gathered,
        hits: Vec<Hit>,
    ) -> Result<SearchResponse, ApiError> {
        let total = self.cluster.shards.len();
        let partial = !g.failed_shards.is_empty()
            || g.unfetched > 0
            || g.agg_failures > 0
            || g.stale_answers > 0;
        if partial && !search.allow_partial {
            let (status, kind) = if g.timed_out {
                (StatusCode::GATEWAY_TIMEOUT, "timeout")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "shards_unavailable")
            };
            let reasons: Vec<String> = g
                .failures
                .iter()
                .map(|f| format!("shard {}: {}", f.shard, f.reason))
                .collect();
            return Err(ApiError::new(
                status,
                kind,
                format!(
                    "{} of {total} shards did not answer ({} hits without their document) and \
                     allow_partial=false: {}",
                    g.failed_shards.len(),
                    g.unfetched,
                    reasons.join("; ")
                ),
            ));
        }
        let (total_hits, relation) = total_of(search.track_total_hits, g.total_hits, g.total_exact);
        Ok(SearchResponse {
            took_ms: start.elapsed().as_millis() as u64,
            timed_out: g.timed_out,
            partial,
            total_hits,
            total_hits_relation: relation,
            shards: ShardsReport {
                total,
                successful: total - g.failed_shards.len(),
                failed: g.failed_shards.len(),
                failures: g.failures,
            },
            hits,
            profile: None,
            aggregations: None,
            pit_id: None,
        })
    }
}

/// Milliseconds since `t`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// When the search phase must end: the request's deadline less a reserve for the fetch
/// phase (a fifth of the budget, at most 200 ms), so that a shard that hangs until the search
/// deadline still leaves time to fetch the other shards' documents.
fn search_phase_deadline(start: Instant, deadline: Instant) -> Instant {
    let budget = deadline.saturating_duration_since(start);
    let reserve = (budget / 5).min(Duration::from_millis(200));
    deadline - reserve
}
