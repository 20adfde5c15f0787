//! Leaf nodes serving several shards: a node's answers equal single-shard leaves' (ids,
//! scores, counts, coverage) at 1, 2 and 4 nodes; a killed node's shards fail over to their
//! other replicas, and shards left without any replica are named in a partial answer;
//! bounded hit counting (`track_total_hits=N`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{build, copy_dir, sample_corpus, Proc};
use scatter_index_tools::verify::{verify, VerifyOptions};
use serde_json::Value;

/// A root over `layout` (replica addresses per shard), ready.
async fn root(layout: &[Vec<String>]) -> Proc {
    let root = Proc::root(layout, &["--result-cache-mb", "0"]);
    let http = reqwest::Client::new();
    for _ in 0..400 {
        let ready = http
            .get(format!("http://{}/readyz", root.addr))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return root;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("root did not become ready");
}

async fn search(root: &Proc, params: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/search", root.addr))
        .query(params)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn shard_dirs(dir: &Path, n: u32) -> Vec<PathBuf> {
    (0..n).map(|k| dir.join(format!("shard-{k}"))).collect()
}

fn exact_queries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exact-queries.txt")
}

/// Hits (id, score), total and coverage: what must not depend on how shards sit on nodes.
fn essentials(v: &Value) -> Value {
    let hits: Vec<Value> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| serde_json::json!([h["id"], h["score"], h["shard"]]))
        .collect();
    serde_json::json!({"hits": hits, "total": v["total_hits"], "shards": v["shards"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_several_shards_answer_like_single_shard_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let (one, four) = (dir.path().join("s1"), dir.path().join("s4"));
    build(&sample_corpus(), 1, &one);
    build(&sample_corpus(), 4, &four);
    // Each layout on its own copy of the build: one process per shard directory.
    let copies: Vec<std::path::PathBuf> =
        (0..3).map(|i| dir.path().join(format!("s4-{i}"))).collect();
    for copy in &copies {
        common::copy_dir(&four, copy);
        for (from, to) in shard_dirs(&four, 4).iter().zip(shard_dirs(copy, 4)) {
            common::copy_dir(from, &to);
        }
    }
    let dirs: Vec<Vec<std::path::PathBuf>> = copies.iter().map(|c| shard_dirs(c, 4)).collect();
    // 4 nodes of one shard each (the old layout), 2 nodes of 2, 1 node of 4.
    let singles: Vec<Proc> = dirs[0].iter().map(|d| Proc::leaf(d)).collect();
    let pairs = [Proc::node(&dirs[1][..2]), Proc::node(&dirs[1][2..])];
    let all = Proc::node(&dirs[2]);
    let layouts: Vec<Vec<Vec<String>>> = vec![
        singles.iter().map(|p| vec![p.addr.clone()]).collect(),
        (0..4).map(|k| vec![pairs[k / 2].addr.clone()]).collect(),
        (0..4).map(|_| vec![all.addr.clone()]).collect(),
    ];
    let mut roots = Vec::new();
    for layout in &layouts {
        roots.push(root(layout).await);
    }
    for r in &roots {
        let report = verify(&VerifyOptions {
            cluster: format!("http://{}", r.addr),
            reference: one.clone(),
            queries: exact_queries(),
            k: 10,
        })
        .await
        .unwrap();
        assert!(report.verdicts.len() >= 300);
        assert!(report.all_identical(), "{report}");
    }
    for q in common::queries().iter().take(60) {
        for params in [
            vec![("q", q.as_str()), ("size", "10")],
            vec![("q", q.as_str()), ("size", "7"), ("from", "13")],
            vec![("q", q.as_str()), ("size", "40")], // query then fetch
        ] {
            let (s0, a) = search(&roots[0], &params).await;
            assert_eq!(s0, 200, "{a}");
            for r in &roots[1..] {
                let (s, b) = search(r, &params).await;
                assert_eq!(s, 200, "{b}");
                assert_eq!(essentials(&a), essentials(&b), "{params:?}");
                assert_eq!(a["hits"], b["hits"], "stored fields too: {params:?}");
            }
        }
    }
    // One call per node: the 1-node root's profile shows every shard answered by one
    // call carrying all four.
    let (_, p) = search(&roots[2], &[("q", "web server"), ("profile", "true")]).await;
    for shard in p["profile"]["search"].as_array().unwrap() {
        assert_eq!(shard["attempts"].as_array().unwrap().len(), 1, "{shard}");
        assert_eq!(shard["attempts"][0]["node_shards"], 4, "{shard}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_fails_its_shards_over_and_lost_shards_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let four = dir.path().join("s4");
    build(&sample_corpus(), 4, &four);
    let dirs = shard_dirs(&four, 4);
    let copies: Vec<PathBuf> = (0..4)
        .map(|k| {
            let to = dir.path().join("copy").join(format!("shard-{k}"));
            copy_dir(&dirs[k], &to);
            to
        })
        .collect();
    // Node a: shards 0, 1; node b: shards 2, 3; node c: a copy of every shard.
    let mut a = Proc::node(&dirs[..2]);
    let b = Proc::node(&dirs[2..]);
    let mut c = Proc::node(&copies);
    let layout: Vec<Vec<String>> = (0..4)
        .map(|k| {
            let first = if k < 2 { &a.addr } else { &b.addr };
            vec![first.clone(), c.addr.clone()]
        })
        .collect();
    let r = root(&layout).await;
    let (_, before) = search(&r, &[("q", "library"), ("size", "20")]).await;
    assert_eq!(before["partial"], false);
    a.kill();
    for _ in 0..5 {
        let (status, after) = search(&r, &[("q", "library"), ("size", "20")]).await;
        assert_eq!(status, 200, "{after}");
        assert_eq!(after["partial"], false, "{after}");
        assert_eq!(essentials(&after), essentials(&before));
    }
    c.kill();
    let (status, partial) = search(&r, &[("q", "library")]).await;
    assert_eq!(status, 200, "{partial}");
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["shards"]["failed"], 2, "{partial}");
    let mut named: Vec<u64> = partial["shards"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["shard"].as_u64().unwrap())
        .collect();
    named.sort_unstable();
    named.dedup();
    assert_eq!(named, [0, 1], "{partial}");
    assert!(partial["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["shard"].as_u64().unwrap() >= 2));
    let (status, refused) = search(&r, &[("q", "library"), ("allow_partial", "false")]).await;
    assert_eq!(status, 503, "{refused}");
}

/// The same hits in the same order; scores equal up to the last float digits (bounded
/// counting collects with block-max WAND, which sums term scores in another order).
fn assert_same_page(a: &Value, b: &Value, q: &str) {
    assert_eq!(common::hit_ids(a), common::hit_ids(b), "{q}");
    for (x, y) in a["hits"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["hits"].as_array().unwrap())
    {
        let (x, y) = (x["score"].as_f64().unwrap(), y["score"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{q}: {x} vs {y}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_hit_counting() {
    let dir = tempfile::tempdir().unwrap();
    let four = dir.path().join("s4");
    build(&sample_corpus(), 4, &four);
    let node = Proc::node(&shard_dirs(&four, 4));
    let r = root(&(0..4).map(|_| vec![node.addr.clone()]).collect::<Vec<_>>()).await;
    for q in ["library", "web server", "python", "\"text editor\"", "*"] {
        let (_, exact) = search(&r, &[("q", q)]).await;
        let total = exact["total_hits"].as_u64().unwrap();
        assert_eq!(exact["total_hits_relation"], "eq");
        let above = (total + 5).to_string();
        let (_, b) = search(&r, &[("q", q), ("track_total_hits", &above)]).await;
        assert_eq!(
            (b["total_hits"].as_u64(), &b["total_hits_relation"]),
            (Some(total), &"eq".into()),
            "{q}"
        );
        assert_same_page(&b, &exact, q);
        if total >= 4 {
            let n = total / 2;
            let (_, b) = search(&r, &[("q", q), ("track_total_hits", &n.to_string())]).await;
            assert_eq!(b["total_hits_relation"], "gte", "{q}: {b}");
            assert_eq!(b["total_hits"].as_u64(), Some(n), "{q}");
            assert_same_page(&b, &exact, q);
        }
    }
    let body = serde_json::json!({"q": "library", "track_total_hits": 3});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/search", r.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["total_hits"].as_u64(), v["total_hits_relation"].as_str()),
        (Some(3), Some("gte"))
    );
    for bad in ["-1", "lots", "1.5"] {
        let (status, v) = search(&r, &[("q", "library"), ("track_total_hits", bad)]).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["error"]["type"], "illegal_argument", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_up_places_replicas_on_nodes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args([
            "up",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--nodes",
            "1",
        ])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "1 node cannot hold 2 replicas of a shard"
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args([
            "up",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut nodes, mut url) = (Vec::new(), None);
    while url.is_none() {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "scatter up ended early"
        );
        if line.starts_with("node ") {
            nodes.push(line.clone());
        }
        url = line
            .strip_prefix("root listening on ")
            .map(|u| u.trim().to_string());
    }
    let url = url.unwrap();
    // Default: 2 nodes for 4 shards x 2 replicas, each holding one replica of every shard.
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(
        nodes.iter().all(|n| n.contains("shards [0, 1, 2, 3]")),
        "{nodes:?}"
    );
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        let r = http.get(format!("{url}/readyz")).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready);
    let cluster = common::get_json(&http, &format!("{url}/cluster"), &[]).await;
    for shard in cluster["shards"].as_array().unwrap() {
        let addrs: Vec<&str> = shard["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["addr"].as_str().unwrap())
            .collect();
        assert_eq!(addrs.len(), 2);
        assert_ne!(
            addrs[0], addrs[1],
            "two replicas of a shard on one node: {shard}"
        );
    }
    let v = common::get_json(&http, &format!("{url}/search"), &[("q", "web server")]).await;
    assert_eq!(v["partial"], false, "{v}");
    assert!(v["hits"].as_array().unwrap().len() == 10);
    // Mutual TLS by default: certificates made in the data directory, and a leaf refuses a
    // plain client.
    assert!(dir.path().join("certs").join("ca.pem").exists());
    let leaf = nodes[0]
        .split(": ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let refused = match tonic::transport::Endpoint::from_shared(format!("http://{leaf}"))
        .unwrap()
        .connect()
        .await
    {
        Err(_) => true,
        Ok(channel) => scatter_proto::LeafClient::new(channel)
            .info(scatter_proto::v1::InfoRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a leaf of scatter up answered a plain client");
    let _ = child.kill();
    let _ = child.wait();
}
