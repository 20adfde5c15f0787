//! Aggregations as a search asks for them (`aggs`, Elasticsearch-shaped): checked against the
//! schema (every parameter known, every field of the right kind), then split into what
//! tantivy computes and merges exactly (histogram, date_histogram, range and the metrics) and
//! Scatter's exact terms aggregations ([`crate::query::terms_agg`]).
//!
//! Nesting: one level. A bucket aggregation (terms, histogram, date_histogram, range) may hold
//! metric aggregations (stats, avg, min, max, sum, value_count); terms only at the top level.

use scatter_core::limits::{AGG_BUCKET_LIMIT, MAX_AGGS, MAX_TERMS_SIZE};
use scatter_core::schema::{FieldKind, ScatterSchema};
use serde_json::{Map, Value};
use tantivy::aggregation::agg_req::{Aggregation, Aggregations};
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;

/// A metric aggregation's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// count, sum, min, max, avg.
    Stats,
    /// Mean.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sum.
    Sum,
    /// Number of values.
    ValueCount,
}

impl MetricKind {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "stats" => Self::Stats,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "sum" => Self::Sum,
            "value_count" => Self::ValueCount,
            _ => return None,
        })
    }
}

/// A metric under a terms aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricAgg {
    /// Its name in the request.
    pub name: String,
    /// What it computes.
    pub kind: MetricKind,
    /// The numeric field.
    pub field: String,
}

/// A terms aggregation: the `size` terms with the most matching documents (ties by term).
#[derive(Debug, Clone, PartialEq)]
pub struct TermsAgg {
    /// Its name in the request.
    pub name: String,
    /// The keyword field.
    pub field: String,
    /// Buckets returned.
    pub size: usize,
    /// Terms each shard reports in the first round.
    pub shard_size: usize,
    /// Metrics per bucket.
    pub metrics: Vec<MetricAgg>,
}

/// A checked `aggs` request.
#[derive(Debug, Clone)]
pub struct AggsPlan {
    /// tantivy's part as tantivy reads it, and its JSON for the leaves.
    pub tantivy: Option<(Aggregations, String)>,
    /// The terms aggregations.
    pub terms: Vec<TermsAgg>,
    /// The request as asked and the schema, for the answer's Elasticsearch semantics
    /// ([`crate::query::agg_es::finish`]).
    pub asked: (Value, ScatterSchema),
    /// Buckets the answer may still add once the shards have answered (histograms' gaps):
    /// [`AGG_BUCKET_LIMIT`] less what the request itself asks for.
    pub bucket_budget: f64,
}

const BUCKET_TYPES: [&str; 4] = ["terms", "histogram", "date_histogram", "range"];
const METRIC_TYPES: [&str; 6] = ["stats", "avg", "min", "max", "sum", "value_count"];

/// Checks `aggs` against `schema`; the error says what is wrong, for a 400.
pub fn plan(aggs: &Value, schema: &ScatterSchema) -> Result<AggsPlan, String> {
    let named = aggs
        .as_object()
        .ok_or("aggs must be an object of named aggregations")?;
    let mut count = 0;
    let mut budget = f64::from(AGG_BUCKET_LIMIT);
    let mut tantivy = Map::new();
    let mut terms = Vec::new();
    for (name, body) in named {
        let (kind, params, subs) = split(name, body)?;
        count += 1 + subs.map_or(0, |s| s.len());
        if count > MAX_AGGS {
            return Err(format!("more than {MAX_AGGS} aggregations"));
        }
        if kind == "terms" {
            let agg = terms_agg(name, params, subs, schema)?;
            crate::query::agg_checks::terms(name, agg.size, &mut budget)?;
            terms.push(agg);
            continue;
        }
        check(name, kind, params, schema)?;
        match kind {
            "histogram" | "date_histogram" => {
                crate::query::agg_checks::histogram(name, kind, params, &mut budget)?
            }
            "range" => crate::query::agg_checks::ranges(name, params, &mut budget)?,
            _ => {}
        }
        serde_json::from_value::<Aggregation>(body.clone())
            .map_err(|e| format!("aggregation {name:?}: {e}"))?;
        if let Some(subs) = subs {
            if METRIC_TYPES.contains(&kind) {
                return Err(format!(
                    "aggregation {name:?}: a {kind} holds no aggregations"
                ));
            }
            for (sub, sub_body) in subs {
                let (sub_kind, sub_params, deeper) = split(sub, sub_body)?;
                metric_only(name, sub, sub_kind, deeper)?;
                check(sub, sub_kind, sub_params, schema)?;
            }
        }
        tantivy.insert(name.clone(), body.clone());
    }
    let tantivy = if tantivy.is_empty() {
        None
    } else {
        crate::query::agg_es::rewrite(&mut tantivy, schema);
        let json = Value::Object(tantivy).to_string();
        let parsed: Aggregations = serde_json::from_str(&json).map_err(|e| format!("aggs: {e}"))?;
        Some((parsed, json))
    };
    Ok(AggsPlan {
        tantivy,
        terms,
        asked: (aggs.clone(), schema.clone()),
        bucket_budget: budget,
    })
}

/// An aggregation's type, its parameters and its sub-aggregations.
type Parts<'a> = (
    &'a str,
    &'a Map<String, Value>,
    Option<&'a Map<String, Value>>,
);

/// Splits an aggregation into its [`Parts`].
fn split<'a>(name: &str, body: &'a Value) -> Result<Parts<'a>, String> {
    if name.is_empty() || name.len() > 128 || name.contains(['>', '[', ']', '.']) {
        return Err(format!(
            "aggregation name {name:?} must be 1 to 128 characters without > [ ] ."
        ));
    }
    let body = body
        .as_object()
        .ok_or_else(|| format!("aggregation {name:?} must be an object"))?;
    let mut kind = None;
    let mut subs = None;
    for (key, value) in body {
        match key.as_str() {
            "aggs" | "aggregations" => {
                subs = Some(
                    value
                        .as_object()
                        .ok_or_else(|| format!("aggregation {name:?}: {key} must be an object"))?,
                )
            }
            t if BUCKET_TYPES.contains(&t) || METRIC_TYPES.contains(&t) => {
                if kind.is_some() {
                    return Err(format!("aggregation {name:?} has more than one type"));
                }
                let params = value.as_object().ok_or_else(|| {
                    format!("aggregation {name:?}: {key} must be an object of parameters")
                })?;
                kind = Some((t, params));
            }
            other => {
                return Err(format!(
                "aggregation {name:?}: unknown or unsupported type {other:?} (supported: {}, {})",
                BUCKET_TYPES.join(", "),
                METRIC_TYPES.join(", ")
            ))
            }
        }
    }
    let (kind, params) = kind.ok_or_else(|| format!("aggregation {name:?} has no type"))?;
    Ok((kind, params, subs))
}

/// A sub-aggregation must be a metric without sub-aggregations of its own.
fn metric_only(
    parent: &str,
    sub: &str,
    kind: &str,
    deeper: Option<&Map<String, Value>>,
) -> Result<(), String> {
    if !METRIC_TYPES.contains(&kind) {
        return Err(format!(
            "aggregation {parent:?} > {sub:?}: only metric aggregations ({}) can be nested",
            METRIC_TYPES.join(", ")
        ));
    }
    if deeper.is_some() {
        return Err(format!(
            "aggregation {parent:?} > {sub:?}: one level of nesting at most"
        ));
    }
    Ok(())
}

/// Checks a tantivy-computed aggregation's parameters and field.
fn check(
    name: &str,
    kind: &str,
    params: &Map<String, Value>,
    schema: &ScatterSchema,
) -> Result<(), String> {
    let allowed: &[&str] = match kind {
        "histogram" => &[
            "field",
            "interval",
            "offset",
            "min_doc_count",
            "hard_bounds",
            "extended_bounds",
            "keyed",
        ],
        "date_histogram" => &[
            "field",
            "fixed_interval",
            "offset",
            "min_doc_count",
            "hard_bounds",
            "extended_bounds",
            "keyed",
        ],
        "range" => &["field", "ranges", "keyed"],
        _ => &["field", "missing"],
    };
    known_params(name, kind, params, allowed)?;
    let field = field_param(name, params)?;
    let wanted: &[FieldKind] = match kind {
        "date_histogram" => &[FieldKind::Date],
        _ => &[
            FieldKind::U64,
            FieldKind::I64,
            FieldKind::F64,
            FieldKind::Date,
        ],
    };
    fast_field(name, field, wanted, schema)
}

/// Refuses parameters outside `allowed`.
fn known_params(
    name: &str,
    kind: &str,
    params: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), String> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "aggregation {name:?}: unknown {kind} parameter {k:?} (known: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// The `field` parameter.
fn field_param<'a>(name: &str, params: &'a Map<String, Value>) -> Result<&'a str, String> {
    params
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("aggregation {name:?}: `field` (a string) is required"))
}

/// `field` must be a fast field of one of the `wanted` kinds.
fn fast_field(
    name: &str,
    field: &str,
    wanted: &[FieldKind],
    schema: &ScatterSchema,
) -> Result<(), String> {
    match schema.field(field) {
        None => Err(format!(
            "aggregation {name:?}: field {field:?} is not in the schema"
        )),
        Some(f) if f.fast && wanted.contains(&f.kind) => Ok(()),
        Some(f) => Err(format!(
            "aggregation {name:?}: field {field:?} ({:?}{}) is not a fast {} field",
            f.kind,
            if f.fast { "" } else { ", not fast" },
            wanted
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join("/")
        )),
    }
}

/// A terms aggregation's parameters.
fn terms_agg(
    name: &str,
    params: &Map<String, Value>,
    subs: Option<&Map<String, Value>>,
    schema: &ScatterSchema,
) -> Result<TermsAgg, String> {
    known_params(
        name,
        "terms",
        params,
        &["field", "size", "shard_size", "order"],
    )?;
    let field = field_param(name, params)?;
    fast_field(name, field, &[FieldKind::Keyword], schema)?;
    let count = |key: &str, default: usize| -> Result<usize, String> {
        match params.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_TERMS_SIZE as u64).contains(n))
                .map(|n| n as usize)
                .ok_or_else(|| {
                    format!(
                        "aggregation {name:?}: {key} must be an integer in 1..={MAX_TERMS_SIZE}"
                    )
                }),
        }
    };
    let size = count("size", 10)?;
    let shard_size = count("shard_size", (size * 3 / 2 + 10).min(MAX_TERMS_SIZE))?.max(size);
    if let Some(order) = params.get("order") {
        if *order != serde_json::json!({"_count": "desc"}) {
            return Err(format!(
                "aggregation {name:?}: order must be {{\"_count\": \"desc\"}} (ties by term \
                 ascending), the only order supported"
            ));
        }
    }
    let mut metrics = Vec::new();
    for (sub, body) in subs.into_iter().flatten() {
        let (kind, sub_params, deeper) = split(sub, body)?;
        metric_only(name, sub, kind, deeper)?;
        known_params(sub, kind, sub_params, &["field"])?;
        let field = field_param(sub, sub_params)?;
        fast_field(
            sub,
            field,
            &[FieldKind::U64, FieldKind::I64, FieldKind::F64],
            schema,
        )?;
        metrics.push(MetricAgg {
            name: sub.clone(),
            kind: MetricKind::of(kind).expect("a metric type"),
            field: field.to_string(),
        });
    }
    Ok(TermsAgg {
        name: name.to_string(),
        field: field.to_string(),
        size,
        shard_size,
        metrics,
    })
}

/// Why merged aggregations have no answer.
#[derive(Debug)]
pub enum FinishError {
    /// The answer would hold more buckets than allowed: the request's fault (400).
    TooManyBuckets(String),
    /// The shards' parts could not be merged.
    Merge(String),
}

/// Merges the shards' intermediate results (postcard-encoded) into tantivy's final answer,
/// as JSON; the buckets gap filling adds are counted against `bucket_budget` first.
pub fn finish_tantivy<'a>(
    aggs: &Aggregations,
    parts: impl IntoIterator<Item = &'a [u8]>,
    bucket_budget: f64,
) -> Result<Map<String, Value>, FinishError> {
    use FinishError::Merge;
    let mut merged = IntermediateAggregationResults::default();
    for part in parts {
        let part: IntermediateAggregationResults = postcard::from_bytes(part)
            .map_err(|e| Merge(format!("a shard's aggregations: {e}")))?;
        if part.keys().any(|k| aggs.get(k.as_str()).is_none()) {
            return Err(Merge(
                "a shard answered aggregations that were not asked".into(),
            ));
        }
        merged
            .merge_fruits(part)
            .map_err(|e| Merge(e.to_string()))?;
    }
    crate::query::agg_checks::check_merged(aggs, &merged, bucket_budget)
        .map_err(FinishError::TooManyBuckets)?;
    let limits = scatter_core::limits::process_agg_limits();
    let results = merged
        .into_final_result(aggs.clone(), limits)
        .map_err(|e| Merge(e.to_string()))?;
    match serde_json::to_value(results).map_err(|e| Merge(e.to_string()))? {
        Value::Object(map) => Ok(map),
        _ => Err(Merge("aggregation results are not an object".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ScatterSchema {
        ScatterSchema::from_toml(
            r#"
id_field = "id"
default_fields = ["body"]
[[fields]]
name = "body"
type = "text"
[[fields]]
name = "section"
type = "keyword"
fast = true
[[fields]]
name = "tag"
type = "keyword"
[[fields]]
name = "words"
type = "u64"
fast = true
[[fields]]
name = "released"
type = "date"
fast = true
"#,
        )
        .unwrap()
    }

    fn err(aggs: Value) -> String {
        plan(&aggs, &schema()).unwrap_err()
    }

    #[test]
    fn splits_terms_from_tantivy_aggregations() {
        let p = plan(
            &json!({
                "by_section": {"terms": {"field": "section", "size": 5},
                               "aggs": {"w": {"stats": {"field": "words"}}}},
                "h": {"histogram": {"field": "words", "interval": 10}},
                "d": {"date_histogram": {"field": "released", "fixed_interval": "30d"}},
                "r": {"range": {"field": "words", "ranges": [{"to": 10}, {"from": 10}]},
                      "aggs": {"a": {"avg": {"field": "words"}}}},
                "s": {"stats": {"field": "words"}}
            }),
            &schema(),
        )
        .unwrap();
        assert_eq!(p.terms.len(), 1);
        assert_eq!(p.terms[0].size, 5);
        assert_eq!(p.terms[0].shard_size, 17);
        assert_eq!(p.terms[0].metrics[0].kind, MetricKind::Stats);
        assert_eq!(p.tantivy.unwrap().0.len(), 4);
    }

    #[test]
    fn refuses_what_it_cannot_do_with_a_reason() {
        assert!(err(json!([])).contains("object"));
        assert!(err(json!({"x": {"percentiles": {"field": "words"}}})).contains("unsupported"));
        assert!(err(json!({"x": {"terms": {"field": "tag"}}})).contains("not a fast"));
        assert!(err(json!({"x": {"terms": {"field": "words"}}})).contains("Keyword"));
        assert!(err(json!({"x": {"terms": {"field": "section", "sise": 3}}})).contains("sise"));
        assert!(err(json!({"x": {"terms": {"field": "section", "size": 0}}})).contains("size"));
        assert!(
            err(json!({"x": {"histogram": {"field": "words", "intervall": 3}}}))
                .contains("intervall")
        );
        assert!(err(json!({"x": {"histogram": {"field": "words"}}})).contains("interval"));
        assert!(
            err(json!({"x": {"date_histogram": {"field": "words", "fixed_interval": "1d"}}}))
                .contains("Date")
        );
        assert!(err(json!({"x": {"stats": {"field": "nope"}}})).contains("not in the schema"));
        assert!(err(json!({"x": {"stats": {}}})).contains("required"));
        assert!(
            err(json!({"x": {"histogram": {"field": "words", "interval": 3},
                                   "aggs": {"y": {"terms": {"field": "section"}}}}}))
            .contains("nested")
        );
        assert!(err(json!({"x": {"terms": {"field": "section"},
                                   "aggs": {"y": {"stats": {"field": "words"},
                                                   "aggs": {"z": {"min": {"field": "words"}}}}}}}))
        .contains("one level"));
        assert!(
            err(json!({"x": {"stats": {"field": "words"}, "min": {"field": "words"}}}))
                .contains("more than one")
        );
        assert!(
            err(json!({"x": {"terms": {"field": "section", "order": {"_key": "asc"}}}}))
                .contains("order")
        );
    }
}
