//! The cluster's schema, query parser, document converter and routing, learnt from the
//! first replica that answers `Info` (every other replica must report the same).

use scatter_core::document::DocConverter;
use scatter_core::query::ScatterQueryParser;
use scatter_core::{Router, RoutingParams, ScatterSchema};
use scatter_proto::v1::InfoResponse;
use tantivy::schema::Schema;

/// The cluster's schema and the query parser built from it (the same as the leaves').
pub struct ClusterSchema {
    /// The Scatter schema.
    pub schema: ScatterSchema,
    /// Its tantivy form.
    pub tantivy: Schema,
    /// Parser identical to the leaves'.
    pub parser: ScatterQueryParser,
    /// Schema fingerprint every replica must match.
    pub fingerprint: String,
    /// Routing of ids to shards, exactly as the shards were built with.
    pub router: Router,
    /// The routing parameters as the replicas report them (every replica must agree).
    pub routing_json: String,
    /// Validates documents of live ingest like the leaves do.
    pub converter: DocConverter,
}

impl ClusterSchema {
    /// The schema and routing a replica reports.
    pub(crate) fn from_info(info: &InfoResponse) -> Result<Self, String> {
        let schema = ScatterSchema::from_json(&info.schema_json)
            .map_err(|e| format!("bad schema from replica: {e:#}"))?;
        let routing: RoutingParams = serde_json::from_str(&info.routing_json)
            .map_err(|e| format!("bad routing from replica: {e}"))?;
        let router = Router::new(routing).map_err(|e| format!("bad routing: {e:#}"))?;
        let tantivy = schema.tantivy_schema();
        let parser = ScatterQueryParser::new(&schema, &tantivy);
        let converter = DocConverter::new(&schema, &tantivy);
        Ok(ClusterSchema {
            fingerprint: schema.fingerprint(),
            schema,
            tantivy,
            parser,
            router,
            routing_json: info.routing_json.clone(),
            converter,
        })
    }
}
