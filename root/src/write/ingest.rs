//! Live ingest through the root: `POST /documents` (NDJSON, one document per line) and
//! `DELETE /documents/{id}`. Every document is validated with the cluster schema, routed
//! with the routing the shards report (the same hashring as the bulk build), given a
//! version from the root's [`crate::cluster::clock`], and written to every replica of its shard (see
//! [`crate::write::shard_write`] for what makes a write acknowledged). Replicas that failed a write
//! their peers committed are recorded as behind and listed in the response.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::v1::{IngestDoc, IngestRequest};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterSchema, ShardGroup};
use crate::error::{ApiError, ErrorBody};
pub use crate::write::shard_write::ReplicaFailure;
use crate::write::shard_write::{write_shard, ShardWrite};
use scatter_core::limits::MAX_INGEST_CALL_BYTES;

/// The answer to a bulk request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkItem {
    /// Line number in the request body (1-based).
    pub line: usize,
    /// External id, when the line had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Shard the id routes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
    /// HTTP-like status: 200 committed, 400 invalid document, 429 replicas overloaded (retry
    /// later), 503 not acknowledged (no replica, or only stale ones, committed it).
    pub status: u16,
    /// `upserted` or `failed`.
    #[schema(value_type = String)]
    pub result: &'static str,
    /// Replicas that committed it.
    pub replicas: usize,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The answer to a delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeleteResponse {
    /// External id.
    pub id: String,
    /// Shard it routes to.
    pub shard: usize,
    /// `deleted` (it was present) or `not_found` (nothing to delete; still a success).
    #[schema(value_type = String)]
    pub result: &'static str,
    /// Replicas that committed the delete.
    pub replicas: usize,
    /// Replicas that failed it.
    pub replica_failures: Vec<ReplicaFailure>,
}

/// Ingests an NDJSON body. Errors only when nothing can be attempted (not UTF-8, no
/// document, no schema known); per-document outcomes are in the items.
pub async fn bulk(
    cluster: &std::sync::Arc<Cluster>,
    body: axum::body::Bytes,
    timeout: Duration,
) -> Result<BulkResponse, ApiError> {
    let start = Instant::now();
    let schema = known_schema(cluster, timeout).await?;
    // Parsing and routing a large body takes a while: off the async threads, which keep
    // answering searches meanwhile.
    let (c, s) = (cluster.clone(), schema.clone());
    let (mut items, per_shard, replaced) = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&body)
            .map_err(|e| ApiError::bad_param(format!("the body is not UTF-8: {e}")))?;
        Ok::<_, ApiError>(route_lines(&c, &s, text))
    })
    .await
    .map_err(|e| ApiError::unavailable(format!("routing the bulk failed: {e}")))??;
    if items.is_empty() {
        return Err(ApiError::bad_param(
            "empty body: send NDJSON, one JSON document per line",
        ));
    }
    let writes = per_shard
        .into_iter()
        .enumerate()
        .filter(|(_, docs)| !docs.is_empty())
        .map(|(k, docs)| write_docs(cluster, &cluster.shards[k], docs, timeout));
    let mut replica_failures = Vec::new();
    for (docs, writes) in futures::future::join_all(writes).await {
        for (positions, write) in docs.into_iter().zip(writes) {
            settle_items(&mut items, &positions, &write);
            replica_failures.extend(write.failures);
        }
    }
    // A line a later line of its id replaced shares that line's outcome.
    for (earlier, later) in replaced {
        let outcome = items[later].clone();
        let item = &mut items[earlier];
        (item.status, item.result, item.replicas) =
            (outcome.status, outcome.result, outcome.replicas);
        item.error = outcome.error;
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
        deletes: vec![id.to_string()],
        delete_versions: vec![cluster.clock.next()],
        ..Default::default()
    };
    let write = write_shard(cluster, &cluster.shards[shard], req, timeout).await;
    let Some(answer) = write.answer else {
        let refusal = write.refusal.expect("a refused write says why");
        let status = axum::http::StatusCode::from_u16(refusal.status)
            .unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        return Err(ApiError::new(
            status,
            refusal.kind,
            format!("delete of {id:?} (shard {shard}): {}", refusal.reason),
        ));
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
/// over to the next); `None` when it does not exist. Only a current replica's answer is
/// trusted: a replica known to lack writes (stale) is asked only when no current one
/// answers, and its answer — found or not — is a 503 saying so, never a confident 404 or a
/// possibly old document.
pub async fn get(
    cluster: &Cluster,
    id: &str,
    timeout: Duration,
) -> Result<Option<(usize, String)>, ApiError> {
    let schema = known_schema(cluster, timeout).await?;
    let shard = schema.router.shard_for(id) as usize;
    let mut last_error = String::from("no current replica");
    for replica in cluster.shards[shard].replica_order() {
        let call = crate::cluster::request_id::request(
            scatter_proto::v1::FetchRequest {
                ids: vec![id.to_string()],
                id_shards: vec![shard as u32],
                ..Default::default()
            },
            timeout,
        );
        let answer = replica.client().fetch(call).await;
        if let Ok(resp) = &answer {
            for status in &resp.get_ref().shards {
                cluster.shards[shard].note_unverified(&replica.addr, status.unverified_incarnation);
            }
        }
        match answer {
            Ok(_) if replica.is_stale() => {
                last_error = format!(
                    "{} answered, but it may lack recent writes (it is being repaired)",
                    replica.addr
                );
            }
            Ok(resp) => {
                let doc = resp.into_inner().docs.into_iter().next();
                return Ok(doc.map(|d| (shard, d.fields_json)));
            }
            Err(status) => last_error = format!("{}: {}", replica.addr, status.message()),
        }
    }
    Err(ApiError::unavailable(format!(
        "no current replica of shard {shard} answered: {last_error}"
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
/// The lines of a bulk routed to their shards: per line its item, per shard the documents
/// with the position of their item, and the lines a later line of the same id replaced
/// (earlier, later): only the last line of an id is sent — the earlier ones would be
/// superseded at once, yet each would grow every replica's version log.
type Routed = (
    Vec<BulkItem>,
    Vec<Vec<(usize, IngestDoc)>>,
    Vec<(usize, usize)>,
);

fn route_lines(cluster: &Cluster, schema: &ClusterSchema, text: &str) -> Routed {
    let mut items = Vec::new();
    let mut per_shard: Vec<Vec<(usize, IngestDoc)>> = vec![Vec::new(); cluster.shards.len()];
    let mut slot_of: std::collections::HashMap<String, (usize, usize)> = Default::default();
    let mut replaced = Vec::new();
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
            Ok(doc) if line.len() + doc.id.len() > MAX_INGEST_CALL_BYTES => {
                item.id = Some(doc.id);
                let reason = format!(
                    "the document is {} bytes; the largest accepted is {MAX_INGEST_CALL_BYTES}",
                    line.len()
                );
                fail(&mut item, 400, "document_too_large", reason);
            }
            Ok(doc) => {
                let shard = schema.router.shard_for(&doc.id) as usize;
                item.id = Some(doc.id.clone());
                item.shard = Some(shard);
                let routed = (
                    items.len(),
                    IngestDoc {
                        id: doc.id,
                        json: line.to_string(),
                        version: cluster.clock.next(),
                    },
                );
                match slot_of.get(&routed.1.id) {
                    Some(&(k, slot)) => {
                        replaced.push((per_shard[k][slot].0, routed.0));
                        per_shard[k][slot] = routed;
                    }
                    None => {
                        slot_of.insert(routed.1.id.clone(), (shard, per_shard[shard].len()));
                        per_shard[shard].push(routed);
                    }
                }
            }
            Err(e) => fail(&mut item, 400, "invalid_document", e.to_string()),
        }
        items.push(item);
    }
    (items, per_shard, replaced)
}

/// Writes one shard's documents in calls of at most [`MAX_INGEST_CALL_BYTES`], one after
/// the other; returns per call the item positions it carried and its outcome.
async fn write_docs(
    cluster: &Cluster,
    group: &ShardGroup,
    docs: Vec<(usize, IngestDoc)>,
    timeout: Duration,
) -> (Vec<Vec<usize>>, Vec<ShardWrite>) {
    let mut calls: Vec<(Vec<usize>, Vec<IngestDoc>)> = Vec::new();
    let mut bytes = 0;
    for (pos, doc) in docs {
        let size = doc.json.len() + doc.id.len();
        if calls.is_empty() || bytes + size > MAX_INGEST_CALL_BYTES {
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
            ..Default::default()
        };
        writes.push(write_shard(cluster, group, req, timeout).await);
        positions.push(pos);
    }
    (positions, writes)
}

/// Records one call's outcome in the items it carried.
fn settle_items(items: &mut [BulkItem], positions: &[usize], write: &ShardWrite) {
    let Some(answer) = &write.answer else {
        let refusal = write.refusal.as_ref().expect("a refused write says why");
        for &p in positions {
            items[p].replicas = write.committed;
            fail(
                &mut items[p],
                refusal.status,
                refusal.kind,
                refusal.reason.clone(),
            );
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
