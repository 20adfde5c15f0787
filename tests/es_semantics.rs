//! Elasticsearch semantics where tantivy's differ (issue 19), checked against the data, at
//! 2 shards: range bounds as real numbers, date bounds in milliseconds, only the asked
//! ranges, date metrics in milliseconds, multi-valued sort by min/max, and
//! `track_total_hits=N` with exactly N matches.

mod common;

use common::{build_with_numbers, Cluster};
use serde_json::{json, Value};

async fn total(c: &Cluster, q: &str, filter: &[&str]) -> u64 {
    let (status, body) = c
        .post_search(&json!({"q": q, "size": 0, "filter": filter}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["total_hits"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregations_sort_and_counts_answer_as_elasticsearch_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    build_with_numbers(dir.path(), 2, &out);
    let c = Cluster::start(&out, 1, &[]).await;

    // Real-number bounds on an integer field, only the asked ranges, bounds as asked.
    let (status, body) = c
        .post_search(
            &json!({"q": "*", "size": 0, "aggs": {"r": {"range": {"field": "words",
            "ranges": [{"from": 0.5, "to": 1.5}, {"from": 10, "to": 20}, {"from": 99.5}]}}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let buckets = body["aggregations"]["r"]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 3, "only the asked ranges: {buckets:?}");
    assert_eq!(buckets[0]["key"], "0.5-1.5");
    assert_eq!(buckets[0]["from"], 0.5);
    assert_eq!(buckets[0]["to"], 1.5);
    assert_eq!(
        buckets[0]["doc_count"],
        total(&c, "*", &["words:[1 TO 1]"]).await
    );
    assert_eq!(
        buckets[1]["doc_count"],
        total(&c, "*", &["words:[10 TO 20}"]).await
    );
    assert_eq!(buckets[2]["from"], 99.5);
    assert_eq!(
        buckets[2]["doc_count"],
        total(&c, "*", &["words:[100 TO *]"]).await
    );

    // Date bounds in epoch milliseconds (2000), answered in milliseconds with strings.
    let (y2000, y2001) = (946_684_800_000u64, 978_307_200_000u64);
    let (status, body) = c
        .post_search(&json!({"q": "*", "size": 0, "aggs": {
            "d": {"range": {"field": "released", "ranges": [{"from": y2000, "to": y2001}]}},
            "first": {"min": {"field": "released"}},
            "s": {"stats": {"field": "released"}}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let aggs = &body["aggregations"];
    let d = &aggs["d"]["buckets"][0];
    assert_eq!(aggs["d"]["buckets"].as_array().unwrap().len(), 1, "{aggs}");
    assert_eq!(d["from"].as_f64(), Some(y2000 as f64));
    assert_eq!(d["from_as_string"], "2000-01-01T00:00:00Z");
    let in_2000 = total(
        &c,
        "*",
        &["released:[2000-01-01T00:00:00Z TO 2001-01-01T00:00:00Z}"],
    )
    .await;
    assert!(in_2000 > 0);
    assert_eq!(d["doc_count"], in_2000);
    let first = aggs["first"]["value"].as_f64().unwrap();
    assert!((y2000 as f64..y2001 as f64).contains(&first), "{first}");
    assert!(aggs["first"]["value_as_string"]
        .as_str()
        .unwrap()
        .starts_with("2000-"));
    assert_eq!(aggs["s"]["min"], aggs["first"]["value"]);
    assert!(aggs["s"]["max_as_string"].is_string(), "{aggs}");

    // A multi-valued keyword sorts by its smallest value ascending, its largest descending.
    for (dir, pick) in [("asc", false), ("desc", true)] {
        let (status, body) = c
            .post_search(&json!({"q": "editor", "size": 20, "sort": format!("tag:{dir}")}))
            .await;
        assert_eq!(status, 200, "{body}");
        for hit in body["hits"].as_array().unwrap() {
            let Some(tags) = hit["fields"]["tag"].as_array() else {
                continue;
            };
            let mut tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
            tags.sort();
            let want = if pick { tags.last() } else { tags.first() };
            assert_eq!(hit["sort"][0].as_str(), want.copied(), "{dir}: {hit}");
        }
    }

    // track_total_hits=N with exactly N matches is `eq`; N - 1 is `gte`.
    let n = total(&c, "web", &[]).await;
    for (asked, relation, value) in [(n, "eq", n), (n - 1, "gte", n - 1)] {
        let (status, body) = c
            .post_search(&json!({"q": "web", "size": 1, "track_total_hits": asked}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["total_hits_relation"], relation,
            "asked {asked} of {n}"
        );
        assert_eq!(body["total_hits"], value);
    }
}
