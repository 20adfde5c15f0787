//! The JSON shapes of the HTTP API.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Search parameters, from the query string (`GET /search`) or a JSON body (`POST /search`).
/// An unknown parameter is an error (`illegal_argument` naming it), never ignored.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Query text (`query` is accepted as an alias).
    #[serde(alias = "query")]
    #[schema(required = true)]
    #[param(required = true)]
    pub q: Option<String>,
    /// Hits per page (default 10).
    #[schema(minimum = 0, maximum = 10000)]
    #[param(minimum = 0, maximum = 10000)]
    pub size: Option<i64>,
    /// Offset of the page (default 0).
    #[schema(minimum = 0, maximum = 10000)]
    #[param(minimum = 0, maximum = 10000)]
    pub from: Option<i64>,
    /// Deadline in milliseconds (default from the root's configuration).
    #[schema(minimum = 1)]
    #[param(minimum = 1)]
    pub timeout_ms: Option<i64>,
    /// Answer with the shards that did respond (default true); false → 503/504 instead.
    pub allow_partial: Option<bool>,
    /// `global` (default: exact, the same scores as one index) or `local` (per-shard
    /// statistics, one round trip less on a statistics-cache miss, scores depend on layout).
    pub scoring: Option<String>,
    /// Comma-separated text fields to return highlighted snippets of (`hits[].snippets`).
    pub snippet: Option<String>,
    /// Report per shard which replica answered, attempts, hedges and times (`profile`).
    pub profile: Option<bool>,
    /// `true` (default): count every match; a number N: count exactly up to N, then report
    /// N with `total_hits_relation: "gte"` (leaves skip non-competitive documents past N);
    /// `false`: do not count (`total_hits` is a lower bound, `gte`).
    #[schema(value_type = Option<serde_json::Value>)]
    #[param(value_type = Option<String>)]
    pub track_total_hits: Option<TrackTotalHitsParam>,
    /// `strict` (default: the query language; a syntax error is a 400) or `lenient` (the
    /// text never fails to parse: what the language cannot read is taken as text).
    pub query_mode: Option<String>,
    /// Filter clauses in the query language (GET: repeat `filter`; POST: a string or an
    /// array), all required, none scoring: they restrict matches without changing scores.
    #[schema(value_type = Option<Vec<String>>)]
    #[param(value_type = Option<Vec<String>>, style = Form, explode)]
    pub filter: Option<Filters>,
    /// Longest snippet in characters (default 150, at most 10,000).
    #[schema(minimum = 1, maximum = 10000)]
    #[param(minimum = 1, maximum = 10000)]
    pub snippet_size: Option<i64>,
    /// Text put before each highlighted match (default `<b>`); inserted as is, the
    /// document's text around it is HTML-escaped.
    pub snippet_pre_tag: Option<String>,
    /// Text put after each highlighted match (default `</b>`).
    pub snippet_post_tag: Option<String>,
    /// Each hit carries `explanation`: its BM25 score broken down, computed with the
    /// cluster-wide statistics (the numbers one index would print).
    pub explain: Option<bool>,
    /// `FIELD:asc|desc[,FIELD:asc|desc...]` over fast fields (u64, i64, f64, date,
    /// keyword) and `_score`; ties by id; hits carry their `sort` values.
    pub sort: Option<String>,
    /// The last hit's `sort` array (its values, then its id): the next page starts after
    /// it. Without `sort`, pages by score (`sort` = score, then id). GET: the array as JSON.
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    #[param(value_type = Option<String>)]
    pub search_after: Option<SearchAfter>,
    /// Aggregations over the matches, Elasticsearch-shaped (POST: an object; GET: its JSON
    /// text); `aggregations` is accepted as an alias.
    #[serde(alias = "aggregations")]
    #[schema(value_type = Option<Object>)]
    #[param(value_type = Option<String>)]
    pub aggs: Option<AggsParam>,
    /// Keep-alive of a point in time (`30s`, `1m`, at most `1h`): without `pit_id`, opens
    /// one (the answer carries its `pit_id`); with it, keeps it open that much longer.
    pub pit: Option<String>,
    /// A point in time to read: every page sees the documents it saw when opened.
    pub pit_id: Option<String>,
    /// Stored fields each hit returns: comma-separated names (GET) or a string or an array
    /// of strings (POST), a trailing `*` matching a prefix; default `*` (all). Unknown names
    /// match nothing.
    #[schema(value_type = Option<serde_json::Value>)]
    #[param(value_type = Option<String>)]
    pub fields: Option<Filters>,
    /// Indented JSON (any value but `false`; also on every other endpoint).
    #[schema(value_type = Option<serde_json::Value>)]
    #[param(value_type = Option<String>)]
    pub pretty: Option<serde::de::IgnoredAny>,
}

/// `aggs` as given: a JSON object (POST) or its JSON text (GET).
#[derive(Debug, Clone, PartialEq)]
pub struct AggsParam(pub Value);

impl<'de> Deserialize<'de> for AggsParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            v @ Value::Object(_) => Ok(AggsParam(v)),
            Value::String(s) => match serde_json::from_str(&s) {
                Ok(v @ Value::Object(_)) => Ok(AggsParam(v)),
                Ok(_) => Err(serde::de::Error::custom("aggs must be a JSON object")),
                Err(e) => Err(serde::de::Error::custom(format!(
                    "aggs is not valid JSON: {e}"
                ))),
            },
            _ => Err(serde::de::Error::custom("aggs must be a JSON object")),
        }
    }
}

/// The body of `DELETE /pit`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PitDeleteRequest {
    /// The point in time to close (`id` accepted as an alias).
    #[serde(alias = "id")]
    pub pit_id: String,
}

/// The answer to `DELETE /pit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PitDeleteResponse {
    /// Always true (nothing open is a 404).
    pub succeeded: bool,
    /// Shards whose searcher was released.
    pub num_freed: u32,
}

/// The answer to `GET /documents/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentResponse {
    /// External id.
    pub id: String,
    /// Shard holding it.
    pub shard: usize,
    /// Always true (a missing document is a 404).
    pub found: bool,
    /// Its stored fields.
    #[schema(value_type = Object)]
    pub fields: Value,
}

/// `search_after` as given: a JSON array (POST) or its JSON text (GET).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchAfter(pub String);

impl<'de> Deserialize<'de> for SearchAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::Array(_) => Ok(SearchAfter(v.to_string())),
            Value::String(s) => Ok(SearchAfter(s)),
            _ => Err(serde::de::Error::custom(
                "search_after must be the last hit's `sort` array",
            )),
        }
    }
}

/// `filter` as given: one clause or several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub Vec<String>);

impl<'de> Deserialize<'de> for Filters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(d) {
            Ok(OneOrMany::One(s)) => Ok(Filters(vec![s])),
            Ok(OneOrMany::Many(v)) => Ok(Filters(v)),
            Err(_) => Err(serde::de::Error::custom(
                "expected a string or an array of strings",
            )),
        }
    }
}

/// `track_total_hits` as given: a boolean or a count, in JSON or in a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackTotalHitsParam {
    /// `true` or `false`.
    Bool(bool),
    /// A count (negative numbers are refused by validation).
    Number(i64),
}

impl<'de> Deserialize<'de> for TrackTotalHitsParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TrackTotalHitsParam;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a non-negative integer")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(TrackTotalHitsParam::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TrackTotalHitsParam::Number(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(TrackTotalHitsParam::Number)
                    .map_err(|_| E::custom("track_total_hits is too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "true" => Ok(TrackTotalHitsParam::Bool(true)),
                    "false" => Ok(TrackTotalHitsParam::Bool(false)),
                    n => n.parse().map(TrackTotalHitsParam::Number).map_err(|_| {
                        E::custom(format!(
                            "track_total_hits must be true, false or a non-negative integer, got {n:?}"
                        ))
                    }),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A search answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// Wall time at the root, in milliseconds.
    pub took_ms: u64,
    /// Some shard did not answer before the deadline.
    pub timed_out: bool,
    /// Some shard is missing from the result.
    pub partial: bool,
    /// Matching documents over the shards that answered.
    pub total_hits: u64,
    /// `eq`: `total_hits` is exact; `gte`: a lower bound (`track_total_hits=false`, or a
    /// number that the count reached).
    #[schema(value_type = String)]
    pub total_hits_relation: &'static str,
    /// Coverage.
    pub shards: ShardsReport,
    /// The page of hits, best first.
    pub hits: Vec<Hit>,
    /// What happened at each shard, when asked with `profile=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The aggregations asked (`aggs`), by name, Elasticsearch-shaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub aggregations: Option<serde_json::Map<String, Value>>,
    /// The point in time the search read (`pit`, `pit_id`): pass it to the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pit_id: Option<String>,
}

/// Per-shard calls of both phases.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Profile {
    /// Wall time of each phase at the root, in milliseconds.
    pub phases: Phases,
    /// Search phase, one entry per shard.
    pub search: Vec<ShardProfile>,
    /// Fetch phase, one entry per shard with hits on the page.
    pub fetch: Vec<ShardProfile>,
    /// How each aggregation was computed (terms: the rounds it took to be exact).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<AggProfile>,
}

/// Wall time of each phase of one search at the root, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Phases {
    /// Parsing and validating the query.
    pub parse_ms: f64,
    /// Global statistics (near 0 and `stats_cached` when the root had every term).
    pub stats_ms: f64,
    /// The statistics came from the root's tables or cache (no `TermStats` calls).
    pub stats_cached: bool,
    /// Where the statistics came from: `table` (the shards' dictionaries held at the root),
    /// `cache` (terms of earlier queries), `leaves` (a `TermStats` round trip); absent when
    /// scoring with local statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_source: Option<String>,
    /// The scatter of `Search` calls (with the documents, under query-and-fetch).
    pub search_ms: f64,
    /// Merging the shards' lists.
    pub merge_ms: f64,
    /// Fetching the page's documents (0 under query-and-fetch).
    pub fetch_ms: f64,
    /// Query-and-fetch was used.
    pub fused_fetch: bool,
    /// From the start of the search to the end of the gather (before the response is
    /// serialized). Minus the slowest shard's call, the root's own cost.
    #[serde(default)]
    pub total_ms: f64,
}

/// Which shards answered.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShardsReport {
    /// Shards in the cluster.
    pub total: usize,
    /// Shards whose answer is in the result.
    pub successful: usize,
    /// Shards missing from the result.
    pub failed: usize,
    /// Why each missing shard is missing (one entry per failed attempt).
    pub failures: Vec<ShardFailure>,
}

/// One failed attempt at a shard.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShardFailure {
    /// Shard number.
    pub shard: usize,
    /// Replica address, when one was tried.
    pub replica: Option<String>,
    /// What went wrong.
    pub reason: String,
}

/// One hit.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    /// External id.
    pub id: String,
    /// BM25 score.
    pub score: f32,
    /// Shard that holds the document.
    pub shard: usize,
    /// Stored fields: the leaf's JSON object passed through as is (not parsed and
    /// re-serialized at the root).
    #[schema(value_type = Object)]
    pub fields: Box<RawValue>,
    /// Highlighted snippets (matched terms in `<b>…</b>`), when asked with `snippet=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub snippets: Option<Map<String, Value>>,
    /// The score broken down (tantivy's explanation: `value`, `description`, `details`),
    /// with `explain=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<Box<RawValue>>,
    /// A sorted search's values for this hit, in the order of the sort keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    pub sort: Option<Box<RawValue>>,
}

/// One call to one replica, for `profile=true`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptProfile {
    /// Replica address.
    pub replica: String,
    /// `ok`, `cancelled` (another call won), `timed out`, or the error.
    pub outcome: String,
    /// Milliseconds from the request's scatter start to this call's launch.
    pub started_ms: f64,
    /// Milliseconds the call took (until its answer or cancellation).
    pub took_ms: f64,
    /// Sent as a hedge (not after an error).
    pub hedge: bool,
    /// Shards the node-level call carried (this one included).
    pub node_shards: usize,
}

/// What happened at one shard, for `profile=true`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ShardProfile {
    /// Shard number.
    pub shard: usize,
    /// Replica whose answer was used.
    pub replica: Option<String>,
    /// A hedge was sent.
    pub hedged: bool,
    /// Every call made.
    pub attempts: Vec<AttemptProfile>,
    /// Milliseconds until the shard's outcome.
    pub took_ms: f64,
    /// Milliseconds the answering leaf reports it spent on this shard (search calls), so
    /// the root's own cost (transport, queueing, gather) is `took_ms - leaf_took_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_took_ms: Option<f64>,
}

/// How an aggregation was computed (`profile.aggregations`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AggProfile {
    /// Its name.
    pub name: String,
    /// `terms`, or `merged` for tantivy's (one round, merged exactly).
    pub kind: &'static str,
    /// Rounds of calls to the shards it took (1: the search's own).
    pub rounds: u32,
    /// Shards asked in each round.
    pub shards_per_round: Vec<usize>,
}

/// Serializes a 64-bit identifier (a generation, digest or incarnation) as a decimal string:
/// JavaScript numbers and jq hold integers exactly only up to 2^53.
pub fn u64_as_string<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
