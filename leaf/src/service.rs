//! The `scatter.v1.Leaf` gRPC service: each data call takes its injected fault (if any),
//! checks its deadline, and runs its tantivy work on the blocking pool, off the async threads.
//! Work whose caller has gone away (cancelled call) or whose deadline has passed while it
//! waited for a blocking thread is skipped instead of computed for nobody.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scatter_proto::v1::{
    FaultSettings, FetchRequest, FetchResponse, InfoRequest, InfoResponse, IngestRequest,
    IngestResponse, RepairRequest, RepairResponse, SearchRequest, SearchResponse, SnapshotChunk,
    SnapshotRequest, TermDictionaryChunk, TermDictionaryRequest, TermStatsRequest,
    TermStatsResponse,
};
use scatter_proto::Leaf;
use tokio::sync::mpsc::Sender;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::faults::{Fault, Faults};
use crate::live::LiveShard;
use crate::shard::{Shard, ShardError};
use crate::snapshot::Snapshot;

/// Most ids one `Fetch` call may ask for.
pub const MAX_FETCH_IDS: usize = 10_000;

/// gRPC front of one shard.
#[derive(Clone)]
pub struct LeafService {
    shard: Arc<LiveShard>,
    faults: Arc<Faults>,
    metrics: Arc<CallMetrics>,
}

impl LeafService {
    /// Serves `shard`, with `faults` injected into data calls.
    pub fn new(shard: Arc<LiveShard>, faults: Arc<Faults>) -> Self {
        let metrics = Arc::new(CallMetrics::new(shard.shard().meta().shard));
        LeafService {
            shard,
            faults,
            metrics,
        }
    }

    /// Applies the injected fault of one data call, if any.
    async fn fault(&self) -> Result<(), Status> {
        match self.faults.draw() {
            Fault::Error => return Err(Status::unavailable("injected fault")),
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::None => {}
        }
        Ok(())
    }

    /// Runs one data call: fault, deadline, then `work` on the blocking pool.
    async fn data_call<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        work: impl FnOnce(&Shard) -> Result<T, ShardError> + Send + 'static,
    ) -> Result<Response<T>, Status> {
        self.fault().await?;
        let expired = |d: Option<Instant>| d.is_some_and(|d| Instant::now() >= d);
        if expired(deadline) {
            return Err(Status::deadline_exceeded(
                "deadline passed before the work started",
            ));
        }
        // Set when this future is dropped: the caller cancelled or went away.
        let gone = Arc::new(AtomicBool::new(false));
        let _guard = SetOnDrop(gone.clone());
        let shard = self.shard.shard();
        let task = tokio::task::spawn_blocking(move || {
            if gone.load(Ordering::Relaxed) || expired(deadline) {
                return Err(ShardError::Skipped);
            }
            work(&shard)
        });
        let r = match task.await {
            Ok(Ok(v)) => Ok(Response::new(v)),
            Ok(Err(e)) => Err(status_of(e)),
            Err(join) => Err(Status::internal(format!("leaf task failed: {join}"))),
        };
        if let Err(s) = &r {
            tracing::info!(code = ?s.code(), "call failed: {}", s.message());
        }
        r
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

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
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
    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let shard = self.shard.shard();
        match tokio::task::spawn_blocking(move || shard.info()).await {
            Ok(info) => {
                metrics::gauge!("scatter_leaf_docs", "shard" => info.shard_id.to_string())
                    .set(info.num_docs as f64);
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
        let r = async {
            let deadline = deadline_of(&request);
            let req = request.into_inner();
            self.data_call(deadline, move |shard| shard.search(&req))
                .await
        }
        .instrument(span)
        .await;
        self.metrics.observe(0, start, &r);
        r
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let start = Instant::now();
        let span = call_span("fetch", &request);
        let r = async {
            let deadline = deadline_of(&request);
            let req = request.into_inner();
            if req.ids.len() > MAX_FETCH_IDS {
                return Err(Status::invalid_argument(format!(
                    "{} ids asked; at most {MAX_FETCH_IDS} per call",
                    req.ids.len()
                )));
            }
            self.data_call(deadline, move |shard| shard.fetch(&req))
                .await
        }
        .instrument(span)
        .await;
        self.metrics.observe(1, start, &r);
        r
    }

    async fn term_stats(
        &self,
        request: Request<TermStatsRequest>,
    ) -> Result<Response<TermStatsResponse>, Status> {
        let start = Instant::now();
        let r = async {
            // Term statistics are dictionary lookups, cheaper than a hop to the blocking pool:
            // answered on the async thread (after any injected fault).
            self.fault().await?;
            match self.shard.shard().term_stats(&request.into_inner().query) {
                Ok(v) => Ok(Response::new(v)),
                Err(e) => Err(status_of(e)),
            }
        }
        .await;
        self.metrics.observe(2, start, &r);
        r
    }

    type TermDictionaryStream = ReceiverStream<Result<TermDictionaryChunk, Status>>;

    async fn term_dictionary(
        &self,
        request: Request<TermDictionaryRequest>,
    ) -> Result<Response<Self::TermDictionaryStream>, Status> {
        let shard = self.shard.shard();
        let max_terms = request.into_inner().max_terms;
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
        let (upserts, deletes) = (req.upserts.len(), req.deletes.len());
        let r = self
            .shard
            .ingest(req)
            .instrument(span.clone())
            .await
            .map(Response::new)
            .map_err(Status::unavailable);
        if let Err(s) = &r {
            span.in_scope(|| tracing::warn!("ingest failed: {}", s.message()));
        }
        if let Ok(resp) = &r {
            let refused = resp.get_ref().errors.len();
            self.metrics.upserted.increment((upserts - refused) as u64);
            self.metrics.deleted.increment(deletes as u64);
        }
        self.metrics.observe(3, start, &r);
        r
    }

    type SnapshotStream = ReceiverStream<Result<SnapshotChunk, Status>>;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let shard = self.shard.shard();
        let have = request.into_inner().have;
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
        tracing::warn!(source = %req.source, swap = req.swap, "repairing from a peer");
        match crate::repair::repair(&self.shard, &req).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => Err(Status::unavailable(format!("repair failed: {e:#}"))),
        }
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
