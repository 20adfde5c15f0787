//! A seeded fuzz run over the whole search request (issue 19), against real processes: query
//! texts with deep and unbalanced nesting in both modes, filters, sorts, windows and
//! aggregations as random JSON (wrong types, zero, negative and huge numbers, deep nesting).
//! Every answer must be a 2xx or 4xx (never a 5xx or a dropped connection), and afterwards
//! every process is alive, serves an ordinary search, and the root is under 1 GiB.
//! `SCATTER_FUZZ_CASES` sets the number of requests (default 600, what CI affords);
//! `SCATTER_FUZZ_SEED` replays a run.

mod common;

use common::{build_with_numbers, Cluster};
use scatter_core::random::mix;
use serde_json::{json, Map, Value};

/// A small deterministic generator.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0.wrapping_add(0x9e37_79b9_7f4a_7c15));
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TOKENS: &[&str] = &[
    "web",
    "server",
    "editor",
    "(",
    ")",
    "NOT ",
    " AND ",
    " OR ",
    "+",
    "-",
    "\"",
    "*",
    "title:",
    "body:",
    "[",
    "]",
    "{",
    "}",
    " TO ",
    "~2",
    "^3",
    "\\",
    ":",
    "words:>5",
    "tag:",
    "é",
    "🦀",
    " ",
    " ",
    "IN [a b]",
    "released:[2000-01-01T00:00:00Z TO *]",
    "*:*",
    "!",
    "?",
    "/re.*/",
];

fn query(g: &mut Gen) -> String {
    let mut q = String::new();
    let depth = if g.chance(20) {
        g.below(200)
    } else {
        g.below(6)
    };
    for _ in 0..depth {
        q.push_str(g.pick::<&str>(&["(", "NOT (", "-(", "+("]));
    }
    for _ in 0..=g.below(8) {
        q.push_str(g.pick::<&str>(TOKENS));
    }
    if g.chance(70) {
        q.push_str(&")".repeat(depth as usize));
    }
    q
}

fn number(g: &mut Gen) -> Value {
    match g.below(9) {
        0 => json!(0),
        1 => json!(-5),
        2 => json!(1e-9),
        3 => json!(384_307_168_202_282_368u64),
        4 => json!(u64::MAX),
        5 => json!("x"),
        6 => json!(1.5),
        7 => json!(g.below(1000)),
        _ => json!(null),
    }
}

fn agg(g: &mut Gen, level: u32) -> Value {
    let field = *g.pick(&[
        "words", "rating", "released", "offset", "team", "tag", "title", "nope",
    ]);
    let kind = *g.pick(&[
        "terms",
        "histogram",
        "date_histogram",
        "range",
        "stats",
        "avg",
        "min",
        "max",
        "sum",
        "value_count",
        "percentiles",
        "filter",
    ]);
    let mut params = Map::new();
    params.insert("field".into(), json!(field));
    for key in ["interval", "size", "shard_size", "offset", "min_doc_count"] {
        if g.chance(40) {
            params.insert(key.into(), number(g));
        }
    }
    if g.chance(40) {
        params.insert(
            "fixed_interval".into(),
            json!(g.pick(&["1ms", "0d", "30d", "99999999999999999d", "1y", ""])),
        );
    }
    for key in ["extended_bounds", "hard_bounds"] {
        if g.chance(25) {
            params.insert(key.into(), json!({"min": number(g), "max": number(g)}));
        }
    }
    if g.chance(40) {
        let ranges: Vec<Value> = (0..g.below(5))
            .map(|_| json!({"from": number(g), "to": number(g)}))
            .collect();
        params.insert("ranges".into(), json!(ranges));
    }
    let mut body = Map::new();
    body.insert(kind.into(), Value::Object(params));
    if level < 3 && g.chance(30) {
        body.insert("aggs".into(), aggs(g, level + 1));
    }
    Value::Object(body)
}

fn aggs(g: &mut Gen, level: u32) -> Value {
    let n = if g.chance(5) { 40 } else { 1 + g.below(4) };
    Value::Object((0..n).map(|i| (format!("a{i}"), agg(g, level))).collect())
}

fn request(g: &mut Gen) -> Value {
    let mut r = Map::new();
    r.insert("q".into(), json!(query(g)));
    if g.chance(50) {
        r.insert("query_mode".into(), json!("lenient"));
    }
    if g.chance(30) {
        let filters: Vec<String> = (0..1 + g.below(3)).map(|_| query(g)).collect();
        r.insert("filter".into(), json!(filters));
    }
    if g.chance(30) {
        let sort = *g.pick(&[
            "words",
            "words:desc",
            "_score",
            "tag:desc",
            "title",
            "nope",
            "rating:asc,words",
        ]);
        r.insert("sort".into(), json!(sort));
    }
    for (key, values) in [
        (
            "size",
            &[json!(0), json!(10), json!(-1), json!(10_001), json!(100)][..],
        ),
        ("from", &[json!(0), json!(5), json!(9_999), json!(-3)][..]),
        (
            "track_total_hits",
            &[json!(true), json!(false), json!(0), json!(7), json!(-1)][..],
        ),
        (
            "timeout_ms",
            &[json!(50), json!(2000), json!(0), json!(100_000_000)][..],
        ),
        (
            "snippet",
            &[
                json!("body"),
                json!("body,title,body"),
                json!("nope"),
                json!("words"),
            ][..],
        ),
    ] {
        if g.chance(30) {
            r.insert(key.into(), g.pick(values).clone());
        }
    }
    if g.chance(40) {
        r.insert("aggs".into(), aggs(g, 0));
    }
    Value::Object(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_search_request_gets_a_5xx_or_kills_a_process() {
    let cases: u64 = std::env::var("SCATTER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let seed: u64 = std::env::var("SCATTER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(19);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    build_with_numbers(dir.path(), 2, &out);
    let c = Cluster::start(&out, 1, &[]).await;
    let mut g = Gen(seed);
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..cases {
        let req = if g.chance(3) {
            // JSON nested deeper than any parser should recurse.
            let n = 1 + g.below(20_000) as usize;
            Value::String(format!(
                "{{\"q\":\"web\",\"aggs\":{}1{}}}",
                "[".repeat(n),
                "]".repeat(n)
            ))
        } else {
            request(&mut g)
        };
        let body = match &req {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        let resp = c
            .http
            .post(c.url("/search"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let resp = resp.unwrap_or_else(|e| panic!("case {i} (seed {seed}): {e}: {req}"));
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status < 500,
            "case {i} (seed {seed}): {status} {body}\nrequest: {req}"
        );
        if status >= 400 {
            let reason = body["error"]["reason"].as_str();
            assert!(reason.is_some(), "case {i}: {body}");
            if reason.is_some_and(|r| r.contains("internal error")) {
                // A panic inside the leaf's work (caught, answered as this request's error).
                eprintln!("case {i} panicked in a leaf: {reason:?}\nrequest: {req}");
            }
        }
        *seen.entry(status).or_insert(0u32) += 1;
    }
    eprintln!("statuses: {seen:?}");
    assert!(seen.get(&200).copied().unwrap_or(0) > 20, "{seen:?}");
    assert!(seen.get(&400).copied().unwrap_or(0) > 20, "{seen:?}");
    let (status, body) = c.search(&[("q", "web server")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partial"], false);
    let kib = common::rss_kib(c.root.pid());
    assert!(kib < 1 << 20, "root RSS {kib} KiB");
}
