//! Reads are never weaker than writes (issue 20): with the only current replica down, a
//! replica known to lack an acknowledged write must not answer `GET /documents/{id}` with a
//! confident 404 (the root says it cannot know: 503), and a search it alone answers is
//! partial and says why, until a current replica answers again.

mod common;

use std::time::{Duration, Instant};

use common::{build, sample_corpus, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_known_to_lack_writes_never_answers_a_confident_404() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100", "--write-timeout-ms", "3000"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // both probed
    c.kill_leaf(0, 1);
    let doc = "{\"id\":\"stale-read-1\",\"title\":\"acknowledged while B was down\"}\n";
    let (status, body) = c.post_documents(doc.to_string()).await;
    assert_eq!(
        (status, &body["items"][0]["status"]),
        (200, &200.into()),
        "{body}"
    );
    // The current replica goes away; the one that missed the write comes back.
    c.kill_leaf(0, 0);
    c.restart_leaf(0, 1);
    let start = Instant::now();
    while c.replica_state(0, 1).await["up"] != true {
        assert!(start.elapsed() < Duration::from_secs(10), "B never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        let (status, body) = c.get_document("stale-read-1").await;
        assert_eq!(
            status, 503,
            "a replica known to lack writes answered: {body}"
        );
        assert!(body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("may lack"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A search answered only by B says so: partial, naming the replica.
    let (status, body) = c.search(&[("q", "acknowledged")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partial"], true, "{body}");
    let reason = body["shards"]["failures"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("may lack recent writes"), "{reason}");
    // The current replica back: the document is found (and B is repaired from it).
    c.restart_leaf(0, 0);
    let start = Instant::now();
    loop {
        let (status, body) = c.get_document("stale-read-1").await;
        if status == 200 {
            assert_eq!(body["fields"]["title"], "acknowledged while B was down");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
