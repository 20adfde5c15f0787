//! The front door of a real root: API keys with scopes (401 without a key, 403 without the
//! scope, health checks open).

mod common;

use common::{build, sample_corpus, Cluster};
use serde_json::Value;

const SEARCH_KEY: &str = "search-key-0123456789";
const WRITE_KEY: &str = "write-key-0123456789";
const ADMIN_KEY: &str = "admin-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_endpoint_by_scope() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "# scatter API keys\n{SEARCH_KEY} search\n{WRITE_KEY} search,write\n{ADMIN_KEY} admin\n"
        ),
    )
    .unwrap();
    let c = Cluster::start(dir.path(), 1, &["--api-key-file", keys.to_str().unwrap()]).await;
    let call = |method: reqwest::Method, path: &str, key: Option<&str>| {
        let mut req = c.http.request(method, c.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    use reqwest::Method;
    for open in ["/healthz", "/readyz"] {
        assert_eq!(
            status(call(Method::GET, open, None).send().await.unwrap()),
            200
        );
    }
    let r = call(Method::GET, "/search?q=web", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "unauthorized");
    let wrong = call(Method::GET, "/search?q=web", Some("search-key-0123456788"));
    assert_eq!(status(wrong.send().await.unwrap()), 401);
    let ok = call(Method::GET, "/search?q=web", Some(SEARCH_KEY));
    assert_eq!(status(ok.send().await.unwrap()), 200);
    let doc = "{\"id\":\"door-1\",\"title\":\"front door\",\"body\":\"keys\"}\n";
    let r = call(Method::POST, "/documents", Some(SEARCH_KEY))
        .body(doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "forbidden");
    assert!(body["error"]["reason"].as_str().unwrap().contains("write"));
    let r = call(Method::POST, "/documents", Some(WRITE_KEY))
        .body(doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = call(Method::GET, "/documents/door-1", Some(SEARCH_KEY));
    assert_eq!(status(r.send().await.unwrap()), 200);
    assert_eq!(
        status(
            call(Method::GET, "/cluster", Some(WRITE_KEY))
                .send()
                .await
                .unwrap()
        ),
        403
    );
    assert_eq!(
        status(
            call(Method::GET, "/cluster", Some(ADMIN_KEY))
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(call(Method::GET, "/metrics", None).send().await.unwrap()),
        401
    );
    let r = call(Method::DELETE, "/documents/door-1", Some(ADMIN_KEY));
    assert_eq!(status(r.send().await.unwrap()), 403, "admin is not write");
}
