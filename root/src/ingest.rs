//! Live ingest through the root: `POST /documents` (NDJSON, one document per line) and
//! `DELETE /documents/{id}`. Every document is validated with the cluster schema, routed
//! with the routing the shards report (the same hashring as the bulk build), and written to
//! **every** current replica of its shard. A document is acknowledged when at least one
//! replica committed it; replicas that failed a write their peers committed are marked
//! stale (not searched until repaired, see [`crate::repair`]) and listed in the response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scatter_proto::v1::{IngestDoc, IngestRequest, IngestResponse};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterSchema, Replica, ShardGroup};
use crate::error::ApiError;

/// Largest ingest call sent to a leaf (bulks are split per shard into calls of this size).
pub const MAX_CALL_BYTES: usize = 16 << 20;

/// The answer to a bulk request.
#[derive(Debug, Serialize)]
pub struct BulkResponse {
    /// Milliseconds the whole bulk took.
    pub took_ms: f64,
    /// Some item failed.
    pub errors: bool,
    /// Documents committed by at least one replica.
    pub indexed: usize,
    /// Documents not committed (see their items).
    pub failed: usize,
    /// One item per non-empty line, in order.
    pub items: Vec<BulkItem>,
    /// Replicas that failed a write (each is stale until repaired if a peer committed it).
    pub replica_failures: Vec<ReplicaFailure>,
}

/// The outcome of one line of a bulk.
#[derive(Debug, Clone, Serialize)]
pub struct BulkItem {
    /// Line number in the request body (1-based).
    pub line: usize,
    /// External id, when the line had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Shard the id routes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
    /// HTTP-like status: 200 committed, 400 invalid document, 503 no replica committed it.
    pub status: u16,
    /// `upserted` or `failed`.
    pub result: &'static str,
    /// Replicas that committed it.
    pub replicas: usize,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `{"type", "reason"}` of a failed item.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// Machine-readable kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// A replica that failed a write.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaFailure {
    /// Shard.
    pub shard: usize,
    /// Replica address.
    pub replica: String,
    /// What went wrong.
    pub reason: String,
    /// Marked stale because a peer committed the write.
    pub marked_stale: bool,
}

/// The answer to a delete.
#[derive(Debug, Serialize)]
pub struct DeleteResponse {
    /// External id.
    pub id: String,
    /// Shard it routes to.
    pub shard: usize,
    /// `deleted` (it was present) or `not_found` (nothing to delete; still a success).
    pub result: &'static str,
    /// Replicas that committed the delete.
    pub replicas: usize,
    /// Replicas that failed it.
    pub replica_failures: Vec<ReplicaFailure>,
}

/// One write to every current replica of one shard.
struct ShardWrite {
    /// A committing replica's answer (per-document refusals, deletes found).
    answer: Option<IngestResponse>,
    /// Replicas that committed.
    committed: usize,
    failures: Vec<ReplicaFailure>,
}

/// Ingests an NDJSON body. Errors only when nothing can be attempted (not UTF-8, no
/// document, no schema known); per-document outcomes are in the items.
pub async fn bulk(
    cluster: &Cluster,
    body: &[u8],
    timeout: Duration,
) -> Result<BulkResponse, ApiError> {
    let start = Instant::now();
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_param(format!("the body is not UTF-8: {e}")))?;
    let schema = known_schema(cluster, timeout).await?;
    let (mut items, per_shard) = route_lines(&schema, text, cluster.shards.len());
    if items.is_empty() {
        return Err(ApiError::bad_param(
            "empty body: send NDJSON, one JSON document per line",
        ));
    }
    let writes = per_shard
        .into_iter()
        .enumerate()
        .filter(|(_, docs)| !docs.is_empty())
        .map(|(k, docs)| write_docs(&cluster.shards[k], docs, timeout));
    let mut replica_failures = Vec::new();
    for (docs, writes) in futures::future::join_all(writes).await {
        for (positions, write) in docs.into_iter().zip(writes) {
            settle_items(&mut items, &positions, &write);
            replica_failures.extend(write.failures);
        }
    }
    let indexed = items.iter().filter(|i| i.status == 200).count();
    metrics::counter!("scatter_root_ingest_docs_total", "outcome" => "indexed")
        .increment(indexed as u64);
    metrics::counter!("scatter_root_ingest_docs_total", "outcome" => "failed")
        .increment((items.len() - indexed) as u64);
    Ok(BulkResponse {
        took_ms: start.elapsed().as_secs_f64() * 1000.0,
        errors: indexed < items.len(),
        indexed,
        failed: items.len() - indexed,
        items,
        replica_failures,
    })
}

/// Deletes one document from every current replica of its shard.
pub async fn delete(
    cluster: &Cluster,
    id: &str,
    timeout: Duration,
) -> Result<DeleteResponse, ApiError> {
    let schema = known_schema(cluster, timeout).await?;
    let shard = schema.router.shard_for(id) as usize;
    let req = IngestRequest {
        upserts: Vec::new(),
        deletes: vec![id.to_string()],
        shard: None,
    };
    let write = write_shard(&cluster.shards[shard], req, timeout).await;
    let Some(answer) = write.answer else {
        return Err(ApiError::unavailable(format!(
            "no replica of shard {shard} committed the delete: {}",
            reasons(&write.failures)
        )));
    };
    let found = answer.deletes_found.first().copied().unwrap_or(false);
    Ok(DeleteResponse {
        id: id.to_string(),
        shard,
        result: if found { "deleted" } else { "not_found" },
        replicas: write.committed,
        replica_failures: write.failures,
    })
}

/// The stored fields of one document, read from a current replica of its shard (failing
/// over to the next); `None` when it does not exist.
pub async fn get(
    cluster: &Cluster,
    id: &str,
    timeout: Duration,
) -> Result<Option<(usize, String)>, ApiError> {
    let schema = known_schema(cluster, timeout).await?;
    let shard = schema.router.shard_for(id) as usize;
    let mut last_error = String::from("no current replica");
    for replica in cluster.shards[shard].replica_order() {
        let mut call = crate::request_id::request(scatter_proto::v1::FetchRequest {
            ids: vec![id.to_string()],
            id_shards: vec![shard as u32],
            ..Default::default()
        });
        call.set_timeout(timeout);
        match replica.client().fetch(call).await {
            Ok(resp) => {
                let doc = resp.into_inner().docs.into_iter().next();
                return Ok(doc.map(|d| (shard, d.fields_json)));
            }
            Err(status) => last_error = format!("{}: {}", replica.addr, status.message()),
        }
    }
    Err(ApiError::unavailable(format!(
        "shard {shard} did not answer: {last_error}"
    )))
}

/// The cluster schema, or 503 when no replica has answered yet.
pub async fn known_schema(
    cluster: &Cluster,
    timeout: Duration,
) -> Result<Arc<ClusterSchema>, ApiError> {
    cluster
        .schema(Instant::now() + timeout)
        .await
        .ok_or_else(|| ApiError::unavailable("no replica reachable to learn the schema from"))
}

/// Per line: its item (invalid lines already failed) and, per shard, the documents to send
/// with the position of their item.
fn route_lines(
    schema: &ClusterSchema,
    text: &str,
    num_shards: usize,
) -> (Vec<BulkItem>, Vec<Vec<(usize, IngestDoc)>>) {
    let mut items = Vec::new();
    let mut per_shard = vec![Vec::new(); num_shards];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut item = BulkItem {
            line: n + 1,
            id: None,
            shard: None,
            status: 200,
            result: "upserted",
            replicas: 0,
            error: None,
        };
        match schema.converter.convert_str(line) {
            Ok(doc) => {
                let shard = schema.router.shard_for(&doc.id) as usize;
                item.id = Some(doc.id.clone());
                item.shard = Some(shard);
                let json = line.to_string();
                per_shard[shard].push((items.len(), IngestDoc { id: doc.id, json }));
            }
            Err(e) => fail(&mut item, 400, "invalid_document", e.to_string()),
        }
        items.push(item);
    }
    (items, per_shard)
}

/// Writes one shard's documents in calls of at most [`MAX_CALL_BYTES`], one after the
/// other; returns per call the item positions it carried and its outcome.
async fn write_docs(
    group: &ShardGroup,
    docs: Vec<(usize, IngestDoc)>,
    timeout: Duration,
) -> (Vec<Vec<usize>>, Vec<ShardWrite>) {
    let mut calls: Vec<(Vec<usize>, Vec<IngestDoc>)> = Vec::new();
    let mut bytes = 0;
    for (pos, doc) in docs {
        let size = doc.json.len() + doc.id.len();
        if calls.is_empty() || bytes + size > MAX_CALL_BYTES {
            calls.push((Vec::new(), Vec::new()));
            bytes = 0;
        }
        bytes += size;
        let last = calls.last_mut().expect("a call");
        last.0.push(pos);
        last.1.push(doc);
    }
    let (mut positions, mut writes) = (Vec::new(), Vec::new());
    for (pos, upserts) in calls {
        let req = IngestRequest {
            upserts,
            deletes: Vec::new(),
            shard: None,
        };
        writes.push(write_shard(group, req, timeout).await);
        positions.push(pos);
    }
    (positions, writes)
}

/// Sends `req` to every current replica of `group` at once and waits for all.
async fn write_shard(group: &ShardGroup, req: IngestRequest, timeout: Duration) -> ShardWrite {
    let _shared = group.writes.read().await;
    let targets: Vec<Arc<Replica>> = group
        .replicas
        .iter()
        .filter(|r| !r.is_misconfigured() && !r.is_stale())
        .cloned()
        .collect();
    let calls = targets.iter().map(|r| {
        let mut client = r.client();
        let mut call = crate::request_id::request(IngestRequest {
            shard: r.shard_id(),
            ..req.clone()
        });
        call.set_timeout(timeout);
        async move { tokio::time::timeout(timeout, client.ingest(call)).await }
    });
    let results = futures::future::join_all(calls).await;
    let mut write = ShardWrite {
        answer: None,
        committed: 0,
        failures: Vec::new(),
    };
    let mut failed = Vec::new();
    for (replica, result) in targets.iter().zip(results) {
        match result {
            Ok(Ok(resp)) => {
                let resp = resp.into_inner();
                replica.note_write(resp.generation, resp.ops);
                write.committed += 1;
                write.answer.get_or_insert(resp);
            }
            Ok(Err(status)) => failed.push((replica, status.message().to_string())),
            Err(_) => failed.push((replica, format!("timed out after {timeout:?}"))),
        }
    }
    for (replica, reason) in failed {
        let marked_stale = write.committed > 0;
        if marked_stale {
            replica.mark_stale(format!("missed a write: {reason}"));
        }
        write.failures.push(ReplicaFailure {
            shard: group.shard,
            replica: replica.addr.clone(),
            reason,
            marked_stale,
        });
    }
    if targets.is_empty() {
        write.failures.push(ReplicaFailure {
            shard: group.shard,
            replica: String::new(),
            reason: "no current replica to write to".to_string(),
            marked_stale: false,
        });
    }
    write
}

/// Records one call's outcome in the items it carried.
fn settle_items(items: &mut [BulkItem], positions: &[usize], write: &ShardWrite) {
    let Some(answer) = &write.answer else {
        let reason = format!("no replica committed it: {}", reasons(&write.failures));
        for &p in positions {
            fail(&mut items[p], 503, "shard_unavailable", reason.clone());
        }
        return;
    };
    for &p in positions {
        items[p].replicas = write.committed;
    }
    for e in &answer.errors {
        if let Some(&p) = positions.get(e.index as usize) {
            fail(&mut items[p], 400, "invalid_document", e.reason.clone());
            items[p].replicas = 0;
        }
    }
}

fn fail(item: &mut BulkItem, status: u16, kind: &'static str, reason: String) {
    item.status = status;
    item.result = "failed";
    item.error = Some(ErrorBody { kind, reason });
}

fn reasons(failures: &[ReplicaFailure]) -> String {
    let all: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: {}", f.replica, f.reason))
        .collect();
    all.join("; ")
}
