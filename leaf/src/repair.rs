//! Repair: a replica that missed writes copies the shard from a healthy peer. The copy is
//! assembled in a staging directory beside the index (seeded with hard links to the files
//! it already has: segment files never change, so only new segments travel), checked by
//! opening it, and — on the swapping pass — served in place of the old index.

use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::Context;
use futures::StreamExt;
use scatter_core::manifest::SHARD_META_FILE;
use scatter_proto::v1::{FileHave, InfoRequest, RepairRequest, RepairResponse, SnapshotRequest};

use crate::live::{staging_dir, LiveShard};
use crate::shard::{generation, Shard};
use crate::snapshot::META_FILE;
use crate::versions::{is_versions_file, replica_id, write_replica_id};
use scatter_core::limits::MAX_MESSAGE_BYTES;

/// Copies the shard from `req.source` and, with `req.swap`, serves the copy.
pub async fn repair(live: &LiveShard, req: &RepairRequest) -> anyhow::Result<RepairResponse> {
    let _one = live.repairing.lock().await;
    let staging = staging_dir(live.path());
    let (path, dir) = (live.path().to_path_buf(), staging.clone());
    let have = tokio::task::spawn_blocking(move || seed_staging(&path, &dir)).await??;
    let client = connect_peer(live, &req.source, req.shard).await?;
    let mut stream = client
        .snapshot(tonic::Request::new(SnapshotRequest {
            have,
            shard: req.shard,
        }))
        .await
        .with_context(|| format!("snapshot from {}", req.source))?
        .into_inner();
    let mut receiver = Receiver::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("snapshot stream")?;
        let dir = staging.clone();
        receiver =
            tokio::task::spawn_blocking(move || receiver.write(&dir, chunk).map(|_| receiver))
                .await??;
    }
    let (files, bytes) = (receiver.files_copied, receiver.bytes_copied);
    let (path, dir) = (live.path().to_path_buf(), staging.clone());
    let checked =
        tokio::task::spawn_blocking(move || finish_staging(&path, &dir, &receiver.all)).await??;
    let shard = if req.swap {
        live.swap_in(staging).await?
    } else {
        std::sync::Arc::new(checked)
    };
    tracing::info!(source = %req.source, files, bytes, swap = req.swap, "repair copied");
    Ok(RepairResponse {
        files_copied: files,
        bytes_copied: bytes,
        generation: generation(&shard.searcher()),
        ops: shard.ops(),
        ..Default::default()
    })
}

/// A client of the peer `source`, checked to serve the same shard of the same cluster.
pub async fn connect_peer(
    live: &LiveShard,
    source: &str,
    shard: Option<u32>,
) -> anyhow::Result<scatter_proto::leaf_api::LeafHandle> {
    let client: scatter_proto::leaf_api::LeafHandle = match scatter_proto::local::lookup(source) {
        Some(local) => local,
        None => std::sync::Arc::new(scatter_proto::leaf_api::Grpc::new(
            scatter_proto::cluster_tls::endpoint(source)?
                .connect()
                .await
                .with_context(|| format!("connecting to {source}"))?,
            MAX_MESSAGE_BYTES,
        )),
    };
    let theirs = client
        .info(tonic::Request::new(InfoRequest { shard }))
        .await?
        .into_inner();
    let mine = live.shard().info();
    let same = |i: &scatter_proto::v1::InfoResponse| {
        (i.shard_id, i.num_shards, i.schema_fingerprint.clone())
    };
    anyhow::ensure!(
        same(&theirs) == same(&mine),
        "{source} serves shard {} of {} (schema {}), this replica shard {} of {} (schema {})",
        theirs.shard_id,
        theirs.num_shards,
        theirs.schema_fingerprint,
        mine.shard_id,
        mine.num_shards,
        mine.schema_fingerprint
    );
    anyhow::ensure!(
        theirs.replica_id != mine.replica_id,
        "{source} is this very replica (same replica id {})",
        mine.replica_id
    );
    Ok(client)
}

/// Creates the staging directory and hard-links the index's segment files into it; returns
/// what it holds with each file's checksum (a file is reused only if name, length and
/// checksum match the source's: delete files of the same name can differ between replicas).
fn seed_staging(path: &Path, staging: &Path) -> anyhow::Result<Vec<FileHave>> {
    std::fs::create_dir_all(staging)?;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let target = staging.join(&name);
        if is_segment_file(&name.to_string_lossy()) && !target.exists() {
            let _ = std::fs::hard_link(entry.path(), &target);
        }
    }
    let mut have = Vec::new();
    for entry in std::fs::read_dir(staging)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_segment_file(&name) {
            let bytes = std::fs::read(entry.path())?;
            have.push(FileHave {
                name,
                len: bytes.len() as u64,
                xxh3: xxhash_rust::xxh3::xxh3_64(&bytes),
            });
        }
    }
    Ok(have)
}

/// tantivy's list of the files it manages.
const MANAGED_FILE: &str = ".managed.json";

/// Segment files are named `<32 hex digits>.<ext>`.
fn is_segment_file(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default();
    stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()) && stem.len() < name.len()
}

/// Writes streamed chunks into the staging directory.
#[derive(Default)]
struct Receiver {
    open: Option<(String, std::fs::File)>,
    all: HashSet<String>,
    files_copied: u64,
    bytes_copied: u64,
}

impl Receiver {
    fn write(
        &mut self,
        staging: &Path,
        chunk: scatter_proto::v1::SnapshotChunk,
    ) -> anyhow::Result<()> {
        if !chunk.files.is_empty() {
            self.all = chunk.files.into_iter().collect();
        }
        anyhow::ensure!(
            chunk.name == META_FILE
                || is_versions_file(&chunk.name)
                || is_segment_file(&chunk.name),
            "unexpected file {:?} in snapshot",
            chunk.name
        );
        if self.open.as_ref().map(|(n, _)| n.as_str()) != Some(chunk.name.as_str()) {
            // A new file: write it under a temporary name, renamed when complete.
            let file = std::fs::File::create(staging.join(format!("{}.part", chunk.name)))?;
            self.open = Some((chunk.name.clone(), file));
        }
        let (name, file) = self.open.as_mut().expect("open file");
        file.seek(SeekFrom::Start(chunk.offset))?;
        file.write_all(&chunk.data)?;
        self.bytes_copied += chunk.data.len() as u64;
        if chunk.eof {
            file.sync_all()?;
            let part = staging.join(format!("{name}.part"));
            std::fs::rename(part, staging.join(&*name))?;
            self.files_copied += 1;
            self.open = None;
        }
        Ok(())
    }
}

/// Drops files that are not part of the snapshot, adds the shard metadata, checks that the
/// copy opens as the same shard.
fn finish_staging(path: &Path, staging: &Path, all: &HashSet<String>) -> anyhow::Result<Shard> {
    anyhow::ensure!(all.contains(META_FILE), "snapshot stream ended early");
    anyhow::ensure!(
        staging.join(META_FILE).exists(),
        "snapshot stream ended before meta.json"
    );
    for entry in std::fs::read_dir(staging)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !all.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    std::fs::copy(path.join(SHARD_META_FILE), staging.join(SHARD_META_FILE))?;
    // The copy keeps this replica's identity, not the source's.
    write_replica_id(staging, &replica_id(path)?)?;
    // tantivy deletes only files it knows it wrote: register the copied segment files so
    // that merges on this replica reclaim them later.
    let mut managed: Vec<&String> = all.iter().filter(|n| is_segment_file(n)).collect();
    managed.sort();
    let mut json = serde_json::to_vec(&managed)?;
    json.push(b'\n');
    std::fs::write(staging.join(MANAGED_FILE), json)?;
    // Everything the copy's commit depends on is durable before the swap renames it in.
    for name in [SHARD_META_FILE, MANAGED_FILE] {
        std::fs::File::open(staging.join(name))?.sync_all()?;
    }
    std::fs::File::open(staging)?.sync_all()?;
    Shard::open(staging).context("opening the copied shard")
}
