//! Search over real processes: a 4-shard cluster finds exactly the documents one index finds,
//! the page is well formed, and bad requests get clear 4xx JSON errors.

mod common;

use std::collections::BTreeSet;

use common::{build, hit_ids, queries, sample_corpus, Cluster};
use serde_json::{json, Value};

async fn clusters(dir: &std::path::Path) -> (Cluster, Cluster) {
    build(&sample_corpus(), 4, &dir.join("four"));
    build(&sample_corpus(), 1, &dir.join("one"));
    let four = Cluster::start(&dir.join("four"), 1, &[]).await;
    let one = Cluster::start(&dir.join("one"), 1, &[]).await;
    (four, one)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_cluster_finds_the_same_documents_as_one_index() {
    let dir = tempfile::tempdir().unwrap();
    let (four, one) = clusters(dir.path()).await;
    let mut nonempty = 0;
    for q in queries() {
        let (s4, b4) = four.search(&[("q", &q), ("size", "10000")]).await;
        let (s1, b1) = one.search(&[("q", &q), ("size", "10000")]).await;
        assert_eq!((s4, s1), (200, 200), "query {q:?}: {b4} / {b1}");
        assert_eq!(b4["partial"], false);
        assert_eq!(b4["shards"]["successful"], 4);
        assert_eq!(b4["total_hits"], b1["total_hits"], "total_hits for {q:?}");
        let ids4: BTreeSet<String> = hit_ids(&b4).into_iter().collect();
        let ids1: BTreeSet<String> = hit_ids(&b1).into_iter().collect();
        assert_eq!(ids4, ids1, "matching documents for {q:?}");
        assert_eq!(ids4.len() as u64, b4["total_hits"].as_u64().unwrap());
        if !ids4.is_empty() {
            nonempty += 1;
        }
        // The page is sorted by score, ties by id.
        let hits = b4["hits"].as_array().unwrap();
        for pair in hits.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (sa, sb) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
            assert!(
                sa > sb || (sa == sb && a["id"].as_str() < b["id"].as_str()),
                "{q:?}"
            );
        }
    }
    assert!(nonempty >= 35, "only {nonempty} queries matched anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fetch_stored_fields_and_respect_from() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, &dir.path().join("four"));
    let c = Cluster::start(&dir.path().join("four"), 1, &[]).await;
    let (_, all) = c.search(&[("q", "library"), ("size", "30")]).await;
    let (_, page) = c
        .search(&[("q", "library"), ("size", "10"), ("from", "10")])
        .await;
    assert_eq!(hit_ids(&page), hit_ids(&all)[10..20].to_vec());
    for hit in page["hits"].as_array().unwrap() {
        assert!(hit["fields"]["title"].is_string(), "fetched fields: {hit}");
        assert!(hit["shard"].as_u64().unwrap() < 4);
    }
    // POST with a JSON body gives the same page.
    let resp = c
        .http
        .post(c.url("/search"))
        .json(&json!({"q": "library", "size": 10, "from": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(hit_ids(&body), hit_ids(&page));
    // size=0 counts without hits.
    let (s, counted) = c.search(&[("q", "library"), ("size", "0")]).await;
    assert_eq!(s, 200);
    assert_eq!(counted["total_hits"], all["total_hits"]);
    assert!(counted["hits"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_fetch_answers_exactly_like_query_then_fetch() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, &dir.path().join("four"));
    let fused = Cluster::start(&dir.path().join("four"), 1, &["--result-cache-mb", "0"]).await;
    let addrs = fused.leaf_addrs();
    let args = ["--fuse-fetch-max-docs", "0", "--result-cache-mb", "0"];
    let separate = common::Proc::root(&addrs, &args);
    let url = |path: &str| format!("http://{}{path}", separate.addr);
    for q in queries() {
        for (size, from) in [("10", "0"), ("5", "3")] {
            let params = [("q", q.as_str()), ("size", size), ("from", from)];
            let params = [&params[..], &[("snippet", "title,body")]].concat();
            let (status, a) = fused.search(&params).await;
            let b = common::get_json(&fused.http, &url("/search"), &params).await;
            assert_eq!(status, 200, "{a}");
            assert_eq!(a["hits"], b["hits"], "{q:?} size {size} from {from}");
            assert_eq!(a["total_hits"], b["total_hits"], "{q:?}");
        }
    }
    // The fused root made no fetch call; the other one did.
    let params = [("q", "web server"), ("profile", "true")];
    let (_, a) = fused.search(&params).await;
    let b = common::get_json(&fused.http, &url("/search"), &params).await;
    assert_eq!(a["profile"]["fetch"], json!([]), "{a}");
    assert_eq!(a["profile"]["phases"]["fused_fetch"], true, "{a}");
    assert_eq!(b["profile"]["phases"]["fused_fetch"], false, "{b}");
    assert!(
        b["profile"]["phases"]["fetch_ms"].as_f64() > Some(0.0),
        "{b}"
    );
    assert!(!b["profile"]["fetch"].as_array().unwrap().is_empty(), "{b}");
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_type: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["type"], want_type, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, &dir.path().join("two"));
    let c = Cluster::start(&dir.path().join("two"), 1, &[]).await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("q", "title:(unclosed")], "query_parse_error"),
        (&[("q", "nosuchfield:x")], "query_parse_error"),
        (&[("q", "   ")], "query_parse_error"),
        (&[("q", "web"), ("size", "20000")], "illegal_argument"),
        (
            &[("q", "web"), ("from", "9995"), ("size", "10")],
            "illegal_argument",
        ),
        (&[("q", "web"), ("from", "-1")], "illegal_argument"),
        (&[("q", "web"), ("size", "-5")], "illegal_argument"),
        (&[("q", "web"), ("size", "ten")], "illegal_argument"),
        (&[("q", "web"), ("timeout_ms", "0")], "illegal_argument"),
        (
            &[("q", "web"), ("allow_partial", "maybe")],
            "illegal_argument",
        ),
        (&[("size", "10")], "illegal_argument"),
    ];
    for (params, kind) in cases {
        let (status, body) = c.search(params).await;
        assert_error(status, &body, 400, kind);
    }
    for bad_body in ["{", "[1,2]", r#"{"q": 5}"#, r#"{"q":"web","size":"x"}"#] {
        let resp = c
            .http
            .post(c.url("/search"))
            .header("content-type", "application/json")
            .body(bad_body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_error(status, &body, 400, "json_parse_error");
    }
    // Unknown parameters are errors naming the parameter, in GET and in POST.
    let (status, body) = c.search(&[("q", "web"), ("sizee", "1")]).await;
    assert_error(status, &body, 400, "illegal_argument");
    assert!(
        body["error"]["reason"].as_str().unwrap().contains("sizee"),
        "{body}"
    );
    let resp = c
        .http
        .post(c.url("/search"))
        .json(&serde_json::json!({"q": "web", "sort": "title:asc"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_error(status, &body, 400, "illegal_argument");
    assert!(
        body["error"]["reason"].as_str().unwrap().contains("sort"),
        "{body}"
    );
    let long = "a ".repeat(5000);
    let (status, body) = c.search(&[("q", &long)]).await;
    assert_error(status, &body, 400, "query_parse_error");
    let resp = c.http.get(c.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // The cluster still serves after all of that.
    let (status, body) = c.search(&[("q", "web server")]).await;
    assert_eq!(status, 200);
    assert!(!hit_ids(&body).is_empty());
    // Request ids: the client's is echoed, otherwise one is made.
    let resp = c
        .http
        .get(c.url("/search?q=web"))
        .header("x-request-id", "req-42");
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let resp = c.http.get(c.url("/search?q=web")).send().await.unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        made.len() == 16 && made.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_queries_come_from_the_result_cache() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, &dir.path().join("two"));
    let c = Cluster::start(&dir.path().join("two"), 1, &[]).await;
    let (_, first) = c.search(&[("q", "web server")]).await;
    let (_, second) = c.search(&[("q", "web server")]).await;
    assert_eq!(hit_ids(&first), hit_ids(&second));
    assert_eq!(first["hits"], second["hits"]);
    let (_, other_page) = c.search(&[("q", "web server"), ("from", "5")]).await;
    assert_eq!(
        hit_ids(&other_page)[..5].to_vec(),
        hit_ids(&first)[5..].to_vec()
    );
    let state = c.state().await;
    assert_eq!(
        state["result_cache"]["hits"], 1,
        "{}",
        state["result_cache"]
    );
    assert!(state["result_cache"]["entries"].as_u64().unwrap() >= 2);
    // profile=true always runs the query.
    let (_, profiled) = c.search(&[("q", "web server"), ("profile", "true")]).await;
    assert_eq!(profiled["profile"]["search"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_total_counting_the_page_is_the_same_and_the_count_a_lower_bound() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, &dir.path().join("four"));
    let c = Cluster::start(&dir.path().join("four"), 1, &[]).await;
    for q in [
        "web server library",
        "python",
        "\"text editor\"",
        "game OR font",
    ] {
        let (_, exact) = c.search(&[("q", q), ("size", "10")]).await;
        let (status, fast) = c
            .search(&[("q", q), ("size", "10"), ("track_total_hits", "false")])
            .await;
        assert_eq!(status, 200, "{fast}");
        assert_eq!(exact["total_hits_relation"], "eq");
        assert_eq!(fast["total_hits_relation"], "gte");
        // Same page; scores may differ in the last float digits (the pruning collector sums
        // term scores in another order).
        assert_eq!(hit_ids(&exact), hit_ids(&fast), "{q}");
        let scores = |v: &Value| -> Vec<f64> {
            v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["score"].as_f64().unwrap())
                .collect()
        };
        for (a, b) in scores(&exact).iter().zip(scores(&fast)) {
            assert!((a - b).abs() <= 1e-5 * a.abs(), "{q}: {a} vs {b}");
        }
        let (t_exact, t_fast) = (
            exact["total_hits"].as_u64().unwrap(),
            fast["total_hits"].as_u64().unwrap(),
        );
        assert!(
            t_fast <= t_exact && t_fast >= hit_ids(&fast).len() as u64,
            "{q}: {t_fast} vs {t_exact}"
        );
    }
}
