//! Faults with real processes: killed replicas fail over, a shard with no replica left is
//! reported (partial, or 5xx when partial answers are refused), a hung leaf does not hold the
//! answer past its deadline.

mod common;

use std::time::{Duration, Instant};

use common::{build, queries, sample_corpus, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_replica_of_every_shard_keeps_answers_complete() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let mut c = Cluster::start(dir.path(), 2, &[]).await;
    let (_, before) = c.search(&[("q", "web server"), ("size", "20")]).await;
    for group in &mut c.leaves {
        group[0].kill();
    }
    // Right after the kill, before any probe noticed: every query still complete.
    for q in queries() {
        let (status, body) = c.search(&[("q", &q), ("size", "20")]).await;
        assert_eq!(status, 200, "{q:?}: {body}");
        assert_eq!(body["partial"], false, "{q:?}: {body}");
        assert_eq!(body["shards"]["successful"], 4, "{q:?}: {body}");
    }
    let (_, after) = c.search(&[("q", "web server"), ("size", "20")]).await;
    assert_eq!(common::hit_ids(&before), common::hit_ids(&after));
    assert_eq!(before["total_hits"], after["total_hits"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_without_replicas_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let mut c = Cluster::start(dir.path(), 2, &[]).await;
    let (_, full) = c.search(&[("q", "library"), ("size", "0")]).await;
    for leaf in &mut c.leaves[2] {
        leaf.kill();
    }
    let start = Instant::now();
    let (status, body) = c.search(&[("q", "library"), ("timeout_ms", "2000")]).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "answered after the deadline"
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partial"], true);
    assert_eq!(body["shards"]["total"], 4);
    assert_eq!(body["shards"]["successful"], 3);
    assert_eq!(body["shards"]["failed"], 1);
    let failures = body["shards"]["failures"].as_array().unwrap();
    assert!(
        !failures.is_empty() && failures.iter().all(|f| f["shard"] == 2),
        "{body}"
    );
    assert!(failures
        .iter()
        .all(|f| f["replica"].is_string() && f["reason"].is_string()));
    assert!(body["total_hits"].as_u64() < full["total_hits"].as_u64());
    assert!(body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["shard"] != 2));

    let (status, body) = c
        .search(&[("q", "library"), ("allow_partial", "false")])
        .await;
    assert!(status == 503 || status == 504, "status {status}: {body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("shard 2"),
        "{body}"
    );

    // Readiness reflects the missing shard once the prober has seen it.
    let mut ready_status = 200;
    for _ in 0..100 {
        ready_status = c
            .http
            .get(c.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready_status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready_status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_leaf_does_not_hold_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let c = Cluster::start(dir.path(), 1, &[]).await;
    c.leaves[1][0].signal("STOP");
    let start = Instant::now();
    let (status, body) = c.search(&[("q", "library"), ("timeout_ms", "300")]).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partial"], true);
    assert_eq!(body["timed_out"], true);
    assert_eq!(body["shards"]["failed"], 1, "{body}");
    assert_eq!(body["shards"]["failures"][0]["shard"], 1);

    let (status, body) = c
        .search(&[
            ("q", "library"),
            ("timeout_ms", "300"),
            ("allow_partial", "false"),
        ])
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["type"], "timeout");

    // Once the leaf resumes, answers are complete again.
    c.leaves[1][0].signal("CONT");
    let mut complete = false;
    for _ in 0..100 {
        let (_, body) = c.search(&[("q", "library"), ("timeout_ms", "1000")]).await;
        if body["partial"] == false {
            complete = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(complete, "cluster did not recover after SIGCONT");
}
