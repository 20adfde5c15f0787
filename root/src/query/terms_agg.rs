//! Exact terms aggregations across shards: the `size` terms with the most matching documents
//! (ties by term ascending) and their counts, *the same as one index would return*, proven
//! from per-shard answers in as many rounds as it takes (at most three):
//!
//! 1. Every shard reports its top `shard_size` terms (by count, then term) and the sum of all
//!    its counts. A shard that reported everything is *complete*; otherwise any term it did
//!    not report has at most its last reported count there (its *bound*).
//! 2. If a term no shard reported could still reach the `size`-th best lower bound `τ`, each
//!    incomplete shard reports every term with a count of at least `⌈τ / m⌉` (`m` incomplete
//!    shards) — the threshold round of TPUT (Cao & Wang, PODC 2004): a term under it at every
//!    shard totals less than `τ`, so no unseen term can make the top any more.
//! 3. The terms that could still make the top are asked by name from the shards that have
//!    not reported them, which makes every candidate's count exact.
//!
//! Proven means: every returned bucket's count is exact, and every other term — seen or not —
//! has an upper bound below the last bucket's count (or equal to it with a greater term).

use std::collections::{BTreeMap, HashMap};

use scatter_proto::v1::terms_agg_spec::Select;
use scatter_proto::v1::{MetricPart, TermKeys, TermsAggPart, TermsAggSpec};
use serde_json::{json, Map, Value};

use crate::query::aggs::{MetricKind, TermsAgg};

/// What is known of one term at one shard.
#[derive(Debug, Clone)]
struct Known {
    count: u64,
    metrics: Vec<MetricPart>,
}

/// What is known of one shard's terms.
#[derive(Debug, Clone, Default)]
struct ShardTerms {
    known: HashMap<String, Known>,
    /// A term not in `known` has at most this count here (0: none has any).
    bound: u64,
    sum_counts: u64,
}

/// A terms aggregation being resolved.
#[derive(Debug, Clone)]
pub struct ExactTerms {
    agg: TermsAgg,
    shards: BTreeMap<usize, ShardTerms>,
    /// Rounds asked so far.
    pub rounds: u32,
    /// A shard did not answer a later round: the counts may be short.
    lost: bool,
}

/// Where the counts stand.
struct Standing {
    /// The best `size` terms by (lower bound desc, term asc), with their lower bounds.
    top: Vec<(String, u64)>,
    /// Terms that could still make the top or whose count is not exact.
    unresolved: Vec<String>,
    /// Upper bound of a term no shard has reported.
    unseen_upper: u64,
    /// The last top term's lower bound (0 when fewer than `size` terms are known).
    tau: u64,
}

impl ExactTerms {
    /// Starts resolving `agg`.
    pub fn new(agg: TermsAgg) -> Self {
        ExactTerms {
            agg,
            shards: BTreeMap::new(),
            rounds: 1,
            lost: false,
        }
    }

    /// The aggregation.
    pub fn agg(&self) -> &TermsAgg {
        &self.agg
    }

    /// The first round's request: every shard's top `shard_size` terms.
    pub fn first_round(&self) -> TermsAggSpec {
        self.spec(Select::Top(self.agg.shard_size as u32))
    }

    fn spec(&self, select: Select) -> TermsAggSpec {
        TermsAggSpec {
            name: self.agg.name.clone(),
            field: self.agg.field.clone(),
            metric_fields: self.agg.metrics.iter().map(|m| m.field.clone()).collect(),
            select: Some(select),
        }
    }

    /// Takes in `shard`'s answer to `asked`.
    pub fn absorb(&mut self, shard: usize, asked: &TermsAggSpec, part: TermsAggPart) {
        let state = self.shards.entry(shard).or_default();
        state.sum_counts = part.sum_counts;
        let last = part.buckets.last().map(|b| b.doc_count);
        for b in part.buckets {
            let known = Known {
                count: b.doc_count,
                metrics: b.metrics,
            };
            state.known.insert(b.key, known);
        }
        let bound = match &asked.select {
            _ if part.complete => 0,
            Some(Select::AtLeast(t)) => t.saturating_sub(1),
            Some(Select::Keys(keys)) => {
                for key in &keys.keys {
                    state.known.entry(key.clone()).or_insert(Known {
                        count: 0,
                        metrics: Vec::new(),
                    });
                }
                state.bound
            }
            Some(Select::Top(_)) | None => last.unwrap_or(0),
        };
        state.bound = if matches!(asked.select, Some(Select::Top(_)) | None) {
            bound
        } else {
            state.bound.min(bound)
        };
    }

    /// A shard could not answer a later round: the result can no longer be proven.
    pub fn lose(&mut self) {
        self.lost = true;
    }

    /// Shards that may hold more (bound above 0).
    pub fn open_shards(&self) -> Vec<usize> {
        let open = self.shards.iter().filter(|(_, s)| s.bound > 0);
        open.map(|(&i, _)| i).collect()
    }

    fn lower_upper(&self, term: &str) -> (u64, u64) {
        let (mut lower, mut upper) = (0, 0);
        for s in self.shards.values() {
            match s.known.get(term) {
                Some(k) => {
                    lower += k.count;
                    upper += k.count;
                }
                None => upper += s.bound,
            }
        }
        (lower, upper)
    }

    fn standing(&self) -> Standing {
        let mut seen: HashMap<&str, (u64, u64)> = HashMap::new();
        for s in self.shards.values() {
            for term in s.known.keys() {
                seen.entry(term.as_str())
                    .or_insert_with(|| self.lower_upper(term));
            }
        }
        let mut ranked: Vec<(&str, u64, u64)> = seen
            .into_iter()
            .filter(|(_, (_, upper))| *upper > 0)
            .map(|(t, (l, u))| (t, l, u))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let n = self.agg.size.min(ranked.len());
        let full = ranked.len() >= self.agg.size;
        let (tau, last_key) = match (full, ranked.get(n.wrapping_sub(1))) {
            (true, Some(t)) => (t.1, t.0),
            _ => (0, ""),
        };
        let mut unresolved = Vec::new();
        for (i, &(term, lower, upper)) in ranked.iter().enumerate() {
            let open = if i < n {
                upper != lower
            } else {
                upper > tau || (upper == tau && term < last_key)
            };
            if open {
                unresolved.push(term.to_string());
            }
        }
        Standing {
            top: ranked[..n]
                .iter()
                .map(|(t, l, _)| (t.to_string(), *l))
                .collect(),
            unresolved,
            unseen_upper: self.shards.values().map(|s| s.bound).sum(),
            tau,
        }
    }

    /// The next round's request, or `None` when the top is proven (or cannot be any more).
    pub fn next_round(&self) -> Option<TermsAggSpec> {
        if self.lost {
            return None;
        }
        let st = self.standing();
        // An unseen term could still make the top: the threshold round.
        if st.unseen_upper > 0 && (st.unseen_upper >= st.tau || st.top.len() < self.agg.size) {
            let m = self.open_shards().len().max(1) as u64;
            let threshold = st.tau.div_ceil(m).max(1);
            return Some(self.spec(Select::AtLeast(threshold)));
        }
        if st.unresolved.is_empty() {
            return None;
        }
        Some(self.spec(Select::Keys(TermKeys {
            keys: st.unresolved,
        })))
    }

    /// The Elasticsearch-shaped answer: buckets, `sum_other_doc_count` and
    /// `doc_count_error_upper_bound` (0 when proven).
    pub fn result(&self) -> Value {
        let st = self.standing();
        let proven = !self.lost && self.next_round().is_none();
        let error = if proven {
            0
        } else {
            let shown = st.top.iter().map(|(t, l)| self.lower_upper(t).1 - l);
            shown.chain([st.unseen_upper]).max().unwrap_or(0)
        };
        let total: u64 = self.shards.values().map(|s| s.sum_counts).sum();
        let in_top: u64 = st.top.iter().map(|(_, c)| c).sum();
        let buckets: Vec<Value> = st
            .top
            .iter()
            .map(|(term, count)| {
                let mut b = Map::new();
                b.insert("key".into(), json!(term));
                b.insert("doc_count".into(), json!(count));
                for (i, m) in self.agg.metrics.iter().enumerate() {
                    let merged = self.merged_metric(term, i);
                    b.insert(m.name.clone(), metric_json(m.kind, &merged));
                }
                Value::Object(b)
            })
            .collect();
        json!({
            "doc_count_error_upper_bound": error,
            "sum_other_doc_count": total.saturating_sub(in_top),
            "buckets": buckets,
        })
    }

    fn merged_metric(&self, term: &str, i: usize) -> MetricPart {
        let mut out = MetricPart {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        };
        for s in self.shards.values() {
            if let Some(m) = s.known.get(term).and_then(|k| k.metrics.get(i)) {
                out.count += m.count;
                out.sum += m.sum;
                out.min = out.min.min(m.min);
                out.max = out.max.max(m.max);
            }
        }
        out
    }
}

/// A metric's answer, shaped as tantivy (and Elasticsearch) shape it.
fn metric_json(kind: MetricKind, m: &MetricPart) -> Value {
    let some = |v: f64| (m.count > 0).then_some(v);
    match kind {
        MetricKind::Stats => json!({
            "count": m.count,
            "sum": m.sum,
            "min": some(m.min),
            "max": some(m.max),
            "avg": some(m.sum / m.count as f64),
        }),
        MetricKind::Avg => json!({ "value": some(m.sum / m.count as f64) }),
        MetricKind::Min => json!({ "value": some(m.min) }),
        MetricKind::Max => json!({ "value": some(m.max) }),
        MetricKind::Sum => json!({ "value": m.sum }),
        MetricKind::ValueCount => json!({ "value": m.count as f64 }),
    }
}

#[cfg(test)]
#[path = "terms_agg_tests.rs"]
mod tests;
