//! The root's statistics tables (every shard's term dictionary held at the root): loaded in
//! the background, used instead of the per-query `TermStats` round trip, exactly as precise
//! as it, set aside while an index changes and loaded again once it holds still.

mod common;

use std::time::{Duration, Instant};

use common::{build, queries, sample_corpus, Cluster};
use serde_json::{json, Value};

/// Waits until every shard's table is current and at least `downloads` were made.
async fn wait_for_tables(c: &Cluster, downloads: u64) -> Value {
    let start = Instant::now();
    loop {
        let table = c.state().await["stats_table"].clone();
        let shards = table["shards"].as_array().unwrap();
        let current = shards.iter().all(|s| s["current"] == true);
        if current && table["downloads"].as_u64() >= Some(downloads) {
            return table;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "tables: {table}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Searches `q` on the cluster's root (tables) and on `reference` (no tables): equal hits
/// and scores; returns the statistics source the cluster's root used.
async fn compare(c: &Cluster, reference: &str, q: &str) -> String {
    let params = [("q", q), ("size", "10"), ("profile", "true")];
    let (status, a) = c.search(&params).await;
    assert_eq!(status, 200, "{a}");
    let b = common::get_json(&c.http, reference, &params).await;
    assert_eq!(a["hits"], b["hits"], "{q:?}");
    assert_eq!(a["total_hits"], b["total_hits"], "{q:?}");
    assert_ne!(b["profile"]["phases"]["stats_source"], "table", "{b}");
    a["profile"]["phases"]["stats_source"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_give_exact_statistics_without_a_round_trip_and_follow_writes() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, &dir.path().join("four"));
    let args = [
        "--result-cache-mb",
        "0",
        "--probe-interval-ms",
        "100",
        "--stats-table-refresh-ms",
        "300",
    ];
    let c = Cluster::start(&dir.path().join("four"), 1, &args).await;
    let no_tables = ["--result-cache-mb", "0", "--stats-table-max-terms", "0"];
    let reference_root = common::Proc::root(&c.leaf_addrs(), &no_tables);
    let reference = format!("http://{}/search", reference_root.addr);

    let table = wait_for_tables(&c, 4).await;
    for shard in table["shards"].as_array().unwrap() {
        assert!(shard["terms"].as_u64() > Some(100), "{table}");
    }
    for q in queries() {
        assert_eq!(compare(&c, &reference, &q).await, "table", "{q:?}");
    }

    // A write changes one shard's index: its table is set aside at once (this root wrote,
    // so it knows the new generation), the answers stay exact.
    let doc = json!({"id": "stats-table-1", "title": "zyzzyva editor", "body": "an editor for zyzzyva files"});
    let (status, resp) = c.post_documents(doc.to_string()).await;
    assert_eq!(status, 200, "{resp}");
    assert_ne!(compare(&c, &reference, "zyzzyva editor").await, "table");

    // Once the index holds still the shard's dictionary is downloaded again.
    let downloads = table["downloads"].as_u64().unwrap();
    wait_for_tables(&c, downloads + 1).await;
    assert_eq!(compare(&c, &reference, "zyzzyva editor").await, "table");
    for q in queries().iter().take(20) {
        assert_eq!(compare(&c, &reference, q).await, "table", "{q:?}");
    }

    // A root told to hold no tables never downloads one.
    let none = common::get_json(&c.http, &reference.replace("/search", "/cluster"), &[]).await;
    assert_eq!(none["stats_table"]["downloads"], 0, "{none}");

    // Dictionaries larger than the limit are refused by the leaves and reported; queries
    // then take the per-query path.
    let small = [
        "--probe-interval-ms",
        "100",
        "--stats-table-max-terms",
        "10",
    ];
    let small = common::Proc::root(&c.leaf_addrs(), &small);
    let cluster_url = format!("http://{}/cluster", small.addr);
    let start = Instant::now();
    let refused = loop {
        let state = common::get_json(&c.http, &cluster_url, &[]).await;
        let error = state["stats_table"]["shards"][0]["last_error"].clone();
        if error.is_string() {
            break state;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let error = refused["stats_table"]["shards"][0]["last_error"].to_string();
    assert!(error.contains("at most 10"), "{refused}");
    assert_eq!(refused["stats_table"]["downloads"], 0, "{refused}");
    let url = format!("http://{}/search", small.addr);
    let params = [("q", "web server"), ("profile", "true")];
    let body = common::get_json(&c.http, &url, &params).await;
    assert_ne!(body["profile"]["phases"]["stats_source"], "table", "{body}");
}
