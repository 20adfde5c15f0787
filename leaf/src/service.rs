//! The `scatter.v1.Leaf` gRPC service of a node: each data call takes its injected fault (if
//! any), checks its deadline, and runs its tantivy work on the blocking pool, off the async
//! threads, over the shards it names (in parallel, as many at once as there are cores).
//! Work whose caller has gone away (cancelled call) or whose deadline has passed while it
//! waited for a blocking thread is skipped instead of computed for nobody.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scatter_core::query::ParsedText;
use scatter_proto::v1::{
    ClosePitRequest, ClosePitResponse, FaultSettings, FetchRequest, FetchResponse, InfoRequest,
    InfoResponse, IngestRequest, IngestResponse, RepairRequest, RepairResponse, SearchRequest,
    SearchResponse, ShardStatus, ShardTermStats, SnapshotChunk, SnapshotRequest, SourcesRequest,
    SourcesResponse, TermDictionaryChunk, TermDictionaryRequest, TermStatsRequest,
    TermStatsResponse, VersionsChunk, VersionsRequest,
};
use scatter_proto::Leaf;
use tokio::sync::mpsc::Sender;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::data_calls::PerShard;
use crate::data_calls::{watched, DataCalls, Spread};
use crate::error::ShardError;
use crate::faults::Faults;
use crate::node::{failed_status, fetch_kept, merge_search, split_located, ShardSet};
use crate::plan::spread_of;
use crate::plan::SearchPlan;
use crate::shard::Shard;
use crate::snapshot::Snapshot;
use crate::writer::WriteError;

pub use scatter_core::limits::MAX_FETCH_IDS;

/// gRPC front of a node's shards.
#[derive(Clone)]
pub struct LeafService {
    node: Arc<ShardSet>,
    faults: Arc<Faults>,
    metrics: Arc<HashMap<u32, CallMetrics>>,
    /// Admission, faults, deadlines and the blocking pool of data calls.
    calls: DataCalls,
}

impl LeafService {
    /// Serves the shards of `node`, with `faults` injected into data calls.
    pub fn new(node: Arc<ShardSet>, faults: Arc<Faults>) -> Self {
        let metrics = node.ids().into_iter().map(|id| (id, CallMetrics::new(id)));
        LeafService {
            metrics: Arc::new(metrics.collect()),
            node,
            calls: DataCalls::new(faults.clone()),
            faults,
        }
    }

    /// Counts one call of method `m` on each shard it covered.
    fn observe<T>(&self, m: usize, shards: &[u32], start: Instant, r: &Result<T, Status>) {
        for id in shards {
            if let Some(metrics) = self.metrics.get(id) {
                metrics.observe(m, start, r);
            }
        }
    }

    /// Applies the injected fault of one data call, if any.
    async fn fault(&self) -> Result<(), Status> {
        self.calls.fault().await
    }
}

/// The call's result when every shard failed alike: a bad request or a passed deadline is
/// the call's failure, not a per-shard one.
fn whole_call_error<T>(parts: &PerShard<T>) -> Option<Status> {
    let mut errors = parts.iter().map(|(_, r)| r.as_ref().err());
    match errors.next().flatten()? {
        ShardError::InvalidArgument(m) => Some(Status::invalid_argument(m.clone())),
        ShardError::Skipped if errors.all(|e| matches!(e, Some(ShardError::Skipped))) => {
            Some(Status::deadline_exceeded("deadline passed"))
        }
        _ => None,
    }
}

/// Logs a failed call.
fn log_failure<T>(r: &Result<T, Status>) {
    if let Err(s) = r {
        tracing::info!(code = ?s.code(), "call failed: {}", s.message());
    }
}

/// A response stream fed from the blocking pool: `produce` sends items through the channel
/// it is given; the error it returns, if any, ends the stream.
fn blocking_stream<T: Send + 'static>(
    produce: impl FnOnce(&Sender<Result<T, Status>>) -> Result<(), Status> + Send + 'static,
) -> ReceiverStream<Result<T, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        if let Err(status) = produce(&tx) {
            let _ = tx.blocking_send(Err(status));
        }
    });
    ReceiverStream::new(rx)
}

/// The gRPC status of a failed shard operation.
fn status_of(e: ShardError) -> Status {
    match e {
        ShardError::InvalidArgument(m) => Status::invalid_argument(m),
        ShardError::Skipped => Status::deadline_exceeded("deadline passed"),
        e => Status::internal(e.to_string()),
    }
}

/// A span for one call, carrying the root's request id (`x-request-id` metadata).
fn call_span<T>(method: &'static str, request: &Request<T>) -> tracing::Span {
    let id = request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("call", method, request_id = id)
}

/// The deadline a caller sent as the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub fn deadline_of<T>(request: &Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(timeout)
}

/// The data methods, in [`CallMetrics`] order.
const METHODS: [&str; 4] = ["search", "fetch", "term_stats", "ingest"];
/// Call outcomes, in [`CallMetrics`] order.
const OUTCOMES: [&str; 4] = ["ok", "skipped", "rejected", "error"];

/// Metric handles of one leaf's data calls, registered once (no per-call label sets).
struct CallMetrics {
    calls: Vec<metrics::Counter>,
    latency: Vec<metrics::Histogram>,
    upserted: metrics::Counter,
    deleted: metrics::Counter,
}

impl CallMetrics {
    fn new(shard: u32) -> Self {
        let shard = shard.to_string();
        let mut calls = Vec::new();
        for method in METHODS {
            for outcome in OUTCOMES {
                calls.push(metrics::counter!("scatter_leaf_calls_total",
                    "shard" => shard.clone(), "method" => method, "outcome" => outcome));
            }
        }
        let latency = METHODS
            .iter()
            .map(|m| {
                metrics::histogram!("scatter_leaf_call_duration_seconds",
                    "shard" => shard.clone(), "method" => *m)
            })
            .collect();
        let ingested = |op: &'static str| metrics::counter!("scatter_leaf_ingested_docs_total", "shard" => shard.clone(), "op" => op);
        CallMetrics {
            calls,
            latency,
            upserted: ingested("upsert"),
            deleted: ingested("delete"),
        }
    }

    /// Counts one call of method `m` (index in [`METHODS`]) and its latency.
    fn observe<T>(&self, m: usize, start: Instant, r: &Result<T, Status>) {
        let outcome = match r {
            Ok(_) => 0,
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => 1,
            Err(s) if s.code() == tonic::Code::InvalidArgument => 2,
            Err(_) => 3,
        };
        self.calls[m * OUTCOMES.len() + outcome].increment(1);
        self.latency[m].record(start.elapsed().as_secs_f64());
    }
}

#[tonic::async_trait]
impl Leaf for LeafService {
    async fn info(&self, request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        // Without a shard, a node of several describes its first one: `node_shards` says
        // what it serves (how a root given `--node` learns the layout).
        let asked = request.into_inner().shard;
        let node_shards = self.node.ids();
        let shard = self
            .node
            .get(asked.or(node_shards.first().copied()))?
            .shard();
        match tokio::task::spawn_blocking(move || shard.info()).await {
            Ok(mut info) => {
                metrics::gauge!("scatter_leaf_docs", "shard" => info.shard_id.to_string())
                    .set(info.num_docs as f64);
                info.node_shards = node_shards;
                Ok(Response::new(info))
            }
            Err(e) => Err(Status::internal(format!("leaf task failed: {e}"))),
        }
    }

    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let start = Instant::now();
        let span = call_span("search", &request);
        let deadline = deadline_of(&request);
        // An in-process root's parse of the text (extensions never come off the wire).
        let parsed = request.extensions().get::<Arc<ParsedText>>().cloned();
        let req = Arc::new(request.into_inner());
        let targets = self.node.select(&req.shards);
        let ids: Vec<u32> = targets.iter().map(|(id, _)| *id).collect();
        let r = async {
            let window = req.k as usize + req.offset as usize;
            // Prepared once for every shard (they share the schema), on this thread.
            let any = self.node.any();
            let plan = SearchPlan::new(any.parser(), any.schema(), req.clone(), parsed.as_deref());
            let plan = plan.map_err(status_of)?;
            let plan = Arc::new(plan);
            let asked = plan.clone();
            let spread = spread_of(req.aggs.is_some(), plan.postings(targets.len(), &any));
            let parts = self
                .calls
                .run(deadline, targets.clone(), spread, move |shard| {
                    shard.search_located(&asked)
                })
                .await?;
            if let Some(status) = whole_call_error(&parts) {
                return Err(status);
            }
            let (parts, located) = split_located(parts);
            let mut merged = merge_search(parts, window).map_err(status_of)?;
            if req.fetch {
                let _ = watched(deadline, None, || {
                    fetch_kept(&mut merged, &plan, &targets, &located);
                    Ok(())
                });
            }
            self.node.note_unverified(&mut merged.shards);
            Ok(Response::new(merged))
        }
        .instrument(span)
        .await;
        log_failure(&r);
        self.observe(0, &ids, start, &r);
        r
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let start = Instant::now();
        let span = call_span("fetch", &request);
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let by_shard = fetch_targets(&self.node, &req)?;
        let ids: Vec<u32> = by_shard.iter().map(|(id, ..)| *id).collect();
        let r = async {
            let targets = by_shard
                .iter()
                .map(|(id, shard, _)| (*id, shard.clone()))
                .collect();
            // Per shard: the request's options with that shard's ids (not a copy of all ids).
            let options = FetchRequest {
                ids: Vec::new(),
                id_shards: Vec::new(),
                ..req
            };
            let asked: HashMap<u32, FetchRequest> = by_shard
                .into_iter()
                .map(|(id, _, ids)| {
                    (
                        id,
                        FetchRequest {
                            ids,
                            ..options.clone()
                        },
                    )
                })
                .collect();
            let parts = self
                .calls
                .run(deadline, targets, Spread::Parallel, move |shard| {
                    shard.fetch(&asked[&shard.meta().shard])
                })
                .await?;
            if let Some(status) = whole_call_error(&parts) {
                return Err(status);
            }
            let mut out = FetchResponse::default();
            for (id, part) in parts {
                match part {
                    Ok(mut r) => {
                        out.generation = r.generation;
                        out.docs.append(&mut r.docs);
                        out.shards.push(ShardStatus {
                            shard: id,
                            generation: r.generation,
                            ..Default::default()
                        });
                    }
                    Err(e) => out.shards.push(failed_status(id, &e)),
                }
            }
            self.node.note_unverified(&mut out.shards);
            Ok(Response::new(out))
        }
        .instrument(span)
        .await;
        log_failure(&r);
        self.observe(1, &ids, start, &r);
        r
    }

    async fn term_stats(
        &self,
        request: Request<TermStatsRequest>,
    ) -> Result<Response<TermStatsResponse>, Status> {
        let start = Instant::now();
        let req = request.into_inner();
        let targets = self.node.select(&req.shards);
        let ids: Vec<u32> = targets.iter().map(|(id, _)| *id).collect();
        let r = async {
            // Term statistics are dictionary lookups, cheaper than a hop to the blocking pool:
            // answered on the async thread (after any injected fault), the query parsed once.
            self.fault().await?;
            let query = self
                .node
                .any()
                .parse_in(&req.query, req.lenient)
                .map_err(status_of)?;
            let mut out = TermStatsResponse::default();
            for (id, shard) in targets {
                let r = shard.ok_or(ShardError::NotServed(id));
                match r.and_then(|s| s.term_stats_query(&*query, &req.pits)) {
                    Ok((stats, generation)) => {
                        out.shards.push(ShardTermStats {
                            shard: id,
                            stats: Some(stats),
                            generation,
                            error: String::new(),
                        });
                    }
                    Err(e) => out.shards.push(ShardTermStats {
                        shard: id,
                        error: e.to_string(),
                        ..Default::default()
                    }),
                }
            }
            Ok(Response::new(out))
        }
        .await;
        self.observe(2, &ids, start, &r);
        r
    }

    type TermDictionaryStream = ReceiverStream<Result<TermDictionaryChunk, Status>>;

    async fn term_dictionary(
        &self,
        request: Request<TermDictionaryRequest>,
    ) -> Result<Response<Self::TermDictionaryStream>, Status> {
        let req = request.into_inner();
        let shard = self.node.get(req.shard)?.shard();
        let max_terms = req.max_terms;
        Ok(Response::new(blocking_stream(move |tx| {
            crate::dictionary::stream(&shard, max_terms, |chunk| {
                tx.blocking_send(Ok(chunk)).is_ok()
            })
            .inspect_err(|s| tracing::info!("term dictionary not sent: {}", s.message()))
        })))
    }

    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let start = Instant::now();
        let span = call_span("ingest", &request);
        let req = request.into_inner();
        let live = self.node.get(req.shard)?;
        let id = live.shard().meta().shard;
        let (upserts, deletes) = (req.upserts.len(), req.deletes.len());
        let r = live
            .ingest(req)
            .instrument(span.clone())
            .await
            .map(Response::new)
            .map_err(|e| match e {
                WriteError::Invalid(m) => Status::invalid_argument(m),
                WriteError::Overloaded(m) => Status::resource_exhausted(m),
                WriteError::Failed(m) => Status::unavailable(m),
            });
        if let Err(s) = &r {
            span.in_scope(|| tracing::warn!("ingest failed: {}", s.message()));
        }
        if let (Ok(resp), Some(metrics)) = (&r, self.metrics.get(&id)) {
            let refused = resp.get_ref().errors.len();
            metrics.upserted.increment((upserts - refused) as u64);
            metrics.deleted.increment(deletes as u64);
        }
        self.observe(3, &[id], start, &r);
        r
    }

    type SnapshotStream = ReceiverStream<Result<SnapshotChunk, Status>>;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let req = request.into_inner();
        let shard = self.node.get(req.shard)?.shard();
        let have = req.have;
        Ok(Response::new(blocking_stream(move |tx| {
            Snapshot::take(&shard)
                .and_then(|s| s.stream(&have, tx))
                .map_err(|e| {
                    tracing::warn!("snapshot failed: {e:#}");
                    Status::internal(format!("snapshot: {e:#}"))
                })
        })))
    }

    async fn repair(
        &self,
        request: Request<RepairRequest>,
    ) -> Result<Response<RepairResponse>, Status> {
        let req = request.into_inner();
        let live = self.node.get(req.shard)?.clone();
        tracing::warn!(source = %req.source, swap = req.swap, merge = req.merge, shard = ?req.shard, "repairing from a peer");
        // A repair runs to its end even when its caller vanishes (a root dying mid-swap):
        // dropping this call must never leave the shard half switched.
        let done = tokio::spawn(async move {
            if req.merge {
                crate::merge::merge(&live, &req).await
            } else {
                crate::repair::repair(&live, &req).await
            }
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("repair task failed: {e}")));
        match done {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => Err(Status::unavailable(format!("repair failed: {e:#}"))),
        }
    }

    type VersionsStream = ReceiverStream<Result<VersionsChunk, Status>>;

    async fn versions(
        &self,
        request: Request<VersionsRequest>,
    ) -> Result<Response<Self::VersionsStream>, Status> {
        let req = request.into_inner();
        let shard = self.node.get(req.shard)?.shard();
        Ok(Response::new(blocking_stream(move |tx| {
            crate::merge::stream_versions(&shard, req.documents, tx)
        })))
    }

    async fn sources(
        &self,
        request: Request<SourcesRequest>,
    ) -> Result<Response<SourcesResponse>, Status> {
        let req = request.into_inner();
        let shard = self.node.get(req.shard)?.shard();
        let limit = scatter_core::limits::MAX_MESSAGE_BYTES / 2;
        let read = tokio::task::spawn_blocking(move || shard.versions().sources(&req.ids, limit));
        match read.await {
            Ok(Ok((entries, consumed))) => Ok(Response::new(SourcesResponse {
                entries,
                consumed: consumed as u32,
            })),
            Ok(Err(e)) => Err(Status::internal(format!("reading sources: {e:#}"))),
            Err(e) => Err(Status::internal(format!("leaf task failed: {e}"))),
        }
    }

    async fn close_pit(
        &self,
        request: Request<ClosePitRequest>,
    ) -> Result<Response<ClosePitResponse>, Status> {
        let req = request.into_inner();
        let mut freed = 0;
        for (shard, token) in req.pits {
            if let Ok(live) = self.node.get(Some(shard)) {
                freed += live.shard().pits().close(token) as u32;
            }
        }
        Ok(Response::new(ClosePitResponse { freed }))
    }

    async fn set_faults(
        &self,
        request: Request<FaultSettings>,
    ) -> Result<Response<FaultSettings>, Status> {
        let settings = self.faults.set(request.get_ref());
        tracing::warn!(?settings, "fault injection settings");
        Ok(Response::new(settings))
    }
}

/// A shard's part of a fetch: its id, the shard if served here, its ids.
type FetchTarget = (u32, Option<Arc<Shard>>, Vec<String>);

/// A fetch's ids grouped by shard.
fn fetch_targets(node: &ShardSet, req: &FetchRequest) -> Result<Vec<FetchTarget>, Status> {
    if req.ids.len() > MAX_FETCH_IDS {
        return Err(Status::invalid_argument(format!(
            "{} ids asked; at most {MAX_FETCH_IDS} per call",
            req.ids.len()
        )));
    }
    if req.id_shards.is_empty() {
        let shard = node.get(None)?.shard();
        return Ok(vec![(shard.meta().shard, Some(shard), req.ids.clone())]);
    }
    if req.id_shards.len() != req.ids.len() {
        return Err(Status::invalid_argument(
            "id_shards must give one shard per id",
        ));
    }
    let mut by_shard: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for (id, shard) in req.ids.iter().zip(&req.id_shards) {
        by_shard.entry(*shard).or_default().push(id.clone());
    }
    Ok(by_shard
        .into_iter()
        .map(|(shard, ids)| {
            let open = node.select(&[shard]).pop().and_then(|(_, s)| s);
            (shard, open, ids)
        })
        .collect())
}
