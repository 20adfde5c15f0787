//! How a leaf node runs one data call (search, fetch) over the shards it names: admission
//! (at most [`MAX_LEAF_DATA_CALLS`] at once, one more refused at once), the injected fault,
//! the deadline, heavy calls limited to half the cores, and the work itself on the blocking
//! pool, each shard under a [`crate::watch`] so that it stops at the deadline or when the
//! caller goes away, and a panic in it is that shard's error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use scatter_core::limits::MAX_LEAF_DATA_CALLS;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::error::ShardError;
use crate::faults::{Fault, Faults};
use crate::shard::Shard;

/// Per shard of a node-level call: the shard id and its answer.
pub type PerShard<T> = Vec<(u32, Result<T, ShardError>)>;

/// How a data call spreads its shards over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Every shard on the calling thread, one after another: for calls so light that a hand-off
    /// to another thread (a wake-up, a futex) would cost more than the parallelism saves.
    Inline,
    /// At most one chunk per core: the first on the calling thread, the others on the
    /// blocking pool.
    Parallel,
    /// [`Spread::Inline`] when the node is saturated (as many data calls in flight as cores:
    /// every core has work, so splitting buys no latency and costs hand-offs), else
    /// [`Spread::Parallel`]. Only for calls of a known, bounded cost: inline work holds the
    /// calling thread.
    InlineWhenBusy,
    /// Aggregations: one of the heavy permits first (half the cores), every chunk on the
    /// blocking pool, never on the calling (gRPC) thread.
    Heavy,
}

/// Runs data calls for one node.
#[derive(Clone)]
pub struct DataCalls {
    faults: Arc<Faults>,
    parallelism: usize,
    /// Data calls admitted (at most [`MAX_LEAF_DATA_CALLS`] at once).
    admitted: Arc<Semaphore>,
    /// Heavy calls (aggregations) running at once: at most half the cores, so that a heavy
    /// request never takes every core from ordinary searches.
    heavy: Arc<Semaphore>,
}

impl DataCalls {
    /// Calls with `faults` injected, as parallel as the machine has cores.
    pub fn new(faults: Arc<Faults>) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        DataCalls {
            faults,
            parallelism,
            admitted: Arc::new(Semaphore::new(MAX_LEAF_DATA_CALLS)),
            heavy: Arc::new(Semaphore::new((parallelism / 2).max(1))),
        }
    }

    /// Applies the injected fault of one data call, if any.
    pub async fn fault(&self) -> Result<(), Status> {
        match self.faults.draw() {
            Fault::Error => return Err(Status::unavailable("injected fault")),
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::None => {}
        }
        Ok(())
    }

    /// One of the heavy permits, waited for until `deadline`.
    async fn heavy_permit(
        &self,
        deadline: Option<Instant>,
    ) -> Result<OwnedSemaphorePermit, Status> {
        let wait = self.heavy.clone().acquire_owned();
        let permit = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), wait).await.map_err(|_| {
                Status::deadline_exceeded("deadline passed waiting for a heavy slot")
            })?,
            None => wait.await,
        };
        permit.map_err(|_| Status::unavailable("leaf stopping"))
    }

    /// Runs one data call over `targets`: fault, deadline, then `work` for each shard, spread
    /// over threads as `spread` says (see [`Spread`]). A shard this node does not serve gets
    /// an error of its own; the others still answer.
    ///
    /// A heavy call (aggregations) first waits, until its deadline, for one of the heavy
    /// permits (half the cores), uses that many tasks, and runs every chunk on the blocking
    /// pool: it never holds a gRPC thread, and ordinary searches keep cores of their own.
    pub async fn run<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        targets: Vec<(u32, Option<Arc<Shard>>)>,
        spread: Spread,
        work: impl Fn(&Shard) -> Result<T, ShardError> + Send + Sync + 'static,
    ) -> Result<PerShard<T>, Status> {
        let heavy = spread == Spread::Heavy;
        let _admitted = self.admitted.try_acquire().map_err(|_| {
            Status::resource_exhausted(format!(
                "leaf overloaded: {MAX_LEAF_DATA_CALLS} data calls in flight"
            ))
        })?;
        let in_flight = MAX_LEAF_DATA_CALLS - self.admitted.available_permits();
        let spread = match spread {
            Spread::InlineWhenBusy if in_flight >= self.parallelism => Spread::Inline,
            Spread::InlineWhenBusy => Spread::Parallel,
            other => other,
        };
        let _heavy = match heavy {
            false => None,
            true => Some(self.heavy_permit(deadline).await?),
        };
        self.fault().await?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Status::deadline_exceeded(
                "deadline passed before the work started",
            ));
        }
        // Set when this future is dropped: the caller cancelled or went away.
        let gone = Arc::new(AtomicBool::new(false));
        let _guard = SetOnDrop(gone.clone());
        let work = Arc::new(work);
        let tasks = if heavy {
            self.parallelism / 2
        } else {
            self.parallelism
        };
        let per_task = match spread {
            Spread::Inline => targets.len().max(1),
            _ => targets.len().div_ceil(tasks.max(1)).max(1),
        };
        let mut targets = targets.into_iter();
        let first: Vec<_> = match heavy {
            false => targets.by_ref().take(per_task).collect(),
            true => Vec::new(),
        };
        let mut tasks = Vec::new();
        loop {
            let chunk: Vec<_> = targets.by_ref().take(per_task).collect();
            if chunk.is_empty() {
                break;
            }
            let (gone, work) = (gone.clone(), work.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                run_chunk(chunk, &gone, deadline, &*work)
            }));
        }
        // The first chunk runs here, on the gRPC thread, while the others run on the
        // blocking pool: one thread hop less per call (a single-shard node makes none).
        let mut out = run_chunk(first, &gone, deadline, &*work);
        for task in tasks {
            match task.await {
                Ok(mut part) => out.append(&mut part),
                Err(join) => return Err(Status::internal(format!("leaf task failed: {join}"))),
            }
        }
        Ok(out)
    }
}

/// Runs `work` on each shard of a chunk, skipping it when the caller is gone or the
/// deadline passed; the work is [`watched`].
fn run_chunk<T>(
    chunk: Vec<(u32, Option<Arc<Shard>>)>,
    gone: &Arc<AtomicBool>,
    deadline: Option<Instant>,
    work: &(impl Fn(&Shard) -> Result<T, ShardError> + ?Sized),
) -> PerShard<T> {
    chunk
        .into_iter()
        .map(|(id, shard)| {
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            let r = match shard {
                _ if gone.load(Ordering::Relaxed) || expired => Err(ShardError::Skipped),
                Some(shard) => watched(deadline, Some(gone.clone()), || work(&shard)),
                None => Err(ShardError::NotServed(id)),
            };
            (id, r)
        })
        .collect()
}

/// `work` run under a [`crate::watch`]: stopped work is skipped; a panic is the request's
/// error (the same request would fail the same way on every replica, so no retry helps).
pub fn watched<T>(
    deadline: Option<Instant>,
    gone: Option<Arc<AtomicBool>>,
    work: impl FnOnce() -> Result<T, ShardError>,
) -> Result<T, ShardError> {
    match crate::watch::run(deadline, gone, work) {
        Ok(r) => r,
        Err(crate::watch::Stopped::Expired) => Err(ShardError::Skipped),
        Err(crate::watch::Stopped::Panicked(m)) => {
            tracing::error!("a request's work panicked: {m}");
            Err(ShardError::InvalidArgument(format!(
                "the request failed inside the leaf (internal error: {m})"
            )))
        }
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
