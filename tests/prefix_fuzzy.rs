//! Prefix (`foo*`) and fuzzy (`foo~1`, `foo~2`) words at 1, 2 and 4 shards: the same hits,
//! scores and totals at every layout (their constant scores need no statistics), alone and
//! mixed with ordinary words, in strict and lenient mode; bad ones are 400s naming the word.

mod common;

use common::{build, sample_corpus, Cluster};
use serde_json::{json, Value};

/// A fuzzy word longer than its automaton may grow (65 characters).
const LONG_FUZZY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa~1";

const QUERIES: &[&str] = &[
    "linu*",
    "chrom*",
    "brow* OR kern*",
    "title:libr*",
    "section:we*",
    "linx~1",
    "kernl~1 linux",
    "brwoser~2",
    "+pyth* -django",
    "web serv*",
    "\"web browser\" edit*^2",
];

fn answer(body: &Value) -> Value {
    let hits: Vec<Value> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json!([h["id"], h["score"]]))
        .collect();
    json!({"total": body["total_hits"], "hits": hits})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_answers_at_every_shard_count() {
    let mut answers: Vec<Vec<Value>> = Vec::new();
    for shards in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        build(&sample_corpus(), shards, dir.path());
        let c = Cluster::start(dir.path(), 1, &["--result-cache-mb", "0"]).await;
        let mut mine = Vec::new();
        for q in QUERIES {
            for mode in ["strict", "lenient"] {
                let (status, body) = c
                    .search(&[("q", q), ("size", "30"), ("query_mode", mode)])
                    .await;
                assert_eq!(status, 200, "{q} {mode}: {body}");
                if mode == "strict" {
                    assert!(body["total_hits"].as_u64().unwrap() > 0, "{q}: no hits");
                }
                mine.push(answer(&body));
            }
        }
        for (q, why) in [
            ("ab~1", "at least 3"),
            (LONG_FUZZY, "at most 64"),
            ("abcdef~3", "at most 2"),
            ("nofield:ab*", "nofield"),
        ] {
            let (status, body) = c.search(&[("q", q)]).await;
            assert_eq!(status, 400, "{q}: {body}");
            let reason = body["error"]["reason"].as_str().unwrap();
            assert!(reason.contains(why), "{q}: {reason}");
        }
        answers.push(mine);
    }
    for (i, q) in QUERIES.iter().enumerate() {
        assert_eq!(answers[0][2 * i], answers[1][2 * i], "{q} at 1 vs 2 shards");
        assert_eq!(answers[0][2 * i], answers[2][2 * i], "{q} at 1 vs 4 shards");
        assert_eq!(
            answers[0][2 * i + 1],
            answers[2][2 * i + 1],
            "{q} lenient, 1 vs 4"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_box_tolerates_typos_and_completes_the_last_word() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let c = Cluster::start(dir.path(), 1, &[]).await;
    let ids = |q: &'static str, mode: &'static str| {
        let c = &c;
        async move {
            let (status, body) = c
                .search(&[("q", q), ("query_mode", mode), ("size", "100")])
                .await;
            assert_eq!(status, 200, "{q}: {body}");
            common::hit_ids(&body)
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // A typo in an 8-letter word finds what the word itself finds.
    let want = sorted(ids("chromium", "strict").await);
    assert!(!want.is_empty());
    assert_eq!(sorted(ids("chromiun", "lenient").await), want);
    assert!(ids("chromiun", "strict").await.is_empty());
    // The last word is completed.
    let completed = ids("chromi", "lenient").await;
    assert!(
        want.iter().all(|id| completed.contains(id)),
        "{completed:?}"
    );
    assert!(ids("chromi", "strict").await.is_empty());
    // Exact matches rank above typo and prefix variants.
    let (_, exact) = c
        .search(&[("q", "browser"), ("query_mode", "lenient"), ("size", "50")])
        .await;
    let (_, strict) = c.search(&[("q", "browser"), ("size", "50")]).await;
    let n = strict["total_hits"].as_u64().unwrap().min(50) as usize;
    let lenient_ids = common::hit_ids(&exact);
    let strict_ids = common::hit_ids(&strict);
    let mut a = lenient_ids[..n].to_vec();
    let mut b = strict_ids[..n].to_vec();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the exact matches come first");
}
