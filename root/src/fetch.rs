//! The fetch phase of query-then-fetch: only the documents of the final page are fetched,
//! by external id, one batched `Fetch` call per shard, from any live replica of that shard.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use scatter_proto::v1::FetchRequest;
use serde_json::{Map, Value};

use crate::api::ShardFailure;
use crate::cluster_client::Cluster;
use crate::fanout::{call_shard, ShardError};
use crate::merge::ShardHit;

/// Stored fields found for the page, and the shards whose fetch failed.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Fields by (shard, id).
    pub fields: HashMap<(usize, String), Map<String, Value>>,
    /// Failed fetch attempts of shards that gave no documents.
    pub failures: Vec<ShardFailure>,
    /// Shards whose fetch failed (their hits come back without fields).
    pub failed_shards: Vec<usize>,
    /// Some fetch ran out of time.
    pub timed_out: bool,
}

/// Fetches the stored fields of `page` under `deadline`.
pub async fn fetch_page(cluster: &Cluster, page: &[ShardHit], deadline: Instant) -> Fetched {
    let mut by_shard: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for hit in page {
        by_shard.entry(hit.shard).or_default().push(hit.id.clone());
    }
    let calls = by_shard.into_iter().map(|(shard, ids)| {
        let group = &cluster.shards[shard];
        call_shard(group, deadline, move |mut client, budget| {
            let mut req = tonic::Request::new(FetchRequest { ids: ids.clone() });
            req.set_timeout(budget);
            async move { client.fetch(req).await }
        })
    });
    let mut fetched = Fetched::default();
    for outcome in futures::future::join_all(calls).await {
        match outcome.result {
            Ok(answer) => {
                for doc in answer.value.docs {
                    let fields = match serde_json::from_str(&doc.fields_json) {
                        Ok(Value::Object(map)) => map,
                        _ => Map::new(),
                    };
                    fetched.fields.insert((outcome.shard, doc.id), fields);
                }
            }
            Err(err) => {
                fetched.timed_out |= err == ShardError::TimedOut;
                fetched.failed_shards.push(outcome.shard);
                let mut failures = outcome.attempts_failed;
                if let ShardError::Rejected(reason) = err {
                    failures.push(ShardFailure {
                        shard: outcome.shard,
                        replica: None,
                        reason,
                    });
                }
                for f in &mut failures {
                    f.reason = format!("fetch: {}", f.reason);
                }
                fetched.failures.extend(failures);
            }
        }
    }
    fetched
}
