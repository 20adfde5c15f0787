//! A root that serves shards itself (`scatter root --index ...`, issue 21): its in-process
//! shards answer exactly what a leaf process over the same build answers (same hits, scores
//! and counts), and a local copy is one replica among remote ones — a write reaches both, and
//! with the remote replica killed every search is still complete.

mod common;

use std::time::{Duration, Instant};

use common::{build, queries, sample_corpus, Cluster, Proc};
use serde_json::Value;

fn root_over_local(dir: &std::path::Path, shards: u32, extra: &[String]) -> Proc {
    let mut args = vec!["root".to_string(), "--listen".into(), "127.0.0.1:0".into()];
    for k in 0..shards {
        args.push("--index".into());
        args.push(dir.join(format!("shard-{k}")).to_str().unwrap().into());
    }
    args.extend(extra.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::start(&refs)
}

async fn search(http: &reqwest::Client, root: &str, q: &str) -> Value {
    let url = format!("http://{root}/search");
    common::get_json(
        http,
        &url,
        &[("q", q), ("size", "20"), ("track_total_hits", "true")],
    )
    .await
}

async fn wait_ready(http: &reqwest::Client, root: &str) {
    let start = Instant::now();
    while !http
        .get(format!("http://{root}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "root never ready"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn ranked(v: &Value) -> Vec<(String, String)> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_string(),
                h["score"].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shards_answer_like_leaf_processes() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let remote = Cluster::start_node(dir.path(), &[]).await;
    let local = root_over_local(dir.path(), 4, &[]);
    let http = reqwest::Client::new();
    wait_ready(&http, &local.addr).await;
    for q in queries() {
        let a = search(&http, &remote.root.addr, &q).await;
        let b = search(&http, &local.addr, &q).await;
        assert_eq!(ranked(&a), ranked(&b), "{q:?}");
        assert_eq!(a["total_hits"], b["total_hits"], "{q:?}");
        assert_eq!(b["partial"], false, "{q:?}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_copy_is_one_replica_among_remote_ones() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let copy = dir.path().join("remote").join("shard-0");
    common::copy_dir(&dir.path().join("shard-0"), &copy);
    let mut leaf = Proc::leaf(&copy);
    let extra = vec![
        "--shard".to_string(),
        format!("local,{}", leaf.addr),
        "--probe-interval-ms".into(),
        "100".into(),
    ];
    let root = root_over_local(dir.path(), 1, &extra);
    let http = reqwest::Client::new();
    wait_ready(&http, &root.addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = http
        .post(format!("http://{}/documents", root.addr))
        .header("content-type", "application/x-ndjson")
        .body("{\"id\":\"local-1\",\"title\":\"written to both replicas\"}\n")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["items"][0]["status"], 200, "{body}");
    let check = common::get_json(
        &http,
        &format!("http://{}/cluster/replicas/check", root.addr),
        &[],
    )
    .await;
    assert_eq!(check["consistent"], true, "{check}");
    assert_eq!(check["shards"][0]["replicas"].as_array().unwrap().len(), 2);
    leaf.kill();
    for q in queries().iter().take(20) {
        let v = search(&http, &root.addr, q).await;
        assert_eq!(v["partial"], false, "{q:?}: {v}");
    }
    let v = search(&http, &root.addr, "written").await;
    assert!(ranked(&v).iter().any(|(id, _)| id == "local-1"), "{v}");
}
