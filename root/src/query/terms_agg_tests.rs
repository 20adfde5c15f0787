//! The rounds against shards simulated by their full term tables (as the leaf selects from
//! its table): whatever the layout, the answer equals the top of the summed table.

use super::*;
use scatter_proto::v1::TermBucket;

/// A shard as the leaf answers: its whole table, selected as asked.
fn answer(table: &BTreeMap<String, u64>, spec: &TermsAggSpec) -> TermsAggPart {
    let mut b: Vec<(&String, &u64)> = match spec.select.as_ref().unwrap() {
        Select::Top(_) => table.iter().collect(),
        Select::AtLeast(t) => table.iter().filter(|(_, c)| **c >= *t).collect(),
        Select::Keys(k) => table.iter().filter(|(t, _)| k.keys.contains(t)).collect(),
    };
    b.sort_by(|x, y| y.1.cmp(x.1).then_with(|| x.0.cmp(y.0)));
    if let Select::Top(n) = spec.select.as_ref().unwrap() {
        b.truncate(*n as usize);
    }
    TermsAggPart {
        name: spec.name.clone(),
        complete: b.len() == table.len(),
        sum_counts: table.values().sum(),
        buckets: b
            .into_iter()
            .map(|(k, c)| TermBucket {
                key: k.clone(),
                doc_count: *c,
                metrics: vec![MetricPart {
                    count: *c,
                    sum: *c as f64,
                    min: 1.0,
                    max: 1.0,
                }],
            })
            .collect(),
    }
}

fn agg(size: usize, shard_size: usize) -> TermsAgg {
    TermsAgg {
        name: "t".into(),
        field: "f".into(),
        size,
        shard_size,
        metrics: vec![crate::query::aggs::MetricAgg {
            name: "m".into(),
            kind: MetricKind::Sum,
            field: "x".into(),
        }],
    }
}

/// Runs the rounds; returns the answer and the number of rounds.
fn resolve(tables: &[BTreeMap<String, u64>], size: usize, shard_size: usize) -> (Value, u32) {
    let mut exact = ExactTerms::new(agg(size, shard_size));
    let first = exact.first_round();
    for (i, t) in tables.iter().enumerate() {
        exact.absorb(i, &first, answer(t, &first));
    }
    while let Some(spec) = exact.next_round() {
        exact.rounds += 1;
        assert!(exact.rounds <= 3, "more than three rounds");
        for i in exact.open_shards() {
            exact.absorb(i, &spec, answer(&tables[i], &spec));
        }
    }
    (exact.result(), exact.rounds)
}

/// The top of the summed table, as one index answers.
fn one_index(tables: &[BTreeMap<String, u64>], size: usize) -> Vec<(String, u64)> {
    let mut sum: BTreeMap<String, u64> = BTreeMap::new();
    for t in tables {
        for (k, c) in t {
            *sum.entry(k.clone()).or_default() += c;
        }
    }
    let mut all: Vec<(String, u64)> = sum.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(size);
    all
}

fn buckets(v: &Value) -> Vec<(String, u64)> {
    v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(
                b["m"]["value"].as_f64().unwrap(),
                b["doc_count"].as_f64().unwrap()
            );
            (
                b["key"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Deterministic pseudo-random tables: `shards` shards, `terms` terms with skewed counts,
/// each shard seeing a different slice of the skew.
fn tables(seed: u64, shards: usize, terms: usize) -> Vec<BTreeMap<String, u64>> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..shards)
        .map(|_| {
            let mut t = BTreeMap::new();
            for i in 0..terms {
                let c = next() % (1 + 200 / (1 + i as u64 % 40)) % 23;
                if c > 0 {
                    t.insert(format!("term{:03}", (next() as usize + i) % terms), c);
                }
            }
            t
        })
        .collect()
}

#[test]
fn equals_one_index_for_many_layouts() {
    let mut multi_round = 0;
    for seed in 1..300u64 {
        let shards = 1 + (seed % 8) as usize;
        let t = tables(seed, shards, 30 + (seed % 70) as usize);
        for (size, shard_size) in [(1, 1), (3, 3), (5, 8), (10, 10), (10, 25)] {
            let (v, rounds) = resolve(&t, size, shard_size);
            assert_eq!(buckets(&v), one_index(&t, size), "seed {seed} size {size}");
            assert_eq!(v["doc_count_error_upper_bound"], 0);
            let total: u64 = t.iter().flat_map(|t| t.values()).sum();
            let top: u64 = buckets(&v).iter().map(|b| b.1).sum();
            assert_eq!(v["sum_other_doc_count"].as_u64().unwrap(), total - top);
            multi_round += (rounds > 1) as usize;
        }
    }
    assert!(
        multi_round > 100,
        "the layouts exercise later rounds: {multi_round}"
    );
}

#[test]
fn one_round_suffices_when_shards_report_everything_or_the_top_is_clear() {
    let t = tables(7, 4, 20);
    let (_, rounds) = resolve(&t, 5, 1000);
    assert_eq!(rounds, 1);
    let clear: Vec<BTreeMap<String, u64>> = (0..4)
        .map(|s| {
            (0..50)
                .map(|i| {
                    (
                        format!("t{i:02}"),
                        if i < 3 { 1000 } else { 1 + (i + s) % 3 },
                    )
                })
                .collect()
        })
        .collect();
    let (v, rounds) = resolve(&clear, 3, 5);
    assert_eq!(rounds, 1);
    assert_eq!(buckets(&v), one_index(&clear, 3));
}

#[test]
fn a_term_hidden_below_every_shards_cut_is_found() {
    // "hidden" is 4th at every shard (cut at 3) but first overall.
    let tables: Vec<BTreeMap<String, u64>> = (0..4)
        .map(|s| {
            let mut t: BTreeMap<String, u64> =
                (0..3).map(|i| (format!("local{s}-{i}"), 10)).collect();
            t.insert("hidden".into(), 9);
            t
        })
        .collect();
    let (v, rounds) = resolve(&tables, 1, 3);
    assert_eq!(buckets(&v), vec![("hidden".to_string(), 36)]);
    assert!(rounds >= 2);
}

#[test]
fn a_lost_shard_reports_an_error_bound() {
    let t = tables(3, 4, 60);
    let mut exact = ExactTerms::new(agg(5, 5));
    let first = exact.first_round();
    for (i, t) in t.iter().enumerate() {
        exact.absorb(i, &first, answer(t, &first));
    }
    if exact.next_round().is_some() {
        exact.lose();
        assert!(exact.next_round().is_none());
        assert!(
            exact.result()["doc_count_error_upper_bound"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
}
