//! The fetch phase of query-then-fetch: only the documents of the final page are fetched,
//! by external id, one batched `Fetch` call per shard, from any live replica of that shard.
//! Snippets are made there too, weighted with the same (global) statistics as the scores.

use std::collections::{BTreeMap, HashMap};
use tokio::time::Instant;

use scatter_proto::v1::{FetchRequest, GlobalStats};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api_types::ShardFailure;
use crate::api_types::ShardProfile;
use crate::cluster::fanout::{scatter_with, Hedging, ShardError, ShardParts};
use crate::cluster::Cluster;
use crate::error::ApiError;
use scatter_core::merge::ShardHit;

/// Stored fields (raw JSON object), snippets and score explanation of one document.
pub type FetchedDoc = (Box<RawValue>, Map<String, Value>, Option<Box<RawValue>>);

/// The fields of a hit whose document could not be fetched: `{}`.
pub fn no_fields() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).expect("valid JSON")
}

/// What the fetch phase needs besides the page.
pub struct FetchOptions<'a> {
    /// The query (its terms are highlighted).
    pub query: &'a str,
    /// Read it leniently.
    pub lenient: bool,
    /// Snippet length and tags.
    pub snippet: &'a crate::query::search::SnippetOptions,
    /// Explain each document's score.
    pub explain: bool,
    /// Statistics to weigh snippet terms with.
    pub stats: Option<GlobalStats>,
    /// Fields to make snippets of.
    pub snippet_fields: &'a [String],
    /// The point in time read: documents from its searchers, on its replicas only.
    pub pit: Option<&'a crate::query::pit_id::PitId>,
}

/// Stored fields found for the page, and the shards whose fetch failed.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Fields and snippets by (shard, id).
    pub docs: HashMap<(usize, String), FetchedDoc>,
    /// Failed fetch attempts of shards that gave no documents.
    pub failures: Vec<ShardFailure>,
    /// Shards whose fetch failed (their hits come back without fields).
    pub failed_shards: Vec<usize>,
    /// Some fetch ran out of time.
    pub timed_out: bool,
    /// (shard, replica, index generation) of every answer.
    pub generations: Vec<(usize, Option<String>, u64)>,
    /// The calls made, per shard.
    pub profiles: Vec<ShardProfile>,
}

/// A leaf's document as the response carries it: (id, (fields, snippets)).
pub fn convert(doc: scatter_proto::v1::FetchedDoc) -> (String, FetchedDoc) {
    // The leaf serializes a JSON object; anything else (never expected) becomes `{}`.
    let fields = match RawValue::from_string(doc.fields_json) {
        Ok(raw) if raw.get().starts_with('{') => raw,
        _ => no_fields(),
    };
    let snippets = doc
        .snippets
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let explanation = (!doc.explanation_json.is_empty())
        .then(|| RawValue::from_string(doc.explanation_json).ok())
        .flatten();
    (doc.id, (fields, snippets, explanation))
}

/// Splits a node's fetch answer by shard: each shard's generation and documents.
fn split_fetch(
    resp: scatter_proto::v1::FetchResponse,
) -> ShardParts<(u64, Vec<scatter_proto::v1::FetchedDoc>)> {
    let mut parts: ShardParts<(u64, Vec<_>)> = resp
        .shards
        .into_iter()
        .map(|s| {
            let part = if s.error.is_empty() {
                Ok((s.generation, Vec::new()))
            } else {
                Err(s.error)
            };
            (s.shard as usize, part)
        })
        .collect();
    for doc in resp.docs {
        let shard = doc.shard as usize;
        if let Some((_, Ok((_, docs)))) = parts.iter_mut().find(|(s, _)| *s == shard) {
            docs.push(doc);
        }
    }
    parts
}

/// Fetches the stored fields of `page` under `deadline`, from the replica that answered each
/// shard's search first (`prefer`: (shard, address)). A rejected request (e.g. a snippet
/// field that is not text) is the caller's error.
pub async fn fetch_page(
    cluster: &Cluster,
    hedging: &Hedging,
    page: &[ShardHit],
    prefer: &[(usize, String)],
    deadline: Instant,
    options: &FetchOptions<'_>,
) -> Result<Fetched, ApiError> {
    let mut by_shard: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for hit in page {
        by_shard.entry(hit.shard).or_default().push(hit.id.clone());
    }
    let mut fetched = Fetched::default();
    if by_shard.is_empty() {
        return Ok(fetched);
    }
    let shards: Vec<usize> = by_shard.keys().copied().collect();
    let pits = options.pit.map(|p| p.tokens()).unwrap_or_default();
    let outcomes = scatter_with(
        cluster,
        &shards,
        prefer,
        options.pit.is_some(),
        deadline,
        hedging,
        |node, shards, budget| {
            let client = node.client();
            let (mut ids, mut id_shards) = (Vec::new(), Vec::new());
            for &s in shards {
                ids.extend(by_shard[&s].iter().cloned());
                id_shards.extend(std::iter::repeat_n(s as u32, by_shard[&s].len()));
            }
            let (snippet_pre_tag, snippet_post_tag) = options.snippet.wire_tags();
            let req = crate::cluster::request_id::request(
                FetchRequest {
                    ids,
                    id_shards,
                    snippet_fields: options.snippet_fields.to_vec(),
                    query: options.query.to_string(),
                    stats: options.stats.clone(),
                    snippet_max_chars: options.snippet.max_chars,
                    lenient: options.lenient,
                    snippet_pre_tag,
                    snippet_post_tag,
                    explain: options.explain,
                    pits: pits.clone(),
                },
                budget,
            );
            async move { Ok(split_fetch(client.fetch(req).await?.into_inner())) }
        },
    )
    .await;
    for outcome in outcomes {
        let replica = outcome.profile.replica.clone();
        fetched.profiles.push(outcome.profile);
        match outcome.result {
            Ok(answer) => {
                let (generation, docs) = answer.value;
                fetched
                    .generations
                    .push((outcome.shard, replica, generation));
                for doc in docs {
                    let (id, doc) = convert(doc);
                    fetched.docs.insert((outcome.shard, id), doc);
                }
            }
            Err(ShardError::Rejected(reason)) if crate::query::pit::is_expired(&reason) => {
                return Err(crate::query::pit::expired(reason))
            }
            Err(ShardError::Rejected(reason)) => return Err(ApiError::bad_param(reason)),
            Err(err) => {
                fetched.timed_out |= err == ShardError::TimedOut;
                fetched.failed_shards.push(outcome.shard);
                fetched
                    .failures
                    .extend(outcome.attempts_failed.into_iter().map(|mut f| {
                        f.reason = format!("fetch: {}", f.reason);
                        f
                    }));
            }
        }
    }
    Ok(fetched)
}

/// The hits of `page` that came back without their document although their shard answered
/// (deleted after the search, or the replica read lacks it), as failures naming them: the
/// response is then partial, never a hit with empty fields passed off as complete.
pub fn unfetched(page: &[ShardHit], fetched: &Fetched) -> Vec<ShardFailure> {
    page.iter()
        .filter(|h| !fetched.failed_shards.contains(&h.shard))
        .filter(|h| !fetched.docs.contains_key(&(h.shard, h.id.clone())))
        .map(|h| ShardFailure {
            shard: h.shard,
            replica: None,
            reason: format!(
                "fetch: document {:?} was not found (deleted after the search, or the replica \
                 read lacks it); its hit has no fields",
                h.id
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_without_its_document_is_reported_unless_its_shard_failed() {
        let hit = |shard, id: &str| ShardHit {
            shard,
            id: id.to_string(),
            score: 1.0,
            ..Default::default()
        };
        let page = vec![hit(0, "a"), hit(0, "gone"), hit(1, "b")];
        let mut fetched = Fetched::default();
        fetched
            .docs
            .insert((0, "a".to_string()), (no_fields(), Map::new(), None));
        fetched.failed_shards.push(1);
        let missing = unfetched(&page, &fetched);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].shard, 0);
        assert!(missing[0].reason.contains("\"gone\""));
    }
}
