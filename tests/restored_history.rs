//! A replica's history is not trusted until a peer confirms it (issue 20, item 6): a lagging
//! replica's directory copied elsewhere (new inode, so a new replica id that escapes the
//! marks its peer holds) and a directory restored in place from a backup (same id, older
//! log) both come back *unverified*: with the replica that holds the writes away, neither
//! answers a confident 404 for an acknowledged id, and once the holder is back every
//! acknowledged write ends on both replicas.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{build, copy_dir, sample_corpus, Cluster};

fn doc(id: &str) -> String {
    format!("{{\"id\":\"{id}\",\"title\":\"history {id}\"}}\n")
}

async fn write_all(c: &Cluster, ids: &[String]) {
    let body: String = ids.iter().map(|id| doc(id)).collect();
    let (status, resp) = c.post_documents(body).await;
    assert_eq!(status, 200, "{resp}");
    for item in resp["items"].as_array().unwrap() {
        assert_eq!(item["status"], 200, "{resp}");
    }
}

async fn wait_up(c: &Cluster, r: usize) {
    let start = Instant::now();
    while c.replica_state(0, r).await["up"] != true {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "replica {r} never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With the holder away: no acknowledged id reads as a confident 404.
async fn never_a_confident_404(c: &Cluster, ids: &[String]) {
    for id in ids {
        let (status, body) = c.get_document(id).await;
        let state = c.state().await;
        assert_ne!(
            status, 404,
            "{id}: an unverified replica answered 404: {body} {state}"
        );
        assert!(status == 503 || status == 200, "{id}: {status} {body}");
    }
}

/// Waits until both replicas hold every id (read through the root, then compared by the
/// replica check).
async fn wait_converged(c: &Cluster, ids: &[String]) {
    let start = Instant::now();
    loop {
        let check = common::get_json(&c.http, &c.url("/cluster/replicas/check"), &[]).await;
        let mut all = check["consistent"] == true;
        for id in ids.iter().take(5) {
            all &= c.get_document(id).await.0 == 200;
        }
        if all {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never converged: {check}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let check = common::get_json(&c.http, &c.url("/cluster/replicas/check"), &[]).await;
    for r in check["shards"][0]["replicas"].as_array().unwrap() {
        assert!(
            r["documents"].as_u64().unwrap() >= ids.len() as u64,
            "{check}"
        );
    }
    for id in ids {
        assert_eq!(c.get_document(id).await.0, 200, "{id} lost");
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn restore_files(backup: &Path, dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    copy_dir(backup, dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_and_restored_directories_are_behind_until_merged() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100", "--write-timeout-ms", "3000"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. B misses 30 writes (A records it as behind), then B's directory is copied to a new
    //    place and served from there while A is away: a new replica id, no mark names it.
    c.kill_leaf(0, 1);
    let first = ids("copied", 30);
    write_all(&c, &first).await;
    c.kill_leaf(0, 0);
    let copied = dir.path().join("copied-b");
    copy_dir(&c.paths[0][1], &copied);
    c.paths[0][1] = copied;
    c.restart_leaf(0, 1);
    wait_up(&c, 1).await;
    never_a_confident_404(&c, &first).await;
    let (status, body) = c.search(&[("q", "history")]).await;
    assert_eq!((status, &body["partial"]), (200, &true.into()), "{body}");
    c.restart_leaf(0, 0);
    wait_converged(&c, &first).await;

    // 2. A is restored in place from a backup taken before 20 more writes (same directory,
    //    same replica id, an older log), and comes back while B, the holder, is away.
    let backup = dir.path().join("backup-a");
    copy_dir(&c.paths[0][0], &backup);
    let second = ids("restored", 20);
    write_all(&c, &second).await;
    c.kill_leaf(0, 0);
    restore_files(&backup, &c.paths[0][0]);
    c.kill_leaf(0, 1);
    c.restart_leaf(0, 0);
    wait_up(&c, 0).await;
    never_a_confident_404(&c, &second).await;
    // A write while only the unverified replica answers: acknowledged or refused, never lost.
    let (status, body) = c.post_documents(doc("during-restore")).await;
    let acknowledged = status == 200 && body["items"][0]["status"] == 200;
    c.restart_leaf(0, 1);
    let mut all: Vec<String> = first.into_iter().chain(second).collect();
    if acknowledged {
        all.push("during-restore".to_string());
    }
    wait_converged(&c, &all).await;
}
