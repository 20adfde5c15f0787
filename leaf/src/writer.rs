//! The shard's writer: one thread owns the tantivy `IndexWriter` and applies ingest calls
//! with **group commit** — every call queued while a commit runs shares the next commit —
//! and answers a call only after the commit that holds its changes is durable (tantivy
//! fsyncs segment files and `meta.json` on commit) and searchable (the reader is reloaded).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use scatter_core::document::DocConverter;
use scatter_core::Router;
use scatter_proto::v1::{IngestError, IngestRequest, IngestResponse, Superseded};
use tantivy::{IndexWriter, TantivyDocument, Term};
use tokio::sync::oneshot;

use crate::commit::CommitPayload;
use crate::compaction;
use crate::shard::{generation, Shard};
use crate::versions::{Stamp, VersionLog};

/// Indexing memory of the live writer (one indexing thread).
pub const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Most calls one commit takes from the queue.
pub const MAX_GROUP: usize = 1024;

/// Why an ingest call was not committed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The request is malformed (a write without a version, mismatched lists).
    #[error("{0}")]
    Invalid(String),
    /// The writer's queue is full: try again later.
    #[error("{0}")]
    Overloaded(String),
    /// The writer or its commit failed: nothing of the call is committed.
    #[error("{0}")]
    Failed(String),
}

/// One ingest call waiting for its commit.
struct Job {
    req: IngestRequest,
    bytes: usize,
    reply: oneshot::Sender<Result<IngestResponse, String>>,
}

/// Handle of the writer thread; dropping the last sender stops it.
pub struct ShardWriter {
    tx: Option<mpsc::Sender<Job>>,
    queued: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// A cheap handle to submit calls to a running writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
}

impl ShardWriter {
    /// Opens the index for writing (takes tantivy's writer lock) and starts the thread;
    /// tombstones older than `tombstone_retention` are compacted away (see
    /// [`crate::compaction`]).
    pub fn start(shard: Arc<Shard>, tombstone_retention: Duration) -> anyhow::Result<Self> {
        let writer: IndexWriter = shard
            .index()
            .writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        let meta = shard.meta();
        let converter = DocConverter::new(&meta.schema, &shard.index().schema());
        let router = Router::new(meta.routing.clone())?;
        let committed = CommitPayload::parse(shard.index().load_metas()?.payload.as_deref());
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let name = format!("shard-{}-writer", meta.shard);
        let thread = std::thread::Builder::new().name(name).spawn({
            let queued = queued.clone();
            move || {
                WriterLoop {
                    shard,
                    writer,
                    converter,
                    router,
                    committed,
                    queued,
                    tombstone_retention,
                    last_scan: Instant::now(),
                    compaction_retry_at: None,
                }
                .run(rx)
            }
        })?;
        Ok(ShardWriter {
            tx: Some(tx),
            queued,
            thread: Some(thread),
        })
    }

    /// A handle to submit calls with.
    pub fn handle(&self) -> WriterHandle {
        WriterHandle {
            tx: self.tx.clone().expect("running writer"),
            queued: self.queued.clone(),
        }
    }

    /// Stops the thread after the calls already queued (releases the writer lock).
    pub fn stop(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl WriterHandle {
    /// Queues `req` (unless `limit` bytes are queued already) and waits until its commit is
    /// durable and searchable.
    pub async fn submit(
        &self,
        req: IngestRequest,
        limit: usize,
    ) -> Result<IngestResponse, WriteError> {
        validate(&req)?;
        let bytes = request_bytes(&req);
        let before = self.queued.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > limit {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            return Err(WriteError::Overloaded(format!(
                "write queue full: {before} bytes waiting (limit {limit})"
            )));
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job { req, bytes, reply }).is_err() {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            return Err(WriteError::Failed("writer stopped".to_string()));
        }
        rx.await
            .unwrap_or_else(|_| Err("writer stopped before the commit".to_string()))
            .map_err(WriteError::Failed)
    }
}

/// Checks what the writer assumes: every write carries a version.
fn validate(req: &IngestRequest) -> Result<(), WriteError> {
    if req.delete_versions.len() != req.deletes.len() {
        return Err(WriteError::Invalid(format!(
            "{} deletes but {} delete versions",
            req.deletes.len(),
            req.delete_versions.len()
        )));
    }
    let unversioned =
        req.upserts.iter().any(|d| d.version == 0) || req.delete_versions.contains(&0);
    if unversioned {
        return Err(WriteError::Invalid(
            "every write needs a version >= 1 (assigned by the root)".to_string(),
        ));
    }
    let versions = req.upserts.iter().map(|d| d.version);
    let newest = versions.chain(req.delete_versions.iter().copied()).max();
    if let Some(ahead) = newest.and_then(scatter_core::clock::ahead_beyond_bound) {
        metrics::counter!("scatter_leaf_versions_from_the_future_total").increment(1);
        return Err(WriteError::Invalid(format!(
            "a write's version is {} ms ahead of this leaf's clock (at most {} ms): the \
             writing root's clock is wrong, or the version was forged; nothing was written",
            ahead / 1000,
            scatter_core::clock::MAX_CLOCK_OFFSET_MICROS / 1000
        )));
    }
    Ok(())
}

/// Bytes a queued call holds.
fn request_bytes(req: &IngestRequest) -> usize {
    let docs: usize = req.upserts.iter().map(|d| d.id.len() + d.json.len()).sum();
    let deletes: usize = req.deletes.iter().map(|d| d.len() + 8).sum();
    docs + deletes + 64
}

/// State of the writer thread.
struct WriterLoop {
    shard: Arc<Shard>,
    writer: IndexWriter,
    converter: DocConverter,
    router: Router,
    /// The payload of the last commit.
    committed: CommitPayload,
    queued: Arc<AtomicUsize>,
    tombstone_retention: Duration,
    /// When expired tombstones were last looked for.
    last_scan: Instant,
    /// After a compaction failed to write its file (a full disk): not before then again.
    compaction_retry_at: Option<Instant>,
}

impl WriterLoop {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            let first = match rx.recv_timeout(self.scan_interval()) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.maybe_compact();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit_group(jobs);
            self.maybe_compact();
        }
        if let Err(e) = self.writer.wait_merging_threads() {
            tracing::warn!("writer stopped with merge error: {e}");
        }
    }

    /// Applies every job, commits once, answers every job.
    fn commit_group(&mut self, jobs: Vec<Job>) {
        let queued: usize = jobs.iter().map(|j| j.bytes).sum();
        if let Some(failure) = self.shard.write_failure() {
            let reason = format!("this replica stopped taking writes: {failure}; restart it");
            for job in jobs {
                let _ = job.reply.send(Err(reason.clone()));
            }
            self.queued.fetch_sub(queued, Ordering::AcqRel);
            return;
        }
        let shard = self.shard.clone();
        let searcher = shard.searcher();
        let mut log = shard.versions();
        let mut ops = self.committed.ops;
        let mut responses: Vec<IngestResponse> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let (resp, applied) = self.apply(&searcher, &mut log, &job.req);
            ops += applied;
            responses.push(resp);
        }
        let start = Instant::now();
        let committed = self.commit(&mut log, ops);
        let took = start.elapsed();
        metrics::histogram!("scatter_leaf_commit_duration_seconds").record(took.as_secs_f64());
        match committed {
            Ok(()) => {
                let max_version = log.max_version();
                self.shard.note_committed_log(&log);
                drop(log);
                self.shard.set_ops(ops);
                let generation = generation(&self.shard.searcher());
                let group = jobs.len() as u32;
                for (job, mut resp) in jobs.into_iter().zip(responses) {
                    resp.generation = generation;
                    resp.ops = ops;
                    resp.max_version = max_version;
                    resp.commit_micros = took.as_micros() as u64;
                    resp.commit_group = group;
                    let _ = job.reply.send(Ok(resp));
                }
            }
            Err(e) => {
                // Fail-stop: after a failed commit or fsync nothing in memory can be trusted
                // to match the disk (the index may have committed while the log did not, or
                // the reverse), so no rollback and no retry: writes stop until a restart,
                // which recovers from the disk (the log is cut to what the last commit
                // recorded, or kept whole when the index committed it).
                tracing::error!(
                    shard = self.shard.meta().shard,
                    "commit failed, writes stop: {e:#}"
                );
                metrics::counter!("scatter_leaf_commit_failures_total").increment(1);
                self.shard.fail_writes(format!("a commit failed: {e:#}"));
                drop(log);
                for job in jobs {
                    let _ = job.reply.send(Err(format!("commit failed: {e:#}")));
                }
            }
        }
        self.queued.fetch_sub(queued, Ordering::AcqRel);
    }

    /// Adds one call's changes to the writer and the version log; returns its response
    /// (errors, deletes found, superseded writes) and the number of operations applied.
    fn apply(
        &self,
        searcher: &tantivy::Searcher,
        log: &mut VersionLog,
        req: &IngestRequest,
    ) -> (IngestResponse, u64) {
        let mut resp = IngestResponse::default();
        let mut applied = 0;
        let id_field = self.converter.id_field();
        for (i, up) in req.upserts.iter().enumerate() {
            let doc = match self.prepare(&up.id, &up.json) {
                Ok(doc) => doc,
                Err(reason) => {
                    resp.errors.push(error(i, reason));
                    continue;
                }
            };
            let stamp = Stamp::upsert(up.version, &up.json);
            if !newer(log, &up.id, stamp, i, &mut resp) {
                continue;
            }
            self.writer
                .delete_term(Term::from_field_text(id_field, &up.id));
            if let Err(e) = self.writer.add_document(doc) {
                resp.errors.push(error(i, format!("indexing failed: {e}")));
                continue;
            }
            log.record_write(&up.id, stamp, Some(&up.json));
            applied += 1;
        }
        for (j, (id, &version)) in req.deletes.iter().zip(&req.delete_versions).enumerate() {
            let found = match log.get(id) {
                Some(e) => !e.deleted,
                None => matches!(self.shard.find(searcher, id), Ok(Some(_))),
            };
            resp.deletes_found.push(found);
            let stamp = Stamp::delete(version);
            if !newer(log, id, stamp, req.upserts.len() + j, &mut resp) {
                continue;
            }
            self.writer.delete_term(Term::from_field_text(id_field, id));
            log.record_write(id, stamp, None);
            applied += 1;
        }
        for peer in &req.mark_behind {
            log.mark_behind(peer);
        }
        for mark in &req.clear_behind {
            if mark.replica_id == self.shard.replica_id() {
                self.shard.confirm_history(mark.position);
            } else {
                log.clear_behind(&mark.replica_id, mark.position);
            }
        }
        (resp, applied)
    }

    /// Converts one document and checks that it belongs to this shard.
    fn prepare(&self, id: &str, json: &str) -> Result<TantivyDocument, String> {
        let converted = self
            .converter
            .convert_str(json)
            .map_err(|e| e.to_string())?;
        if converted.id != id {
            return Err(format!(
                "id {:?} in the document differs from the request's {id:?}",
                converted.id
            ));
        }
        let owner = self.router.shard_for(id);
        let me = self.shard.meta().shard;
        if owner != me {
            return Err(format!("id {id:?} routes to shard {owner}, not {me}"));
        }
        Ok(converted.doc)
    }

    /// Makes the version log's records durable, commits with the operation count and the
    /// log's length as payload, then reloads the reader.
    fn commit(&mut self, log: &mut VersionLog, ops: u64) -> anyhow::Result<()> {
        let payload = CommitPayload {
            ops,
            versions_len: log.flush()?,
            versions_gen: log.generation(),
        };
        injected_commit_pause();
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload.to_json());
        prepared.commit()?;
        // tantivy fsyncs the directory before renaming meta.json into place, not after:
        // without this, a crash after the answer could lose the rename, hence the commit.
        injected_fsync_failure()?;
        std::fs::File::open(self.shard.path())?.sync_all()?;
        self.committed = payload;
        self.shard.reload()?;
        Ok(())
    }
}

impl WriterLoop {
    /// Rewrites the version log into its next generation when it is due (see
    /// [`crate::compaction`]). Writing the new file may fail harmlessly (the old generation
    /// stays authoritative); a failed commit naming it stops writes, as any failed commit.
    fn maybe_compact(&mut self) {
        let backing_off = self.compaction_retry_at.is_some_and(|t| Instant::now() < t);
        if self.shard.write_failure().is_some() || backing_off {
            return;
        }
        let shard = self.shard.clone();
        let mut log = shard.versions();
        let expired = if self.last_scan.elapsed() >= self.scan_interval() {
            self.last_scan = Instant::now();
            let now = scatter_core::clock::now_micros();
            compaction::expired_tombstones(&log, now, self.tombstone_retention)
        } else {
            Vec::new()
        };
        if expired.is_empty() && !compaction::garbage_due(&log) {
            return;
        }
        let before = log.file_len();
        let drop: std::collections::HashSet<String> = expired.into_iter().collect();
        let (gen, len) = match compaction::write_next_generation(&log, shard.path(), &drop) {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(
                    shard = shard.meta().shard,
                    "version log compaction skipped: {e:#}"
                );
                return;
            }
        };
        let payload = CommitPayload {
            versions_len: len,
            versions_gen: gen,
            ..self.committed
        };
        let reopened = self
            .commit_payload(&payload)
            .and_then(|()| VersionLog::open(shard.path(), len, gen));
        match reopened {
            Ok(next) => {
                *log = next;
                self.shard.note_committed_log(&log);
                self.committed = payload;
                metrics::counter!("scatter_leaf_version_log_compactions_total").increment(1);
                tracing::info!(
                    shard = shard.meta().shard,
                    gen,
                    before,
                    after = len,
                    tombstones_dropped = drop.len(),
                    "version log compacted"
                );
            }
            Err(e) => {
                tracing::error!(
                    shard = shard.meta().shard,
                    "compaction commit failed, writes stop: {e:#}"
                );
                shard.fail_writes(format!("a compaction commit failed: {e:#}"));
            }
        }
    }

    /// How often expired tombstones are looked for: every
    /// [`compaction::TOMBSTONE_SCAN_INTERVAL`], or the retention when shorter (≥ 1 s).
    fn scan_interval(&self) -> Duration {
        let retention = self.tombstone_retention.max(Duration::from_secs(1));
        compaction::TOMBSTONE_SCAN_INTERVAL.min(retention)
    }

    /// Commits no change but `payload` (and fsyncs the directory, as every commit).
    fn commit_payload(&mut self, payload: &CommitPayload) -> anyhow::Result<()> {
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload.to_json());
        prepared.commit()?;
        std::fs::File::open(self.shard.path())?.sync_all()?;
        Ok(())
    }
}

/// Testing aid: `SCATTER_LEAF_FAULT_COMMIT_PAUSE_MS=MS` holds every commit that long, with
/// the version log locked, as a slow disk's fsync would.
fn injected_commit_pause() {
    static PAUSE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        std::env::var("SCATTER_LEAF_FAULT_COMMIT_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(ms) = pause {
        std::thread::sleep(Duration::from_millis(*ms));
    }
}

/// Testing aid: `SCATTER_LEAF_FAULT_FSYNC_AFTER_COMMIT=N` makes the directory fsync after
/// the Nth commit of this process (and every later one) fail with EIO, after tantivy's
/// commit point — the fault that once rolled the version log back under a committed index.
fn injected_fsync_failure() -> std::io::Result<()> {
    static COMMITS: AtomicUsize = AtomicUsize::new(0);
    static AT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("SCATTER_LEAF_FAULT_FSYNC_AFTER_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    let n = COMMITS.fetch_add(1, Ordering::Relaxed) + 1;
    match at {
        Some(at) if n >= *at => Err(std::io::Error::from_raw_os_error(5)),
        _ => Ok(()),
    }
}

/// Whether a write stamped `stamp` is newer than what is held for `id`; an older one is
/// reported as superseded (op `op`), an identical one (a retry) silently skipped.
fn newer(log: &VersionLog, id: &str, stamp: Stamp, op: usize, resp: &mut IngestResponse) -> bool {
    let held = log.get(id).map_or(Stamp::BULK, |e| e.stamp);
    if held > stamp {
        resp.superseded.push(Superseded {
            op: op as u32,
            current_version: held.version,
        });
    }
    held < stamp
}

fn error(index: usize, reason: String) -> IngestError {
    IngestError {
        index: index as u32,
        reason,
    }
}
