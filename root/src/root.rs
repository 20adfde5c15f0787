//! One search, end to end: validate the query against the cluster schema, scatter it to one
//! replica of every shard, merge the ranked lists, fetch the page's documents, and report
//! coverage honestly (which shards answered, which did not and why).

use std::time::Instant;

use axum::http::StatusCode;
use scatter_proto::v1::SearchRequest;

use crate::api::{Hit, SearchResponse, ShardFailure, ShardsReport};
use crate::cluster_client::Cluster;
use crate::error::ApiError;
use crate::fanout::{scatter, ShardError};
use crate::fetch::fetch_page;
use crate::merge::{merge_top, ShardHit};

/// A validated search request.
#[derive(Debug, Clone)]
pub struct Search {
    /// Query text.
    pub query: String,
    /// Page size.
    pub size: usize,
    /// Page offset.
    pub from: usize,
    /// When the answer is due.
    pub deadline: Instant,
    /// Answer with the shards that responded when some did not.
    pub allow_partial: bool,
}

/// When the search phase must end: the request's deadline less a reserve for the fetch
/// phase (a fifth of the budget, at most 200 ms), so that a shard that hangs until the search
/// deadline still leaves time to fetch the other shards' documents.
fn search_phase_deadline(start: Instant, deadline: Instant) -> Instant {
    let budget = deadline.saturating_duration_since(start);
    let reserve = (budget / 5).min(std::time::Duration::from_millis(200));
    deadline - reserve
}

/// Runs `search` on `cluster`.
pub async fn search(cluster: &Cluster, search: Search) -> Result<SearchResponse, ApiError> {
    let start = Instant::now();
    let schema = cluster.schema(search.deadline).await.ok_or_else(|| {
        ApiError::unavailable("no replica has answered yet, so the cluster schema is unknown")
    })?;
    schema
        .parser
        .parse(&search.query)
        .map_err(|e| ApiError::query_parse(e.to_string()))?;
    let window = (search.from + search.size) as u32;
    let request = SearchRequest {
        query: search.query.clone(),
        k: window,
        offset: 0,
        stats: None,
    };
    let outcomes = scatter(
        cluster,
        search_phase_deadline(start, search.deadline),
        |_, mut client, budget| {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(budget);
            async move { client.search(req).await }
        },
    )
    .await;

    let mut lists = Vec::with_capacity(outcomes.len());
    let mut failures: Vec<ShardFailure> = Vec::new();
    let mut failed_shards = Vec::new();
    let mut timed_out = false;
    let mut total_hits = 0;
    for outcome in outcomes {
        match outcome.result {
            Ok(answer) => {
                total_hits += answer.value.total_hits;
                lists.push(
                    answer
                        .value
                        .hits
                        .into_iter()
                        .map(|h| ShardHit {
                            id: h.id,
                            score: h.score,
                            shard: outcome.shard,
                        })
                        .collect(),
                );
            }
            Err(ShardError::Rejected(reason)) => return Err(ApiError::query_parse(reason)),
            Err(err) => {
                timed_out |= err == ShardError::TimedOut;
                failed_shards.push(outcome.shard);
                failures.extend(outcome.attempts_failed);
            }
        }
    }
    let page = merge_top(&lists, search.from, search.size);
    let mut fetched = fetch_page(cluster, &page, search.deadline).await;
    timed_out |= fetched.timed_out;
    failures.append(&mut fetched.failures);
    failed_shards.extend(fetched.failed_shards.iter().copied());
    failed_shards.sort_unstable();
    failed_shards.dedup();

    let partial = !failed_shards.is_empty();
    if partial && !search.allow_partial {
        let (status, kind) = if timed_out {
            (StatusCode::GATEWAY_TIMEOUT, "timeout")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "shards_unavailable")
        };
        let reasons: Vec<String> = failures
            .iter()
            .map(|f| format!("shard {}: {}", f.shard, f.reason))
            .collect();
        return Err(ApiError::new(
            status,
            kind,
            format!(
                "{} of {} shards did not answer and allow_partial=false: {}",
                failed_shards.len(),
                cluster.shards.len(),
                reasons.join("; ")
            ),
        ));
    }
    let hits = page
        .into_iter()
        .map(|h| Hit {
            fields: fetched
                .fields
                .remove(&(h.shard, h.id.clone()))
                .unwrap_or_default(),
            id: h.id,
            score: h.score,
            shard: h.shard,
        })
        .collect();
    Ok(SearchResponse {
        took_ms: start.elapsed().as_millis() as u64,
        timed_out,
        partial,
        total_hits,
        shards: ShardsReport {
            total: cluster.shards.len(),
            successful: cluster.shards.len() - failed_shards.len(),
            failed: failed_shards.len(),
            failures,
        },
        hits,
    })
}
