//! A caller vanishing mid-repair (issue 20, item 2): copy repairs with swap are started on a
//! replica and abandoned in the middle of the swap (between moving the directories and
//! serving the copy, widened by a testing pause), while writes go on through the root. The replica must never be left half switched: it keeps taking writes
//! into its live directory, restarts after kill -9, and ends holding every acknowledged
//! write.

mod common;

use std::time::{Duration, Instant};

use common::{build, sample_corpus, Cluster};
use scatter_proto::v1::{FetchRequest, RepairRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_repairs_never_leave_a_replica_half_switched() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100", "--write-timeout-ms", "3000"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    // B pauses 400 ms between moving its directories and serving the copy: the abandoned
    // calls below vanish inside that window.
    let b_path = c.paths[0][1].clone();
    let b_addr = c.leaves[0][1].addr.clone();
    c.leaves[0][1].kill();
    c.leaves[0][1] =
        common::Proc::leaf_env(&b_path, &b_addr, "SCATTER_LEAF_FAULT_SWAP_PAUSE_MS=400");
    let (a, b) = (c.leaves[0][0].addr.clone(), b_addr);
    let mut acked = Vec::new();
    for round in 0..4u64 {
        // A copy repair of B from A with swap, abandoned after 5..60 ms.
        let mut client = scatter_proto::LeafClient::connect(format!("http://{b}"))
            .await
            .unwrap();
        let call = client.repair(RepairRequest {
            source: a.clone(),
            swap: true,
            shard: Some(0),
            merge: false,
        });
        let _ = tokio::time::timeout(Duration::from_millis(250), call).await;
        drop(client);
        for i in 0..6 {
            let id = format!("cancel-{round}-{i}");
            let (status, body) = c
                .post_documents(format!("{{\"id\":\"{id}\",\"title\":\"round {round}\"}}\n"))
                .await;
            if status == 200 && body["items"][0]["status"] == 200 {
                acked.push(id);
            }
        }
    }
    assert!(
        acked.len() >= 20,
        "writes go on: {} acknowledged",
        acked.len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // the last repair finishes
    c.kill_leaf(0, 1);
    c.restart_leaf(0, 1);
    let start = Instant::now();
    loop {
        let mut client = scatter_proto::LeafClient::connect(format!("http://{b}"))
            .await
            .unwrap();
        let held = client
            .fetch(FetchRequest {
                ids: acked.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .docs
            .len();
        if held == acked.len() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "B holds {held} of {} acknowledged writes",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &acked {
        assert_eq!(c.get_document(id).await.0, 200, "{id}");
    }
}
