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
        .header("content-type", "application/x-ndjson")
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

/// One HTTP/1.1 GET over TLS, trusting `ca` for `localhost`: (status, body).
async fn https_get(addr: &str, ca: &[u8], path: &str) -> (u16, String) {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.to_vec())).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|b| b.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_at_the_root_and_a_cluster_secret_between_root_and_leaves() {
    use common::Proc;
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "cluster-secret-0123456789\n").unwrap();
    let secret_arg = [
        "--cluster-secret-file".to_string(),
        secret.display().to_string(),
    ];
    let manifest = scatter_core::Manifest::load(dir.path()).unwrap();
    let leaves: Vec<Proc> = (0..2)
        .map(|k| Proc::leaf_with(&manifest.shard_path(dir.path(), k), &secret_arg))
        .collect();
    let addrs: Vec<Vec<String>> = leaves.iter().map(|l| vec![l.addr.clone()]).collect();
    let root = Proc::root(
        &addrs,
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
            "--cluster-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    // HTTPS works end to end (the root's calls carry the secret the leaves demand).
    let mut answer = (0, String::new());
    for _ in 0..100 {
        answer = https_get(&root.addr, cert.cert.der(), "/search?q=web+server").await;
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["shards"]["successful"], 2, "{body}");
    assert!(!body["hits"].as_array().unwrap().is_empty());
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", root.addr))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A stranger (no secret) is refused by the leaves, reads and writes alike.
    let mut stranger = scatter_proto::LeafClient::connect(format!("http://{}", leaves[0].addr))
        .await
        .unwrap();
    let refused = stranger
        .ingest(scatter_proto::v1::IngestRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let refused = stranger
        .set_faults(scatter_proto::v1::FaultSettings::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut wrong = tonic::Request::new(scatter_proto::v1::SearchRequest {
        query: "web".into(),
        k: 1,
        ..Default::default()
    });
    wrong.metadata_mut().insert(
        "authorization",
        "Bearer cluster-secret-0123456788".parse().unwrap(),
    );
    let refused = stranger.search(wrong).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut right = tonic::Request::new(scatter_proto::v1::SearchRequest {
        query: "web".into(),
        k: 1,
        ..Default::default()
    });
    right.metadata_mut().insert(
        "authorization",
        "Bearer cluster-secret-0123456789".parse().unwrap(),
    );
    assert!(stranger.search(right).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_between_leaves_works_with_a_cluster_secret() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "cluster-secret-0123456789").unwrap();
    let s = secret.to_str().unwrap().to_string();
    let mut c = Cluster::start_with(
        dir.path(),
        2,
        &["--cluster-secret-file", &s, "--probe-interval-ms", "100"],
        |_, _| vec!["--cluster-secret-file".to_string(), s.clone()],
    )
    .await;
    // Replica 1 misses writes; when it is back, the leaves merge (leaf-to-leaf calls that
    // must carry the secret) until both hold the same documents.
    c.kill_leaf(0, 1);
    let docs: String = (0..30)
        .map(|i| {
            format!("{{\"id\":\"secret-{i}\",\"title\":\"locked door {i}\",\"body\":\"b\"}}\n")
        })
        .collect();
    let (status, body) = c.post_documents(docs).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["indexed"], 30, "{body}");
    c.restart_leaf_with(0, 1, &["--cluster-secret-file".to_string(), s.clone()]);
    let url = c.url("/cluster/replicas/check");
    let start = std::time::Instant::now();
    let mut report = Value::Null;
    while start.elapsed() < std::time::Duration::from_secs(60) {
        report = c.http.get(&url).send().await.unwrap().json().await.unwrap();
        if report["consistent"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(report["consistent"], true, "{report}");
}
