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

/// Entries per streamed listing chunk.
pub const LIST_CHUNK: usize = 4096;

/// Ids per `Sources` call during a merge.
pub const SOURCES_BATCH: usize = 256;

/// Takes from `req.source` every write newer than the one held here.
pub async fn merge(live: &LiveShard, req: &RepairRequest) -> anyhow::Result<RepairResponse> {
    let mut client = crate::repair::connect_peer(live, &req.source, req.shard).await?;
    let (theirs, position) = list(&mut client, req.shard).await?;
    let want: Vec<String> = {
        let shard = live.shard();
        let log = shard.versions();
        theirs
            .into_iter()
            .filter(|e| {
                let held = log.get(&e.id).map_or(Stamp::BULK, |h| h.stamp);
                held < stamp_of(e)
            })
            .map(|e| e.id)
            .collect()
    };
    let mut merged = 0;
    let mut rest: &[String] = &want;
    while !rest.is_empty() {
        let ids = &rest[..rest.len().min(SOURCES_BATCH)];
        let answer = client
            .sources(SourcesRequest {
                shard: req.shard,
                ids: ids.to_vec(),
            })
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
    client: &mut scatter_proto::cluster_auth::Client,
    shard: Option<u32>,
) -> anyhow::Result<(Vec<VersionEntry>, u64)> {
    let mut stream = client
        .versions(VersionsRequest {
            shard,
            documents: false,
        })
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

/// Streams the shard's versioned entries, or with `documents` every live document (id and
/// version, 0 for bulk-built ones) plus the tombstones, sorted by id.
pub fn stream_versions(
    shard: &Arc<Shard>,
    documents: bool,
    tx: &Sender<Result<VersionsChunk, Status>>,
) -> Result<(), Status> {
    let (mut entries, position) = {
        let log = shard.versions();
        let entries = if documents {
            documents_of(shard, &log).map_err(|e| Status::internal(format!("{e:#}")))?
        } else {
            log.list()
        };
        (entries, log.position())
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

/// Every live document of the current searcher with its version and a hash of its stored
/// content as the index holds it, then every tombstone.
/// Called with the version log locked, so the searcher and the log describe one commit.
fn documents_of(
    shard: &Shard,
    log: &crate::versions::VersionLog,
) -> anyhow::Result<Vec<VersionEntry>> {
    let searcher = shard.searcher();
    let schema = searcher.schema().clone();
    let ids = shard.ids_of(&searcher)?;
    let mut out = Vec::with_capacity(searcher.num_docs() as usize);
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let Some(seg_ids) = ids.segment(ord as u32) else {
            continue;
        };
        let store = segment.get_store_reader(64)?;
        for doc in segment.doc_ids_alive() {
            let id = seg_ids.id(doc).unwrap_or_default();
            let held = log.get(id).filter(|e| !e.deleted);
            let stored: tantivy::TantivyDocument = store.get(doc)?;
            out.push(VersionEntry {
                id: id.to_string(),
                version: held.map_or(0, |e| e.stamp.version),
                tiebreak: held.map_or(0, |e| e.stamp.tiebreak),
                deleted: false,
                content: scatter_core::document::stored_content_hash(&stored, &schema),
            });
        }
    }
    out.extend(log.list().into_iter().filter(|e| e.deleted));
    Ok(out)
}
