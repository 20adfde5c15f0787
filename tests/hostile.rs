//! Nothing a client sends takes Scatter down (issue 19), with real processes: every input
//! that once crashed a root or leaf, took its memory without bound or got a wrong status is
//! sent, and the answer must be the right 4xx (naming the parameter) or a correct answer;
//! afterwards every process is alive, serves an ordinary search, and the root's memory is
//! within bounds.

mod common;

use std::time::{Duration, Instant};

use common::{build_with_numbers, Cluster};
use serde_json::{json, Value};

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    common::rss_kib(pid) >> 10
}

/// CPU time a process has used (user + system), in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn nested(n: usize) -> String {
    format!("{}web{}", "(".repeat(n), ")".repeat(n))
}

/// Asserts a 400 whose reason mentions `word`.
fn bad(status: u16, body: &Value, word: &str, what: &str) {
    let text = body.to_string();
    assert_eq!(status, 400, "{what}: {}", &text[..text.len().min(300)]);
    let reason = body["error"]["reason"].as_str().unwrap_or_default();
    assert!(body["error"]["type"].is_string(), "{what}: {body}");
    assert!(reason.contains(word), "{what}: {reason:?} lacks {word:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_that_crashed_or_flooded_get_a_4xx_and_every_process_lives() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    build_with_numbers(dir.path(), 2, &out);
    let c = Cluster::start(&out, 1, &["--result-cache-mb", "64"]).await;
    let agg = |aggs: Value| json!({"q": "*", "size": 0, "aggs": aggs});
    let mut cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"q": nested(750), "query_mode": "lenient"}),
            "nests",
            "lenient 750 levels",
        ),
        (json!({"q": nested(3000)}), "nests", "strict 3000 levels"),
        (
            json!({"q": format!("{}web", "NOT ".repeat(2000))}),
            "nests",
            "2000 NOTs",
        ),
        (
            json!({"q": "web", "filter": [nested(1000)]}),
            "nests",
            "filter 1000 levels",
        ),
        (
            agg(json!({"h": {"histogram": {"field": "words", "interval": 1,
                "extended_bounds": {"min": 0, "max": 384307168202282368u64}}}})),
            "buckets",
            "histogram bounds that overflow tantivy's size check",
        ),
        (
            agg(json!({"h": {"histogram": {"field": "words", "interval": 1,
                "extended_bounds": {"min": 0, "max": 10_000_000}}}})),
            "buckets",
            "10M buckets asked",
        ),
        (
            agg(json!({"h": {"histogram": {"field": "rating", "interval": 0.0001}}})),
            "buckets",
            "a fine interval over the data (checked on the merged answer)",
        ),
        (
            agg(json!({"d": {"date_histogram": {"field": "released", "fixed_interval": "1ms"}}})),
            "buckets",
            "date_histogram 1ms over a year",
        ),
        (
            agg(json!({"h": {"histogram": {"field": "words", "interval": 0}}})),
            "interval",
            "interval 0",
        ),
        (
            agg(json!({"h": {"histogram": {"field": "words", "interval": -5}}})),
            "interval",
            "interval -5",
        ),
        (
            agg(json!({"h": {"histogram": {"field": "words", "interval": 1e-9}}})),
            "buckets",
            "interval 1e-9",
        ),
        (
            agg(json!({"r": {"range": {"field": "words", "ranges": []}}})),
            "ranges",
            "no ranges",
        ),
        (
            agg(json!({"r": {"range": {"field": "words", "ranges": [{"to": 10}, {"from": 5}]}}})),
            "overlap",
            "overlapping ranges",
        ),
        (
            agg(json!({"d": {"date_histogram": {"field": "released",
                "fixed_interval": "99999999999999999d"}}})),
            "fixed_interval",
            "a fixed interval that overflows",
        ),
    ];
    let many: serde_json::Map<String, Value> = (0..32)
        .map(|i| {
            (
                format!("t{i}"),
                json!({"terms": {"field": "team", "size": 10_000}}),
            )
        })
        .collect();
    cases.push((
        agg(Value::Object(many)),
        "buckets",
        "32 terms aggregations of 10,000",
    ));
    for (req, word, what) in &cases {
        let (status, body) = c.post_search(req).await;
        bad(status, &body, word, what);
    }
    // Straight to a leaf: refused, not a dead leaf.
    let mut leaf = scatter_proto::LeafClient::connect(format!("http://{}", c.leaves[0][0].addr))
        .await
        .unwrap();
    for lenient in [false, true] {
        let status = leaf
            .search(scatter_proto::v1::SearchRequest {
                query: nested(3000),
                lenient,
                k: 10,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    // A forged point in time is gone (404), not a partial answer.
    let forged = hex(b"0@127.0.0.1:1#1f;1@127.0.0.1:1#2f");
    let (status, body) = c.post_search(&json!({"q": "web", "pit_id": forged})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "pit_expired");
    // Ids past 512 bytes: refused per line; GET and DELETE of one are 400.
    let long = "x".repeat(70_000);
    let (status, body) = c
        .post_documents(format!(
            "{{\"id\":\"{long}\",\"title\":\"t\"}}\n{{\"id\":\"ok-1\",\"title\":\"fine\"}}\n"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["status"], 400, "{body}");
    assert!(body["items"][0]["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("512"));
    assert_eq!(body["items"][1]["status"], 200, "{body}");
    let (status, _) = c.get_document(&"y".repeat(600)).await;
    assert_eq!(status, 400);
    // One id repeated through a bulk: every line answered, the last one kept, and the
    // replicas' version logs grow by one write, not one per line.
    let log_bytes = || -> u64 {
        c.paths
            .iter()
            .flatten()
            .filter_map(|p| std::fs::metadata(p.join("scatter-versions.log")).ok())
            .map(|m| m.len())
            .sum()
    };
    let before = log_bytes();
    let body: String = (0..2000)
        .map(|i| {
            format!(
                "{{\"id\":\"same\",\"title\":\"v{i} {}\"}}\n",
                "x".repeat(100)
            )
        })
        .collect();
    let (status, resp) = c.post_documents(body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["indexed"], 2000);
    let grown = log_bytes() - before;
    assert!(
        grown < 20_000,
        "the version logs grew {grown} bytes for one id"
    );
    let (_, got) = c.get_document("same").await;
    assert!(
        got["fields"]["title"]
            .as_str()
            .unwrap()
            .starts_with("v1999 "),
        "{got}"
    );
    // A web page's cross-site form post (text/plain) writes nothing.
    let r = c
        .http
        .post(c.url("/documents"))
        .header("content-type", "text/plain")
        .body("{\"id\":\"csrf\",\"title\":\"x\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(c.get_document("csrf").await.0, 404);
    // A bulk declared larger than --max-bulk-mb is refused before its body is read.
    let r = c
        .http
        .post(c.url("/documents"))
        .header("content-type", "application/x-ndjson")
        .header("content-length", (100u64 << 20).to_string())
        .body(vec![b' '; 1024])
        .send()
        .await;
    assert!(r.map_or(true, |r| r.status() == 413), "declared 100 MB");
    // Everyone is alive and answers.
    let (status, body) = c.search(&[("q", "web server"), ("size", "3")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partial"], false);
    assert!(
        rss_mib(c.root.pid()) < 1024,
        "root RSS {} MiB",
        rss_mib(c.root.pid())
    );
}

/// Lower-case hex of `bytes` (how a `pit_id` is written).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_are_bounded_by_bytes_and_leaf_work_ends_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    build_with_numbers(dir.path(), 2, &out);
    let c = Cluster::start(&out, 1, &["--result-cache-mb", "8"]).await;
    // Distinct searches with 32 filters of 8 KB each: the cache holds at most its budget.
    let before = rss_mib(c.root.pid());
    for i in 0..300 {
        let filters: Vec<String> = (0..32)
            .map(|j| format!("team:\"{i}-{j}-{}\"", "z".repeat(8000)))
            .collect();
        let (status, body) = c
            .post_search(&json!({"q": "*", "size": 1, "filter": filters}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let state = c.state().await;
    let cache = &state["result_cache"];
    assert!(cache["bytes"].as_u64().unwrap() <= 8 << 20, "{cache}");
    let after = rss_mib(c.root.pid());
    assert!(after < before + 200, "root grew {before} -> {after} MiB");
    // 13,333 snippet fields (one distinct) with a 2 s deadline: answered, and the leaves do
    // not keep working afterwards.
    let snippet = vec!["body"; 13_333].join(",");
    let start = Instant::now();
    let (status, body) = c
        .post_search(&json!({"q": "*", "size": 100, "snippet": snippet, "timeout_ms": 2000}))
        .await;
    assert!(status == 200 || status == 504, "{status} {body}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let leaves: Vec<u32> = c.leaves.iter().flatten().map(|l| l.pid()).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu: u64 = leaves.iter().map(|p| cpu_ticks(*p)).sum();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later: u64 = leaves.iter().map(|p| cpu_ticks(*p)).sum();
    assert!(
        later - cpu < 100,
        "leaves kept working: {} ticks",
        later - cpu
    );
    // More distinct snippet fields than allowed: 400 naming the parameter.
    let fields: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    let (status, body) = c
        .post_search(&json!({"q": "web", "snippet": fields.join(",")}))
        .await;
    bad(status, &body, "snippet", "40 snippet fields");
}
