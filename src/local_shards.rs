//! `scatter root --index DIR ...`: a root that serves shards itself. The shards open in this
//! process as one leaf node whose calls the root makes in-process (see
//! `scatter_proto::local`: no socket, HTTP/2 or TLS); the node also listens on
//! `--leaf-listen` so peers on other hosts can merge from or copy its shards. Without
//! `--shard` the local shards are the cluster; with it, `local` in a replica list names this
//! root's own copy, one replica among the others (failover, hedging and coverage as usual).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use scatter_leaf::server::BoundLeaf;
use scatter_leaf::LeafConfig;

/// Word that names this root's own copy in a `--shard` list.
pub const LOCAL: &str = "local";

/// The shards a root serves in-process.
#[derive(Debug, Args)]
pub struct LocalShardsArgs {
    /// A shard directory (`DIR/shard-K` of a build) this root serves itself, in-process;
    /// repeat per shard. Without --shard these are the cluster's shards; with --shard,
    /// `local` in a replica list names this root's copy.
    #[arg(
        long = "index",
        value_name = "DIR",
        env = "SCATTER_ROOT_INDEXES",
        value_delimiter = ';'
    )]
    indexes: Vec<PathBuf>,
    /// gRPC address of the local shards for peers' repairs (port 0: any free port).
    #[arg(long, env = "SCATTER_ROOT_LEAF_LISTEN", default_value = "127.0.0.1:0")]
    leaf_listen: SocketAddr,
}

impl LocalShardsArgs {
    /// Opens the local shards (if any) and starts serving them until `shutdown`; returns the
    /// replica lists with the local node's address put in (for every shard it serves when
    /// `shards` is empty, else where `shards` says `local`).
    pub async fn start(
        &self,
        shards: Vec<Vec<String>>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        if self.indexes.is_empty() {
            anyhow::ensure!(
                !shards.iter().flatten().any(|a| a == LOCAL),
                "`local` in --shard needs --index"
            );
            return Ok(shards);
        }
        let config = LeafConfig::new(self.indexes.clone(), self.leaf_listen);
        let leaf = BoundLeaf::bind(&config)
            .await
            .context("opening the local shards")?;
        let addr = leaf.local_addr().to_string();
        let served = leaf.node().ids();
        tokio::spawn(async move {
            if let Err(e) = leaf.serve(shutdown).await {
                tracing::error!("local shards stopped: {e:#}");
            }
        });
        tracing::info!(%addr, shards = ?served, "serving local shards in-process");
        if shards.is_empty() {
            let expected: Vec<u32> = (0..served.len() as u32).collect();
            anyhow::ensure!(
                served == expected,
                "without --shard, --index must give every shard of the build (got shards {served:?})"
            );
            return Ok(served.iter().map(|_| vec![addr.clone()]).collect());
        }
        Ok(shards
            .into_iter()
            .map(|list| {
                list.into_iter()
                    .map(|a| if a == LOCAL { addr.clone() } else { a })
                    .collect()
            })
            .collect())
    }
}
