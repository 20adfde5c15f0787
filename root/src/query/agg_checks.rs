//! Bounds on what an aggregation may cost, checked before tantivy sees it: finite positive
//! intervals, well-formed bounds and ranges, and the number of buckets a histogram *can*
//! produce (with `extended_bounds`/`hard_bounds`, in checked arithmetic) against one budget
//! for the whole request ([`MAX_AGG_BUCKETS`]). tantivy 0.27 trusts these values: an interval
//! of 0 or an `extended_bounds` of 10^17 make it divide by zero, overflow a size computation
//! and allocate without bound.

use scatter_core::limits::{AGG_BUCKET_LIMIT as MAX_AGG_BUCKETS, MAX_RANGES};
use serde_json::{Map, Value};
use tantivy::aggregation::agg_req::{AggregationVariants, Aggregations};
use tantivy::aggregation::intermediate_agg_result::{
    IntermediateAggregationResult, IntermediateAggregationResults, IntermediateBucketResult,
};

/// Milliseconds per unit of a `fixed_interval` (tantivy's units).
const UNITS_MS: [(&str, i64); 10] = [
    ("ms", 1),
    ("milliseconds", 1),
    ("s", 1_000),
    ("seconds", 1_000),
    ("m", 60_000),
    ("minutes", 60_000),
    ("h", 3_600_000),
    ("hours", 3_600_000),
    ("d", 86_400_000),
    ("days", 86_400_000),
];

/// Longest fixed interval or offset, in milliseconds: 10,000 years (dates are stored in
/// nanoseconds, so larger values overflow).
const MAX_INTERVAL_MS: i64 = 10_000 * 365 * 86_400_000;

/// A duration like `30d` or `-1h` (sign only when `signed`), in milliseconds.
pub fn duration_ms(text: &str, signed: bool) -> Option<i64> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) if signed => (true, r),
        _ => (
            false,
            text.strip_prefix('+').filter(|_| signed).unwrap_or(text),
        ),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = rest.split_at(digits);
    if number.is_empty() || number.len() > 15 {
        return None;
    }
    let unit_ms = UNITS_MS.iter().find(|(u, _)| *u == unit)?.1;
    let ms = number.parse::<i64>().ok()?.checked_mul(unit_ms)?;
    (ms <= MAX_INTERVAL_MS).then_some(if negative { -ms } else { ms })
}

/// A histogram's grid in the unit of its field (milliseconds for dates).
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    interval: f64,
    offset: f64,
}

impl Grid {
    /// Buckets from the one holding `min` to the one holding `max`, both included (as
    /// tantivy fills gaps); `f64::INFINITY` when not computable.
    pub fn buckets(&self, min: f64, max: f64) -> f64 {
        if min > max {
            return 0.0;
        }
        let first = ((min - self.offset) / self.interval).floor();
        let last = ((max - self.offset) / self.interval).floor();
        let n = last - first + 1.0;
        if n.is_finite() {
            n
        } else {
            f64::INFINITY
        }
    }
}

/// `{min, max}` bounds: finite numbers (dates: epoch milliseconds or RFC 3339), min ≤ max.
fn bounds(
    name: &str,
    key: &str,
    params: &Map<String, Value>,
) -> Result<Option<(f64, f64)>, String> {
    let Some(v) = params.get(key) else {
        return Ok(None);
    };
    let b: tantivy::aggregation::bucket::HistogramBounds = serde_json::from_value(v.clone())
        .map_err(|e| format!("aggregation {name:?}: {key}: {e}"))?;
    if !(b.min.is_finite() && b.max.is_finite()) || b.min > b.max {
        return Err(format!(
            "aggregation {name:?}: {key} must have finite min <= max, got {}..{}",
            b.min, b.max
        ));
    }
    Ok(Some((b.min, b.max)))
}

/// Checks a `histogram` or `date_histogram`: its grid, its bounds and the buckets its
/// `extended_bounds` force (counted against `budget`); the buckets the data adds are checked
/// on the merged answer ([`check_merged`]).
pub fn histogram(
    name: &str,
    kind: &str,
    params: &Map<String, Value>,
    budget: &mut f64,
) -> Result<(), String> {
    let grid = grid(name, kind, params)?;
    let min_doc_count = match params.get("min_doc_count") {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            format!("aggregation {name:?}: min_doc_count must be a non-negative integer")
        })?,
    };
    let hard = bounds(name, "hard_bounds", params)?;
    let extended = bounds(name, "extended_bounds", params)?;
    if let (Some(ext), 0) = (extended, min_doc_count) {
        let (lo, hi) = match hard {
            Some(h) => (ext.0.max(h.0), ext.1.min(h.1)),
            None => ext,
        };
        spend(name, grid.buckets(lo, hi), budget)?;
    }
    Ok(())
}

/// The grid of a histogram request: a finite interval > 0 and a finite offset.
fn grid(name: &str, kind: &str, params: &Map<String, Value>) -> Result<Grid, String> {
    if kind == "date_histogram" {
        let text = |key: &str| params.get(key).map(|v| v.as_str().ok_or(()));
        let interval = match text("fixed_interval") {
            Some(Ok(t)) => duration_ms(t, false).filter(|ms| *ms > 0),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "aggregation {name:?}: fixed_interval must be a positive duration like \"30d\" \
                 (units ms, s, m, h, d; at most 10,000 years)"
            )
        })?;
        let offset = match text("offset") {
            None => 0,
            Some(t) => t.ok().and_then(|t| duration_ms(t, true)).ok_or_else(|| {
                format!("aggregation {name:?}: offset must be a duration like \"-1h\"")
            })?,
        };
        return Ok(Grid {
            interval: interval as f64,
            offset: offset as f64,
        });
    }
    let number = |key: &str| {
        params
            .get(key)
            .map(|v| v.as_f64().filter(|x| x.is_finite()))
    };
    let interval = number("interval")
        .flatten()
        .filter(|i| *i > 0.0)
        .ok_or_else(|| format!("aggregation {name:?}: interval must be a finite number > 0"))?;
    let offset = match number("offset") {
        None => 0.0,
        Some(o) => o.ok_or_else(|| format!("aggregation {name:?}: offset must be a number"))?,
    };
    Ok(Grid { interval, offset })
}

/// Counts `buckets` against the request's `budget`.
fn spend(name: &str, buckets: f64, budget: &mut f64) -> Result<(), String> {
    *budget -= buckets;
    if *budget < 0.0 {
        return Err(format!(
            "aggregation {name:?} would answer {} buckets; a search's aggregations may answer \
             at most {MAX_AGG_BUCKETS} all together (use a larger interval, hard_bounds or \
             min_doc_count, or smaller terms sizes)",
            if buckets.is_finite() {
                format!("{buckets:.0}")
            } else {
                "too many".into()
            }
        ));
    }
    Ok(())
}

/// Checks a `range` aggregation's `ranges`: 1 to [`MAX_RANGES`] objects of `from`/`to`
/// (finite numbers, from < to) and `key`, not overlapping.
pub fn ranges(name: &str, params: &Map<String, Value>, budget: &mut f64) -> Result<(), String> {
    let list = params
        .get("ranges")
        .and_then(Value::as_array)
        .filter(|l| (1..=MAX_RANGES).contains(&l.len()))
        .ok_or_else(|| {
            format!("aggregation {name:?}: ranges must be a list of 1 to {MAX_RANGES} ranges")
        })?;
    let mut spans = Vec::with_capacity(list.len());
    for r in list {
        let r = r
            .as_object()
            .ok_or_else(|| format!("aggregation {name:?}: each range must be an object"))?;
        if let Some(k) = r
            .keys()
            .find(|k| !["from", "to", "key"].contains(&k.as_str()))
        {
            return Err(format!(
                "aggregation {name:?}: unknown range parameter {k:?} (known: from, to, key)"
            ));
        }
        let bound = |key: &str, unbounded: f64| match r.get(key) {
            None | Some(Value::Null) => Ok(unbounded),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                format!("aggregation {name:?}: range {key} must be a finite number")
            }),
        };
        let (from, to) = (
            bound("from", f64::NEG_INFINITY)?,
            bound("to", f64::INFINITY)?,
        );
        if from >= to {
            return Err(format!(
                "aggregation {name:?}: a range's from must be below its to, got {from}..{to}"
            ));
        }
        if r.get("key").is_some_and(|k| !k.is_string()) {
            return Err(format!(
                "aggregation {name:?}: a range's key must be a string"
            ));
        }
        spans.push((from, to));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(w) = spans.windows(2).find(|w| w[0].1 > w[1].0) {
        return Err(format!(
            "aggregation {name:?}: ranges {}..{} and {}..{} overlap; overlapping ranges are not \
             supported (ask for them in separate range aggregations)",
            w[0].0, w[0].1, w[1].0, w[1].1
        ));
    }
    spend(name, list.len() as f64, budget)
}

/// Counts a terms aggregation's `size` buckets against the request's `budget`.
pub fn terms(name: &str, size: usize, budget: &mut f64) -> Result<(), String> {
    spend(name, size as f64, budget)
}

/// Before tantivy fills the gaps of the merged histograms: the buckets each will answer
/// (from its smallest to its largest key, widened by `extended_bounds`, cut by
/// `hard_bounds`), all together within `budget` (what the plan left).
pub fn check_merged(
    aggs: &Aggregations,
    merged: &IntermediateAggregationResults,
    mut budget: f64,
) -> Result<(), String> {
    for (name, agg) in aggs.iter() {
        let req = match &agg.agg {
            AggregationVariants::Histogram(h) => h.clone(),
            AggregationVariants::DateHistogram(d) => {
                let ms =
                    |t: &Option<String>, signed| t.as_deref().and_then(|t| duration_ms(t, signed));
                tantivy::aggregation::bucket::HistogramAggregation {
                    interval: ms(&d.fixed_interval, false).unwrap_or(1) as f64,
                    offset: ms(&d.offset, true).map(|o| o as f64),
                    min_doc_count: d.min_doc_count,
                    hard_bounds: d.hard_bounds,
                    extended_bounds: d.extended_bounds,
                    ..Default::default()
                }
            }
            _ => continue,
        };
        let Some(IntermediateAggregationResult::Bucket(IntermediateBucketResult::Histogram {
            is_date_agg,
            buckets,
        })) = merged.get(name)
        else {
            continue;
        };
        if req.min_doc_count.unwrap_or(0) > 0 {
            spend(name, buckets.len() as f64, &mut budget)?;
            continue;
        }
        // Keys of dates are nanoseconds; the request's numbers milliseconds.
        let scale = if *is_date_agg { 1e-6 } else { 1.0 };
        let keys = buckets.iter().map(|b| b.key * scale);
        let (mut lo, mut hi) = keys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), k| {
            (lo.min(k), hi.max(k))
        });
        if let Some(e) = req.extended_bounds {
            (lo, hi) = (lo.min(e.min), hi.max(e.max));
        }
        if let Some(h) = req.hard_bounds {
            (lo, hi) = (lo.max(h.min), hi.min(h.max));
        }
        let grid = Grid {
            interval: req.interval,
            offset: req.offset.unwrap_or(0.0),
        };
        spend(name, grid.buckets(lo, hi), &mut budget)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hist(params: Value) -> Result<f64, String> {
        let mut budget = MAX_AGG_BUCKETS as f64;
        let kind = if params.get("fixed_interval").is_some() {
            "date_histogram"
        } else {
            "histogram"
        };
        histogram("h", kind, params.as_object().unwrap(), &mut budget)?;
        Ok(MAX_AGG_BUCKETS as f64 - budget)
    }

    #[test]
    fn refuses_bad_grids_and_too_many_buckets() {
        for bad in [
            json!({"interval": 0}),
            json!({"interval": -5}),
            json!({"interval": "x"}),
            json!({"interval": 1, "offset": "a"}),
            json!({"interval": 1, "extended_bounds": {"min": 0, "max": 10_000_000}}),
            json!({"interval": 1e-9, "extended_bounds": {"min": 0, "max": 1}}),
            json!({"interval": 1, "extended_bounds": {"min": 0, "max": 384307168202282368u64}}),
            json!({"interval": 1, "extended_bounds": {"min": 5, "max": 1}}),
            json!({"fixed_interval": "0d"}),
            json!({"fixed_interval": "999999999999999999d"}),
            json!({"fixed_interval": "1y"}),
            json!({"fixed_interval": "1ms", "extended_bounds": {"min": 0, "max": 1e12}}),
        ] {
            assert!(hist(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(
            hist(json!({"interval": 10, "extended_bounds": {"min": 0, "max": 99}})),
            Ok(10.0)
        );
        assert_eq!(
            hist(
                json!({"interval": 1, "extended_bounds": {"min": 0, "max": 1e9},
                        "hard_bounds": {"min": 0, "max": 9}})
            ),
            Ok(10.0)
        );
        assert_eq!(hist(json!({"interval": 1e-9})), Ok(0.0));
    }

    #[test]
    fn refuses_bad_ranges() {
        let check = |ranges: Value| {
            let params = json!({"field": "f", "ranges": ranges});
            ranges_check(params)
        };
        fn ranges_check(params: Value) -> Result<(), String> {
            ranges(
                "r",
                params.as_object().unwrap(),
                &mut (MAX_AGG_BUCKETS as f64),
            )
        }
        assert!(check(json!([])).is_err());
        assert!(check(json!([{"from": 5, "to": 1}])).is_err());
        assert!(check(json!([{"to": 10}, {"from": 5}]))
            .unwrap_err()
            .contains("overlap"));
        assert!(check(json!([{"from": "a"}])).is_err());
        assert!(check(json!([{"form": 1}])).is_err());
        assert!(check(json!([{"to": 10}, {"from": 10, "to": 20}, {"from": 30}])).is_ok());
    }

    #[test]
    fn reads_durations() {
        assert_eq!(duration_ms("30d", false), Some(30 * 86_400_000));
        assert_eq!(duration_ms("-1h", true), Some(-3_600_000));
        assert_eq!(duration_ms("-1h", false), None);
        assert_eq!(duration_ms("1y", false), None);
        assert_eq!(duration_ms("99999999999999999999d", false), None);
    }
}
