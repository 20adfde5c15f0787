//! Repair by merge: a replica takes from a peer every write newer than the one it holds for
//! the same id (compared by [`Stamp`]), through its own writer, so nothing it holds is lost
//! and writes arriving meanwhile are ordered as usual. Merging each replica from the other
//! leaves both with the newest write of every id: the union of their histories.
//!
//! Also the listings peers and `scatter index check-replicas` compare ([`stream_versions`]).

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use scatter_proto::v1::{
    IngestDoc, IngestRequest, RepairRequest, RepairResponse, SourcesRequest, VersionEntry,
    VersionsChunk, VersionsRequest,
};
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::live::LiveShard;
use crate::shard::{generation, Shard};
use crate::versions::Stamp;

pub use crate::listing::LIST_CHUNK;

/// Ids per `Sources` call during a merge.
pub const SOURCES_BATCH: usize = 256;

/// Takes from `req.source` every write newer than the one held here.
pub async fn merge(live: &LiveShard, req: &RepairRequest) -> anyhow::Result<RepairResponse> {
    let client = crate::repair::connect_peer(live, &req.source, req.shard).await?;
    let (theirs, position) = list(&*client, req.shard).await?;
    let want: Vec<String> = {
        let shard = live.shard();
        let searcher = shard.searcher();
        let log = shard.versions();
        let horizon = crate::compaction::retention_horizon(
            scatter_core::clock::now_micros(),
            live.tombstone_retention(),
        );
        theirs
            .into_iter()
            .filter(|e| {
                let held = log.get(&e.id).map(|h| h.stamp);
                if held.is_some_and(|h| h >= stamp_of(e)) {
                    return false;
                }
                // A tombstone past the retention (compacted away here) is taken only when
                // this replica still holds the document it deletes.
                let expired = e.deleted && held.is_none() && e.version < horizon;
                !expired || matches!(shard.find(&searcher, &e.id), Ok(Some(_)))
            })
            .map(|e| e.id)
            .collect()
    };
    let mut merged = 0;
    let mut rest: &[String] = &want;
    while !rest.is_empty() {
        let ids = &rest[..rest.len().min(SOURCES_BATCH)];
        let answer = client
            .sources(tonic::Request::new(SourcesRequest {
                shard: req.shard,
                ids: ids.to_vec(),
            }))
            .await
            .context("sources")?
            .into_inner();
        anyhow::ensure!(answer.consumed > 0, "{} sent no sources", req.source);
        rest = &rest[(answer.consumed as usize).min(rest.len())..];
        let entries = answer.entries;
        let mut write = IngestRequest::default();
        for source in entries {
            let Some(e) = source.entry else { continue };
            if e.deleted {
                write.deletes.push(e.id);
                write.delete_versions.push(e.version);
            } else {
                write.upserts.push(IngestDoc {
                    id: e.id,
                    json: source.json,
                    version: e.version,
                });
            }
        }
        let n = (write.upserts.len() + write.deletes.len()) as u64;
        let resp = live.ingest(write).await?;
        if let Some(e) = resp.errors.first() {
            anyhow::bail!("a merged write was refused: {}", e.reason);
        }
        merged += n;
    }
    let shard = live.shard();
    tracing::info!(source = %req.source, merged, "merged a peer's newer writes");
    Ok(RepairResponse {
        docs_merged: merged,
        source_position: position,
        generation: generation(&shard.searcher()),
        ops: shard.ops(),
        ..Default::default()
    })
}

/// A peer's versioned entries and the log position they reflect.
async fn list(
    client: &dyn scatter_proto::leaf_api::LeafApi,
    shard: Option<u32>,
) -> anyhow::Result<(Vec<VersionEntry>, u64)> {
    let mut stream = client
        .versions(tonic::Request::new(VersionsRequest {
            shard,
            documents: false,
        }))
        .await
        .context("versions")?
        .into_inner();
    let (mut entries, mut position) = (Vec::new(), None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("versions stream")?;
        position.get_or_insert(chunk.position);
        entries.extend(chunk.entries);
    }
    Ok((entries, position.unwrap_or(0)))
}

fn stamp_of(e: &VersionEntry) -> Stamp {
    Stamp {
        version: e.version,
        tiebreak: e.tiebreak,
    }
}

/// Streams the shard's versioned entries sorted by id, or with `documents` the listing of
/// every live document and tombstone (see [`crate::listing`]).
pub fn stream_versions(
    shard: &Arc<Shard>,
    documents: bool,
    tx: &Sender<Result<VersionsChunk, Status>>,
) -> Result<(), Status> {
    if documents {
        return crate::listing::stream_documents(shard, tx);
    }
    let (mut entries, position) = {
        let log = shard.versions();
        (log.list(), log.position())
    };
    entries.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.deleted.cmp(&b.deleted)));
    let mut chunks = entries.chunks(LIST_CHUNK).peekable();
    let mut first = true;
    loop {
        let part = chunks.next().unwrap_or_default();
        let chunk = VersionsChunk {
            entries: part.to_vec(),
            position: if first { position } else { 0 },
            replica_id: if first {
                shard.replica_id().to_string()
            } else {
                String::new()
            },
        };
        first = false;
        if tx.blocking_send(Ok(chunk)).is_err() || chunks.peek().is_none() {
            return Ok(());
        }
    }
}
