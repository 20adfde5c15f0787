//! What the root checks before a request reaches its handler: one admission limit shared
//! by every search-like route, the `Host` header (`--allowed-hosts`, against DNS
//! rebinding), CORS (`--cors-origin`; off by default), the content type of writes (no
//! CORS-simple type, so a web page cannot post documents without a preflight), and points
//! in time per client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Admits a search-like request if one of the shared permits is free; else 429 at once
/// (load shedding: a request never queues).
pub async fn admit(
    State(permits): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => overloaded(),
    }
}

/// The answer to a request refused by load shedding.
pub fn overloaded() -> Response {
    metrics::counter!("scatter_root_search_shed_total").increment(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "the root is running as many searches as it may (--max-concurrent-searches): retry \
         after a moment",
    )
    .into_response()
}

/// Refuses a request whose `Host` (port aside) is not in `allowed` (421).
pub async fn check_host(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("");
    if host_allowed(host, &allowed) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            format!("Host {host:?} is not one this root serves (--allowed-hosts)"),
        )
        .into_response()
    }
}

/// Whether `host` (`name`, `name:port`, `[v6]:port`) names one of `allowed`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// The CORS layer for `origins` (exact origins like `https://app.example.com`, or `*`).
pub fn cors(origins: &[String]) -> anyhow::Result<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| o.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--cors-origin: {e}"))?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(Duration::from_secs(600)))
}

/// A write's body must be declared `application/x-ndjson` or `application/json`: the
/// types a cross-site form or `fetch` may send without a preflight (`text/plain`, forms)
/// are refused (415).
pub fn check_write_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if ["application/x-ndjson", "application/json"]
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t))
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("Content-Type must be application/x-ndjson (or application/json), got {given:?}"),
    ))
}

/// Who a request comes from, for per-client limits: its API key when it gave one, else its
/// address.
pub fn client_of(headers: &HeaderMap, addr: Option<&ConnectInfo<SocketAddr>>) -> String {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (key, addr) {
        // Keys are never kept in clear: a hash names the client.
        (Some(k), _) => format!(
            "key:{:016x}",
            xxhash_rust::xxh3::xxh3_64(k.trim().as_bytes())
        ),
        (None, Some(ConnectInfo(a))) => format!("addr:{}", a.ip()),
        (None, None) => "local".into(),
    }
}

/// Points in time each client holds open (as far as this root knows: opened here, not yet
/// expired or closed here), capped per client so that one client cannot take every
/// shard's [`MAX_OPEN_PITS`](scatter_core::limits::MAX_OPEN_PITS).
#[derive(Default)]
pub struct PitQuota {
    open: Mutex<HashMap<String, Vec<(String, Instant)>>>,
}

/// Most points in time one client may hold open at once (default of `--max-pits-per-client`).
pub const DEFAULT_MAX_PITS_PER_CLIENT: usize = 100;

/// Most clients the quota tracks; past it the oldest-expiring entries are forgotten.
const MAX_CLIENTS: usize = 100_000;

/// An id standing for a point in time being opened (its slot is taken from the start, so
/// concurrent opens cannot overshoot the quota).
const OPENING: &str = "";

/// Longest an opening may hold its slot.
const OPENING_TIMEOUT: Duration = Duration::from_secs(120);

impl PitQuota {
    /// Takes one of `client`'s `max` slots for a point in time about to be opened; false
    /// when all are held. Follow with [`PitQuota::opened`] or [`PitQuota::abandoned`].
    pub fn reserve(&self, client: &str, max: usize) -> bool {
        let mut open = self.open.lock().expect("pit quota");
        let now = Instant::now();
        if open.len() >= MAX_CLIENTS && !open.contains_key(client) {
            open.retain(|_, list| {
                list.retain(|(_, e)| *e > now);
                !list.is_empty()
            });
        }
        let list = open.entry(client.to_string()).or_default();
        list.retain(|(_, expires)| *expires > now);
        if list.len() >= max {
            return false;
        }
        list.push((OPENING.to_string(), now + OPENING_TIMEOUT));
        true
    }

    /// The reserved slot of `client` now holds `pit_id`, kept until `expires`.
    pub fn opened(&self, client: &str, pit_id: String, expires: Instant) {
        let mut open = self.open.lock().expect("pit quota");
        let list = open.entry(client.to_string()).or_default();
        match list.iter_mut().find(|(id, _)| id == OPENING) {
            Some(slot) => *slot = (pit_id, expires),
            None => list.push((pit_id, expires)),
        }
    }

    /// Gives back a slot reserved for a point in time that was not opened.
    pub fn abandoned(&self, client: &str) {
        let mut open = self.open.lock().expect("pit quota");
        if let Some(list) = open.get_mut(client) {
            if let Some(i) = list.iter().position(|(id, _)| id == OPENING) {
                list.swap_remove(i);
            }
        }
    }

    /// Forgets `pit_id` (closed), whoever opened it.
    pub fn closed(&self, pit_id: &str) {
        let mut open = self.open.lock().expect("pit quota");
        for list in open.values_mut() {
            list.retain(|(id, _)| id != pit_id);
        }
        open.retain(|_, list| !list.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_types() {
        let allowed = vec!["localhost".to_string(), "::1".to_string()];
        assert!(host_allowed("localhost:8080", &allowed));
        assert!(host_allowed("LOCALHOST", &allowed));
        assert!(host_allowed("[::1]:80", &allowed));
        assert!(!host_allowed("evil.example:8080", &allowed));
        let mut h = HeaderMap::new();
        assert!(check_write_type(&h).is_err());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(check_write_type(&h).is_err());
        h.insert(
            header::CONTENT_TYPE,
            "application/x-ndjson; charset=utf-8".parse().unwrap(),
        );
        assert!(check_write_type(&h).is_ok());
    }

    #[test]
    fn pit_quota_counts_open_points_in_time() {
        let q = PitQuota::default();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(q.reserve("a", 2));
        assert!(q.reserve("a", 2));
        assert!(!q.reserve("a", 2), "slots are taken when reserved");
        q.opened("a", "p1".into(), later);
        q.abandoned("a");
        assert!(q.reserve("b", 2));
        assert!(q.reserve("a", 2));
        q.opened("a", "p2".into(), later);
        assert!(!q.reserve("a", 2));
        q.closed("p1");
        assert!(q.reserve("a", 2));
        q.opened("a", "p3".into(), Instant::now());
        assert!(q.reserve("a", 2), "expired ones do not count");
    }
}
