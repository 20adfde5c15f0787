//! The shard a leaf serves *now*: the open [`Shard`], its writer (started on the first
//! ingest) and the swap that replaces the whole index with a repaired copy while searches
//! keep running on the old one until they finish.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use scatter_proto::v1::{IngestRequest, IngestResponse};

use crate::shard::Shard;
use crate::writer::{ShardWriter, WriteError};
use scatter_core::ShardMeta;

/// A shard that can be written to and swapped.
pub struct LiveShard {
    path: PathBuf,
    current: RwLock<Arc<Shard>>,
    writer: tokio::sync::Mutex<Option<ShardWriter>>,
    /// Held by a repair from start to end: one repair at a time.
    pub(crate) repairing: tokio::sync::Mutex<()>,
    /// Most bytes of ingest calls queued at the writer.
    write_queue_limit: AtomicUsize,
    /// Seconds a tombstone is kept (see [`crate::compaction`]).
    tombstone_retention_secs: std::sync::atomic::AtomicU64,
}

impl LiveShard {
    /// Opens the shard in `path`, first finishing a swap a crash interrupted (the writes of
    /// a replaced index are re-applied by [`LiveShard::finish_swap`]).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        recover_interrupted_swap(path)?;
        Ok(Self::new(Shard::open(path)?))
    }

    /// A crash after a copy's swap but before the replaced index's writes were re-applied
    /// left that index in `PATH.old`: re-applies its writes and marks, then removes it.
    /// Called once at start, before serving.
    pub async fn finish_swap(&self) -> anyhow::Result<()> {
        let old = old_dir(&self.path);
        if !old.exists() {
            return Ok(());
        }
        tracing::warn!(path = %old.display(), "re-applying the writes of an index a copy replaced");
        let dir = old.clone();
        let kept = tokio::task::spawn_blocking(move || taken_writes(&Shard::open(&dir)?)).await??;
        self.reapply(kept).await?;
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(old)).await??;
        Ok(())
    }

    /// Applies writes a replaced index took to the current one (newer versions win).
    async fn reapply(&self, kept: Vec<IngestRequest>) -> anyhow::Result<()> {
        for req in kept {
            let resp = self
                .ingest(req)
                .await
                .map_err(|e| anyhow::anyhow!("re-applying this replica's writes: {e:?}"))?;
            if let Some(e) = resp.errors.first() {
                anyhow::bail!("re-applying this replica's writes: {}", e.reason);
            }
        }
        Ok(())
    }

    /// Serves an already opened shard.
    pub fn new(shard: Shard) -> Self {
        LiveShard {
            path: shard.path().to_path_buf(),
            current: RwLock::new(Arc::new(shard)),
            writer: tokio::sync::Mutex::new(None),
            repairing: tokio::sync::Mutex::new(()),
            write_queue_limit: AtomicUsize::new(scatter_core::limits::MAX_QUEUED_WRITE_BYTES),
            tombstone_retention_secs: std::sync::atomic::AtomicU64::new(
                crate::compaction::DEFAULT_TOMBSTONE_RETENTION.as_secs(),
            ),
        }
    }

    /// Sets how long tombstones are kept (see [`crate::compaction`]); applies to writers
    /// started afterwards.
    pub fn set_tombstone_retention(&self, retention: std::time::Duration) {
        self.tombstone_retention_secs
            .store(retention.as_secs(), Ordering::Relaxed);
    }

    /// How long tombstones are kept.
    pub fn tombstone_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.tombstone_retention_secs.load(Ordering::Relaxed))
    }

    /// Sets the most bytes of ingest calls queued at the writer (beyond: RESOURCE_EXHAUSTED).
    pub fn set_write_queue_limit(&self, bytes: usize) {
        self.write_queue_limit
            .store(bytes.max(1), Ordering::Relaxed);
    }

    /// The shard to run one call against (cheap `Arc` clone).
    pub fn shard(&self) -> Arc<Shard> {
        self.current.read().expect("shard lock").clone()
    }

    /// Index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `req` and answers once it is committed (see [`crate::writer`]).
    pub async fn ingest(&self, req: IngestRequest) -> Result<IngestResponse, WriteError> {
        let handle = {
            let mut slot = self.writer.lock().await;
            if slot.is_none() {
                let shard = self.shard();
                let retention = self.tombstone_retention();
                let started =
                    tokio::task::spawn_blocking(move || ShardWriter::start(shard, retention))
                        .await
                        .map_err(|e| WriteError::Failed(format!("writer start failed: {e}")))?
                        .map_err(|e| {
                            WriteError::Failed(format!("cannot open the index for writing: {e:#}"))
                        })?;
                *slot = Some(started);
            }
            slot.as_ref().expect("writer").handle()
        };
        let limit = self.write_queue_limit.load(Ordering::Relaxed);
        handle.submit(req, limit).await
    }

    /// Replaces the index with the complete copy in `staging`: stops the writer, moves the
    /// directories, opens the copy and serves it. Searches holding the old shard finish on
    /// it (its files stay mapped). Every write the old index took (its version log, with
    /// its "behind" marks) is then applied to the copy through the writer — newer versions
    /// win as always — before the old directory goes: a copy never drops a write this
    /// replica acknowledged, whoever sent it.
    pub async fn swap_in(&self, staging: PathBuf) -> anyhow::Result<Arc<Shard>> {
        let mut writer = self.writer.lock().await;
        if let Some(w) = writer.take() {
            tokio::task::spawn_blocking(move || w.stop()).await?;
        }
        let kept = taken_writes(&self.shard())?;
        let path = self.path.clone();
        let shard = tokio::task::spawn_blocking(move || swap_dirs(&path, &staging)).await??;
        injected_swap_pause().await;
        let shard = Arc::new(shard);
        *self.current.write().expect("shard lock") = shard.clone();
        drop(writer);
        self.reapply(kept).await?;
        let old = old_dir(&self.path);
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(old).ok());
        Ok(self.shard())
    }
}

/// Every write `shard` took (its versioned entries with their documents) and its marks of
/// lagging peers, as ingest calls of at most 1,000 operations or ~8 MB each.
fn taken_writes(shard: &Shard) -> anyhow::Result<Vec<IngestRequest>> {
    let log = shard.versions();
    let ids: Vec<String> = log.list().into_iter().map(|e| e.id).collect();
    let (sources, _) = log.sources(&ids, usize::MAX)?;
    let mut calls = vec![IngestRequest {
        mark_behind: log.behind(),
        ..Default::default()
    }];
    let mut bytes = 0;
    for source in sources {
        let Some(e) = source.entry else { continue };
        let last = calls.last_mut().expect("one call");
        if last.upserts.len() + last.deletes.len() >= 1_000 || bytes > 8 << 20 {
            calls.push(IngestRequest::default());
            bytes = 0;
        }
        let call = calls.last_mut().expect("one call");
        bytes += source.json.len() + e.id.len();
        if e.deleted {
            call.deletes.push(e.id);
            call.delete_versions.push(e.version);
        } else {
            call.upserts.push(scatter_proto::v1::IngestDoc {
                id: e.id,
                json: source.json,
                version: e.version,
            });
        }
    }
    calls.retain(|c| !(c.upserts.is_empty() && c.deletes.is_empty() && c.mark_behind.is_empty()));
    Ok(calls)
}

/// Testing aid: `SCATTER_LEAF_FAULT_SWAP_PAUSE_MS=N` pauses a swap for N ms between moving
/// the directories and serving the copy — the moment a caller vanishing once left a shard
/// half switched.
async fn injected_swap_pause() {
    let pause = std::env::var("SCATTER_LEAF_FAULT_SWAP_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = pause {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Where the replaced index waits to be removed during a swap.
pub fn old_dir(path: &Path) -> PathBuf {
    sibling(path, "old")
}

/// Where a repair assembles the copy.
pub fn staging_dir(path: &Path) -> PathBuf {
    sibling(path, "repair")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// `path` → `path.old`, `staging` → `path`, then opens it; on failure moves `path.old` back.
fn swap_dirs(path: &Path, staging: &Path) -> anyhow::Result<Shard> {
    let old = old_dir(path);
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    std::fs::rename(path, &old).with_context(|| format!("moving {} aside", path.display()))?;
    if let Err(e) = std::fs::rename(staging, path) {
        std::fs::rename(&old, path)?;
        return Err(e).context("moving the repaired copy in place");
    }
    sync_parent(path);
    match Shard::open(path) {
        Ok(shard) => Ok(shard),
        Err(e) => {
            std::fs::rename(path, staging)?;
            std::fs::rename(&old, path)?;
            Err(e.context("opening the repaired copy"))
        }
    }
}

/// A crash between the two renames of a swap leaves no index at `path` but one at
/// `path.old`: put it back. A `path.old` next to an index is a replaced index whose writes
/// may not all be re-applied yet: it stays for [`LiveShard::finish_swap`].
fn recover_interrupted_swap(path: &Path) -> anyhow::Result<()> {
    let old = old_dir(path);
    if !old.exists() {
        return Ok(());
    }
    if !path.exists() {
        tracing::warn!(path = %path.display(), "finishing an interrupted swap");
        std::fs::rename(&old, path)?;
    }
    Ok(())
}

/// Makes renames inside `path`'s parent durable.
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
}

/// Opens the shard in `path`, creating an empty one first when there is none and `create`
/// says which.
pub fn open_or_create(
    path: &std::path::Path,
    create: Option<&ShardMeta>,
) -> anyhow::Result<LiveShard> {
    let exists = path.join(scatter_core::manifest::SHARD_META_FILE).exists()
        || crate::live::old_dir(path).exists();
    match create {
        Some(meta) if !exists => {
            tracing::warn!(path = %path.display(), shard = meta.shard, "creating an empty shard");
            Ok(LiveShard::new(Shard::create(path, meta)?))
        }
        _ => LiveShard::open(path),
    }
}
