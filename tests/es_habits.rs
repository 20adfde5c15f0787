//! Habits Elasticsearch users bring, against a real root: errors that name the parameter,
//! JSON bodies for 404 and 405, `fields=` choosing the stored fields of each hit, `pretty`,
//! and CORS preflight with `--cors-origin`.

mod common;

use common::{build, sample_corpus, Cluster};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_errors_fields_pretty_and_cors() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let origin = "https://app.example";
    let c = Cluster::start(dir.path(), 1, &["--cors-origin", origin]).await;

    // A bad value names its parameter and what was given.
    let (status, body) = c.search(&[("q", "web"), ("size", "abc")]).await;
    assert_eq!(status, 400, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("\"size\"") && reason.contains("abc"),
        "{reason}"
    );

    // Wrong method and unknown path: JSON bodies saying so.
    let r = c.http.put(c.url("/search?q=web")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "method_not_allowed", "{body}");
    let r = c.http.get(c.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("/nowhere"));

    // `fields`: every stored field by default, only those named (or matched by a prefix).
    let (_, all) = c.search(&[("q", "web"), ("size", "3")]).await;
    let first = &all["hits"][0]["fields"];
    assert!(first.as_object().unwrap().len() >= 2, "{first}");
    let (status, some) = c
        .search(&[("q", "web"), ("size", "3"), ("fields", "titl*")])
        .await;
    assert_eq!(status, 200, "{some}");
    for hit in some["hits"].as_array().unwrap() {
        let keys: Vec<&String> = hit["fields"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["title"], "{hit}");
    }
    assert_eq!(common::hit_ids(&all), common::hit_ids(&some));
    let (status, none) = c
        .search(&[("q", "web"), ("size", "3"), ("fields", "no_such_field")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(none["hits"][0]["fields"], serde_json::json!({}));
    let (status, _) = c
        .post_search(&serde_json::json!({"q": "web", "fields": ["title"]}))
        .await;
    assert_eq!(status, 200);

    // `pretty`: the same answer, indented.
    let text = c
        .http
        .get(c.url("/search?q=web&size=1&pretty"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("{\n  \""), "{text}");
    let _: Value = serde_json::from_str(&text).unwrap();

    // CORS: a preflight from the allowed origin is answered, another origin is not allowed.
    let preflight = |from: &str| {
        c.http
            .request(reqwest::Method::OPTIONS, c.url("/search"))
            .header("origin", from)
            .header("access-control-request-method", "GET")
            .send()
    };
    let r = preflight(origin).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    let r = preflight("https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}
