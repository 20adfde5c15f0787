//! The web page at `/`: one HTML file with its script and style, compiled into the binary (no
//! CDN, no network). Search (lenient text, facets from terms aggregations on the schema's
//! keyword fields, snippets, paging) with the per-shard view of each query from `profile`
//! (which replica answered, hedges, failovers, the leaf's own time, coverage and failures);
//! and the cluster (`#cluster`: shards, replicas, their state, latency estimates, statistics
//! tables, caches) from `/cluster`.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("ui/index.html");

/// `GET /`.
pub async fn index() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self'",
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}
