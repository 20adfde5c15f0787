//! Scatter root: the HTTP front of a sharded cluster. Folders are layers and imports run one
//! way, top to bottom:
//!
//! - [`api`]: HTTP — routes, parameter validation, API keys, TLS, OpenAPI, the web page,
//!   connection and admission limits, the memory budget;
//! - [`query`]: one search as phases of a validated plan — global statistics, the scatter
//!   over shards, the merge, the fetch of the page, aggregations, points in time, the cache;
//! - [`write`]: live writes to every replica, versions, probes, repair and replica checks;
//! - [`cluster`]: shard groups, replicas and leaf nodes; the fan-out with failover, hedging
//!   and balancing; the leaf-call envelope (request id, deadline);
//! - at the bottom, used by every layer: [`api_types`] (the JSON shapes of the API) and
//!   [`error`] (every error's status and body); [`config`] is the settings type, read by
//!   [`api`] when a root starts.

pub mod api;
pub mod api_types;
pub mod cluster;
pub mod config;
pub mod error;
pub mod query;
pub mod write;

pub use api::http::{serve, BoundRoot};
pub use config::RootConfig;
