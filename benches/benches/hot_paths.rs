//! Criterion benches of the query path's hot pieces: k-way merge, routing, leaf search on a
//! fixture index (the bundled Debian sample), statistics aggregation, response serialization.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use scatter_core::merge::{merge_top, rank_order, ShardHit};
use scatter_core::{Router, RoutingParams, ScatterSchema};
use scatter_proto::v1::{FieldTokens, GlobalStats, SearchRequest, TermFreq};
use scatter_root::api_types::{Hit, SearchResponse, ShardsReport};

fn merge(c: &mut Criterion) {
    let lists: Vec<Vec<ShardHit>> = (0..8)
        .map(|shard| {
            let mut l: Vec<ShardHit> = (0..100)
                .map(|i| ShardHit {
                    id: format!("doc-{shard}-{i}"),
                    score: ((i * 7919 + shard * 31) % 1000) as f32 / 10.0,
                    shard,
                    ..Default::default()
                })
                .collect();
            l.sort_by(rank_order);
            l
        })
        .collect();
    c.bench_function("merge 8 lists x 100 -> top 10", |b| {
        b.iter(|| merge_top(&lists, 0, 10))
    });
    c.bench_function("merge 8 lists x 100 -> top 100", |b| {
        b.iter(|| merge_top(&lists, 0, 100))
    });
}

fn routing(c: &mut Criterion) {
    let router = Router::new(RoutingParams::new(16)).unwrap();
    let ids: Vec<String> = (0..1000).map(|i| format!("package-{i}")).collect();
    c.bench_function("route 1000 ids over 16 shards", |b| {
        b.iter(|| {
            ids.iter()
                .map(|id| router.shard_for(id) as u64)
                .sum::<u64>()
        })
    });
}

fn leaf_search(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    scatter_index_tools::build(&scatter_index_tools::BuildOptions {
        input: root.join("data/debian-sample.jsonl.gz"),
        shards: 1,
        out: dir.path().to_path_buf(),
        schema: ScatterSchema::from_file(&root.join("data/debian-schema.toml")).unwrap(),
        memory_mb: 64,
        strict: false,
        force: false,
        progress: false,
    })
    .unwrap();
    let shard = scatter_leaf::Shard::open(&dir.path().join("shard-0")).unwrap();
    let request = |q: &str| SearchRequest {
        query: q.to_string(),
        k: 10,
        offset: 0,
        stats: None,
        skip_total_count: false,
        ..Default::default()
    };
    let term = request("web server");
    let phrase = request("\"text editor\"");
    c.bench_function("leaf search `web server` top 10", |b| {
        b.iter(|| shard.search(&term).unwrap())
    });
    c.bench_function("leaf search phrase top 10", |b| {
        b.iter(|| shard.search(&phrase).unwrap())
    });
    let stats = shard.term_stats("web server library python").unwrap().stats;
    let with_stats = SearchRequest {
        stats,
        ..request("web server library python")
    };
    c.bench_function("leaf search with global stats", |b| {
        b.iter(|| shard.search(&with_stats).unwrap())
    });
    let no_count = SearchRequest {
        skip_total_count: true,
        ..request("web server library python")
    };
    c.bench_function("leaf search 4 terms, no total count", |b| {
        b.iter(|| shard.search(&no_count).unwrap())
    });
    let counted = request("web server library python");
    c.bench_function("leaf search 4 terms, total count", |b| {
        b.iter(|| shard.search(&counted).unwrap())
    });
    let fused = SearchRequest {
        fetch: true,
        ..request("web server")
    };
    c.bench_function("leaf search `web server` top 10 with documents", |b| {
        b.iter(|| shard.search(&fused).unwrap())
    });
    let hits = shard.search(&term).unwrap().hits;
    let fetch = scatter_proto::v1::FetchRequest {
        ids: hits.into_iter().map(|h| h.id).take(3).collect(),
        ..Default::default()
    };
    c.bench_function("leaf fetch 3 docs", |b| {
        b.iter(|| shard.fetch(&fetch).unwrap())
    });
}

fn stats_sum(c: &mut Criterion) {
    let parts: Vec<GlobalStats> = (0..8)
        .map(|s| GlobalStats {
            total_num_docs: 10_000 + s,
            field_tokens: vec![
                FieldTokens {
                    field: "title".into(),
                    total_num_tokens: 50_000,
                },
                FieldTokens {
                    field: "body".into(),
                    total_num_tokens: 500_000,
                },
            ],
            term_freqs: (0..12)
                .map(|t| TermFreq {
                    field: if t % 2 == 0 { "title" } else { "body" }.into(),
                    value: format!("sterm{t}").into_bytes(),
                    doc_freq: t * 10 + s,
                })
                .collect(),
        })
        .collect();
    c.bench_function("sum stats of 8 shards x 12 terms", |b| {
        b.iter(|| scatter_proto::global_stats::sum(&parts))
    });
}

fn serialize(c: &mut Criterion) {
    let fields: Box<serde_json::value::RawValue> = serde_json::from_str(
        r#"{"title":"Web server API fastcgi backend","body":"WSAPI is an API that abstracts the web server for Lua web applications, allowing the same application to be used in different web servers."}"#,
    )
    .unwrap();
    let response = SearchResponse {
        took_ms: 3,
        timed_out: false,
        partial: false,
        total_hits: 695,
        total_hits_relation: "eq",
        shards: ShardsReport {
            total: 4,
            successful: 4,
            failed: 0,
            failures: vec![],
        },
        hits: (0..10)
            .map(|i| Hit {
                id: format!("package-{i}"),
                score: 17.5 - i as f32,
                shard: i % 4,
                fields: fields.clone(),
                snippets: None,
                explanation: None,
                sort: None,
            })
            .collect(),
        profile: None,
        aggregations: None,
        pit_id: None,
    };
    c.bench_function("serialize a 10-hit response", |b| {
        b.iter(|| serde_json::to_vec(&response).unwrap())
    });
}

criterion_group!(benches, merge, routing, leaf_search, stats_sum, serialize);
criterion_main!(benches);
