//! `scatter index push` against a real cluster: every good line is acknowledged and
//! searchable, bad lines are reported with their line numbers, and documents that no
//! replica could commit (the shard's only leaf was down) are retried until it is back.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{build, sample_corpus, Cluster};
use serde_json::json;

const MARK: &str = "qwertzuiop";

/// Writes `n` new documents to a JSONL file with a bad line after the first and returns
/// the file.
fn corpus(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("push.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..n {
        let doc =
            json!({"id": format!("push-{i}"), "title": format!("{MARK} {i}"), "body": "pushed"});
        writeln!(f, "{doc}").unwrap();
        if i == 0 {
            writeln!(f, "{{\"id\": \"broken\", ").unwrap();
        }
    }
    path
}

fn push(root: &str, input: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args(["index", "push", "--input", input.to_str().unwrap()])
        .args(["--target", &format!("http://{root}"), "--batch-docs", "100"])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_loads_every_good_line_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let c = Cluster::start(dir.path(), 2, &[]).await;
    let input = corpus(dir.path(), 1000);
    let report = dir.path().join("report.json");
    let out = push(
        &c.root.addr,
        &input,
        &["--report", report.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1000 indexed"), "{stdout}");
    assert!(
        stdout.contains("line 2:"),
        "the bad line by number: {stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        (report["indexed"].clone(), report["bad_lines"].clone()),
        (json!(1000), json!(1))
    );
    let (_, body) = c.search(&[("q", MARK), ("size", "0")]).await;
    assert_eq!(body["total_hits"], 1000, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_retries_until_a_down_shard_is_back() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let mut c = Cluster::start(dir.path(), 1, &["--write-timeout-ms", "2000"]).await;
    let input = corpus(dir.path(), 300);
    c.kill_leaf(1, 0);
    let root = c.root.addr.clone();
    let pushing = std::thread::spawn(move || push(&root, &input, &["--backoff-ms", "200"]));
    std::thread::sleep(Duration::from_millis(800));
    c.restart_leaf(1, 0);
    let out = pushing.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("300 indexed"), "{stdout}");
    assert!(
        !stdout.contains(" 0 retries"),
        "the down shard caused retries: {stdout}"
    );
    let (_, body) = c.search(&[("q", MARK), ("size", "0")]).await;
    assert_eq!(body["total_hits"], 300, "{body}");
}
