//! Scatter index tools: bulk-load a JSONL corpus into N shard indexes.
//!
//! - [`jsonl`]: reading JSONL (plain or gzip) line by line, with line numbers and byte counts;
//! - [`build`]: routing each document to its shard and writing the shards in parallel;
//! - [`report`]: what a build did (docs per shard, skew, bad lines, speed);
//! - [`push`]: streaming a JSONL corpus into a live cluster through the root's bulk endpoint;
//! - [`verify`]: proof that a sharded cluster ranks exactly like one index;
//! - [`queries`]: query files (plain, TSV, JSONL);
//! - [`check_replicas`]: proof that every replica of every shard holds the same documents.

pub mod build;
pub mod check_replicas;
pub mod infer;
pub mod jsonl;
pub mod push;
pub mod queries;
pub mod report;
pub mod verify;

pub use build::{build, BuildOptions};
pub use push::{push, PushOptions, PushReport};
pub use report::BuildReport;
