//! `check-replicas` checks what searches read (issue 20, item 7): two replicas bulk-built
//! from inputs that differ in one document's title (same ids, same empty version logs) were
//! reported as agreeing; the check now compares each document's stored content as each
//! replica's index holds it.

mod common;

use std::io::{BufRead, Write};

use common::{build, sample_corpus, Cluster, Proc};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_built_document_that_differs_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build(&sample_corpus(), 1, &a);
    let modified = dir.path().join("modified.jsonl");
    let input = flate2::read::GzDecoder::new(std::fs::File::open(sample_corpus()).unwrap());
    let mut out = std::fs::File::create(&modified).unwrap();
    let mut changed = String::new();
    for (i, line) in std::io::BufReader::new(input).lines().enumerate() {
        let mut doc: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if i == 7 {
            changed = doc["id"].as_str().unwrap().to_string();
            doc["title"] = Value::from("a title only one replica has");
        }
        writeln!(out, "{doc}").unwrap();
    }
    drop(out);
    build(&modified, 1, &b);
    let la = Proc::leaf(&a.join("shard-0"));
    let lb = Proc::leaf(&b.join("shard-0"));
    let addrs = vec![vec![la.addr.clone(), lb.addr.clone()]];
    let root = Proc::root(&addrs, &[]);
    let c = Cluster {
        leaves: vec![vec![la, lb]],
        paths: vec![vec![a.join("shard-0"), b.join("shard-0")]],
        root,
        http: reqwest::Client::new(),
    };
    c.wait_ready().await;
    let check = common::get_json(&c.http, &c.url("/cluster/replicas/check"), &[]).await;
    assert_eq!(check["consistent"], false, "{check}");
    let shard = &check["shards"][0];
    assert_eq!(shard["differing"], 1, "{shard}");
    assert_eq!(shard["differences"][0]["id"], changed.as_str());
}
