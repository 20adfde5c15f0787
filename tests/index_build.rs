//! `scatter index build` as a user runs it: bad lines are reported with their line numbers
//! while every good line loads and is searchable; `--strict` stops at the first bad line;
//! every document lands in the shard its id routes to.

mod common;

use std::io::Write;
use std::process::Command;

use common::{build, hit_ids, sample_corpus, Cluster};
use scatter_core::{Manifest, Router};
use tantivy::collector::DocSetCollector;
use tantivy::query::AllQuery;
use tantivy::schema::Value;
use tantivy::{Index, TantivyDocument};

fn corpus_with_bad_lines(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let lines: Vec<&[u8]> = vec![
        br#"{"id":"good-1","title":"alpha zebrafish","body":"first"}"#,
        br#"{"id":"good-2","title":"beta yak","body":"second","unknown":"ignored"}"#,
        br#"{"id":"bad-json","title": "#,
        br#"{"id":"good-3","title":"gamma xerus","section":"zoo"}"#,
        br#"{"title":"no id here"}"#,
        b"",
        b"{\"id\":\"bad-utf8\",\"title\":\"\xff\xfe\"}",
        br#"{"id":42,"title":"numeric id"}"#,
        br#"["not","an","object"]"#,
        br#"{"id":"good-1","title":"alpha walrus upserted","body":"replaced"}"#,
        br#"{"id":"good-4","title":{"nested":"object"}}"#,
        br#"{"id":"good-5","title":"delta vole"}"#,
    ];
    for line in lines {
        f.write_all(line).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

fn scatter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_reported_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    corpus_with_bad_lines(&input);
    let out = dir.path().join("idx");
    let run = scatter(&[
        "index",
        "build",
        "--input",
        input.to_str().unwrap(),
        "--shards",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for line_no in [3, 5, 7, 8, 9, 11] {
        assert!(
            stdout.contains(&format!("line {line_no}: ")),
            "line {line_no} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("bad lines: 6"), "{stdout}");
    assert!(stdout.contains("duplicate ids (upserted): 1"), "{stdout}");
    assert!(stdout.contains("invalid UTF-8"), "{stdout}");
    assert!(stdout.contains("indexed 4 docs"), "{stdout}");

    let c = Cluster::start(&out, 1, &[]).await;
    for (q, id) in [
        ("zebrafish", None),
        ("walrus", Some("good-1")),
        ("yak", Some("good-2")),
        ("xerus", Some("good-3")),
        ("vole", Some("good-5")),
    ] {
        let (status, body) = c.search(&[("q", q)]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            hit_ids(&body),
            id.into_iter().map(String::from).collect::<Vec<_>>(),
            "{q}"
        );
    }
    let (_, body) = c.search(&[("q", "alpha")]).await;
    assert_eq!(body["hits"][0]["fields"]["title"], "alpha walrus upserted");
    assert_eq!(
        body["total_hits"], 1,
        "the upsert replaced the first version"
    );

    // A second build into the same directory needs --force.
    let again = scatter(&[
        "index",
        "build",
        "--input",
        input.to_str().unwrap(),
        "--shards",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn strict_mode_stops_at_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    corpus_with_bad_lines(&input);
    let out = dir.path().join("idx");
    let run = scatter(&[
        "index",
        "build",
        "--input",
        input.to_str().unwrap(),
        "--shards",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--strict",
        "--no-progress",
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("line 3:"), "{stderr}");
}

#[test]
fn every_document_is_in_the_shard_its_id_routes_to() {
    let dir = tempfile::tempdir().unwrap();
    let report = build(&sample_corpus(), 4, dir.path());
    assert_eq!(report.docs, 5326);
    assert_eq!(report.bad_lines, 0);
    let manifest = Manifest::load(dir.path()).unwrap();
    let router = Router::new(manifest.routing.clone()).unwrap();
    let mut total = 0;
    for k in 0..4 {
        let index = Index::open_in_dir(manifest.shard_path(dir.path(), k)).unwrap();
        let searcher = index.reader().unwrap().searcher();
        let id_field = index.schema().get_field("id").unwrap();
        let docs = searcher.search(&AllQuery, &DocSetCollector).unwrap();
        assert_eq!(docs.len() as u64, manifest.shards[k as usize].docs);
        for addr in docs {
            let doc: TantivyDocument = searcher.doc(addr).unwrap();
            let id = doc
                .get_first(id_field)
                .and_then(|v| v.as_str())
                .unwrap()
                .to_string();
            assert_eq!(router.shard_for(&id), k, "{id} is in shard {k}");
            total += 1;
        }
    }
    assert_eq!(total, 5326);
    assert!(report.skew() < 1.3, "skew {}", report.skew());
}
