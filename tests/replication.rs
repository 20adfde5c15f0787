//! Replication with real processes, real concurrency and real faults. The assertions are
//! about data: every replica holds the same documents (`/cluster/replicas/check`, what
//! `scatter index check-replicas` prints), and every id ends with its last acknowledged
//! write or a later one.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::{build, sample_corpus, Cluster, Proc};
use scatter_core::random::{os_seed, SharedRng};
use serde_json::{json, Value};

/// One document line with `token` as its title.
fn doc(id: &str, token: &str) -> String {
    json!({"id": id, "title": token, "body": "replication test document"}).to_string()
}

/// The root's replica comparison.
async fn check(http: &reqwest::Client, root: &str) -> Value {
    common::get_json(http, &format!("http://{root}/cluster/replicas/check"), &[]).await
}

/// Polls the comparison until the replicas agree (repairs run after probe rounds).
async fn wait_consistent(http: &reqwest::Client, root: &str, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let body = check(http, root).await;
        if body["consistent"] == true || start.elapsed() > within {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Upserts one line through `root`: whether it was acknowledged.
async fn upsert(http: &reqwest::Client, root: &str, line: String) -> bool {
    let resp = http
        .post(format!("http://{root}/documents"))
        .header("content-type", "application/x-ndjson")
        .body(line)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let Ok(resp) = resp else { return false };
    let ok = resp.status().is_success();
    let body: Value = resp.json().await.unwrap_or_default();
    ok && body["items"][0]["status"] == 200
}

/// Deletes one id through `root`: whether it was acknowledged.
async fn delete(http: &reqwest::Client, root: &str, id: &str) -> bool {
    let resp = http
        .delete(format!("http://{root}/documents/{id}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    resp.is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_id_leave_replicas_identical() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    // Probes once a minute: no repair runs, convergence comes from ordering alone.
    let args = ["--probe-interval-ms", "60000", "--result-cache-mb", "0"];
    let c = Cluster::start(dir.path(), 2, &args).await;
    let root = c.root.addr.clone();
    let writes = (0..150).flat_map(|i| {
        let id = format!("race-{i}");
        ["a", "b"].map(|side| {
            let (http, root, line) = (
                c.http.clone(),
                root.clone(),
                doc(&id, &format!("{side}{i}")),
            );
            async move { upsert(&http, &root, line).await }
        })
    });
    let acked = futures::future::join_all(writes).await;
    assert!(acked.iter().all(|&a| a), "every upsert acknowledged");
    let body = check(&c.http, &root).await;
    assert_eq!(body["consistent"], true, "{body:#}");
    assert_eq!(
        body["shards"][0]["replicas"][0]["documents"],
        body["shards"][0]["replicas"][1]["documents"]
    );
    for i in (0..150).step_by(15) {
        let (status, got) = c.get_document(&format!("race-{i}")).await;
        assert_eq!(status, 200);
        let title = got["fields"]["title"].to_string();
        assert!(
            title.contains(&format!("a{i}")) || title.contains(&format!("b{i}")),
            "{got}"
        );
    }
}

/// One write a client made: what, when, and whether it was acknowledged.
#[derive(Debug, Clone)]
struct Write {
    /// Title token of an upsert; None for a delete.
    token: Option<String>,
    start: Instant,
    end: Instant,
    acked: bool,
}

/// Whether the final state of one id (`Some(token)` or absent) is allowed by its history:
/// it must come from a write (or, absent, from a delete or the id never existing) that no
/// acknowledged write *started after the end of*.
fn allowed(history: &[Write], fin: Option<&str>) -> bool {
    let candidates: Vec<Option<&Write>> = match fin {
        Some(token) => history
            .iter()
            .filter(|w| w.token.as_deref() == Some(token))
            .map(Some)
            .collect(),
        None => std::iter::once(None)
            .chain(history.iter().filter(|w| w.token.is_none()).map(Some))
            .collect(),
    };
    candidates.into_iter().any(|f| {
        !history
            .iter()
            .any(|w| w.acked && f.is_none_or(|f| !std::ptr::eq(w, f) && w.start > f.end))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_write_is_lost_under_kills_and_root_restarts() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let args = ["--probe-interval-ms", "100", "--result-cache-mb", "0"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    let mut second = Proc::root(&c.leaf_addrs(), &args);
    let roots = Arc::new(RwLock::new(vec![c.root.addr.clone(), second.addr.clone()]));
    let seed = os_seed();
    eprintln!("seed {seed}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (roots, http) = (roots.clone(), c.http.clone());
            tokio::spawn(async move {
                let rng = SharedRng::new(seed ^ (w + 1));
                let mut log: Vec<(String, Write)> = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let id = format!("chaos-{}", rng.next_u64() % 40);
                    let root = roots.read().unwrap()[(n % 2) as usize].clone();
                    let start = Instant::now();
                    let (token, acked) = if rng.next_u64().is_multiple_of(5) {
                        (None, delete(&http, &root, &id).await)
                    } else {
                        let token = format!("w{w}n{n}");
                        let acked = upsert(&http, &root, doc(&id, &token)).await;
                        (Some(token), acked)
                    };
                    let end = Instant::now();
                    log.push((
                        id,
                        Write {
                            token,
                            start,
                            end,
                            acked,
                        },
                    ));
                }
                log
            })
        })
        .collect();
    // Faults while the writers run: kill -9 and restart a random replica every ~2 s; restart
    // the second root once.
    let chaos = SharedRng::new(seed);
    let mut kills = 0;
    let mut root_restarted = false;
    while Instant::now() + Duration::from_secs(2) < deadline {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let (k, r) = (
            (chaos.next_u64() % 2) as usize,
            (chaos.next_u64() % 2) as usize,
        );
        c.kill_leaf(k, r);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        c.restart_leaf(k, r);
        if !root_restarted && Instant::now() + Duration::from_secs(10) > deadline {
            second.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            second = Proc::root(&c.leaf_addrs(), &args);
            roots.write().unwrap()[1] = second.addr.clone();
            root_restarted = true;
        }
    }
    let mut history: HashMap<String, Vec<Write>> = HashMap::new();
    for w in writers {
        for (id, write) in w.await.unwrap() {
            history.entry(id).or_default().push(write);
        }
    }
    let acked = history.values().flatten().filter(|w| w.acked).count();
    let total = history.values().map(Vec::len).sum::<usize>();
    eprintln!("{acked} of {total} writes acknowledged, {kills} kills");
    assert!(
        acked > 100 && kills >= 5,
        "{acked} acknowledged, {kills} kills"
    );

    // Failed repairs back off up to 30 s: allow a few rounds on a loaded machine.
    let body = wait_consistent(&c.http, &c.root.addr, Duration::from_secs(120)).await;
    assert_eq!(body["consistent"], true, "{body:#}");
    let body = check(&c.http, &second.addr).await;
    assert_eq!(body["consistent"], true, "the other root agrees: {body:#}");
    for (id, writes) in &history {
        // A replica this root still counts as stale (until its repair is recorded) makes a
        // read 503 rather than a guess: ask again.
        let mut read = c.get_document(id).await;
        for _ in 0..100 {
            if read.0 != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            read = c.get_document(id).await;
        }
        let (status, got) = read;
        let fin = match status {
            200 => Some(
                got["fields"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            404 => None,
            _ => panic!("GET {id}: {status} {got}"),
        };
        assert!(
            allowed(writes, fin.as_deref()),
            "{id} ends as {fin:?}, which an acknowledged write superseded: {writes:#?}"
        );
    }
}

#[test]
fn the_history_rule_refuses_a_lost_acknowledged_write() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let w = |token: Option<&str>, s, e, acked| Write {
        token: token.map(String::from),
        start: at(s),
        end: at(e),
        acked,
    };
    let history = vec![w(Some("a"), 0, 10, true), w(Some("b"), 20, 30, true)];
    assert!(allowed(&history, Some("b")));
    assert!(
        !allowed(&history, Some("a")),
        "b started after a was acknowledged"
    );
    assert!(!allowed(&history, None));
    let overlapping = vec![w(Some("a"), 0, 30, true), w(Some("b"), 10, 20, true)];
    assert!(allowed(&overlapping, Some("a")) && allowed(&overlapping, Some("b")));
    let deleted = vec![w(Some("a"), 0, 10, true), w(None, 20, 30, true)];
    assert!(allowed(&deleted, None));
    assert!(!allowed(&deleted, Some("a")));
}

/// Waits until the root sees replica `r` of shard `k` up (or panics).
async fn wait_up(c: &Cluster, k: usize, r: usize) {
    for _ in 0..200 {
        if c.replica_state(k, r).await["up"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replica {k}/{r} never came up: {}", c.state().await);
}

/// Whether the leaf at `addr` holds document `id` (read directly, not through a root).
async fn leaf_has(addr: &str, id: &str) -> bool {
    let mut client = scatter_proto::LeafClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let resp = client
        .fetch(scatter_proto::v1::FetchRequest {
            ids: vec![id.to_string()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    !resp.docs.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_replica_alone_acknowledges_nothing_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100", "--write-timeout-ms", "3000"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    // Probed once (its replica id known: peers can record it as behind).
    wait_up(&c, 0, 1).await;
    c.kill_leaf(0, 1);
    let (status, body) = c.post_documents(doc("kept-1", "acknowledged")).await;
    assert_eq!(
        (status, &body["items"][0]["status"]),
        (200, &json!(200)),
        "{body}"
    );
    assert_eq!(
        body["replica_failures"][0]["marked_on_peers"], true,
        "{body}"
    );
    // The only replica holding the write goes away; the one that missed it comes back.
    c.kill_leaf(0, 0);
    c.restart_leaf(0, 1);
    wait_up(&c, 0, 1).await;
    assert_eq!(c.replica_state(0, 1).await["stale"], true);
    let (status, body) = c.post_documents(doc("refused-2", "not acknowledged")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["status"], 503, "{body}");
    assert_eq!(
        body["items"][0]["error"]["type"], "no_current_replica",
        "{body}"
    );
    // The first comes back: the replicas merge, and the acknowledged write is everywhere.
    c.restart_leaf(0, 0);
    let body = wait_consistent(&c.http, &c.root.addr, Duration::from_secs(30)).await;
    assert_eq!(body["consistent"], true, "{body:#}");
    for leaf in &c.leaves[0] {
        assert!(
            leaf_has(&leaf.addr, "kept-1").await,
            "{} lost it",
            leaf.addr
        );
    }
    // Current again once the peer's record of it is cleared (seen at the next probe).
    let start = Instant::now();
    while c.replica_state(0, 1).await["stale"] != false {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            c.state().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetch_phase_reads_the_replica_that_answered_the_search() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    // No repairs (probes once a minute), every search fetches in a phase of its own.
    let args = [
        "--probe-interval-ms",
        "60000",
        "--fuse-fetch-max-docs",
        "0",
        "--result-cache-mb",
        "0",
    ];
    let c = Cluster::start(dir.path(), 2, &args).await;
    // A document only the first replica holds (written to it directly).
    let mut a = scatter_proto::LeafClient::connect(format!("http://{}", c.leaves[0][0].addr))
        .await
        .unwrap();
    a.ingest(scatter_proto::v1::IngestRequest {
        upserts: vec![scatter_proto::v1::IngestDoc {
            id: "only-on-a".into(),
            json: doc("only-on-a", "quuxotic"),
            version: 1,
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut answered_by_a, mut fetched_from_a) = (0, 0);
    // With two replicas P2C picks the one with the lower load estimate; the unused one's
    // estimate decays (2 s time constant), so it gets chosen again as time passes: search
    // until the first replica has answered some, a minute at most.
    let started = Instant::now();
    while answered_by_a < 10 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (status, body) = c
            .search(&[("q", "title:quuxotic"), ("profile", "true")])
            .await;
        assert_eq!(status, 200, "{body}");
        let Some(hit) = body["hits"].as_array().unwrap().first() else {
            continue; // the search went to the replica without it
        };
        answered_by_a += 1;
        if hit["fields"]["title"] == "quuxotic" {
            fetched_from_a += 1;
            assert_eq!(body["partial"], false, "{body}");
        } else {
            // Only when the preferred replica was too slow and a hedge to the other one won:
            // then the missing document is reported, never passed off as complete.
            assert_eq!(
                body["partial"], true,
                "empty fields passed off as complete: {body}"
            );
            let failures = body["shards"]["failures"].to_string();
            assert!(failures.contains("only-on-a"), "{body}");
        }
    }
    assert!(answered_by_a > 0, "P2C never chose the first replica");
    assert!(
        fetched_from_a * 2 > answered_by_a,
        "{fetched_from_a} of {answered_by_a} fetched from the replica that answered"
    );
}

/// `POST /documents`: (status, whether `Retry-After` came, body).
async fn post_bulk(c: &Cluster, body: String) -> (u16, bool, Value) {
    let resp = c
        .http
        .post(c.url("/documents"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let retry = resp.headers().get("retry-after").is_some();
    let status = resp.status().as_u16();
    (status, retry, resp.json::<Value>().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_overload_is_refused_with_429_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let leaf_args = |_, _| vec!["--max-write-queue-mb".to_string(), "1".to_string()];
    let c =
        common::Cluster::start_with(dir.path(), 1, &["--result-cache-mb", "0"], leaf_args).await;
    let filler = "overload ".repeat(250);
    let bulk = |b: usize| {
        (0..200)
            .map(|i| {
                let id = format!("load-{b}-{i}");
                json!({"id": id, "title": "zqoverload", "body": filler}).to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let posts = (0..40).map(|b| post_bulk(&c, bulk(b)));
    let mut acked = 0;
    let mut refused = 0;
    for (status, retry_after, body) in futures::future::join_all(posts).await {
        assert!(status == 200 || status == 429, "{status} {body}");
        for item in body["items"].as_array().unwrap() {
            match item["status"].as_u64() {
                Some(200) => acked += 1,
                Some(429) => {
                    refused += 1;
                    assert!(retry_after, "429 items come with Retry-After");
                    assert_eq!(item["error"]["type"], "too_many_requests");
                }
                other => panic!("unexpected item status {other:?}: {item}"),
            }
        }
    }
    assert!(refused > 0, "a 1 MB write queue refused nothing");
    assert!(acked > 0);
    let (_, body) = c.search(&[("q", "title:zqoverload"), ("size", "0")]).await;
    assert_eq!(
        body["total_hits"], acked,
        "every acknowledged document is searchable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_root_bounds_bulk_bytes_in_flight_and_refuses_oversized_documents() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let c = Cluster::start(
        dir.path(),
        1,
        &["--max-ingest-mb", "1", "--max-bulk-mb", "40"],
    )
    .await;
    let body = (0..300)
        .map(|i| doc(&format!("big-{i}"), &"x".repeat(2000)))
        .collect::<Vec<_>>()
        .join("\n");
    let posts = (0..8).map(|_| post_bulk(&c, body.clone()));
    let results = futures::future::join_all(posts).await;
    let shed: Vec<_> = results.iter().filter(|(s, _, _)| *s == 429).collect();
    assert!(
        !shed.is_empty(),
        "8 × 600 kB against a 1 MB budget shed nothing"
    );
    for (_, retry, body) in shed {
        assert!(retry, "Retry-After on a shed bulk");
        assert_eq!(body["error"]["type"], "too_many_requests", "{body}");
    }
    assert!(results.iter().all(|(s, _, _)| *s == 200 || *s == 429));
    // A document larger than a leaf call may carry is that line's 400, not a 503 to retry.
    let huge = doc("huge", &"y".repeat(17 << 20));
    let (status, body) = c.post_documents(huge).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["items"][0]["status"], 400,
        "{}",
        body["items"][0]["error"]
    );
    assert_eq!(body["items"][0]["error"]["type"], "document_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_roots_with_opposite_views_keep_both_replicas_writes() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let args = ["--probe-interval-ms", "100", "--write-timeout-ms", "3000"];
    let mut c = Cluster::start(dir.path(), 2, &args).await;
    // Root 1 sees B miss a write that only A holds.
    c.kill_leaf(0, 1);
    let (_, body) = c.post_documents(doc("via-root-1", "first")).await;
    assert_eq!(body["items"][0]["status"], 200, "{body}");
    // A goes away; B comes back; a root that never saw A cannot record A as behind, so a
    // write through B alone is not acknowledged (issue 20: an acknowledgement is never
    // weaker than promised).
    c.kill_leaf(0, 0);
    c.restart_leaf(0, 1);
    let root2 = Proc::root(&c.leaf_addrs(), &args);
    let url2 = format!("http://{}/documents", root2.addr);
    let http = c.http.clone();
    let post2 = || {
        http.post(&url2)
            .header("content-type", "application/x-ndjson")
            .body(doc("via-root-2", "second"))
            .send()
    };
    for _ in 0..5 {
        let body: Value = post2().await.unwrap().json().await.unwrap();
        assert_ne!(
            body["items"][0]["status"], 200,
            "acknowledged through B alone: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both replicas up: root 2 learns A, writes are acknowledged again; each root repairs
    // with its own view; both acknowledged writes survive everywhere.
    c.restart_leaf(0, 0);
    let mut acked = false;
    for _ in 0..100 {
        let body: Value = post2().await.unwrap().json().await.unwrap();
        if body["items"][0]["status"] == 200 {
            acked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(acked, "root 2 never wrote once both replicas were up");
    for root in [&c.root.addr, &root2.addr] {
        let body = wait_consistent(&c.http, root, Duration::from_secs(30)).await;
        assert_eq!(body["consistent"], true, "{body:#}");
    }
    for leaf in &c.leaves[0] {
        for id in ["via-root-1", "via-root-2"] {
            assert!(leaf_has(&leaf.addr, id).await, "{} lost {id}", leaf.addr);
        }
    }
}

/// `scatter index check-replicas --target URL`: (exit success, stdout).
fn check_replicas_cli(root: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args([
            "index",
            "check-replicas",
            "--target",
            &format!("http://{root}"),
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_replicas_passes_on_agreeing_replicas_and_names_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    // No repairs: the difference made below stays.
    let c = Cluster::start(dir.path(), 2, &["--probe-interval-ms", "60000"]).await;
    let (_, body) = c.post_documents(doc("everywhere", "x")).await;
    assert_eq!(body["errors"], false, "{body}");
    let (ok, out) = check_replicas_cli(&c.root.addr);
    assert!(ok, "{out}");
    assert!(out.contains("replicas agree"), "{out}");
    // A write only one replica of its shard received (sent to it directly).
    let id = "only-here";
    let shard = c.post_documents(doc(id, "probe")).await.1["items"][0]["shard"]
        .as_u64()
        .unwrap() as usize;
    let mut leaf =
        scatter_proto::LeafClient::connect(format!("http://{}", c.leaves[shard][1].addr))
            .await
            .unwrap();
    leaf.ingest(scatter_proto::v1::IngestRequest {
        upserts: vec![scatter_proto::v1::IngestDoc {
            id: id.into(),
            json: doc(id, "changed on one replica"),
            // Newer than the root's write, within the leaf's clock bound.
            version: scatter_core::clock::now_micros(),
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let (ok, out) = check_replicas_cli(&c.root.addr);
    assert!(!ok, "a difference must fail the check: {out}");
    assert!(
        out.contains(&format!("shard {shard}: 1 ids differ")),
        "{out}"
    );
    assert!(out.contains(id), "{out}");
}
