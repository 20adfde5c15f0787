//! What a client asked an answer to look like, as Elasticsearch users expect: `fields=`
//! (which stored fields each hit returns) and `pretty` (indented JSON, on every endpoint).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api_types::SearchResponse;
use crate::error::ApiError;

/// Most names in `fields`.
pub const MAX_FIELD_PATTERNS: usize = 100;
/// Longest name in `fields`.
pub const MAX_FIELD_PATTERN_LEN: usize = 256;
/// Largest answer `pretty` re-indents (beyond, or of unknown size, it is sent as is:
/// indenting takes a few copies of it, outside the searches' memory budget).
const MAX_PRETTY_BYTES: usize = 16 << 20;

/// Which stored fields each hit returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelection {
    /// Exact names, or prefixes (a name ending in `*`, kept without it).
    patterns: Vec<(String, bool)>,
}

impl FieldSelection {
    /// Reads `fields` (each item comma-separated); `None` when every field is asked (`*`);
    /// none named (`fields=`): no stored fields, ids and scores only.
    pub fn parse(items: &[String]) -> Result<Option<Self>, ApiError> {
        let names: Vec<&str> = items
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.len() > MAX_FIELD_PATTERNS {
            return Err(ApiError::bad_param(format!(
                "fields: {} names; at most {MAX_FIELD_PATTERNS}",
                names.len()
            )));
        }
        if let Some(long) = names.iter().find(|n| n.len() > MAX_FIELD_PATTERN_LEN) {
            return Err(ApiError::bad_param(format!(
                "fields: a name of {} bytes; at most {MAX_FIELD_PATTERN_LEN}",
                long.len()
            )));
        }
        if names.contains(&"*") {
            return Ok(None);
        }
        let patterns = names
            .into_iter()
            .map(|n| match n.strip_suffix('*') {
                Some(prefix) => (prefix.to_string(), true),
                None => (n.to_string(), false),
            })
            .collect();
        Ok(Some(FieldSelection { patterns }))
    }

    fn wants(&self, name: &str) -> bool {
        self.patterns.iter().any(|(p, prefix)| match prefix {
            true => name.starts_with(p.as_str()),
            false => name == p,
        })
    }

    /// Keeps only the selected fields of every hit.
    pub fn apply(&self, resp: &mut SearchResponse) {
        for hit in &mut resp.hits {
            let Ok(fields) = serde_json::from_str::<Map<String, Value>>(hit.fields.get()) else {
                continue;
            };
            let kept: Map<String, Value> =
                fields.into_iter().filter(|(k, _)| self.wants(k)).collect();
            if let Ok(raw) = serde_json::to_string(&kept).and_then(RawValue::from_string) {
                hit.fields = raw;
            }
        }
    }
}

/// Whether a query string asks for `pretty` (present, with any value but `false`).
fn asks_pretty(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == "pretty" && v != "false"
        })
    })
}

/// Middleware: with `pretty` in the query string, a JSON answer is re-sent indented.
pub async fn pretty(req: Request, next: Next) -> Response {
    let wanted = asks_pretty(req.uri().query());
    let resp = next.run(req).await;
    let json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !wanted || !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let known = axum::body::HttpBody::size_hint(&body).exact();
    if known.is_none_or(|n| n > MAX_PRETTY_BYTES as u64) {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PRETTY_BYTES).await else {
        return ApiError::unavailable("the answer could not be read to indent").into_response();
    };
    let indented = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| serde_json::to_vec_pretty(&v).ok());
    let body = match indented {
        Some(mut v) => {
            v.push(b'\n');
            v
        }
        None => bytes.to_vec(),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_and_pretty_flags() {
        assert_eq!(FieldSelection::parse(&["*".into()]).unwrap(), None);
        let nothing = FieldSelection::parse(&[]).unwrap().unwrap();
        assert!(!nothing.wants("title"));
        let s = FieldSelection::parse(&["title, ver*".into()])
            .unwrap()
            .unwrap();
        assert!(s.wants("title") && s.wants("version") && !s.wants("body"));
        let many = vec!["a,".repeat(MAX_FIELD_PATTERNS + 1)];
        assert!(FieldSelection::parse(&many).is_err());
        assert!(asks_pretty(Some("q=a&pretty")) && asks_pretty(Some("pretty=true")));
        assert!(!asks_pretty(Some("pretty=false")) && !asks_pretty(Some("q=pretty")));
        assert!(!asks_pretty(None));
    }
}
