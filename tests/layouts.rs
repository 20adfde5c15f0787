//! Filters, sorts and `search_after` paging at 2, 3 and 8 shards (one leaf node each) answer
//! exactly as one index of the same documents: the same hits in the same order, the same
//! scores and sort values, the same totals. (4 shards are covered in `query_modes.rs`,
//! aggregations at every count in `aggs.rs`.)

mod common;

use common::Cluster;
use serde_json::{json, Value};

/// Every hit as [id, score, sort].
fn hits(body: &Value) -> Vec<Value> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json!([h["id"], h["score"], h["sort"]]))
        .collect()
}

/// Scores equal to f32 precision (the shards' sums of the same terms may round apart in the
/// last bit), ids, order and sort values identical.
fn same_hits(a: &[Value], b: &[Value], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: hit count");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x[0], y[0], "{what}: ids in order");
        let (s, t) = (x[1].as_f64().unwrap(), y[1].as_f64().unwrap());
        assert!(
            (s - t).abs() <= 1e-5 * s.abs().max(1.0),
            "{what}: {s} vs {t}"
        );
        if x[2][0].is_string() || !x[2].is_array() || what.contains("sort") {
            assert_eq!(x[2], y[2], "{what}: sort values");
        }
    }
}

/// All hits of `req` paged with `search_after`, 500 at a time.
async fn page_all(c: &Cluster, req: &Value) -> Vec<Value> {
    let mut req = req.clone();
    req["size"] = json!(500);
    let mut all = Vec::new();
    loop {
        let (status, body) = c.post_search(&req).await;
        assert_eq!(status, 200, "{body}");
        let page = hits(&body);
        let Some(last) = body["hits"].as_array().unwrap().last() else {
            return all;
        };
        req["search_after"] = last["sort"].clone();
        all.extend(page);
    }
}

fn requests() -> Vec<Value> {
    vec![
        json!({"q": "library OR game", "filter": ["words:[20 TO 60]"], "size": 40}),
        json!({"q": "data", "filter": ["released:[2010-01-01T00:00:00Z TO *]", "section:libs"],
               "size": 40}),
        json!({"q": "library OR game", "filter": "tag:\"role::program\"", "size": 40, "from": 20}),
        json!({"q": "library OR game", "sort": "words:desc,released:asc", "size": 60}),
        json!({"q": "library OR game", "sort": "team:asc,rating:desc", "size": 60, "from": 45}),
        json!({"q": "*", "sort": "offset:asc,_score", "size": 30}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_sorts_and_paging_answer_like_one_index_at_2_3_and_8_shards() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--result-cache-mb", "0"];
    common::build_with_numbers(dir.path(), 1, &dir.path().join("s1"));
    let one = Cluster::start_node(&dir.path().join("s1"), &args).await;
    let mut expected = Vec::new();
    for req in requests() {
        let (status, body) = one.post_search(&req).await;
        assert_eq!(status, 200, "{body}");
        assert!(!body["hits"].as_array().unwrap().is_empty(), "{req}");
        expected.push(body);
    }
    let pagings = [
        json!({"q": "library OR game OR data"}),
        json!({"q": "library OR game OR data", "sort": "words:desc,released:asc"}),
    ];
    let mut expected_pages = Vec::new();
    for req in &pagings {
        let all = page_all(&one, req).await;
        assert!(all.len() >= 2000, "{} hits", all.len());
        expected_pages.push(all);
    }
    drop(one);
    for shards in [2, 3, 8] {
        let out = dir.path().join(format!("s{shards}"));
        common::build_with_numbers(dir.path(), shards, &out);
        let c = Cluster::start_node(&out, &args).await;
        for (req, want) in requests().iter().zip(&expected) {
            let (status, body) = c.post_search(req).await;
            assert_eq!(status, 200, "{body}");
            let what = format!("{shards} shards, {req}");
            same_hits(&hits(&body), &hits(want), &what);
            assert_eq!(body["total_hits"], want["total_hits"], "{what}");
        }
        for (req, want) in pagings.iter().zip(&expected_pages) {
            let got = page_all(&c, req).await;
            same_hits(&got, want, &format!("{shards} shards, paging {req}"));
        }
    }
}
