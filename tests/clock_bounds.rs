//! Clock bounds (issue 20): a write version far ahead of a leaf's clock — a forged call, or
//! a root whose clock is wrong — is refused and never persisted, so it cannot make later
//! writes vanish; the cluster's own writes go on.

mod common;

use common::{build, sample_corpus, Cluster};
use scatter_core::clock::now_micros;
use scatter_proto::v1::{InfoRequest, IngestDoc, IngestRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_from_the_future_is_refused_and_never_adopted() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 1, dir.path());
    let c = Cluster::start(dir.path(), 1, &[]).await;
    let mut leaf = scatter_proto::LeafClient::connect(format!("http://{}", c.leaves[0][0].addr))
        .await
        .unwrap();
    for version in [u64::MAX - 1, now_micros() + 60_000_000] {
        let status = leaf
            .ingest(IngestRequest {
                shard: Some(0),
                upserts: vec![IngestDoc {
                    id: "from-the-future".into(),
                    json: r#"{"id":"from-the-future","title":"forged"}"#.into(),
                    version,
                }],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("ahead of this leaf's clock"));
    }
    let info = leaf
        .info(InfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        info.max_version < now_micros() + 1_000_000,
        "{}",
        info.max_version
    );
    // The cluster's own writes, and a delete then re-create, behave.
    let doc = |title: &str| format!("{{\"id\":\"clock-1\",\"title\":\"{title}\"}}\n");
    assert_eq!(c.post_documents(doc("first")).await.0, 200);
    assert_eq!(c.delete_document("clock-1").await.0, 200);
    assert_eq!(c.post_documents(doc("again")).await.0, 200);
    let (status, body) = c.get_document("clock-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fields"]["title"], "again");
    assert_eq!(c.get_document("from-the-future").await.0, 404);
}
