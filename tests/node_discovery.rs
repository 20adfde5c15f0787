//! `scatter root --node A --node B`: the root learns from each leaf node which shards it
//! serves (no per-shard `--shard` lists) and searches them all; a root whose nodes leave a
//! shard uncovered refuses to start, naming the missing shards. A second leaf on a shard
//! directory in use is refused at start.

mod common;

use common::{build, sample_corpus, Proc};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_say_what_they_serve() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let manifest = scatter_core::Manifest::load(dir.path()).unwrap();
    let path = |k| manifest.shard_path(dir.path(), k);
    let a = Proc::node(&[path(0), path(1)]);
    let b = Proc::node(&[path(2), path(3)]);
    let root = Proc::start(&[
        "root",
        "--listen",
        "127.0.0.1:0",
        "--node",
        &a.addr,
        "--node",
        &b.addr,
    ]);
    let http = reqwest::Client::new();
    let url = format!("http://{}/search?q=web&size=3", root.addr);
    let mut body = serde_json::Value::Null;
    for _ in 0..100 {
        body = http.get(&url).send().await.unwrap().json().await.unwrap();
        if body["shards"]["successful"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(body["shards"]["total"], 4, "{body}");
    assert_eq!(body["shards"]["successful"], 4, "{body}");

    // Only one node: shards 2 and 3 have none, and the root says so instead of starting.
    let stderr = refused(&["root", "--listen", "127.0.0.1:0", "--node", &a.addr]);
    assert!(
        stderr.contains("[2, 3]") && stderr.contains("of 4"),
        "{stderr}"
    );

    // `--shard` lists that do not match what the nodes serve: refused, naming what is missing.
    let stderr = refused(&["root", "--listen", "127.0.0.1:0", "--shard", &a.addr]);
    assert!(
        stderr.contains("no --shard list for shard(s) [1, 2, 3]"),
        "{stderr}"
    );
    let two = format!("--shard={}", a.addr);
    let stderr = refused(&["root", "--listen", "127.0.0.1:0", &two, "--shard", &b.addr]);
    assert!(stderr.contains("[2, 3]"), "{stderr}");

    // A second leaf on a directory in use is refused at start.
    let shard0 = path(0);
    let leaf = [
        "leaf",
        "--listen",
        "127.0.0.1:0",
        "--index",
        shard0.to_str().unwrap(),
    ];
    let stderr = refused(&leaf);
    assert!(
        stderr.contains("in use by another scatter process"),
        "{stderr}"
    );
}

/// Runs `scatter ARGS`, which must fail at start; its standard error.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
