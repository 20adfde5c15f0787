//! Pieces every Scatter component shares, so that index build, leaf and root agree:
//! the schema ([`schema`]), the document conversion ([`document`]), the routing of an id to a
//! shard ([`routing`]), the cluster manifest ([`manifest`]), query parsing ([`query`]) and the
//! global rank order of hits with the merge of shards' ranked lists ([`merge`]).

pub mod clock;
pub mod cpu;
pub mod document;
pub mod expand_ast;
pub mod expansion;
pub mod limits;
pub mod manifest;
pub mod merge;
pub mod query;
pub mod random;
pub mod routing;
pub mod schema;
pub mod telemetry;

pub use manifest::{Manifest, ShardMeta};
pub use routing::{Router, RoutingParams};
pub use schema::{FieldKind, FieldSpec, ScatterSchema};
