//! The front door holds (issue 19), with real processes: one admission limit for every
//! search-like route, points in time capped per client, CORS only for listed origins, the
//! `Host` header checked, half-sent requests dropped after the header-read timeout, and a
//! cap on open connections that frees itself.

mod common;

use std::time::Duration;

use common::{build, sample_corpus, Cluster};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from `s` until EOF or error; true when the server closed the connection within
/// `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(within, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await,
        Ok(())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_holds() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let root_args = [
        "--max-concurrent-searches",
        "2",
        "--header-read-timeout-ms",
        "500",
        "--max-connections",
        "12",
        "--max-pits-per-client",
        "2",
        "--cors-origin",
        "https://app.example",
        "--allowed-hosts",
        "127.0.0.1,localhost",
        "--result-cache-mb",
        "0",
    ];
    let c = Cluster::start_with(dir.path(), 1, &root_args, |_, _| {
        ["--fault-delay-ms", "300", "--fault-delay-rate", "1"]
            .map(String::from)
            .to_vec()
    })
    .await;

    // GET and POST /search and GET /documents/{id} share one limit of 2.
    let calls: Vec<_> = (0..9)
        .map(|i| {
            let http = c.http.clone();
            let req = match i % 3 {
                0 => http.get(c.url("/search?q=web")),
                1 => http.post(c.url("/search")).json(&json!({"q": "web"})),
                _ => http.get(c.url("/documents/apache2")),
            };
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    let admitted = statuses.iter().filter(|s| **s != 429).count();
    assert!(
        admitted <= 2,
        "one limit of 2 admitted {admitted}: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 404, 429].contains(s)),
        "{statuses:?}"
    );

    // Points in time: 2 per client, then 429 until one is closed.
    let mut pits = Vec::new();
    for _ in 0..2 {
        let (status, body) = c.post_search(&json!({"q": "web", "pit": "1m"})).await;
        assert_eq!(status, 200, "{body}");
        pits.push(body["pit_id"].as_str().unwrap().to_string());
    }
    let (status, body) = c.post_search(&json!({"q": "web", "pit": "1m"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "too_many_pits");
    let r = c
        .http
        .delete(c.url("/pit"))
        .json(&json!({"pit_id": pits[0]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = c.post_search(&json!({"q": "web", "pit": "1m"})).await;
    assert_eq!(status, 200, "{body}");

    // CORS for the listed origin only.
    let preflight = c
        .http
        .request(reqwest::Method::OPTIONS, c.url("/search"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = c
        .http
        .get(c.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Another Host (DNS rebinding): 421.
    let r = c
        .http
        .get(c.url("/healthz"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "host_not_allowed");

    // Half-sent requests are dropped after the header-read timeout.
    let addr = c.root.addr.clone();
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut half, Duration::from_secs(3)).await);

    // 12 connections at most: a 13th is closed at once; once the idle ones time out, the
    // root answers again. (The client's pooled connections time out first.)
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ninth = TcpStream::connect(&addr).await.unwrap();
    ninth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(400), ninth.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a connection past the cap is closed without an answer: {:?}",
        String::from_utf8_lossy(&buf)
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = c.http.get(c.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
