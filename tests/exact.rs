//! Exact global BM25: at every shard count, with updated documents, through real processes
//! and in-process, a sharded cluster ranks like one index (`scatter index verify`'s rule);
//! snippets do not depend on the layout; Cranfield's nDCG@10 is the single index's.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{build, sample_corpus, Cluster};
use scatter_index_tools::verify::{verify, LocalCluster, VerifyOptions};

fn exact_queries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exact-queries.txt")
}

/// The sample corpus followed by 80 upserts of existing ids with new text, so the indexes
/// hold deleted documents (counted by tantivy's statistics until merged away).
fn corpus_with_updates(dir: &Path) -> PathBuf {
    let path = dir.join("updated.jsonl");
    let mut out = std::fs::File::create(&path).unwrap();
    let input = flate2::read::GzDecoder::new(std::fs::File::open(sample_corpus()).unwrap());
    let lines: Vec<String> = std::io::BufReader::new(input)
        .lines()
        .map(Result::unwrap)
        .collect();
    for line in &lines {
        writeln!(out, "{line}").unwrap();
    }
    for line in lines.iter().step_by(67).take(80) {
        let mut doc: serde_json::Value = serde_json::from_str(line).unwrap();
        let body = doc["body"].as_str().unwrap_or("").to_string();
        doc["body"] = format!("{body} updated revision with network server support").into();
        writeln!(out, "{doc}").unwrap();
    }
    path
}

async fn verify_dirs(cluster: &str, reference: &Path) -> scatter_index_tools::verify::VerifyReport {
    verify(&VerifyOptions {
        cluster: cluster.to_string(),
        reference: reference.to_path_buf(),
        queries: exact_queries(),
        k: 10,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shard_count_ranks_like_one_index_with_updates() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus_with_updates(dir.path());
    let reference = dir.path().join("s1");
    let report = build(&corpus, 1, &reference);
    assert_eq!(report.duplicate_ids, 80);
    for n in [1, 2, 3, 4, 8] {
        let out = dir.path().join(format!("s{n}"));
        if n > 1 {
            build(&corpus, n, &out);
        }
        let report = verify_dirs(out.to_str().unwrap(), &reference).await;
        assert!(report.verdicts.len() >= 300);
        assert!(report.all_identical(), "{n} shards:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_cluster_ranks_like_one_index_and_local_scoring_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus_with_updates(dir.path());
    build(&corpus, 1, &dir.path().join("s1"));
    build(&corpus, 4, &dir.path().join("s4"));
    // No result cache: the second round must reach the leaves and hit the statistics cache
    // (no statistics tables here: they would answer first; tests/stats_table.rs covers them).
    let args = ["--result-cache-mb", "0", "--stats-table-max-terms", "0"];
    let c = Cluster::start(&dir.path().join("s4"), 1, &args).await;
    let url = format!("http://{}", c.root.addr);
    for round in 0..2 {
        let report = verify_dirs(&url, &dir.path().join("s1")).await;
        assert!(report.all_identical(), "round {round}:\n{report}");
    }
    let state = c.state().await;
    assert!(
        state["stats_cache"]["hits"].as_u64().unwrap() >= 300,
        "{}",
        state["stats_cache"]
    );

    // scoring=local works, and is not exact: some scores differ from the global ones.
    let mut differing = 0;
    for q in [
        "web server",
        "python library",
        "game",
        "network monitoring",
        "font",
    ] {
        let (s1, global) = c.search(&[("q", q)]).await;
        let (s2, local) = c.search(&[("q", q), ("scoring", "local")]).await;
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(global["total_hits"], local["total_hits"]);
        if global["hits"][0]["score"] != local["hits"][0]["score"] {
            differing += 1;
        }
    }
    assert!(differing > 0, "local scoring gave the global scores");
    let (status, body) = c.search(&[("q", "web"), ("scoring", "exactish")]).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippets_do_not_depend_on_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, &dir.path().join("s1"));
    build(&sample_corpus(), 4, &dir.path().join("s4"));
    let one = Cluster::start(&dir.path().join("s1"), 1, &[]).await;
    let four = Cluster::start(&dir.path().join("s4"), 1, &[]).await;
    for q in [
        "web server",
        "python library",
        "\"text editor\"",
        "network monitoring tool",
    ] {
        let params = [("q", q), ("snippet", "body,title"), ("size", "10")];
        let (_, a) = one.search(&params).await;
        let (_, b) = four.search(&params).await;
        let snippets = |v: &serde_json::Value| -> Vec<serde_json::Value> {
            v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["snippets"].clone())
                .collect()
        };
        assert_eq!(snippets(&a), snippets(&b), "{q}");
        assert!(
            snippets(&b)
                .iter()
                .any(|s| s["body"].as_str().is_some_and(|t| t.contains("<b>"))),
            "{q}: {b}"
        );
    }
    let (status, body) = four.search(&[("q", "web"), ("snippet", "section")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "illegal_argument", "{body}");
}

fn ndcg_at_10(ranked: &[(String, f32)], relevant: &HashMap<String, i32>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, (id, _))| f64::from(*relevant.get(id).unwrap_or(&0)) / (i as f64 + 2.0).log2())
        .sum();
    let mut gains: Vec<i32> = relevant.values().copied().filter(|g| *g > 0).collect();
    gains.sort_unstable_by(|a, b| b.cmp(a));
    let ideal: f64 = gains
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, g)| f64::from(*g) / (i as f64 + 2.0).log2())
        .sum();
    if ideal > 0.0 {
        dcg / ideal
    } else {
        0.0
    }
}

#[test]
fn cranfield_ndcg_of_four_shards_equals_one_index() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cranfield");
    let dir = tempfile::tempdir().unwrap();
    let opts = |n: u32, out: PathBuf| scatter_index_tools::BuildOptions {
        input: data.join("docs.jsonl.gz"),
        shards: n,
        out,
        schema: scatter_core::ScatterSchema::default(),
        memory_mb: 64,
        strict: true,
        force: false,
        progress: false,
    };
    scatter_index_tools::build(&opts(1, dir.path().join("s1"))).unwrap();
    scatter_index_tools::build(&opts(4, dir.path().join("s4"))).unwrap();
    let one = LocalCluster::open(&dir.path().join("s1")).unwrap();
    let four = LocalCluster::open(&dir.path().join("s4")).unwrap();
    let mut qrels: HashMap<String, HashMap<String, i32>> = HashMap::new();
    for line in std::fs::read_to_string(data.join("qrels.txt"))
        .unwrap()
        .lines()
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        qrels
            .entry(f[0].into())
            .or_default()
            .insert(f[2].into(), f[3].parse().unwrap());
    }
    let (mut sum1, mut sum4, mut n) = (0.0, 0.0, 0);
    for line in std::fs::read_to_string(data.join("queries.tsv"))
        .unwrap()
        .lines()
    {
        let (qid, text) = line.split_once('\t').unwrap();
        let query: String = text
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let rel = qrels.get(qid).cloned().unwrap_or_default();
        let (n1, n4) = (
            ndcg_at_10(&one.search(&query, 10).unwrap(), &rel),
            ndcg_at_10(&four.search(&query, 10).unwrap(), &rel),
        );
        assert_eq!(n1, n4, "query {qid}");
        sum1 += n1;
        sum4 += n4;
        n += 1;
    }
    let (mean1, mean4) = (sum1 / n as f64, sum4 / n as f64);
    println!("cranfield nDCG@10 over {n} queries: one index {mean1:.4}, four shards {mean4:.4}");
    assert_eq!(mean1, mean4);
    assert!((0.30..0.45).contains(&mean1), "nDCG@10 {mean1}");
}

#[test]
fn verify_command_reports_and_fails_on_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, &dir.path().join("s1"));
    build(&sample_corpus(), 3, &dir.path().join("s3"));
    // A cluster over a different corpus (the updated one) cannot rank the same.
    let updated = corpus_with_updates(dir.path());
    build(&updated, 3, &dir.path().join("other"));
    let run = |cluster: &str| {
        Command::new(env!("CARGO_BIN_EXE_scatter"))
            .args(["index", "verify", "--cluster", cluster, "--queries"])
            .arg(exact_queries())
            .arg("--reference")
            .arg(dir.path().join("s1"))
            .output()
            .unwrap()
    };
    let ok = run(dir.path().join("s3").to_str().unwrap());
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(stdout.contains("330/330 queries identical"), "{stdout}");
    let bad = run(dir.path().join("other").to_str().unwrap());
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(stdout.contains("MISMATCH"), "{stdout}");
}

/// The sample corpus plus `extra` lines, as a JSONL file.
fn corpus_plus(dir: &Path, name: &str, extra: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut out = std::fs::File::create(&path).unwrap();
    let input = flate2::read::GzDecoder::new(std::fs::File::open(sample_corpus()).unwrap());
    for line in std::io::BufReader::new(input).lines() {
        writeln!(out, "{}", line.unwrap()).unwrap();
    }
    for line in extra {
        writeln!(out, "{line}").unwrap();
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_write_query_again_ranks_like_one_index_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, &dir.path().join("s4"));
    // Result cache and statistics cache on (the table off: it would answer first).
    let c = Cluster::start(&dir.path().join("s4"), 1, &["--stats-table-max-terms", "0"]).await;
    let url = format!("http://{}", c.root.addr);
    let mut written: Vec<String> = Vec::new();
    for step in 0..4 {
        let reference = dir.path().join(format!("ref{step}"));
        build(
            &corpus_plus(dir.path(), &format!("c{step}.jsonl"), &written),
            1,
            &reference,
        );
        // Twice: the second round is answered from the caches filled by the first.
        for round in 0..2 {
            let report = verify_dirs(&url, &reference).await;
            assert!(
                report.all_identical(),
                "step {step} round {round}:\n{report}"
            );
        }
        // Documents with the terms of the first queries: their statistics change.
        let docs: Vec<String> = (0..15)
            .map(|i| {
                serde_json::json!({
                    "id": format!("step{step}-{i}"),
                    "title": format!("state nurses pay {step}"),
                    "body": "how much does the state pay nurses web server python library",
                })
                .to_string()
            })
            .collect();
        let (status, body) = c.post_documents(docs.join("\n")).await;
        assert_eq!(
            (status, &body["errors"]),
            (200, &serde_json::json!(false)),
            "{body}"
        );
        written.extend(docs);
    }
}
