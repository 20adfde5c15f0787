//! Bounded version logs (issue 20, item 8), with real processes: many versions of the same
//! documents keep one record each, blind deletes of absent ids do not grow the log for good
//! (their tombstones expire once no peer lacks a write), deleted documents stay deleted, and
//! replicas restarted on a compacted log serve the same documents.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{build, sample_corpus, Cluster};

/// Bytes of the version log files in a shard directory.
fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("scatter-versions")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn doc(id: &str, round: usize) -> String {
    let pad = "lorem ipsum ".repeat(170);
    format!("{{\"id\":\"{id}\",\"title\":\"compaction round {round}\",\"body\":\"{pad}\"}}\n")
}

async fn versioned(c: &Cluster, r: usize) -> u64 {
    c.replica_state(0, r).await["versioned"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_logs_stay_bounded_and_compaction_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100"];
    let leaf_args = |_, _| vec!["--tombstone-retention-secs".to_string(), "1".to_string()];
    let mut c = Cluster::start_with(dir.path(), 2, &args, leaf_args).await;
    let ids: Vec<String> = (0..10).map(|i| format!("compact-{i}")).collect();
    // 300 versions of 10 documents of ~2 KB: ~6 MB of records, 20 KB current.
    for round in 0..300 {
        let body: String = ids.iter().map(|id| doc(id, round)).collect();
        let (status, resp) = c.post_documents(body).await;
        assert_eq!(status, 200, "{resp}");
    }
    for path in &c.paths[0] {
        let bytes = log_bytes(path);
        assert!(
            bytes < 2 << 20,
            "{}: {bytes} bytes of version log",
            path.display()
        );
    }
    // 400 blind deletes of absent ids, and 5 real deletes.
    for i in 0..400 {
        let (status, body) = c.delete_document(&format!("never-there-{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    for id in &ids[..5] {
        let (status, body) = c.delete_document(id).await;
        assert_eq!(
            (status, &body["result"]),
            (200, &"deleted".into()),
            "{body}"
        );
    }
    // Past the retention, the tombstones go: one entry per live document is left.
    let start = Instant::now();
    while versioned(&c, 0).await > 5 || versioned(&c, 1).await > 5 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tombstones never expired: {}",
            c.state().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let check = common::get_json(&c.http, &c.url("/cluster/replicas/check"), &[]).await;
    assert_eq!(check["consistent"], true, "{check}");
    // Restarted on their compacted logs: the same documents, deleted ones still deleted.
    for r in 0..2 {
        c.kill_leaf(0, r);
        c.restart_leaf(0, r);
    }
    c.wait_ready().await;
    let start = Instant::now();
    loop {
        let mut ok = true;
        for (i, id) in ids.iter().enumerate() {
            let (status, body) = c.get_document(id).await;
            let want = if i < 5 { 404 } else { 200 };
            ok &= status == want;
            if status == 200 {
                assert_eq!(body["fields"]["title"], "compaction round 299", "{body}");
            }
        }
        if ok {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            c.state().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let check = common::get_json(&c.http, &c.url("/cluster/replicas/check"), &[]).await;
    assert_eq!(check["consistent"], true, "{check}");
    for r in 0..2 {
        assert!(versioned(&c, r).await <= 5);
    }
}
