//! The shard's writer: one thread owns the tantivy `IndexWriter` and applies ingest calls
//! with **group commit** — every call queued while a commit runs shares the next commit —
//! and answers a call only after the commit that holds its changes is durable (tantivy
//! fsyncs segment files and `meta.json` on commit) and searchable (the reader is reloaded).

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use scatter_core::document::DocConverter;
use scatter_core::Router;
use scatter_proto::v1::{IngestError, IngestRequest, IngestResponse};
use tantivy::{IndexWriter, TantivyDocument, Term};
use tokio::sync::oneshot;

use crate::shard::{generation, ops_payload, Shard};

/// Indexing memory of the live writer (one indexing thread).
pub const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Most calls one commit takes from the queue.
pub const MAX_GROUP: usize = 1024;

/// One ingest call waiting for its commit.
struct Job {
    req: IngestRequest,
    reply: oneshot::Sender<Result<IngestResponse, String>>,
}

/// Handle of the writer thread; dropping the last sender stops it.
pub struct ShardWriter {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// A cheap handle to submit calls to a running writer.
#[derive(Clone)]
pub struct WriterHandle(mpsc::Sender<Job>);

impl ShardWriter {
    /// Opens the index for writing (takes tantivy's writer lock) and starts the thread.
    pub fn start(shard: Arc<Shard>) -> anyhow::Result<Self> {
        let writer: IndexWriter = shard
            .index()
            .writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        let meta = shard.meta();
        let converter = DocConverter::new(&meta.schema, &shard.index().schema());
        let router = Router::new(meta.routing.clone())?;
        let (tx, rx) = mpsc::channel();
        let name = format!("shard-{}-writer", meta.shard);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            WriterLoop {
                shard,
                writer,
                converter,
                router,
            }
            .run(rx)
        })?;
        Ok(ShardWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A handle to submit calls with.
    pub fn handle(&self) -> WriterHandle {
        WriterHandle(self.tx.clone().expect("running writer"))
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
    /// Queues `req` and waits until its commit is durable and searchable.
    pub async fn submit(&self, req: IngestRequest) -> Result<IngestResponse, String> {
        let (reply, rx) = oneshot::channel();
        self.0
            .send(Job { req, reply })
            .map_err(|_| "writer stopped".to_string())?;
        rx.await
            .unwrap_or_else(|_| Err("writer stopped before the commit".to_string()))
    }
}

/// State of the writer thread.
struct WriterLoop {
    shard: Arc<Shard>,
    writer: IndexWriter,
    converter: DocConverter,
    router: Router,
}

impl WriterLoop {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit_group(jobs);
        }
        if let Err(e) = self.writer.wait_merging_threads() {
            tracing::warn!("writer stopped with merge error: {e}");
        }
    }

    /// Applies every job, commits once, answers every job.
    fn commit_group(&mut self, jobs: Vec<Job>) {
        let searcher = self.shard.searcher();
        let mut ops = self.shard.ops();
        let mut responses: Vec<IngestResponse> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let (resp, applied) = self.apply(&searcher, &job.req);
            ops += applied;
            responses.push(resp);
        }
        let start = Instant::now();
        let committed = self.commit(ops);
        let took = start.elapsed();
        metrics::histogram!("scatter_leaf_commit_duration_seconds").record(took.as_secs_f64());
        match committed {
            Ok(()) => {
                self.shard.set_ops(ops);
                let generation = generation(&self.shard.searcher());
                let group = jobs.len() as u32;
                for (job, mut resp) in jobs.into_iter().zip(responses) {
                    resp.generation = generation;
                    resp.ops = ops;
                    resp.commit_micros = took.as_micros() as u64;
                    resp.commit_group = group;
                    let _ = job.reply.send(Ok(resp));
                }
            }
            Err(e) => {
                tracing::error!(shard = self.shard.meta().shard, "commit failed: {e:#}");
                if let Err(e) = self.writer.rollback() {
                    tracing::error!("rollback failed: {e}");
                }
                for job in jobs {
                    let _ = job.reply.send(Err(format!("commit failed: {e:#}")));
                }
            }
        }
    }

    /// Adds one call's changes to the writer; returns its response (errors, deletes found)
    /// and the number of operations applied.
    fn apply(&self, searcher: &tantivy::Searcher, req: &IngestRequest) -> (IngestResponse, u64) {
        let mut resp = IngestResponse::default();
        let mut applied = 0;
        let id_field = self.converter.id_field();
        for (i, up) in req.upserts.iter().enumerate() {
            match self.prepare(&up.id, &up.json) {
                Ok(doc) => {
                    self.writer
                        .delete_term(Term::from_field_text(id_field, &up.id));
                    if let Err(e) = self.writer.add_document(doc) {
                        resp.errors.push(error(i, format!("indexing failed: {e}")));
                        continue;
                    }
                    applied += 1;
                }
                Err(reason) => resp.errors.push(error(i, reason)),
            }
        }
        for id in &req.deletes {
            let found = matches!(self.shard.find(searcher, id), Ok(Some(_)));
            self.writer.delete_term(Term::from_field_text(id_field, id));
            resp.deletes_found.push(found);
            applied += 1;
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

    /// Commits with the operation count as payload, then reloads the reader.
    fn commit(&mut self, ops: u64) -> anyhow::Result<()> {
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&ops_payload(ops));
        prepared.commit()?;
        self.shard.reload()?;
        Ok(())
    }
}

fn error(index: usize, reason: String) -> IngestError {
    IngestError {
        index: index as u32,
        reason,
    }
}
