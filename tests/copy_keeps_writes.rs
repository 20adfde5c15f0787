//! A copy repair never drops a write the repaired replica acknowledged (issue 20, item 1):
//! B takes writes while A is down (acknowledged: A is recorded behind on B); then B is
//! copied from A with a swap — as a root racing another root's view would do. The copy used
//! to replace B's directory and log, losing those writes everywhere; now B applies its own
//! writes and marks to the copy before the old directory goes, and A is then merged from B.

mod common;

use std::time::{Duration, Instant};

use common::{build, sample_corpus, Cluster};
use scatter_proto::v1::{FetchRequest, RepairRequest};

async fn holds(addr: &str, ids: &[String]) -> usize {
    let mut client = scatter_proto::LeafClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let fetched = client
        .fetch(FetchRequest {
            ids: ids.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    fetched.into_inner().docs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_repair_keeps_the_writes_the_replica_took() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100", "--write-timeout-ms", "3000"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // both probed
    let (a, b) = (c.leaves[0][0].addr.clone(), c.leaves[0][1].addr.clone());
    c.kill_leaf(0, 0);
    let mut acked = Vec::new();
    for i in 0..10 {
        let id = format!("only-on-b-{i}");
        let (status, body) = c
            .post_documents(format!("{{\"id\":\"{id}\",\"title\":\"taken by B\"}}\n"))
            .await;
        if status == 200 && body["items"][0]["status"] == 200 {
            acked.push(id);
        }
    }
    assert!(
        acked.len() >= 8,
        "B alone acknowledges (A recorded behind): {acked:?}"
    );
    c.restart_leaf(0, 0);
    // Copy B from A (which lacks them), with the swap.
    let mut client = scatter_proto::LeafClient::connect(format!("http://{b}"))
        .await
        .unwrap();
    client
        .repair(RepairRequest {
            source: a.clone(),
            swap: true,
            shard: Some(0),
            merge: false,
        })
        .await
        .unwrap();
    assert_eq!(
        holds(&b, &acked).await,
        acked.len(),
        "the copy dropped B's writes"
    );
    // And A gets them from B (B's marks survived the copy).
    let start = Instant::now();
    while holds(&a, &acked).await < acked.len() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "A never got B's writes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every acknowledged write is served (a 503 while the root confirms the copied replica's
    // new history is honest, a 404 would not be).
    for id in &acked {
        let start = Instant::now();
        loop {
            let status = c.get_document(id).await.0;
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "{id}: never a confident miss");
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{id}: still {status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_the_swap_loses_nothing_either() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100", "--write-timeout-ms", "3000"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (a, b) = (c.leaves[0][0].addr.clone(), c.leaves[0][1].addr.clone());
    c.kill_leaf(0, 0);
    let mut acked = Vec::new();
    for i in 0..10 {
        let id = format!("crash-on-b-{i}");
        let (status, body) = c
            .post_documents(format!("{{\"id\":\"{id}\",\"title\":\"taken by B\"}}\n"))
            .await;
        if status == 200 && body["items"][0]["status"] == 200 {
            acked.push(id);
        }
    }
    assert!(acked.len() >= 8, "{acked:?}");
    c.restart_leaf(0, 0);
    // B pauses 3 s right after moving the copy in place; it is killed -9 there.
    let b_path = c.paths[0][1].clone();
    c.leaves[0][1].kill();
    c.leaves[0][1] = common::Proc::leaf_env(&b_path, &b, "SCATTER_LEAF_FAULT_SWAP_PAUSE_MS=3000");
    let source = a.clone();
    let target = b.clone();
    let repair = tokio::spawn(async move {
        let mut client = scatter_proto::LeafClient::connect(format!("http://{target}"))
            .await
            .unwrap();
        let _ = client
            .repair(RepairRequest {
                source,
                swap: true,
                shard: Some(0),
                merge: false,
            })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill_leaf(0, 1);
    let _ = repair.await;
    c.restart_leaf(0, 1);
    assert_eq!(
        holds(&b, &acked).await,
        acked.len(),
        "the crash lost B's writes"
    );
}
