//! **One seam for every call to a leaf node.** [`LeafApi`] is the node as a caller sees it —
//! a root's fan-out, fetch, statistics, writes, repair and replica check, a peer's repair —
//! with two implementations: [`Grpc`] (a tonic client on a channel, every call carrying the
//! cluster secret) and [`InProcess`] (the node's own service, called directly: no protobuf
//! encoding, HTTP/2 framing, TLS or socket; Quickwit's local `SearchServiceClient`,
//! Elasticsearch's local shard calls). Messages and metadata (request id, `grpc-timeout`
//! deadline) are those of a remote call, so the node's own checks, deadlines and admission
//! apply alike; only the cluster-secret check is skipped, the caller being this process.
//! [`connect`] picks the in-process node when this process serves the address (see
//! [`crate::local`]).

use std::pin::Pin;
use std::sync::Arc;

use tonic::codegen::tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::v1::*;
use crate::Leaf;

/// A stream of messages from a leaf.
pub struct LeafStream<T>(Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>);

impl<T> LeafStream<T> {
    /// Boxes `stream`.
    pub fn new(stream: impl Stream<Item = Result<T, Status>> + Send + 'static) -> Self {
        LeafStream(Box::pin(stream))
    }

    /// The next message, or `None` at the end (as `tonic::Streaming::message`).
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        self.0.next().await.transpose()
    }
}

impl<T> Stream for LeafStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// What a call answers.
pub type Answer<T> = Result<Response<T>, Status>;

/// A leaf node, however it is reached. One method per `scatter.v1.Leaf` call.
#[tonic::async_trait]
pub trait LeafApi: Send + Sync + 'static {
    /// Identity and state of a shard.
    async fn info(&self, request: Request<InfoRequest>) -> Answer<InfoResponse>;
    /// Ranked search over the shards named.
    async fn search(&self, request: Request<SearchRequest>) -> Answer<SearchResponse>;
    /// Stored fields of documents, by external id.
    async fn fetch(&self, request: Request<FetchRequest>) -> Answer<FetchResponse>;
    /// Term statistics of the shards named.
    async fn term_stats(&self, request: Request<TermStatsRequest>) -> Answer<TermStatsResponse>;
    /// A shard's whole term dictionary, streamed.
    async fn term_dictionary(
        &self,
        request: Request<TermDictionaryRequest>,
    ) -> Answer<LeafStream<TermDictionaryChunk>>;
    /// Fault injection (a testing aid).
    async fn set_faults(&self, request: Request<FaultSettings>) -> Answer<FaultSettings>;
    /// Durable upserts and deletes.
    async fn ingest(&self, request: Request<IngestRequest>) -> Answer<IngestResponse>;
    /// The files of a shard's current commit, streamed.
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Answer<LeafStream<SnapshotChunk>>;
    /// Copy or merge a shard from a peer.
    async fn repair(&self, request: Request<RepairRequest>) -> Answer<RepairResponse>;
    /// A shard's versioned entries, streamed.
    async fn versions(
        &self,
        request: Request<VersionsRequest>,
    ) -> Answer<LeafStream<VersionsChunk>>;
    /// The newest write of each id asked.
    async fn sources(&self, request: Request<SourcesRequest>) -> Answer<SourcesResponse>;
    /// Closes points in time.
    async fn close_pit(&self, request: Request<ClosePitRequest>) -> Answer<ClosePitResponse>;
}

/// A shared handle on a leaf node.
pub type LeafHandle = Arc<dyn LeafApi>;

/// The leaf at `addr`: in-process when this process serves it, else over `channel()`, with
/// messages up to `max_message_bytes` either way.
pub fn connect(
    addr: &str,
    max_message_bytes: usize,
    channel: impl FnOnce() -> Channel,
) -> LeafHandle {
    match crate::local::lookup(addr) {
        Some(local) => local,
        None => Arc::new(Grpc::new(channel(), max_message_bytes)),
    }
}

fn streamed<T: Send + 'static>(
    answer: Result<Response<impl Stream<Item = Result<T, Status>> + Send + 'static>, Status>,
) -> Answer<LeafStream<T>> {
    answer.map(|r| r.map(LeafStream::new))
}

/// A leaf over gRPC; every call carries the cluster secret (see [`crate::cluster_auth`]).
#[derive(Clone)]
pub struct Grpc(crate::cluster_auth::Client);

impl Grpc {
    /// A leaf on `channel`, with messages up to `max_message_bytes` both ways.
    pub fn new(channel: Channel, max_message_bytes: usize) -> Self {
        Grpc(
            crate::cluster_auth::client(channel)
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
        )
    }
}

#[tonic::async_trait]
impl LeafApi for Grpc {
    async fn info(&self, request: Request<InfoRequest>) -> Answer<InfoResponse> {
        self.0.clone().info(request).await
    }
    async fn search(&self, request: Request<SearchRequest>) -> Answer<SearchResponse> {
        self.0.clone().search(request).await
    }
    async fn fetch(&self, request: Request<FetchRequest>) -> Answer<FetchResponse> {
        self.0.clone().fetch(request).await
    }
    async fn term_stats(&self, request: Request<TermStatsRequest>) -> Answer<TermStatsResponse> {
        self.0.clone().term_stats(request).await
    }
    async fn term_dictionary(
        &self,
        request: Request<TermDictionaryRequest>,
    ) -> Answer<LeafStream<TermDictionaryChunk>> {
        streamed(self.0.clone().term_dictionary(request).await)
    }
    async fn set_faults(&self, request: Request<FaultSettings>) -> Answer<FaultSettings> {
        self.0.clone().set_faults(request).await
    }
    async fn ingest(&self, request: Request<IngestRequest>) -> Answer<IngestResponse> {
        self.0.clone().ingest(request).await
    }
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Answer<LeafStream<SnapshotChunk>> {
        streamed(self.0.clone().snapshot(request).await)
    }
    async fn repair(&self, request: Request<RepairRequest>) -> Answer<RepairResponse> {
        self.0.clone().repair(request).await
    }
    async fn versions(
        &self,
        request: Request<VersionsRequest>,
    ) -> Answer<LeafStream<VersionsChunk>> {
        streamed(self.0.clone().versions(request).await)
    }
    async fn sources(&self, request: Request<SourcesRequest>) -> Answer<SourcesResponse> {
        self.0.clone().sources(request).await
    }
    async fn close_pit(&self, request: Request<ClosePitRequest>) -> Answer<ClosePitResponse> {
        self.0.clone().close_pit(request).await
    }
}

/// A leaf node's own service, called in-process.
pub struct InProcess<T>(pub Arc<T>);

#[tonic::async_trait]
impl<T: Leaf> LeafApi for InProcess<T> {
    async fn info(&self, request: Request<InfoRequest>) -> Answer<InfoResponse> {
        self.0.info(request).await
    }
    async fn search(&self, request: Request<SearchRequest>) -> Answer<SearchResponse> {
        self.0.search(request).await
    }
    async fn fetch(&self, request: Request<FetchRequest>) -> Answer<FetchResponse> {
        self.0.fetch(request).await
    }
    async fn term_stats(&self, request: Request<TermStatsRequest>) -> Answer<TermStatsResponse> {
        self.0.term_stats(request).await
    }
    async fn term_dictionary(
        &self,
        request: Request<TermDictionaryRequest>,
    ) -> Answer<LeafStream<TermDictionaryChunk>> {
        streamed(self.0.term_dictionary(request).await)
    }
    async fn set_faults(&self, request: Request<FaultSettings>) -> Answer<FaultSettings> {
        self.0.set_faults(request).await
    }
    async fn ingest(&self, request: Request<IngestRequest>) -> Answer<IngestResponse> {
        self.0.ingest(request).await
    }
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Answer<LeafStream<SnapshotChunk>> {
        streamed(self.0.snapshot(request).await)
    }
    async fn repair(&self, request: Request<RepairRequest>) -> Answer<RepairResponse> {
        self.0.repair(request).await
    }
    async fn versions(
        &self,
        request: Request<VersionsRequest>,
    ) -> Answer<LeafStream<VersionsChunk>> {
        streamed(self.0.versions(request).await)
    }
    async fn sources(&self, request: Request<SourcesRequest>) -> Answer<SourcesResponse> {
        self.0.sources(request).await
    }
    async fn close_pit(&self, request: Request<ClosePitRequest>) -> Answer<ClosePitResponse> {
        self.0.close_pit(request).await
    }
}
