//! Request ids: every HTTP request gets one (the client's `x-request-id` header, or a new
//! one), it is on every log line of the request (a tracing span), in the response's
//! `x-request-id` header, and in the `x-request-id` metadata of every leaf call made for it,
//! so one id finds a query's lines in the root's and the leaves' logs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use scatter_core::random::SharedRng;
use tracing::Instrument;

/// Header (HTTP) and metadata key (gRPC) carrying the id.
pub const HEADER: &str = "x-request-id";

/// Longest id accepted from a client (longer ones are replaced).
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// A new id: 16 hex digits.
pub fn new_id() -> String {
    static RNG: std::sync::OnceLock<SharedRng> = std::sync::OnceLock::new();
    let rng = RNG.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        SharedRng::new(now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32)
    });
    format!("{:016x}", rng.next_u64())
}

/// The id of the request this task serves, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The envelope of every leaf call: `msg` with the current request id (when serving a request)
/// and its deadline, `timeout` from now (the `grpc-timeout` metadata the leaf stops at).
pub fn request<T>(msg: T, timeout: std::time::Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    // Parsed straight from the task-local: no copy of the id per leaf call.
    if let Ok(Ok(value)) = REQUEST_ID.try_with(|id| id.parse()) {
        req.metadata_mut().insert(HEADER, value);
    }
    req
}

/// axum middleware: assigns the id, runs the request in its span and task-local scope,
/// and returns the id in the response header.
pub async fn middleware(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_id);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, value);
    }
    resp
}
