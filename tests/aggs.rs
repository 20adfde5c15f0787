//! Aggregations through clusters of real processes on the bundled Debian sample with derived
//! fields: every aggregation type answers at 2, 3, 4 and 8 shards exactly as one index does;
//! a terms aggregation over a high-cardinality field at 8 shards needs (and takes) another
//! round and still returns the exact counts; malformed requests are 400s with a reason.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;

use common::Cluster;
use serde_json::{json, Value};

/// Numbers equal (floats to 1e-9 relative: shards add values in another order than one
/// index), everything else identical.
fn same(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                "{path}: {x} vs {y}"
            );
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "{path}: keys");
            for (k, v) in x {
                same(v, &y[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: length");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                same(v, w, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// The requests every layout answers.
fn requests() -> Vec<Value> {
    vec![
        json!({"q": "library OR game", "size": 0, "aggs": {
            "sections": {"terms": {"field": "section", "size": 10},
                         "aggs": {"words": {"stats": {"field": "words"}},
                                  "best": {"max": {"field": "rating"}}}},
            "words": {"histogram": {"field": "words", "interval": 25},
                      "aggs": {"r": {"avg": {"field": "rating"}}}},
            "years": {"date_histogram": {"field": "released", "fixed_interval": "365d"}},
            "ratings": {"range": {"field": "rating", "ranges":
                [{"to": 2.5}, {"from": 2.5, "to": 7.5}, {"from": 7.5}]},
                        "aggs": {"w": {"sum": {"field": "words"}}}},
            "offsets": {"stats": {"field": "offset"}},
            "rating": {"avg": {"field": "rating"}},
            "n": {"value_count": {"field": "words"}}
        }}),
        json!({"q": "*", "filter": ["words:[10 TO 120]"], "size": 3, "aggs": {
            "tags": {"terms": {"field": "tag", "size": 15},
                     "aggs": {"r": {"avg": {"field": "rating"}},
                              "o": {"min": {"field": "offset"}}}},
            "teams": {"terms": {"field": "team", "size": 5, "shard_size": 5}}
        }}),
        json!({"q": "data", "size": 0, "aggs": {
            "teams": {"terms": {"field": "team", "size": 20, "shard_size": 20},
                      "aggs": {"w": {"sum": {"field": "words"}}}}
        }}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aggregation_answers_like_one_index_at_any_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--result-cache-mb", "0"];
    let mut answers: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
    for shards in [1, 2, 3, 4, 8] {
        let out = dir.path().join(format!("s{shards}"));
        common::build_with_numbers(dir.path(), shards, &out);
        let c = Cluster::start_node(&out, &args).await;
        let mut got = Vec::new();
        for req in requests() {
            let (status, body) = c.post_search(&req).await;
            assert_eq!(status, 200, "{shards} shards: {body}");
            assert_eq!(body["partial"], false);
            got.push(body);
        }
        answers.insert(shards, got);
    }
    let one = &answers[&1];
    for (shards, got) in &answers {
        for (i, (a, b)) in got.iter().zip(one).enumerate() {
            same(
                &a["aggregations"],
                &b["aggregations"],
                &format!("{shards} shards, request {i}"),
            );
            assert_eq!(a["total_hits"], b["total_hits"]);
            assert_eq!(common::hit_ids(a), common::hit_ids(b));
        }
    }
    // The answers are about the data: the section counts of "library OR game" add up to the
    // matches that have a section, and every terms answer is proven.
    let aggs = &one[0]["aggregations"];
    let sections = aggs["sections"]["buckets"].as_array().unwrap();
    assert!(sections.len() >= 5, "{aggs}");
    let counted: u64 = sections
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .sum::<u64>()
        + aggs["sections"]["sum_other_doc_count"].as_u64().unwrap();
    assert_eq!(counted, one[0]["total_hits"].as_u64().unwrap());
    assert_eq!(
        sections[0]["words"]["count"], sections[0]["doc_count"],
        "one words value per document"
    );
    for (shards, got) in &answers {
        for body in got {
            for (name, agg) in body["aggregations"].as_object().unwrap() {
                if agg.get("doc_count_error_upper_bound").is_some() {
                    assert_eq!(agg["doc_count_error_upper_bound"], 0, "{shards}: {name}");
                }
            }
        }
    }
    let ranges = aggs["ratings"]["buckets"].as_array().unwrap();
    let in_ranges: u64 = ranges
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .sum();
    assert_eq!(in_ranges, one[0]["total_hits"].as_u64().unwrap());
}

/// Maintainer counts of the whole sample, best first (ties by name), as one index counts.
fn team_counts() -> Vec<(String, u64)> {
    let input = flate2::read::GzDecoder::new(std::fs::File::open(common::sample_corpus()).unwrap());
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in std::io::BufReader::new(input).lines() {
        let doc: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if let Some(m) = doc["maintainer"].as_str() {
            *counts.entry(m.to_string()).or_default() += 1;
        }
    }
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_cardinality_terms_at_8_shards_take_another_round_and_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eight");
    common::build_with_numbers(dir.path(), 8, &out);
    let c = Cluster::start_node(&out, &["--result-cache-mb", "0"]).await;
    let truth = team_counts();
    for (size, shard_size) in [(10, 10), (25, 25), (10, 15)] {
        let req = json!({"q": "*", "size": 0, "profile": true, "aggs": {
            "teams": {"terms": {"field": "team", "size": size, "shard_size": shard_size}}}});
        let (status, body) = c.post_search(&req).await;
        assert_eq!(status, 200, "{body}");
        let agg = &body["aggregations"]["teams"];
        let got: Vec<(String, u64)> = agg["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let key = b["key"].as_str().unwrap().to_string();
                (key, b["doc_count"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(got, truth[..size], "size {size}: the exact top terms");
        assert_eq!(agg["doc_count_error_upper_bound"], 0);
        let rest: u64 = truth[size..].iter().map(|t| t.1).sum();
        assert_eq!(agg["sum_other_doc_count"], rest);
        let profile = body["profile"]["aggregations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "teams")
            .unwrap()
            .clone();
        // 880 maintainers, each shard's top `shard_size` cut inside long runs of equal
        // counts: no single round can prove the top, so the profile shows more.
        assert!(
            profile["rounds"].as_u64().unwrap() >= 2,
            "size {size}: {profile}"
        );
        assert_eq!(profile["kind"], "terms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_aggs_are_400s_and_get_takes_json_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("two");
    common::build_with_numbers(dir.path(), 2, &out);
    let c = Cluster::start_node(&out, &[]).await;
    for (aggs, reason) in [
        (
            json!({"x": {"percentiles": {"field": "words"}}}),
            "unsupported",
        ),
        (json!({"x": {"terms": {"field": "title"}}}), "not a fast"),
        (
            json!({"x": {"terms": {"field": "section", "sise": 3}}}),
            "sise",
        ),
        (json!({"x": {"histogram": {"field": "words"}}}), "interval"),
        (
            json!({"x": {"stats": {"field": "nope"}}}),
            "not in the schema",
        ),
        (
            json!({"x": {"date_histogram": {"field": "words", "fixed_interval": "1d"}}}),
            "Date",
        ),
        (
            json!({"x": {"range": {"field": "words", "ranges": "all"}}}),
            "ranges must be a list",
        ),
        (json!([1, 2]), "object"),
    ] {
        let (status, body) = c.post_search(&json!({"q": "web", "aggs": aggs})).await;
        assert_eq!(status, 400, "{aggs}: {body}");
        // Checked at the root against the schema (illegal_argument); a body that is not
        // even an object fails when the request is read (json_parse_error).
        let kind = body["error"]["type"].as_str().unwrap();
        assert!(
            ["illegal_argument", "json_parse_error"].contains(&kind),
            "{body}"
        );
        let text = body["error"]["reason"].as_str().unwrap();
        assert!(text.contains(reason), "{aggs}: {text}");
    }
    let (status, body) = c.search(&[("q", "web"), ("aggs", "{not json")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["reason"].as_str().unwrap().contains("aggs"));
    let aggs = json!({"s": {"terms": {"field": "section", "size": 3}}});
    let (status, get) = c.search(&[("q", "web"), ("aggs", &aggs.to_string())]).await;
    assert_eq!(status, 200, "{get}");
    let (_, post) = c.post_search(&json!({"q": "web", "aggs": aggs})).await;
    assert_eq!(get["aggregations"], post["aggregations"]);
    assert_eq!(
        get["aggregations"]["s"]["buckets"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
