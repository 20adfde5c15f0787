//! One search, as phases of a validated plan ([`search::Search`]): global BM25 statistics
//! ([`stats`], [`stats_table`]), the scatter to one replica of every shard ([`search`]), the
//! deterministic merge (`scatter_core::merge`), the fetch of the final page ([`fetch`]),
//! aggregations ([`aggregate`], [`aggs`], [`terms_agg`]), points in time ([`pit`],
//! [`pit_id`]) and the result cache ([`cache`]); [`root`] runs them end to end.

pub mod agg_checks;
pub mod agg_es;
pub mod aggregate;
pub mod aggs;
pub mod cache;
pub mod fetch;
pub mod pit;
pub mod pit_id;
pub mod root;
pub mod search;
pub mod stats;
pub mod stats_table;
pub mod terms_agg;
