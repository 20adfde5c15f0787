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
                    let (token, acked) = if rng.next_u64() % 5 == 0 {
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

    let body = wait_consistent(&c.http, &c.root.addr, Duration::from_secs(60)).await;
    assert_eq!(body["consistent"], true, "{body:#}");
    let body = check(&c.http, &second.addr).await;
    assert_eq!(body["consistent"], true, "the other root agrees: {body:#}");
    for (id, writes) in &history {
        let (status, got) = c.get_document(id).await;
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
