//! Scatter leaf: a node serving one or more shards (tantivy indexes on disk) over gRPC.
//!
//! - [`shard`]: the index, its reader and the search / fetch / statistics operations;
//! - [`stats`]: BM25 statistics handed in by the root (global) as a tantivy provider;
//! - [`ids`]: external ids of documents, resolved in O(1) from per-segment tables;
//! - [`ties`]: exact tie-breaking by id at the top-k cut;
//! - [`faults`]: fault injection (delays, errors), a testing aid;
//! - [`commit`]: what a commit records in its payload (operations, version log length);
//! - [`versions`]: the version log: per id the newest write, so replicas converge;
//! - [`compaction`]: the version log rewritten to what is current, expired tombstones dropped;
//! - [`writer`]: live ingest, group commit, durable before acknowledged;
//! - [`live`]: the shard served now, its writer, and swapping in a repaired copy;
//! - [`node`]: the shards one node serves, and node-level answers merged from theirs;
//! - [`snapshot`] / [`repair`]: streaming a commit's files to a new, empty replica;
//! - [`merge`]: repair by merge — taking a peer's newer writes — and the version listings;
//! - [`listing`]: every document and tombstone sorted by id, streamed, for replica checks;
//! - [`sort`]: sorting by fast fields, with order-preserving keys;
//! - [`service`]: the `scatter.v1.Leaf` gRPC service around a node's shards;
//! - [`server`]: binding, TCP_NODELAY, gRPC health, graceful shutdown.

pub mod aggs;
pub mod commit;
pub mod compaction;
pub mod counting;
pub mod data_calls;
pub mod dictionary;
pub mod docs;
pub mod error;
pub mod faults;
pub mod ids;
pub mod listing;
pub mod live;
pub mod merge;
pub mod node;
pub mod pit;
pub mod plan;
pub mod repair;
pub mod scoring;
pub mod server;
pub mod service;
pub mod shard;
pub mod snapshot;
pub mod sort;
pub mod stats;
pub mod ties;
pub mod versions;
pub mod watch;
pub mod watched_query;
pub mod writer;

pub use live::LiveShard;
pub use server::{serve, LeafConfig};
pub use shard::Shard;
