//! Scatter root: the HTTP front of a sharded cluster. The files are named after the steps of
//! a query, so the scatter and the gather can be found by name:
//!
//! - [`http`]: the axum API (`/search`, `/healthz`, `/readyz`, `/cluster`), parameters, errors;
//! - [`root`]: one search end to end: validate, scatter, merge, fetch, report coverage;
//! - [`fanout`]: the scatter: one call per leaf node, all shards under one deadline, with
//!   failover and hedging per shard;
//! - [`retry`]: the retry policy: what a call's result means for its shards;
//! - [`hedge`]: hedge delay (recent p95) and the hedge budget;
//! - [`balance`]: replica choice, power of two choices over peak-EWMA load;
//! - [`merge`]: the gather: k-way merge of per-shard ranked lists, deterministic on ties;
//! - [`stats`]: global BM25 statistics (summed over shards, cached) for exact scoring;
//! - [`fetch`]: the fetch phase: stored fields of the final page only, by id, from any replica;
//! - [`cache`]: result cache keyed by query, parameters and leaf generations;
//! - [`ingest`]: live writes (`POST /documents`, `DELETE /documents/{id}`) to every replica;
//! - [`clock`]: the version clock every write is stamped from;
//! - [`shard_write`]: one write to every replica of a shard, and when it is acknowledged;
//! - [`repair`]: stale or diverging replicas, and their repair by merge;
//! - [`history`]: replicas opened since their history was confirmed, and their confirmation;
//! - [`request_id`]: one id per request, in logs, response header and leaf calls;
//! - [`cluster`]: the shard groups, their replicas and the leaf nodes (the registry);
//! - [`replica`]: one shard on one node: health, ejection, staleness;
//! - [`replica_check`]: replicas compared document by document (`/cluster/replicas/check`);
//! - [`leaf_node`]: one leaf node: its gRPC channel and load (tower's peak EWMA);
//! - [`prober`]: health probes (`Info`) and the checks on what replicas report;
//! - [`cluster_schema`]: the schema, parser and routing every replica must share;
//! - [`config`]: the cluster layout (`--shard` flags or a cluster file).

pub mod agg_checks;
pub mod agg_es;
pub mod aggregate;
pub mod aggs;
pub mod api;
pub mod auth;
pub mod balance;
pub mod bulk_body;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod cluster_schema;
pub mod config;
pub mod connections;
pub mod error;
pub mod fanout;
pub mod fetch;
pub mod front_door;
pub mod hedge;
pub mod history;
pub mod http;
pub mod ingest;
pub mod leaf_node;
pub mod memory;
pub mod merge;
pub mod openapi;
pub mod pit;
pub mod pit_id;
pub mod prober;
pub mod repair;
pub mod replica;
pub mod replica_check;
pub mod request_id;
pub mod retry;
pub mod root;
pub mod search;
pub mod shard_write;
pub mod stats;
pub mod stats_table;
pub mod terms_agg;
pub mod tls;
pub mod ui;
pub mod validate;

pub use config::RootConfig;
pub use http::{serve, BoundRoot};
