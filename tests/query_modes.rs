//! `query_mode=lenient` and `filter`, through a 4-shard cluster of real processes: lenient
//! text never fails to parse; filters restrict matches without changing any score; bad
//! filters and modes are 400s.

mod common;

use std::collections::HashMap;

use common::{build, sample_corpus, Cluster};
use serde_json::{json, Value};

/// Hits of an answer as id → score.
fn scores(body: &Value) -> HashMap<String, f64> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_string(),
                h["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

async fn post(c: &Cluster, body: Value) -> (u16, Value) {
    let resp = c
        .http
        .post(c.url("/search"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_text_never_fails_and_strict_stays_the_default() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let c = Cluster::start(dir.path(), 1, &[]).await;
    for text in [
        "\"don't panic",
        "title:(editor",
        "editor AND",
        "web ] server [",
    ] {
        let (status, body) = c.search(&[("q", text)]).await;
        assert_eq!(status, 400, "{text:?} strict: {body}");
        assert_eq!(body["error"]["type"], "query_parse_error");
        let (status, body) = c.search(&[("q", text), ("query_mode", "lenient")]).await;
        assert_eq!(status, 200, "{text:?} lenient: {body}");
    }
    // Lenient (the search box) finds what strict finds, and more (typos, the last word as a
    // prefix), exact matches first: its top hits are all strict matches.
    let (_, strict) = c.search(&[("q", "text editor"), ("size", "1000")]).await;
    let (_, lenient) = c
        .search(&[
            ("q", "text editor"),
            ("query_mode", "lenient"),
            ("size", "1000"),
        ])
        .await;
    let (strict_ids, lenient_ids) = (common::hit_ids(&strict), common::hit_ids(&lenient));
    assert!(strict_ids.len() > 10 && lenient_ids.len() >= strict_ids.len());
    for id in &lenient_ids[..strict_ids.len()] {
        assert!(strict_ids.contains(id), "{id} ranks above an exact match");
    }
    let (status, body) = c.search(&[("q", "x"), ("query_mode", "fuzzy")]).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("illegal_argument"))
    );
    let (status, _) = post(&c, json!({"q": "\"don't panic", "query_mode": "lenient"})).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_restrict_matches_and_keep_every_score() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let c = Cluster::start(dir.path(), 1, &["--result-cache-mb", "0"]).await;
    let (_, all) = c.search(&[("q", "editor"), ("size", "1000")]).await;
    let (status, editors) = c
        .search(&[
            ("q", "editor"),
            ("size", "1000"),
            ("filter", "section:editors"),
        ])
        .await;
    assert_eq!(status, 200, "{editors}");
    let (all_scores, kept) = (scores(&all), scores(&editors));
    assert!(
        !kept.is_empty() && kept.len() < all_scores.len(),
        "{editors}"
    );
    assert_eq!(editors["total_hits"].as_u64().unwrap() as usize, kept.len());
    for hit in editors["hits"].as_array().unwrap() {
        assert_eq!(hit["fields"]["section"], "editors", "{hit}");
        let id = hit["id"].as_str().unwrap();
        assert_eq!(
            hit["score"].as_f64(),
            all_scores.get(id).copied(),
            "{id}: score changed"
        );
    }
    // Every match of the query in that section is kept.
    let in_section = all["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["fields"]["section"] == "editors")
        .count();
    assert_eq!(in_section, kept.len());

    // Several filters are AND-ed: GET repeats `filter`, POST takes an array.
    let params = [
        ("q", "editor"),
        ("size", "1000"),
        ("filter", "section:editors"),
        ("filter", "tags:x11"),
    ];
    let (_, both) = c.search(&params).await;
    let (_, posted) = post(
        &c,
        json!({"q": "editor", "size": 1000, "filter": ["section:editors", "tags:x11"]}),
    )
    .await;
    assert_eq!(both["hits"], posted["hits"]);
    let both = scores(&both);
    assert!(!both.is_empty() && both.len() < kept.len());
    for (id, score) in &both {
        assert_eq!(kept.get(id), Some(score), "{id}");
    }
    // A filter matching nothing leaves nothing; a malformed one is the caller's error.
    let (_, none) = c
        .search(&[("q", "editor"), ("filter", "section:nosuchsection")])
        .await;
    assert_eq!(none["total_hits"], 0);
    let (status, body) = c.search(&[("q", "editor"), ("filter", "section:(")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["reason"].as_str().unwrap().contains("filter"),
        "{body}"
    );
    let (status, body) = post(&c, json!({"q": "editor", "filter": 3})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippet_size_and_tags_apply_in_both_fetch_paths() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, dir.path());
    let c = Cluster::start(dir.path(), 1, &["--result-cache-mb", "0"]).await;
    // size 5 × 4 shards: query-and-fetch; size 40: a fetch phase of its own.
    for size in ["5", "40"] {
        let base = [("q", "editor"), ("snippet", "body"), ("size", size)];
        let (_, plain) = c.search(&base).await;
        let tagged = [
            base.as_slice(),
            &[
                ("snippet_pre_tag", "<em>"),
                ("snippet_post_tag", "</em>"),
                ("snippet_size", "40"),
            ],
        ]
        .concat();
        let (status, body) = c.search(&tagged).await;
        assert_eq!(status, 200, "{body}");
        let (plain_hits, hits) = (
            plain["hits"].as_array().unwrap(),
            body["hits"].as_array().unwrap(),
        );
        assert_eq!(plain_hits.len(), hits.len());
        let mut shorter = 0;
        for (p, h) in plain_hits.iter().zip(hits) {
            let (p, h) = (
                p["snippets"]["body"].as_str().unwrap_or(""),
                h["snippets"]["body"].as_str().unwrap_or(""),
            );
            assert!(
                !h.contains("<b>") && (h.is_empty() || h.contains("<em>")),
                "{h}"
            );
            let text = h.replace("<em>", "").replace("</em>", "");
            assert!(text.chars().count() <= 60, "snippet_size 40: {text:?}");
            shorter += usize::from(text.len() < p.replace("<b>", "").replace("</b>", "").len());
        }
        assert!(shorter > 0, "size {size}: no snippet got shorter");
    }
    for (name, value) in [
        ("snippet_size", "0"),
        ("snippet_size", "20000"),
        ("snippet_pre_tag", &"x".repeat(65)),
    ] {
        let (status, body) = c
            .search(&[("q", "editor"), ("snippet", "body"), (name, value)])
            .await;
        assert_eq!(status, 400, "{name}={value}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explanations_carry_the_global_scores_one_index_would_print() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 4, &dir.path().join("four"));
    build(&sample_corpus(), 1, &dir.path().join("one"));
    let four = Cluster::start(&dir.path().join("four"), 1, &[]).await;
    let one = Cluster::start(&dir.path().join("one"), 1, &[]).await;
    // size 5: query-and-fetch on 4 shards; size 40: a fetch phase of its own.
    for (q, size) in [
        ("text editor", "5"),
        ("web server", "40"),
        ("+python -doc", "5"),
    ] {
        let params = [("q", q), ("size", size), ("explain", "true")];
        let (status, a) = four.search(&params).await;
        assert_eq!(status, 200, "{a}");
        let (_, b) = one.search(&params).await;
        assert_eq!(common::hit_ids(&a), common::hit_ids(&b), "{q}");
        for (ha, hb) in a["hits"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["hits"].as_array().unwrap())
        {
            let e = &ha["explanation"];
            let value = e["value"].as_f64().unwrap();
            let score = ha["score"].as_f64().unwrap();
            assert!(
                (value - score).abs() <= 1e-5 * score,
                "{q}: {value} vs {score}"
            );
            assert!(e["details"].is_array(), "{e}");
            assert_eq!(
                e, &hb["explanation"],
                "{q}: 4 shards explain like one index"
            );
        }
    }
    let (_, plain) = four.search(&[("q", "web")]).await;
    assert!(plain["hits"][0].get("explanation").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_filters_on_numbers_and_dates_are_exact_at_any_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    common::build_with_numbers(dir.path(), 4, &dir.path().join("four"));
    common::build_with_numbers(dir.path(), 1, &dir.path().join("one"));
    let args = ["--result-cache-mb", "0"];
    let four = Cluster::start(&dir.path().join("four"), 1, &args).await;
    let one = Cluster::start(&dir.path().join("one"), 1, &args).await;
    let (_, all) = four.search(&[("q", "library"), ("size", "10000")]).await;
    let all = scores(&all);
    for filter in [
        "words:[20 TO 60]",
        "words:{100 TO *]",
        "released:[2020-01-01T00:00:00Z TO *]",
        "released:[2005-03-01T00:00:00Z TO 2009-12-31T00:00:00Z}",
    ] {
        let params = [("q", "library"), ("size", "10000"), ("filter", filter)];
        let (status, a) = four.search(&params).await;
        assert_eq!(status, 200, "{filter}: {a}");
        let (_, b) = one.search(&params).await;
        assert_eq!(
            common::hit_ids(&a),
            common::hit_ids(&b),
            "{filter}: like one index"
        );
        assert_eq!(
            scores(&a),
            scores(&b),
            "{filter}: the same scores as one index"
        );
        assert_eq!(a["total_hits"], b["total_hits"]);
        let kept = scores(&a);
        assert!(
            !kept.is_empty() && kept.len() < all.len(),
            "{filter}: {}",
            kept.len()
        );
        for (id, score) in &kept {
            assert_eq!(all.get(id), Some(score), "{filter}: {id} score changed");
        }
        for hit in a["hits"].as_array().unwrap() {
            let words = hit["fields"]["words"].as_u64().unwrap();
            match filter {
                "words:[20 TO 60]" => assert!((20..=60).contains(&words), "{hit}"),
                "words:{100 TO *]" => assert!(words > 100, "{hit}"),
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_by_every_fast_type_merges_like_one_index() {
    let dir = tempfile::tempdir().unwrap();
    common::build_with_numbers(dir.path(), 4, &dir.path().join("four"));
    common::build_with_numbers(dir.path(), 1, &dir.path().join("one"));
    let args = ["--result-cache-mb", "0"];
    let four = Cluster::start(&dir.path().join("four"), 1, &args).await;
    let one = Cluster::start(&dir.path().join("one"), 1, &args).await;
    for sort in [
        "words:desc",
        "words:asc",
        "offset:asc",
        "rating:desc",
        "released:asc",
        "section:asc,words:desc",
        "section:desc,_score",
        "_score:asc",
        "words:asc,rating:asc,released:desc",
    ] {
        for (from, size) in [("0", "50"), ("30", "40")] {
            let params = [
                ("q", "library OR game"),
                ("sort", sort),
                ("from", from),
                ("size", size),
            ];
            let (status, a) = four.search(&params).await;
            assert_eq!(status, 200, "{sort}: {a}");
            let (_, b) = one.search(&params).await;
            assert_eq!(
                common::hit_ids(&a),
                common::hit_ids(&b),
                "{sort} from {from}"
            );
            let values = |body: &Value| -> Vec<Value> {
                body["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h["sort"].clone())
                    .collect()
            };
            assert_eq!(values(&a), values(&b), "{sort}: the same sort values");
            assert_eq!(a["total_hits"], b["total_hits"]);
        }
        // The order holds on the first key.
        let (_, a) = four
            .search(&[("q", "library OR game"), ("sort", sort), ("size", "200")])
            .await;
        let firsts: Vec<Value> = a["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["sort"][0].clone())
            .collect();
        let desc = sort.split(',').next().unwrap().ends_with(":desc")
            || sort.starts_with("_score,")
            || sort == "section:desc,_score";
        for pair in firsts.windows(2) {
            let ord = match (&pair[0], &pair[1]) {
                (Value::String(x), Value::String(y)) => x.cmp(y),
                (x, y) => x.as_f64().unwrap().total_cmp(&y.as_f64().unwrap()),
            };
            let ok = if desc { ord.is_ge() } else { ord.is_le() };
            assert!(ok, "{sort}: {:?} then {:?}", pair[0], pair[1]);
        }
    }
    for bad in ["title:asc", "version:asc", "words:up", "nosuch:asc", ":asc"] {
        let (status, body) = four.search(&[("q", "library"), ("sort", bad)]).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_after_pages_through_thousands_of_hits_like_one_index() {
    let dir = tempfile::tempdir().unwrap();
    common::build_with_numbers(dir.path(), 4, &dir.path().join("four"));
    common::build_with_numbers(dir.path(), 1, &dir.path().join("one"));
    let args = ["--result-cache-mb", "0"];
    let four = Cluster::start(&dir.path().join("four"), 1, &args).await;
    let one = Cluster::start(&dir.path().join("one"), 1, &args).await;
    for (q, sort) in [
        ("*", Some("words:desc,released:asc")),
        ("the OR of OR and OR for", None),
    ] {
        let mut all: Vec<(&str, &str)> = vec![("q", q), ("size", "10000")];
        all.extend(sort.map(|s| ("sort", s)));
        let (_, whole) = one.search(&all).await;
        let whole = common::hit_ids(&whole);
        assert!(whole.len() >= 2000, "{q}: {} hits", whole.len());
        let mut paged: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut body = json!({"q": q, "size": 250});
            if let Some(s) = sort {
                body["sort"] = json!(s);
            }
            if let Some(a) = &after {
                body["search_after"] = serde_json::from_str(a).unwrap();
            }
            let (status, page) = post(&four, body).await;
            assert_eq!(status, 200, "{page}");
            let hits = page["hits"].as_array().unwrap();
            if hits.is_empty() {
                break;
            }
            paged.extend(common::hit_ids(&page));
            after = Some(hits.last().unwrap()["sort"].to_string());
            assert!(paged.len() <= whole.len(), "{q}: pages run past the end");
        }
        assert_eq!(
            paged, whole,
            "{q}: 4 shards paged with search_after == one index at once"
        );
    }
    // GET takes the array as JSON text; a wrong array is a 400.
    let (status, body) = four
        .search(&[
            ("q", "*"),
            ("sort", "words:desc"),
            ("search_after", "[10, \"x\"]"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = four
        .search(&[("q", "*"), ("sort", "words:desc"), ("search_after", "[10]")])
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = four
        .search(&[("q", "*"), ("from", "5"), ("search_after", "[1.0, \"x\"]")])
        .await;
    assert_eq!(status, 400, "{body}");
}
