//! Load shedding at the root: beyond `--max-concurrent-searches` a search is refused at once
//! with 429 `too_many_requests` and `Retry-After` — never a 5xx, the root's memory stays
//! bounded under a flood of slow searches, and it serves normally as soon as the flood ends.

mod common;

use std::time::{Duration, Instant};

use common::{build, rss_kib, sample_corpus, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_searches_is_shed_with_429_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    // Every leaf call takes 100 ms: searches pile up at the root.
    let c = Cluster::start_with(
        dir.path(),
        1,
        &["--max-concurrent-searches", "4", "--result-cache-mb", "0"],
        |_, _| {
            ["--fault-delay-ms", "100", "--fault-delay-rate", "1"]
                .map(String::from)
                .to_vec()
        },
    )
    .await;
    let before = rss_kib(c.root.pid());
    let flood: Vec<_> = (0..400)
        .map(|i| {
            let (http, url) = (c.http.clone(), c.url("/search"));
            tokio::spawn(async move {
                let started = Instant::now();
                let r = http
                    .get(url)
                    .query(&[("q", format!("web server {i}"))])
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let retry_after = r.headers().get("retry-after").cloned();
                let body: serde_json::Value = r.json().await.unwrap();
                (status, retry_after, body, started.elapsed())
            })
        })
        .collect();
    let mut ok = 0;
    let mut admitted = Vec::new();
    let mut shed = Vec::new();
    for task in flood {
        let (status, retry_after, body, took) = task.await.unwrap();
        match status {
            200 => {
                ok += 1;
                admitted.push(took);
            }
            429 => {
                assert_eq!(body["error"]["type"], "too_many_requests", "{body}");
                assert!(retry_after.is_some(), "429 carries Retry-After");
                shed.push(took);
            }
            other => panic!("status {other}: {body}"),
        }
    }
    let after = rss_kib(c.root.pid());
    assert!(ok >= 4, "admitted searches are answered: {ok}");
    assert!(
        shed.len() >= 300,
        "most of the flood is shed: {}",
        shed.len()
    );
    // Refused without waiting for a slot: faster than any admitted search (each takes
    // ≥ 100 ms here), whatever the client's own queueing adds to both.
    shed.sort();
    let fastest_admitted = admitted.iter().min().copied().unwrap();
    assert!(
        shed[shed.len() / 2] < fastest_admitted,
        "median refusal {:?}, fastest admitted {fastest_admitted:?}",
        shed[shed.len() / 2]
    );
    assert!(
        after < before + 64 * 1024,
        "root memory {before} → {after} KiB under the flood"
    );
    // The flood is over: searches are admitted again at once.
    let (status, body) = c.search(&[("q", "web server")]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_bounds_its_data_calls_and_refuses_the_rest_at_once() {
    use scatter_core::limits::MAX_LEAF_DATA_CALLS;
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let manifest = scatter_core::Manifest::load(dir.path()).unwrap();
    let slow = ["--fault-delay-ms", "500", "--fault-delay-rate", "1"].map(String::from);
    let leaf = common::Proc::leaf_with(&manifest.shard_path(dir.path(), 0), &slow);
    let client = scatter_proto::LeafClient::connect(format!("http://{}", leaf.addr))
        .await
        .unwrap();
    let calls: Vec<_> = (0..MAX_LEAF_DATA_CALLS + 64)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let req = scatter_proto::v1::SearchRequest {
                    query: "web".into(),
                    k: 1,
                    ..Default::default()
                };
                (client.search(req).await.map(|_| ()), started.elapsed())
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            (Ok(()), _) => ok += 1,
            (Err(s), took) if s.code() == tonic::Code::ResourceExhausted => {
                refused += 1;
                assert!(
                    took < Duration::from_millis(500),
                    "refused at once: {took:?}"
                );
            }
            (Err(s), _) => panic!("unexpected {s:?}"),
        }
    }
    assert!(ok <= MAX_LEAF_DATA_CALLS, "{ok} admitted");
    assert!(refused >= 64, "{refused} refused");
}
