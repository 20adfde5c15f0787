//! API keys (`--api-key-file`): each request carries `Authorization: Bearer KEY`; the key's
//! scopes decide what it may do — `search` (search, points in time, reading a document),
//! `write` (adding and deleting documents), `admin` (cluster state, replica checks,
//! metrics). No key or an unknown key: 401; a key without the scope: 403; both JSON errors.
//! `/healthz`, `/readyz`, the web page and `/openapi.json` stay open. Keys are compared in
//! constant time (every key, every byte), so response times do not reveal how much of a key
//! was right.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Search, points in time, reading documents.
    Search,
    /// Adding and deleting documents.
    Write,
    /// Cluster state, replica checks, metrics.
    Admin,
}

impl Scope {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "search" => Scope::Search,
            "write" => Scope::Write,
            "admin" => Scope::Admin,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Search => "search",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// The keys a root accepts, with their scopes.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(Vec<u8>, Vec<Scope>)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

impl ApiKeys {
    /// Reads a key file: one key per line followed by its scopes (`KEY search,write`);
    /// blank lines and lines starting with `#` are skipped.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading API key file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses the text of a key file.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let key = parts.next().expect("a non-empty line");
            let scopes: Vec<Scope> = match parts.next() {
                Some(list) => list
                    .split(',')
                    .map(|s| {
                        Scope::parse(s.trim()).with_context(|| {
                            format!("line {}: unknown scope {s:?} (search, write, admin)", n + 1)
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
                None => bail!(
                    "line {}: a key needs its scopes (search, write, admin)",
                    n + 1
                ),
            };
            if parts.next().is_some() {
                bail!("line {}: `KEY scope,scope` expected", n + 1);
            }
            if key.len() < 16 {
                bail!("line {}: keys must be at least 16 characters", n + 1);
            }
            keys.push((key.as_bytes().to_vec(), scopes));
        }
        if keys.is_empty() {
            bail!("no keys");
        }
        Ok(ApiKeys { keys })
    }

    /// The scopes of `key`, comparing it with every key in constant time.
    fn scopes_of(&self, key: &[u8]) -> Option<&[Scope]> {
        let mut found = None;
        for (k, scopes) in &self.keys {
            if scatter_proto::cluster_auth::constant_time_eq(k, key) {
                found = Some(scopes.as_slice());
            }
        }
        found
    }
}

/// The scope a request needs (`None`: open to all).
pub fn scope_for(method: &Method, path: &str) -> Option<Scope> {
    match path {
        "/healthz" | "/readyz" | "/" | "/openapi.json" => None,
        p if p.starts_with("/ui/") => None,
        "/search" | "/pit" | "/schema" => Some(Scope::Search),
        "/documents" => Some(Scope::Write),
        p if p.starts_with("/documents/") => Some(if method == Method::GET {
            Scope::Search
        } else {
            Scope::Write
        }),
        _ => Some(Scope::Admin),
    }
}

/// The middleware: lets a request through when its key has the scope the path needs.
pub async fn middleware(
    State(keys): State<Arc<ApiKeys>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(scope) = scope_for(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(key) = given else {
        return unauthorized("an API key is required: `Authorization: Bearer KEY`");
    };
    match keys.scopes_of(key.as_bytes()) {
        None => unauthorized("unknown API key"),
        Some(scopes) if scopes.contains(&scope) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key lacks the `{}` scope", scope.name()),
        )
        .into_response(),
    }
}

fn unauthorized(reason: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", reason).into_response();
    r.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_refuses_bad_files() {
        let keys = ApiKeys::parse(
            "# comment\n\nsearch-only-key-123 search\nwriter-key-4567890 search,write\n",
        )
        .unwrap();
        assert_eq!(
            keys.scopes_of(b"search-only-key-123"),
            Some(&[Scope::Search][..])
        );
        assert_eq!(keys.scopes_of(b"search-only-key-12"), None);
        assert_eq!(keys.scopes_of(b"search-only-key-1234"), None);
        assert!(ApiKeys::parse("short search").is_err());
        assert!(ApiKeys::parse("long-enough-key-here root").is_err());
        assert!(ApiKeys::parse("long-enough-key-here").is_err());
        assert!(ApiKeys::parse("# nothing\n").is_err());
    }

    #[test]
    fn paths_need_their_scopes() {
        assert_eq!(scope_for(&Method::GET, "/healthz"), None);
        assert_eq!(scope_for(&Method::GET, "/"), None);
        assert_eq!(scope_for(&Method::POST, "/search"), Some(Scope::Search));
        assert_eq!(scope_for(&Method::DELETE, "/pit"), Some(Scope::Search));
        assert_eq!(scope_for(&Method::GET, "/documents/x"), Some(Scope::Search));
        assert_eq!(
            scope_for(&Method::DELETE, "/documents/x"),
            Some(Scope::Write)
        );
        assert_eq!(scope_for(&Method::POST, "/documents"), Some(Scope::Write));
        assert_eq!(scope_for(&Method::GET, "/cluster"), Some(Scope::Admin));
        assert_eq!(scope_for(&Method::GET, "/metrics"), Some(Scope::Admin));
        let eq = scatter_proto::cluster_auth::constant_time_eq;
        assert!(eq(b"abc", b"abc"));
        assert!(!eq(b"abc", b"abd"));
        assert!(!eq(b"abc", b"abcd"));
    }
}
