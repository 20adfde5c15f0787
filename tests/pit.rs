//! Points in time through a cluster of real processes (4 shards × 2 replicas): pages read
//! with a `pit_id` see exactly the documents of the moment it was opened — the same pages,
//! scores, totals and aggregations as one index of the original data — while a writer adds
//! and deletes matching documents the whole time; `DELETE /pit` and expiry make it a 404
//! `pit_expired`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Cluster;
use serde_json::{json, Value};

const QUERY: &str = "library OR game OR data";

/// Adds documents that match the query (and sort first by `words`) and deletes matching
/// originals until told to stop; how many writes were acknowledged.
fn start_writer(
    http: reqwest::Client,
    base: String,
    stop: Arc<AtomicBool>,
    victims: Vec<String>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let acked = AtomicUsize::new(0);
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let docs: String = (0..20)
                .map(|j| {
                    let doc = json!({"id": format!("pit-new-{i}-{j}"),
                        "title": "library game data", "body": "library data game library",
                        "section": "libs", "words": 100_000 + j, "released": 1_000_000_000,
                        "rating": 5.0, "offset": 1, "team": "Writers", "tag": ["new"]});
                    format!("{doc}\n")
                })
                .collect();
            let r = http
                .post(format!("{base}/documents"))
                .header("content-type", "application/x-ndjson")
                .body(docs)
                .send()
                .await;
            if r.is_ok_and(|r| r.status().is_success()) {
                acked.fetch_add(20, Ordering::Relaxed);
            }
            if let Some(id) = victims.get(i) {
                let r = http.delete(format!("{base}/documents/{id}")).send().await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
            i += 1;
        }
        acked.into_inner()
    })
}

/// Pages through `first` (a request without `search_after`) 200 hits at a time, reading
/// `pit` when given; every page's hits, in order, and every page's total.
async fn page_through(c: &Cluster, first: &Value, pit: Option<&str>) -> (Vec<Value>, Vec<Value>) {
    let mut hits = Vec::new();
    let mut totals = Vec::new();
    let mut req = first.clone();
    req["size"] = json!(200);
    loop {
        if let Some(pit) = pit {
            req["pit_id"] = json!(pit);
        }
        let (status, body) = c.post_search(&req).await;
        assert_eq!(status, 200, "{body}");
        totals.push(body["total_hits"].clone());
        let page = body["hits"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        req["search_after"] = last["sort"].clone();
        hits.extend(
            page.into_iter()
                .map(|h| json!([h["id"], h["score"], h["sort"]])),
        );
        // Slow enough for the writer to land writes between pages.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    (hits, totals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_read_with_a_pit_ignore_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    common::build_with_numbers(dir.path(), 4, &dir.path().join("four"));
    common::build_with_numbers(dir.path(), 1, &dir.path().join("one"));
    let args = ["--result-cache-mb", "0"];
    let c = Cluster::start(&dir.path().join("four"), 2, &args).await;
    let one = Cluster::start_node(&dir.path().join("one"), &args).await;
    let aggs = json!({"s": {"terms": {"field": "section", "size": 5}},
                      "w": {"stats": {"field": "words"}}});
    let sorted = json!({"q": QUERY, "sort": "words:desc,released:asc", "aggs": aggs});
    let ranked = json!({"q": QUERY});

    // Open a point in time for each order, then write while paging through them.
    let mut opened = Vec::new();
    for first in [&sorted, &ranked] {
        let mut req = first.clone();
        req["pit"] = json!("2m");
        req["size"] = json!(0);
        let (status, body) = c.post_search(&req).await;
        assert_eq!(status, 200, "{body}");
        opened.push((body["pit_id"].as_str().unwrap().to_string(), body));
    }
    let (_, all) = one
        .post_search(&json!({"q": QUERY, "size": 5000, "sort": "words:desc"}))
        .await;
    let victims: Vec<String> = common::hit_ids(&all).into_iter().take(400).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(c.http.clone(), c.url(""), stop.clone(), victims);
    tokio::time::sleep(Duration::from_millis(300)).await;

    for ((pit, opening), first) in opened.iter().zip([&sorted, &ranked]) {
        let (with_pit, totals) = page_through(&c, first, Some(pit)).await;
        let (reference, _) = page_through(&one, first, None).await;
        assert!(reference.len() >= 2000, "{} hits", reference.len());
        assert_eq!(with_pit.len(), reference.len(), "{first}");
        for (a, b) in with_pit.iter().zip(&reference) {
            assert_eq!(a[0], b[0], "{first}: the same hits in the same order");
            assert_eq!(a[2], b[2], "{first}: the same sort values (scores)");
        }
        assert!(
            totals.iter().all(|t| *t == opening["total_hits"]),
            "{totals:?}"
        );
        // Aggregations read the point in time too.
        let mut again = first.clone();
        again["pit_id"] = json!(pit);
        again["size"] = json!(0);
        let (_, now) = c.post_search(&again).await;
        assert_eq!(now["aggregations"], opening["aggregations"]);
        assert_eq!(now["pit_id"], json!(pit));
    }
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(acked > 100, "the writer landed {acked} writes");

    // Without the point in time the writes are visible: the data did change.
    let (_, live) = c
        .post_search(&json!({"q": QUERY, "size": 1, "sort": "words:desc"}))
        .await;
    assert_ne!(live["total_hits"], opened[0].1["total_hits"]);
    assert!(live["hits"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("pit-new-"));

    // Closing: freed on every shard, then gone.
    let close = |pit: &str| {
        c.http
            .delete(c.url("/pit"))
            .json(&json!({ "pit_id": pit }))
            .send()
    };
    let r = close(&opened[0].0).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["num_freed"], 4);
    let mut req = sorted.clone();
    req["pit_id"] = json!(opened[0].0);
    let (status, body) = c.post_search(&req).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "pit_expired");
    assert_eq!(close(&opened[0].0).await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pit_expires_after_its_keep_alive_and_bad_values_are_400s() {
    let dir = tempfile::tempdir().unwrap();
    common::build_with_numbers(dir.path(), 2, &dir.path().join("two"));
    let c = Cluster::start_node(&dir.path().join("two"), &[]).await;
    let (status, body) = c.search(&[("q", "web"), ("pit", "2s")]).await;
    assert_eq!(status, 200, "{body}");
    let pit = body["pit_id"].as_str().unwrap().to_string();
    // Each use extends it: used within the keep-alive, it stays open past the first 2 s.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let (status, body) = c
            .search(&[("q", "web"), ("pit_id", &pit), ("pit", "2s")])
            .await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (status, body) = c.search(&[("q", "web"), ("pit_id", &pit)]).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "pit_expired");
    for (key, value) in [
        ("pit", "1x"),
        ("pit", "2h"),
        ("pit_id", "zz"),
        ("pit_id", "41"),
    ] {
        let (status, body) = c.search(&[("q", "web"), (key, value)]).await;
        assert_eq!(status, 400, "{key}={value}: {body}");
        assert_eq!(body["error"]["type"], "illegal_argument");
    }
}
