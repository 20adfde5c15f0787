//! Root configuration: where the replicas of each shard are, and query defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::cluster::hedge::HedgeConfig;

/// How a root runs.
#[derive(Debug, Clone)]
pub struct RootConfig {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Per shard, in shard order: the replica addresses (`host:port`).
    pub shards: Vec<Vec<String>>,
    /// Deadline of a search when the request gives none.
    pub default_timeout: Duration,
    /// Largest deadline a request may ask for.
    pub max_timeout: Duration,
    /// How often replicas are probed (gRPC `Info`).
    pub probe_interval: Duration,
    /// Hedged requests.
    pub hedge: HedgeConfig,
    /// Result cache size in bytes (0: no cache).
    pub result_cache_bytes: usize,
    /// Deadline of one write (ingest call to the replicas of a shard).
    pub write_timeout: Duration,
    /// Largest `POST /documents` body.
    pub max_bulk_bytes: usize,
    /// Most bulk body bytes being written at once (beyond: 429 with Retry-After).
    pub max_ingest_bytes: usize,
    /// Query-and-fetch when `(from + size) × shards` is at most this (0: never).
    pub fuse_fetch_max_docs: usize,
    /// Largest shard dictionary (terms) the root holds as a statistics table (0: none).
    pub stats_table_max_terms: u64,
    /// Fewest time between two dictionary downloads for one shard.
    pub stats_table_min_interval: Duration,
    /// Most searches in flight at once; beyond, a search is refused at once with 429
    /// `too_many_requests` and `Retry-After` (load shedding).
    pub max_concurrent_searches: usize,
    /// API keys (`--api-key-file`); `None`: every endpoint is open.
    pub api_keys: Option<crate::api::auth::ApiKeys>,
    /// TLS certificate chain and key (PEM); `None`: plain HTTP.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The process's memory budget for requests, in bytes (see [`crate::api::memory`]).
    pub memory_budget_bytes: usize,
    /// Connection cap and header-read timeout.
    pub connections: crate::api::connections::ConnectionLimits,
    /// Origins allowed to call the API from a browser (CORS); empty: CORS off.
    pub cors_origins: Vec<String>,
    /// Host names requests may address (`Host` header); `None`: any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Most points in time one client (API key, or address without keys) holds open.
    pub max_pits_per_client: usize,
}

/// Default of [`RootConfig::max_concurrent_searches`].
pub const DEFAULT_MAX_CONCURRENT_SEARCHES: usize = 64;

impl RootConfig {
    /// A configuration with defaults for everything but the layout. Replica addresses are
    /// `host:port`; a leading `http://` and a trailing `/` are accepted and dropped.
    pub fn new(listen: SocketAddr, shards: Vec<Vec<String>>) -> Self {
        let shards = shards
            .into_iter()
            .map(|replicas| replicas.iter().map(|a| normalize_addr(a)).collect())
            .collect();
        RootConfig {
            listen,
            shards,
            default_timeout: Duration::from_millis(1000),
            max_timeout: Duration::from_secs(60),
            probe_interval: Duration::from_millis(500),
            hedge: HedgeConfig::default(),
            result_cache_bytes: 64 << 20,
            write_timeout: Duration::from_secs(30),
            max_bulk_bytes: 64 << 20,
            max_ingest_bytes: scatter_core::limits::MAX_ROOT_INGEST_BYTES,
            fuse_fetch_max_docs: crate::query::root::DEFAULT_FUSE_FETCH_MAX_DOCS,
            stats_table_max_terms: crate::query::stats_table::DEFAULT_MAX_TERMS,
            stats_table_min_interval: crate::query::stats_table::MIN_INTERVAL,
            max_concurrent_searches: DEFAULT_MAX_CONCURRENT_SEARCHES,
            api_keys: None,
            tls: None,
            memory_budget_bytes: crate::api::memory::DEFAULT_MEMORY_BUDGET_MB << 20,
            connections: Default::default(),
            cors_origins: Vec::new(),
            allowed_hosts: None,
            max_pits_per_client: crate::api::front_door::DEFAULT_MAX_PITS_PER_CLIENT,
        }
    }

    /// Checks that every shard has at least one replica and addresses are well formed.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.shards.is_empty() {
            bail!("no shards: give --shard once per shard (or --cluster FILE)");
        }
        for (k, replicas) in self.shards.iter().enumerate() {
            if replicas.is_empty() {
                bail!("shard {k} has no replica address");
            }
            for addr in replicas {
                if addr.starts_with("https://") {
                    bail!("shard {k}: {addr:?}: leaves speak plain gRPC (http://host:port or host:port)");
                }
                if addr.is_empty() || addr.contains('/') {
                    bail!("shard {k}: bad replica address {addr:?} (want host:port)");
                }
            }
        }
        Ok(())
    }
}

/// `host:port` of a replica address given as `host:port`, `http://host:port` or
/// `http://host:port/`.
fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    addr.strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/')
        .to_string()
}

/// Parses one `--shard` value: comma-separated replica addresses.
pub fn parse_shard_flag(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A cluster file: `{"shards": [["host:port", ...], ...]}` (JSON) or
/// `shards = [["host:port", ...], ...]` (TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Per shard, in shard order: replica addresses.
    pub shards: Vec<Vec<String>>,
}

impl ClusterFile {
    /// Reads a cluster file (TOML if it ends in `.toml`, else JSON).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading cluster file {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        } else {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_addresses_may_be_urls() {
        let listen = "127.0.0.1:0".parse().unwrap();
        let c = RootConfig::new(listen, vec![vec!["http://a:1".into(), "b:2/".into()]]);
        assert_eq!(c.shards, [["a:1", "b:2"]]);
        c.validate().unwrap();
        let bad = RootConfig::new(listen, vec![vec!["https://a:1".into()]]);
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("plain gRPC"));
        let bad = RootConfig::new(listen, vec![vec!["a:1/x".into()]]);
        assert!(bad.validate().is_err());
    }
}
