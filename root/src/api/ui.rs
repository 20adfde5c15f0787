//! The web page at `/`: one HTML file with its script and style, compiled into the binary (no
//! CDN, no network). A landing summary (documents, shards, fields, examples taken from the
//! data); search as you type (lenient text, debounced) with the query, filters, sort, page size
//! and page in the URL; facets from the schema's fast fields (terms for keywords, magnitude
//! ranges for numbers, yearly histograms for dates: a click adds the filter); sort and page-size
//! controls; a document view (every stored field and its JSON, from `GET /documents/{id}`); the
//! per-shard view of each query from `profile` (which replica answered, hedges, failovers, the
//! leaf's own time, with a legend, and the root's phases); and the cluster (`#cluster`:
//! replicas, their state and latency estimates, statistics tables and caches as tables). It
//! works from 400 px wide up (tests/web_page.rs checks what is visible at 1400 and 400 px).

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
