//! The `scatter.v1.Leaf` gRPC service: each call runs its tantivy work on the blocking pool,
//! off the async threads, against the shared [`Shard`].

use std::sync::Arc;

use scatter_proto::v1::{
    FetchRequest, FetchResponse, InfoRequest, InfoResponse, SearchRequest, SearchResponse,
    TermStatsRequest, TermStatsResponse,
};
use scatter_proto::Leaf;
use tonic::{Request, Response, Status};

use crate::shard::{Shard, ShardError};

/// Most ids one `Fetch` call may ask for.
pub const MAX_FETCH_IDS: usize = 10_000;

/// gRPC front of one shard.
#[derive(Clone)]
pub struct LeafService {
    shard: Arc<Shard>,
}

impl LeafService {
    /// Serves `shard`.
    pub fn new(shard: Arc<Shard>) -> Self {
        LeafService { shard }
    }
}

/// Runs `f` on the blocking pool and maps its error to a gRPC status.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ShardError> + Send + 'static,
) -> Result<Response<T>, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(Response::new(v)),
        Ok(Err(ShardError::InvalidArgument(m))) => Err(Status::invalid_argument(m)),
        Ok(Err(e)) => Err(Status::internal(e.to_string())),
        Err(join) => Err(Status::internal(format!("leaf task failed: {join}"))),
    }
}

#[tonic::async_trait]
impl Leaf for LeafService {
    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let shard = self.shard.clone();
        blocking(move || Ok(shard.info())).await
    }

    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let shard = self.shard.clone();
        let req = request.into_inner();
        blocking(move || shard.search(&req)).await
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let req = request.into_inner();
        if req.ids.len() > MAX_FETCH_IDS {
            return Err(Status::invalid_argument(format!(
                "{} ids asked; at most {MAX_FETCH_IDS} per call",
                req.ids.len()
            )));
        }
        let shard = self.shard.clone();
        blocking(move || shard.fetch(&req)).await
    }

    async fn term_stats(
        &self,
        request: Request<TermStatsRequest>,
    ) -> Result<Response<TermStatsResponse>, Status> {
        let shard = self.shard.clone();
        let query = request.into_inner().query;
        blocking(move || shard.term_stats(&query)).await
    }
}
