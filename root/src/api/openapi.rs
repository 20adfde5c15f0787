//! `GET /openapi.json`: the HTTP API described as OpenAPI 3.1, generated (utoipa) from the
//! types the handlers read and write — [`SearchParams`], [`SearchResponse`], the ingest and
//! error bodies — so the description cannot drift from what is parsed and sent. The
//! operations below only carry each path's description.

#![allow(dead_code)] // the operation stubs exist for their attributes

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api_types::{
    DocumentResponse, PitDeleteRequest, PitDeleteResponse, SearchParams, SearchResponse,
};
use crate::error::ApiErrorResponse;
use crate::write::ingest::{BulkResponse, DeleteResponse};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Scatter",
        description = "Sharded scatter/gather full-text search: exact global BM25, filters, \
                       sorting, exact aggregations, cursors and points in time over many shards, \
                       answered as one index would. Errors are `{\"error\": {\"type\", \"reason\"}}`; \
                       unknown parameters are errors.",
    ),
    paths(
        search_get, search_post, pit_delete, documents_post, document_get, document_delete,
        schema_get, cluster_get, replicas_check, healthz, readyz, metrics
    ),
    components(schemas(ApiErrorResponse)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the `Authorization: Bearer KEY` scheme (`--api-key-file`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /openapi.json` (built once).
pub async fn openapi_json() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().expect("serializable"));
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.as_str(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/search", tag = "search", params(SearchParams),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Hits (and aggregations)", body = SearchResponse),
        (status = 400, description = "Bad query or parameter", body = ApiErrorResponse),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `search` scope", body = ApiErrorResponse),
        (status = 404, description = "`pit_expired`: the point in time is gone", body = ApiErrorResponse),
        (status = 413, description = "Needs more memory than the root's whole budget", body = ApiErrorResponse),
        (status = 429, description = "Load shed, memory budget or point-in-time quota: retry after `Retry-After`", body = ApiErrorResponse),
        (status = 503, description = "Shards unavailable and `allow_partial=false`", body = ApiErrorResponse),
        (status = 504, description = "Deadline passed and `allow_partial=false`", body = ApiErrorResponse),
    ))]
fn search_get() {}

#[utoipa::path(post, path = "/search", tag = "search", request_body = SearchParams,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Hits (and aggregations)", body = SearchResponse),
        (status = 400, description = "Bad query, parameter or body", body = ApiErrorResponse),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `search` scope", body = ApiErrorResponse),
        (status = 404, description = "`pit_expired`: the point in time is gone", body = ApiErrorResponse),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not `application/json`", body = ApiErrorResponse),
        (status = 429, description = "Load shed: retry after `Retry-After`", body = ApiErrorResponse),
        (status = 503, description = "Shards unavailable and `allow_partial=false`", body = ApiErrorResponse),
        (status = 504, description = "Deadline passed and `allow_partial=false`", body = ApiErrorResponse),
    ))]
fn search_post() {}

#[utoipa::path(delete, path = "/pit", tag = "search", request_body = PitDeleteRequest,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Closed", body = PitDeleteResponse),
        (status = 400, description = "Not a point in time id, or a bad body", body = ApiErrorResponse),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `search` scope", body = ApiErrorResponse),
        (status = 404, description = "`pit_expired`: nothing of it was open", body = ApiErrorResponse),
        (status = 415, description = "Not `application/json`", body = ApiErrorResponse),
    ))]
fn pit_delete() {}

#[utoipa::path(post, path = "/documents", tag = "documents",
    request_body(content = String, content_type = "application/x-ndjson",
                 description = "One JSON document per line (upserts by id)"),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Per-line outcomes", body = BulkResponse),
        (status = 400, description = "Nothing could be attempted", body = ApiErrorResponse),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `write` scope", body = ApiErrorResponse),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Not `application/x-ndjson` or `application/json`", body = ApiErrorResponse),
        (status = 429, description = "Every line refused for overload, or the memory budget is taken", body = BulkResponse),
        (status = 503, description = "No schema known yet", body = ApiErrorResponse),
    ))]
fn documents_post() {}

#[utoipa::path(get, path = "/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "External id")),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The document", body = DocumentResponse),
        (status = 400, description = "Id longer than 512 bytes", body = ApiErrorResponse),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `search` scope", body = ApiErrorResponse),
        (status = 404, description = "No such document", body = ApiErrorResponse),
        (status = 429, description = "Load shed: retry after `Retry-After`", body = ApiErrorResponse),
        (status = 503, description = "No replica of its shard answered", body = ApiErrorResponse),
    ))]
fn document_get() {}

#[utoipa::path(delete, path = "/documents/{id}", tag = "documents",
    params(("id" = String, Path, description = "External id")),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Deleted (or not found: still a success)", body = DeleteResponse),
        (status = 400, description = "Id longer than 512 bytes", body = ApiErrorResponse),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `write` scope", body = ApiErrorResponse),
        (status = 429, description = "Replicas overloaded", body = ApiErrorResponse),
        (status = 503, description = "Not acknowledged by a current replica", body = ApiErrorResponse),
    ))]
fn document_delete() {}

#[utoipa::path(get, path = "/schema", tag = "cluster", security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The cluster's schema (fields, kinds, options)", body = Object),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `search` scope", body = ApiErrorResponse),
        (status = 503, description = "No replica answered yet", body = ApiErrorResponse),
    ))]
fn schema_get() {}

#[utoipa::path(get, path = "/cluster", tag = "cluster", security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Shards, replicas and their state, caches, statistics tables", body = Object),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `admin` scope", body = ApiErrorResponse),
    ))]
fn cluster_get() {}

#[utoipa::path(get, path = "/cluster/replicas/check", tag = "cluster", security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Every replica compared document by document", body = Object),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `admin` scope", body = ApiErrorResponse),
    ))]
fn replicas_check() {}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Object)))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Every shard has a replica up", body = Object),
        (status = 503, description = "Some shard has none", body = Object),
    ))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "cluster", security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No or unknown API key", body = ApiErrorResponse),
        (status = 403, description = "The key lacks the `admin` scope", body = ApiErrorResponse),
    ))]
fn metrics() {}
