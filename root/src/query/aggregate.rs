//! The aggregation phase of a search: the shards' first-round parts (brought by the search
//! phase) merged into the answer — tantivy's intermediate results merged exactly, terms
//! aggregations resolved exactly in further rounds ([`crate::query::terms_agg`]) on the replicas
//! that answered the search.

use tokio::time::Instant;

use scatter_proto::v1::{AggsRequest, SearchRequest, TermsAggPart, TermsAggSpec};
use serde_json::{Map, Value};

use crate::api_types::AggProfile;
use crate::api_types::ShardFailure;
use crate::cluster::fanout::{scatter_with, Hedging};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::query::aggs::AggsPlan;
use crate::query::search::Search;
use crate::query::terms_agg::ExactTerms;

/// Most rounds after the first (the rounds prove the top in two; one spare).
const MAX_LATER_ROUNDS: u32 = 3;

/// One shard's first-round aggregation parts.
#[derive(Debug, Default)]
pub struct ShardAggParts {
    /// The shard.
    pub shard: usize,
    /// tantivy's intermediate results (postcard).
    pub tantivy: Vec<u8>,
    /// Terms parts.
    pub terms: Vec<TermsAggPart>,
}

/// The aggregations' answer.
#[derive(Debug, Default)]
pub struct Aggregated {
    /// `aggregations` of the response, by name.
    pub results: Map<String, Value>,
    /// How each was computed.
    pub profile: Vec<AggProfile>,
    /// Shards that failed a later round (their counts may be short).
    pub failures: Vec<ShardFailure>,
}

/// What the later rounds need to know about the search.
pub struct RoundContext<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// Hedging for the calls.
    pub hedging: &'a Hedging,
    /// The search.
    pub search: &'a Search,
    /// The replica that answered each shard's search: later rounds read the same one
    /// (only it, under a point in time).
    pub prefer: &'a [(usize, String)],
}

/// The first round's request for `plan`.
pub fn first_round(plan: &AggsPlan) -> AggsRequest {
    AggsRequest {
        tantivy_json: plan
            .tantivy
            .as_ref()
            .map(|(_, json)| json.clone())
            .unwrap_or_default(),
        terms: plan
            .terms
            .iter()
            .map(|t| ExactTerms::new(t.clone()).first_round())
            .collect(),
    }
}

/// Merges the first round's parts and runs the later rounds terms aggregations need.
pub async fn aggregate(
    ctx: &RoundContext<'_>,
    plan: &AggsPlan,
    parts: Vec<ShardAggParts>,
) -> Result<Aggregated, ApiError> {
    let mut out = Aggregated::default();
    if let Some((aggs, _)) = &plan.tantivy {
        let bytes = parts.iter().map(|p| p.tantivy.as_slice());
        out.results = crate::query::aggs::finish_tantivy(aggs, bytes, plan.bucket_budget).map_err(
            |e| match e {
                crate::query::aggs::FinishError::TooManyBuckets(m) => ApiError::bad_param(m),
                crate::query::aggs::FinishError::Merge(m) => {
                    ApiError::unavailable(format!("merging the shards' aggregations failed: {m}"))
                }
            },
        )?;
        crate::query::agg_es::finish(&mut out.results, &plan.asked.0, &plan.asked.1);
        for name in aggs.keys() {
            out.profile.push(AggProfile {
                name: name.clone(),
                kind: "merged",
                rounds: 1,
                shards_per_round: vec![parts.len()],
            });
        }
    }
    let mut exact: Vec<ExactTerms> = plan.terms.iter().cloned().map(ExactTerms::new).collect();
    let mut per_round: Vec<Vec<usize>> = vec![vec![parts.len()]; exact.len()];
    for part in parts {
        for terms in part.terms {
            if let Some(e) = exact.iter_mut().find(|e| e.agg().name == terms.name) {
                let first = e.first_round();
                e.absorb(part.shard, &first, terms);
            }
        }
    }
    for _ in 0..MAX_LATER_ROUNDS {
        let round: Vec<(usize, TermsAggSpec)> = exact
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.next_round()?)))
            .collect();
        if round.is_empty() {
            break;
        }
        let mut shards: Vec<usize> = round
            .iter()
            .flat_map(|(i, _)| exact[*i].open_shards())
            .collect();
        shards.sort_unstable();
        shards.dedup();
        for (i, _) in &round {
            exact[*i].rounds += 1;
            per_round[*i].push(exact[*i].open_shards().len());
        }
        later_round(ctx, &mut exact, &round, &shards, &mut out.failures).await;
    }
    for (e, shards_per_round) in exact.iter().zip(per_round) {
        out.results.insert(e.agg().name.clone(), e.result());
        out.profile.push(AggProfile {
            name: e.agg().name.clone(),
            kind: "terms",
            rounds: e.rounds,
            shards_per_round,
        });
    }
    Ok(out)
}

/// One later round: every open shard asked for what `round` names; a shard that cannot
/// answer makes the aggregations it was open for unprovable.
async fn later_round(
    ctx: &RoundContext<'_>,
    exact: &mut [ExactTerms],
    round: &[(usize, TermsAggSpec)],
    shards: &[usize],
    failures: &mut Vec<ShardFailure>,
) {
    let search = ctx.search;
    let request = SearchRequest {
        query: search.query.clone(),
        lenient: search.lenient,
        filters: search.filters.clone(),
        k: 0,
        skip_total_count: true,
        aggs: Some(AggsRequest {
            tantivy_json: String::new(),
            terms: round.iter().map(|(_, spec)| spec.clone()).collect(),
        }),
        pits: search.pit_tokens(),
        ..Default::default()
    };
    let deadline = search.deadline.max(Instant::now());
    let outcomes = scatter_with(
        ctx.cluster,
        shards,
        ctx.prefer,
        search.pit.is_some(),
        deadline,
        ctx.hedging,
        |node, shards, budget| {
            crate::query::search::search_node(node, shards, budget, &request, None)
        },
    )
    .await;
    for outcome in outcomes {
        match outcome.result {
            Ok(answer) => {
                for part in answer.value.status.terms {
                    let Some((i, spec)) = round
                        .iter()
                        .find(|(i, _)| exact[*i].agg().name == part.name)
                    else {
                        continue;
                    };
                    exact[*i].absorb(outcome.shard, spec, part);
                }
            }
            Err(err) => {
                for (i, _) in round {
                    if exact[*i].open_shards().contains(&outcome.shard) {
                        exact[*i].lose();
                    }
                }
                failures.push(ShardFailure {
                    shard: outcome.shard,
                    replica: outcome.profile.replica.clone(),
                    reason: format!("a terms aggregation round failed: {err:?}"),
                });
            }
        }
    }
}
