//! Tail tolerance with real processes: a slow replica is routed around and hedged, a killed
//! replica costs no query, a hung (SIGSTOPped) replica holds no query past its deadline, is
//! ejected and probed back in, and hedges stay within their budget.

mod common;

use std::time::{Duration, Instant};

use common::{build, queries, sample_corpus, Cluster};
use serde_json::Value;

fn slow_first_replica(delay_ms: u64) -> impl Fn(u32, u32) -> Vec<String> {
    move |_, replica| {
        if replica == 0 {
            vec![
                "--fault-delay-ms".into(),
                delay_ms.to_string(),
                "--fault-delay-rate".into(),
                "1.0".into(),
            ]
        } else {
            Vec::new()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_is_routed_around() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let c = Cluster::start_with(dir.path(), 2, &[], slow_first_replica(500)).await;
    let healthy: Vec<String> = c.leaves.iter().map(|g| g[1].addr.clone()).collect();
    for q in queries() {
        let (status, body) = c
            .search(&[("q", &q), ("profile", "true"), ("timeout_ms", "2000")])
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["partial"], false, "{q}: {body}");
        assert!(
            body["took_ms"].as_u64().unwrap() < 400,
            "{q}: took {}",
            body["took_ms"]
        );
        for shard in body["profile"]["search"].as_array().unwrap() {
            let k = shard["shard"].as_u64().unwrap() as usize;
            assert_eq!(shard["replica"].as_str().unwrap(), healthy[k], "{shard}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_replicas_under_load_fails_no_query() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let mut c = Cluster::start(dir.path(), 2, &[]).await;
    let (http, url) = (c.http.clone(), c.url("/search"));
    let load = tokio::spawn(async move {
        let mut answers = Vec::new();
        let qs = queries();
        let until = Instant::now() + Duration::from_secs(3);
        let mut i = 0;
        while Instant::now() < until {
            let q = &qs[i % qs.len()];
            let resp = http
                .get(&url)
                .query(&[("q", q.as_str())])
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            answers.push((status, body));
            i += 1;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    for group in &mut c.leaves {
        group[0].kill();
    }
    let answers = load.await.unwrap();
    assert!(answers.len() > 20, "only {} queries ran", answers.len());
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["partial"], false, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_is_hedged_around_ejected_and_probed_back() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let c = Cluster::start(dir.path(), 2, &[]).await;
    // Warm up: the budget fills, latency estimates settle.
    for q in queries() {
        c.search(&[("q", &q)]).await;
    }
    let hung = c.leaves[0][0].addr.clone();
    c.leaves[0][0].signal("STOP");
    for q in queries().iter().take(20) {
        let start = Instant::now();
        let (status, body) = c.search(&[("q", q), ("timeout_ms", "800")]).await;
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{q}: {:?}",
            start.elapsed()
        );
        assert_eq!(status, 200, "{body}");
    }
    let replica_state = |state: &Value| {
        state["shards"][0]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["addr"] == hung.as_str())
            .unwrap()["state"]
            .clone()
    };
    let mut ejected = false;
    for _ in 0..150 {
        let s = replica_state(&c.state().await);
        if s["up"] == false && s["ejections"].as_u64().unwrap() >= 1 {
            ejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ejected, "the hung replica was not ejected");
    // Ejected: queries are complete and fast again.
    for q in queries().iter().take(10) {
        let (_, body) = c.search(&[("q", q), ("timeout_ms", "800")]).await;
        assert_eq!(body["partial"], false, "{body}");
    }
    c.leaves[0][0].signal("CONT");
    let mut back = false;
    for _ in 0..300 {
        if replica_state(&c.state().await)["up"] == true {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the replica was not probed back in after SIGCONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedges_stay_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let c = Cluster::start_with(
        dir.path(),
        2,
        &["--hedge-budget", "0.05"],
        slow_first_replica(30),
    )
    .await;
    let qs = queries();
    for i in 0..240 {
        let (status, _) = c.search(&[("q", &qs[i % qs.len()])]).await;
        assert_eq!(status, 200);
    }
    let state = c.state().await;
    let shards = state["shards"].as_array().unwrap();
    let sum = |key: &str| shards.iter().map(|s| s[key].as_u64().unwrap()).sum::<u64>();
    let (calls, total_hedges) = (sum("calls"), sum("hedges"));
    // The budget (shared by all shards): 5% of calls long-run, plus its burst of 20.
    assert!(
        total_hedges as f64 <= 0.05 * calls as f64 + 20.0 + 1.0,
        "{total_hedges} hedges for {calls} calls"
    );
    assert!(
        total_hedges > 0,
        "no hedge at all with a slow replica: {state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_set_at_run_time_through_the_admin_call() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let c = Cluster::start(dir.path(), 1, &["--no-hedge"]).await;
    let leaf = c.leaves[0][0].addr.clone();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scatter"))
            .args(["faults", "--leaf", &leaf])
            .args(args)
            .output()
            .unwrap()
    };
    let set = run(&["--fault-error-rate", "1.0"]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let (status, body) = c.search(&[("q", "web"), ("allow_partial", "false")]).await;
    assert_eq!(status, 503, "every call fails now: {body}");
    let shown = run(&["--show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("errors on 1.0000"));
    assert!(run(&[]).status.success(), "all faults cleared");
    let mut ok = false;
    for _ in 0..100 {
        let (status, _) = c.search(&[("q", "web"), ("allow_partial", "false")]).await;
        if status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the leaf did not recover after the faults were cleared");
}
