//! Mutual TLS inside the cluster (issue 20, item 9), with real processes: a root and a leaf
//! holding certificates of one CA (made by `scatter certs`) search over TLS; a client without
//! a certificate, or with one of another CA, is refused by the leaf; a process at a leaf's
//! address holding another CA's certificate gets no call from the root (it is never
//! believed: the shard stays unavailable).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{build, sample_corpus, Proc};
use scatter_proto::v1::InfoRequest;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn certs(out: &Path, nodes: &str) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args(["certs", "--out", out.to_str().unwrap(), "--nodes", nodes])
        .status()
        .unwrap();
    assert!(status.success());
}

fn tls_args(dir: &Path, node: &str) -> Vec<String> {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    vec![
        "--cluster-ca".into(),
        p("ca.pem"),
        "--cluster-cert".into(),
        p(&format!("{node}.pem")),
        "--cluster-key".into(),
        p(&format!("{node}-key.pem")),
    ]
}

async fn ready(http: &reqwest::Client, root: &Proc) -> u16 {
    let url = format!("http://{}/readyz", root.addr);
    http.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_processes_with_the_cluster_certificate_take_part() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("certs"), dir.path().join("other"));
    certs(&ours, "root,leaf");
    certs(&theirs, "impostor");
    build(&sample_corpus(), 1, &dir.path().join("idx"));
    let shard = dir.path().join("idx").join("shard-0");
    let leaf = Proc::leaf_with(&shard, &tls_args(&ours, "leaf"));
    let root_tls = tls_args(&ours, "root");
    let refs: Vec<&str> = root_tls.iter().map(String::as_str).collect();
    let root = Proc::root(&[vec![leaf.addr.clone()]], &refs);
    let http = reqwest::Client::new();
    let start = Instant::now();
    while ready(&http, &root).await != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "root never reached the leaf over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://{}/search", root.addr);
    let body = common::get_json(&http, &url, &[("q", "web server")]).await;
    assert_eq!(body["partial"], false, "{body}");
    assert!(!body["hits"].as_array().unwrap().is_empty());

    // Strangers: plain, TLS without a certificate, TLS with another CA's certificate.
    let plain = Endpoint::from_shared(format!("http://{}", leaf.addr)).unwrap();
    let ca = Certificate::from_pem(std::fs::read_to_string(ours.join("ca.pem")).unwrap());
    let anonymous = Endpoint::from_shared(format!("https://{}", leaf.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .domain_name(scatter_proto::cluster_tls::NODE_NAME),
        )
        .unwrap();
    let read = |f: &str| std::fs::read_to_string(theirs.join(f)).unwrap();
    let foreign = Endpoint::from_shared(format!("https://{}", leaf.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca)
                .identity(Identity::from_pem(
                    read("impostor.pem"),
                    read("impostor-key.pem"),
                ))
                .domain_name(scatter_proto::cluster_tls::NODE_NAME),
        )
        .unwrap();
    for (what, endpoint) in [
        ("plain", plain),
        ("no certificate", anonymous),
        ("other CA", foreign),
    ] {
        let refused = match endpoint.connect().await {
            Err(_) => true,
            Ok(channel) => scatter_proto::LeafClient::new(channel)
                .info(InfoRequest::default())
                .await
                .is_err(),
        };
        assert!(refused, "{what}: the leaf answered a stranger");
    }

    // An impostor (another CA) at the address a root dials: never believed.
    let copy = dir.path().join("copy").join("shard-0");
    common::copy_dir(&shard, &copy);
    let impostor = Proc::leaf_with(&copy, &tls_args(&theirs, "impostor"));
    let root2 = Proc::root(&[vec![impostor.addr.clone()]], &refs);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        ready(&http, &root2).await,
        503,
        "the root believed an impostor"
    );
}
