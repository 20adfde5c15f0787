//! Elasticsearch semantics over tantivy's aggregations, where they differ (the API is
//! ES-shaped and users bring ES habits):
//!
//! - `range` bounds on integer fields: a value `v` is in `[from, to)` as a real number
//!   (`from: 0.5` is `>= 1`, `to: 1.5` is `< 2`), not truncated; tantivy truncates, so the
//!   bounds are rounded up before it sees them and reported as asked.
//! - `range` bounds on dates are epoch milliseconds (tantivy reads nanoseconds); `from`/`to`
//!   answer in milliseconds with `from_as_string`/`to_as_string`.
//! - `range` answers only the ranges asked for (tantivy adds `*-first`, the gaps and
//!   `last-*`).
//! - `min`, `max`, `avg`, `sum` and `stats` of a date field answer epoch milliseconds with
//!   `value_as_string` (stats: `min_as_string`, `max_as_string`, `avg_as_string`), not
//!   nanoseconds.

use scatter_core::schema::{FieldKind, ScatterSchema};
use serde_json::{Map, Value};

/// Nanoseconds per millisecond.
const NS_PER_MS: f64 = 1e6;

fn kind_of(schema: &ScatterSchema, params: &Map<String, Value>) -> Option<FieldKind> {
    let field = params.get("field")?.as_str()?;
    Some(schema.field(field)?.kind)
}

/// The type and parameters of a (checked) aggregation body.
fn parts(body: &Value) -> Option<(&str, &Map<String, Value>)> {
    body.as_object()?
        .iter()
        .find(|(k, _)| *k != "aggs" && *k != "aggregations")
        .and_then(|(k, v)| Some((k.as_str(), v.as_object()?)))
}

/// A range bound as tantivy must see it for ES semantics on a field of `kind`.
fn tantivy_bound(v: f64, kind: FieldKind) -> f64 {
    match kind {
        FieldKind::U64 => v.ceil().max(0.0),
        FieldKind::I64 => v.ceil(),
        FieldKind::Date => v * NS_PER_MS,
        _ => v,
    }
}

/// Rewrites the `range` aggregations of a checked request (tantivy's part) so that tantivy
/// computes what Elasticsearch would.
pub fn rewrite(aggs: &mut Map<String, Value>, schema: &ScatterSchema) {
    for body in aggs.values_mut() {
        let Some(range) = body.get_mut("range").and_then(Value::as_object_mut) else {
            continue;
        };
        let Some(kind) = kind_of(schema, range) else {
            continue;
        };
        for r in range
            .get_mut("ranges")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let bound = |k: &str| r.get(k).and_then(Value::as_f64);
            let (from, to) = (bound("from"), bound("to"));
            let rounded = |v: Option<f64>| v.is_some_and(|v| v.fract() != 0.0);
            let integer = matches!(kind, FieldKind::U64 | FieldKind::I64);
            if integer && r.get("key").is_none() && (rounded(from) || rounded(to)) {
                // Keyed by the bounds asked, not the rounded ones.
                let text = |v: Option<f64>| v.map_or("*".to_string(), |v| v.to_string());
                r["key"] = Value::from(format!("{}-{}", text(from), text(to)));
            }
            for (key, v) in [("from", from), ("to", to)] {
                if let Some(v) = v {
                    r[key] = Value::from(tantivy_bound(v, kind));
                }
            }
        }
    }
}

/// Makes tantivy's answer to the rewritten request the answer Elasticsearch gives to
/// `request` (see the module's list).
pub fn finish(results: &mut Map<String, Value>, request: &Value, schema: &ScatterSchema) {
    let Some(request) = request.as_object() else {
        return;
    };
    for (name, body) in request {
        let (Some((kind, params)), Some(result)) = (parts(body), results.get_mut(name)) else {
            continue;
        };
        if kind == "range" {
            finish_range(result, params, schema);
        } else {
            date_metric(result, kind, params, schema);
        }
        let subs = body
            .get("aggs")
            .or_else(|| body.get("aggregations"))
            .and_then(Value::as_object);
        for sub in subs.into_iter().flatten() {
            let Some((sub_kind, sub_params)) = parts(sub.1) else {
                continue;
            };
            for bucket in buckets_mut(result) {
                if let Some(r) = bucket.get_mut(sub.0) {
                    date_metric(r, sub_kind, sub_params, schema);
                }
            }
        }
    }
}

/// The buckets of a bucket aggregation's answer (a list, or an object when `keyed`).
fn buckets_mut(result: &mut Value) -> Vec<&mut Value> {
    match result.get_mut("buckets") {
        Some(Value::Array(list)) => list.iter_mut().collect(),
        Some(Value::Object(map)) => map.values_mut().collect(),
        _ => Vec::new(),
    }
}

/// Keeps the buckets of the asked ranges and reports their bounds as asked.
fn finish_range(result: &mut Value, params: &Map<String, Value>, schema: &ScatterSchema) {
    let Some(kind) = kind_of(schema, params) else {
        return;
    };
    let asked: Vec<(Option<f64>, Option<f64>)> = params
        .get("ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let b = |k: &str| r.get(k).and_then(Value::as_f64);
            (b("from"), b("to"))
        })
        .collect();
    let original = |bucket: &Value| {
        let b = |k: &str| bucket.get(k).and_then(Value::as_f64);
        let (from, to) = (b("from"), b("to"));
        asked.iter().copied().find(|(f, t)| {
            let same = |asked: Option<f64>, got: Option<f64>| match (asked, got) {
                (None, None) => true,
                // tantivy reports a u64 range starting at 0 as unbounded.
                (Some(a), None) => kind == FieldKind::U64 && tantivy_bound(a, kind) == 0.0,
                (Some(a), Some(g)) => tantivy_bound(a, kind) == g,
                (None, Some(_)) => false,
            };
            same(*f, from) && same(*t, to)
        })
    };
    let restore = |bucket: &mut Value, (from, to): (Option<f64>, Option<f64>)| {
        for (key, v) in [("from", from), ("to", to)] {
            match v {
                Some(v) => bucket[key] = Value::from(v),
                None => {
                    if let Some(o) = bucket.as_object_mut() {
                        o.remove(key);
                    }
                }
            }
        }
    };
    match result.get_mut("buckets") {
        Some(Value::Array(list)) => {
            list.retain(|b| original(b).is_some());
            for b in list.iter_mut() {
                if let Some(o) = original(b) {
                    restore(b, o);
                }
            }
        }
        Some(Value::Object(map)) => {
            map.retain(|_, b| original(b).is_some());
            for b in map.values_mut() {
                if let Some(o) = original(b) {
                    restore(b, o);
                }
            }
        }
        _ => {}
    }
}

/// A metric of a date field in epoch milliseconds with its RFC 3339 form.
fn date_metric(
    result: &mut Value,
    kind: &str,
    params: &Map<String, Value>,
    schema: &ScatterSchema,
) {
    if kind_of(schema, params) != Some(FieldKind::Date) {
        return;
    }
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    let keys: &[(&str, Option<&str>)] = match kind {
        "stats" => &[
            ("min", Some("min_as_string")),
            ("max", Some("max_as_string")),
            ("avg", Some("avg_as_string")),
            ("sum", None),
        ],
        "min" | "max" | "avg" => &[("value", Some("value_as_string"))],
        "sum" => &[("value", None)],
        _ => &[],
    };
    for (key, as_string) in keys {
        let Some(ns) = obj.get(*key).and_then(Value::as_f64) else {
            continue;
        };
        let ms = ns / NS_PER_MS;
        obj.insert(key.to_string(), Value::from(ms));
        if let (Some(name), Some(text)) = (as_string, rfc3339_ms(ms)) {
            obj.insert(name.to_string(), Value::from(text));
        }
    }
}

/// Epoch milliseconds as RFC 3339 with milliseconds (`2024-01-02T03:04:05.678Z`).
pub fn rfc3339_ms(ms: f64) -> Option<String> {
    use tantivy::time::{format_description::well_known::Rfc3339, OffsetDateTime};
    let nanos = (ms.round() as i128).checked_mul(1_000_000)?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    let text = t.format(&Rfc3339).ok()?;
    // `time` prints as many fraction digits as needed; ES prints three.
    let (secs, rest) = text
        .split_once('.')
        .unwrap_or((text.trim_end_matches('Z'), "Z"));
    let frac: String = rest
        .trim_end_matches('Z')
        .chars()
        .chain("000".chars())
        .take(3)
        .collect();
    Some(format!("{secs}.{frac}Z"))
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

    #[test]
    fn rounds_integer_bounds_and_scales_dates() {
        let mut aggs = json!({
            "r": {"range": {"field": "words", "ranges": [{"from": 0.5, "to": 1.5}, {"from": -3}]}},
            "d": {"range": {"field": "released", "ranges": [{"to": 1000}]}}
        });
        rewrite(aggs.as_object_mut().unwrap(), &schema());
        assert_eq!(
            aggs["r"]["range"]["ranges"][0],
            json!({"from": 1.0, "to": 2.0, "key": "0.5-1.5"})
        );
        assert_eq!(aggs["r"]["range"]["ranges"][1], json!({"from": 0.0}));
        assert_eq!(aggs["d"]["range"]["ranges"][0], json!({"to": 1e9}));
    }

    #[test]
    fn answers_only_asked_ranges_with_asked_bounds() {
        let request = json!({"r": {"range": {"field": "words",
            "ranges": [{"to": 100}, {"from": 200.5, "to": 300}]}}});
        let mut results = json!({"r": {"buckets": [
            {"key": "*-100", "doc_count": 1, "to": 100.0},
            {"key": "100-201", "doc_count": 2, "from": 100.0, "to": 201.0},
            {"key": "201-300", "doc_count": 3, "from": 201.0, "to": 300.0},
            {"key": "300-*", "doc_count": 4, "from": 300.0}
        ]}});
        finish(results.as_object_mut().unwrap(), &request, &schema());
        assert_eq!(
            results["r"]["buckets"],
            json!([
                {"key": "*-100", "doc_count": 1, "to": 100.0},
                {"key": "201-300", "doc_count": 3, "from": 200.5, "to": 300.0}
            ])
        );
    }

    #[test]
    fn date_metrics_in_milliseconds() {
        let request = json!({"m": {"min": {"field": "released"}},
                             "s": {"stats": {"field": "released"}}});
        let mut results = json!({"m": {"value": 1.5e15},
                                 "s": {"count": 1, "min": 1.5e15, "max": 1.5e15, "avg": 1.5e15, "sum": 1.5e15}});
        finish(results.as_object_mut().unwrap(), &request, &schema());
        assert_eq!(results["m"]["value"], json!(1.5e9));
        assert_eq!(
            results["m"]["value_as_string"],
            json!("1970-01-18T08:40:00.000Z")
        );
        assert_eq!(
            results["s"]["max_as_string"],
            json!("1970-01-18T08:40:00.000Z")
        );
        assert_eq!(
            rfc3339_ms(1_700_000_000_123.0).unwrap(),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
