//! Scatter index tools: bulk-load a JSONL corpus into N shard indexes.
//!
//! - [`jsonl`]: reading JSONL (plain or gzip) line by line, with line numbers and byte counts;
//! - [`build`]: routing each document to its shard and writing the shards in parallel;
//! - [`report`]: what a build did (docs per shard, skew, bad lines, speed);
//! - [`verify`]: proof that a sharded cluster ranks exactly like one index;
//! - [`queries`]: query files (plain, TSV, JSONL).

pub mod build;
pub mod jsonl;
pub mod queries;
pub mod report;
pub mod verify;

pub use build::{build, BuildOptions};
pub use report::BuildReport;
