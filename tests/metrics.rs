//! `/metrics` on the root and on a leaf: Prometheus text that parses, with counters that move
//! with traffic.

mod common;

use std::collections::HashMap;

use common::{build, sample_corpus, Cluster};

/// Parses Prometheus text: `name{labels} value` per sample line; panics on a malformed line.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = name.strip_prefix(metric) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line:?}"
            );
        }
        samples.insert(name.to_string(), value);
    }
    samples
}

fn sum(samples: &HashMap<String, f64>, prefix: &str, needle: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(needle))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Cluster::start_with(dir.path(), 1, &[], move |shard, _| {
        if shard == 0 {
            vec!["--metrics-listen".into(), format!("127.0.0.1:{port}")]
        } else {
            Vec::new()
        }
    })
    .await;
    let page = |url: String| {
        let http = c.http.clone();
        async move {
            let resp = http.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            parse(&resp.text().await.unwrap())
        }
    };
    let before = page(c.url("/metrics")).await;
    for q in ["web server", "python", "editor", "game", "font"] {
        let (status, _) = c.search(&[("q", q)]).await;
        assert_eq!(status, 200);
    }
    let (status, _) = c.search(&[("q", "title:(")]).await;
    assert_eq!(status, 400);
    let after = page(c.url("/metrics")).await;
    let ok = "scatter_root_requests_total{outcome=\"ok\"}";
    assert_eq!(
        after.get(ok).copied().unwrap_or(0.0) - before.get(ok).copied().unwrap_or(0.0),
        5.0
    );
    assert_eq!(
        sum(&after, "scatter_root_requests_total", "query_parse_error"),
        1.0
    );
    assert!(sum(&after, "scatter_root_leaf_calls_total", "outcome=\"ok\"") >= 10.0);
    assert!(sum(&after, "scatter_root_request_duration_seconds_count", "ok") >= 5.0);
    assert!(sum(&after, "scatter_root_cache_lookups_total", "results") >= 5.0);

    // Live ingest: documents to both shards (ids spread by the hashring).
    let docs: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"id": "m-{i}", "title": "metrics {i}"}}"#))
        .collect();
    let (status, body) = c.post_documents(docs.join("\n")).await;
    assert_eq!(status, 200, "{body}");
    let after = page(c.url("/metrics")).await;
    assert_eq!(
        sum(&after, "scatter_root_ingest_docs_total", "indexed"),
        20.0
    );
    assert!(sum(&after, "scatter_root_ingest_duration_seconds_count", "") >= 1.0);

    let leaf = page(format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(
        sum(&leaf, "scatter_leaf_ingested_docs_total", "upsert") > 0.0,
        "{leaf:?}"
    );
    assert!(
        sum(&leaf, "scatter_leaf_commit_duration_seconds_count", "") >= 1.0,
        "{leaf:?}"
    );
    assert!(
        sum(&leaf, "scatter_leaf_calls_total", "method=\"search\"") >= 5.0,
        "{leaf:?}"
    );
    assert!(
        sum(&leaf, "scatter_leaf_docs", "shard=\"0\"") > 0.0,
        "{leaf:?}"
    );
}
