//! The HTTP API (axum): `/search` (GET and POST), `/documents` (POST NDJSON bulk),
//! `/documents/{id}` (GET, DELETE), `/healthz`, `/readyz`, `/cluster`, `/metrics`.
//! Parameters are validated here; every error is JSON `{"error": {"type", "reason"}}`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::Context;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::api::front_door::{client_of, PitQuota};
use crate::api::memory::MemoryBudget;
use crate::api::shaping::FieldSelection;
pub use crate::api::validate::validate;
use crate::api_types::{Filters, SearchParams};
use crate::cluster::Cluster;
use crate::config::RootConfig;
use crate::error::ApiError;
use crate::query::root::Root;
use crate::query::stats_table::{spawn_refresher, StatsTable};

pub use crate::api::validate::MAX_WINDOW;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// The root (cluster and caches).
    pub root: Arc<Root>,
    /// Configuration (defaults and limits).
    pub config: Arc<RootConfig>,
    /// Kilobytes of bulk bodies that may be in flight (see `RootConfig::max_ingest_bytes`).
    pub ingest_budget: Arc<tokio::sync::Semaphore>,
    /// The process's memory budget (`--memory-budget-mb`), shared by every request.
    pub memory: MemoryBudget,
    /// One admission limit for every search-like route (`--max-concurrent-searches`).
    pub admission: Arc<tokio::sync::Semaphore>,
    /// Points in time open per client (`--max-pits-per-client`).
    pub pits: Arc<PitQuota>,
}

/// The API router.
pub fn router(state: AppState) -> anyhow::Result<Router> {
    // Load shedding: at most `max_concurrent_searches` search-like requests run, all routes
    // together; one more is refused at once (429 + Retry-After) instead of queueing.
    let admit = axum::middleware::from_fn_with_state(
        state.admission.clone(),
        crate::api::front_door::admit,
    );
    let keys = state.config.api_keys.clone().map(Arc::new);
    let router = Router::new()
        .route(
            "/search",
            get(search_get).post(search_post).route_layer(admit.clone()),
        )
        .route("/pit", axum::routing::delete(pit_delete))
        .route("/", get(crate::api::ui::index))
        .route("/schema", get(schema_get))
        .route("/openapi.json", get(crate::api::openapi::openapi_json))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/cluster", get(cluster_state))
        .route("/cluster/replicas/check", get(replicas_check))
        .route("/metrics", get(metrics_page))
        .route(
            "/documents",
            axum::routing::post(documents_post)
                .layer(DefaultBodyLimit::max(state.config.max_bulk_bytes)),
        )
        .route(
            "/documents/{id}",
            get(document_get).route_layer(admit).delete(document_delete),
        )
        .fallback(|uri: axum::http::Uri| async move {
            let reason = format!("no such endpoint: {}", uri.path());
            ApiError::new(StatusCode::NOT_FOUND, "not_found", reason)
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                let reason = format!("{method} is not allowed on {}", uri.path());
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", reason)
            },
        );
    let router = match keys {
        Some(keys) => router.layer(axum::middleware::from_fn_with_state(
            keys,
            crate::api::auth::middleware,
        )),
        None => router,
    };
    let mut router = router
        .layer(axum::middleware::from_fn(crate::api::shaping::pretty))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(
            crate::cluster::request_id::middleware,
        ));
    if !state.config.cors_origins.is_empty() {
        router = router.layer(crate::api::front_door::cors(&state.config.cors_origins)?);
    }
    if let Some(hosts) = effective_hosts(&state.config) {
        router = router.layer(axum::middleware::from_fn_with_state(
            Arc::new(hosts.clone()),
            crate::api::front_door::check_host,
        ));
    }
    Ok(router.with_state(state))
}

/// The host names a root answers to: `--allowed-hosts` (`*`: any); without it, a root on a
/// loopback address answers only to loopback names (a web page that rebinds its own name to
/// 127.0.0.1 cannot reach it), a root on another address to any.
fn effective_hosts(config: &RootConfig) -> Option<Vec<String>> {
    match &config.allowed_hosts {
        Some(hosts) if hosts.iter().any(|h| h == "*") => None,
        Some(hosts) => Some(hosts.clone()),
        None if config.listen.ip().is_loopback() => {
            Some(["localhost", "127.0.0.1", "::1"].map(String::from).to_vec())
        }
        None => None,
    }
}

/// The answer to a request whose handler panicked (a bug): 500 with the reason, logged;
/// the process and every other request go on.
fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let reason = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    tracing::error!("a request's handler panicked: {reason}");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", reason).into_response()
}

/// Who sent a request (see [`crate::api::front_door::client_of`]).
type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

async fn search_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let client = client_of(&headers, peer.as_deref());
    match get_params(raw.as_deref().unwrap_or("")) {
        Ok(p) => run_search(&state, p, &client).await,
        Err(e) => e.into_response(),
    }
}

/// The parameters of `GET /search`: `filter` may repeat; every other parameter once.
pub fn get_params(raw: &str) -> Result<SearchParams, ApiError> {
    let bad = |e: serde_urlencoded::de::Error| culprit(raw, e);
    if !raw.contains("filter") {
        // The common case, read once (the query path is the product).
        return serde_urlencoded::from_str(raw).map_err(bad);
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(bad)?;
    let (filters, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| k == "filter");
    let rest = serde_urlencoded::to_string(&rest).expect("pairs encode");
    let mut params: SearchParams = serde_urlencoded::from_str(&rest).map_err(bad)?;
    if !filters.is_empty() {
        params.filter = Some(Filters(filters.into_iter().map(|(_, v)| v).collect()));
    }
    Ok(params)
}

/// The error of a query string that did not read, naming the parameter at fault: the first
/// pair that does not read alone.
fn culprit(raw: &str, e: serde_urlencoded::de::Error) -> ApiError {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
    for (k, v) in pairs {
        let alone = serde_urlencoded::to_string([(&k, &v)]).unwrap_or_default();
        if let Err(e) = serde_urlencoded::from_str::<SearchParams>(&alone) {
            let mut shown: String = v.chars().take(64).collect();
            if shown.len() < v.len() {
                shown.push('…');
            }
            return ApiError::bad_param(format!("parameter {k:?}: {e} (got {shown:?})"));
        }
    }
    ApiError::bad_param(format!("the query string does not read: {e}"))
}

async fn search_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    body: Result<Json<SearchParams>, JsonRejection>,
) -> Response {
    let client = client_of(&headers, peer.as_deref());
    match body {
        Ok(Json(p)) => run_search(&state, p, &client).await,
        // A well-formed body naming an unknown parameter is a bad parameter, as in GET.
        Err(JsonRejection::JsonDataError(e)) if e.body_text().contains("unknown field") => {
            ApiError::bad_param(e.body_text()).into_response()
        }
        Err(e) => ApiError::new(StatusCode::BAD_REQUEST, "json_parse_error", e.body_text())
            .into_response(),
    }
}

/// `GET /schema`: the cluster's schema (fields, their kinds and options), as the leaves
/// report it.
async fn schema_get(State(state): State<AppState>) -> Response {
    let deadline = Instant::now() + state.config.default_timeout;
    match state.root.cluster.schema(deadline).await {
        Some(s) => Json(&s.schema).into_response(),
        None => ApiError::unavailable("no replica has answered yet, so the schema is unknown")
            .into_response(),
    }
}

/// Closes a point in time: `{"succeeded": true, "num_freed": N}` (N shards' searchers
/// released), or 404 `pit_expired` when no part of it was open.
async fn pit_delete(
    State(state): State<AppState>,
    body: Result<Json<crate::api_types::PitDeleteRequest>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "json_parse_error", e.body_text())
                .into_response()
        }
    };
    let pit = match crate::query::pit_id::PitId::decode(&body.pit_id) {
        Ok(p) => p,
        Err(e) => return ApiError::bad_param(e).into_response(),
    };
    state.pits.closed(&body.pit_id);
    match crate::query::pit::close(&state.root.cluster, &pit).await {
        Ok(0) => {
            crate::query::pit::expired("no part of this point in time is open (expired or closed)")
                .into_response()
        }
        Ok(num_freed) => Json(crate::api_types::PitDeleteResponse {
            succeeded: true,
            num_freed,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_search(state: &AppState, mut params: SearchParams, client: &str) -> Response {
    let start = Instant::now();
    let fields = params.fields.take().map(|f| FieldSelection::parse(&f.0));
    let result = match (validate(&state.config, params), fields.transpose()) {
        (Ok(v), Ok(fields)) => admitted_search(state, v, client).await.map(|mut r| {
            if let Some(fields) = fields.flatten() {
                fields.apply(&mut r);
            }
            r
        }),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let outcome = match &result {
        Ok(r) if r.partial => "partial",
        Ok(_) => "ok",
        Err(e) => e.kind,
    };
    metrics::counter!("scatter_root_requests_total", "outcome" => outcome).increment(1);
    metrics::histogram!("scatter_root_request_duration_seconds", "outcome" => outcome)
        .record(start.elapsed().as_secs_f64());
    match result {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs a validated search within the process's memory budget (its estimated share
/// reserved for its whole run) and, when it opens a point in time, the client's quota.
async fn admitted_search(
    state: &AppState,
    search: crate::query::search::Search,
    client: &str,
) -> Result<crate::api_types::SearchResponse, ApiError> {
    let _memory = state.memory.reserve(
        search.memory_estimate(state.root.cluster.shards.len()),
        "this search",
    )?;
    let opening = search
        .pit
        .as_ref()
        .filter(|p| p.id.is_none())
        .map(|p| p.keep_alive_ms);
    let max_pits = state.config.max_pits_per_client;
    if opening.is_some() && !state.pits.reserve(client, max_pits) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pits",
            format!(
                "this client holds {max_pits} open points in time (--max-pits-per-client): \
                 close some (DELETE /pit) or let them expire"
            ),
        ));
    }
    let result = state.root.search(search).await;
    if let Some(keep_alive_ms) = opening {
        match result.as_ref().ok().and_then(|r| r.pit_id.clone()) {
            Some(id) => {
                let expires = Instant::now() + Duration::from_millis(keep_alive_ms);
                state.pits.opened(client, id, expires);
            }
            None => state.pits.abandoned(client),
        }
    }
    result
}

async fn documents_post(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    if let Err(e) = crate::api::front_door::check_write_type(request.headers()) {
        return e.into_response();
    }
    let (body, memory) = match crate::api::bulk_body::read(
        &state.memory,
        state.config.max_bulk_bytes,
        request,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // A body larger than the whole budget takes all of it (it runs alone).
    let budget_kb = (state.config.max_ingest_bytes >> 10).max(1);
    let kb = u32::try_from(((body.len() >> 10) + 1).min(budget_kb)).unwrap_or(u32::MAX);
    let Ok(_permit) = state.ingest_budget.clone().try_acquire_many_owned(kb) else {
        metrics::counter!("scatter_root_ingest_shed_total").increment(1);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "{} MB of bulk requests are being written already; retry later",
                state.config.max_ingest_bytes >> 20
            ),
        )
        .into_response();
    };
    let start = Instant::now();
    // A write is not abandoned halfway when the client goes away: it runs to its end on every
    // replica (the answer is dropped), so a disconnect leaves no replica without it.
    let (cluster, timeout) = (state.root.cluster.clone(), state.config.write_timeout);
    let result = tokio::spawn(async move {
        let (_permit, _memory) = (_permit, memory);
        crate::write::ingest::bulk(&cluster, body, timeout).await
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::unavailable(format!("write task failed: {e}"))));
    metrics::histogram!("scatter_root_ingest_duration_seconds")
        .record(start.elapsed().as_secs_f64());
    match result {
        Ok(resp) => bulk_response(resp),
        Err(e) => e.into_response(),
    }
}

/// A bulk's answer: 200 with per-item outcomes; 429 (with `Retry-After`) when every item
/// was refused for overload; `Retry-After` also when only some were.
fn bulk_response(resp: crate::write::ingest::BulkResponse) -> Response {
    let overloaded = resp.items.iter().filter(|i| i.status == 429).count();
    let status = if overloaded > 0 && overloaded == resp.items.len() {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(resp)).into_response();
    if overloaded > 0 {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    }
    response
}

/// An id no document can have (longer than the limit) is a 400.
fn check_id(id: &str) -> Result<(), ApiError> {
    let max = scatter_core::limits::MAX_ID_BYTES;
    if id.len() > max {
        return Err(ApiError::bad_param(format!(
            "id is {} bytes long; ids are at most {max} bytes",
            id.len()
        )));
    }
    Ok(())
}

async fn document_delete(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    let (cluster, timeout) = (state.root.cluster.clone(), state.config.write_timeout);
    let deleted =
        tokio::spawn(async move { crate::write::ingest::delete(&cluster, &id, timeout).await })
            .await
            .unwrap_or_else(|e| Err(ApiError::unavailable(format!("write task failed: {e}"))));
    match deleted {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn document_get(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if let Err(e) = check_id(&id) {
        return e.into_response();
    }
    let timeout = state.config.default_timeout;
    match crate::write::ingest::get(&state.root.cluster, &id, timeout).await {
        Ok(Some((shard, fields))) => {
            let fields: serde_json::Value = serde_json::from_str(&fields).unwrap_or_default();
            Json(crate::api_types::DocumentResponse {
                id,
                shard,
                found: true,
                fields,
            })
            .into_response()
        }
        Ok(None) => ApiError::new(
            StatusCode::NOT_FOUND,
            "document_not_found",
            format!("no document with id {id:?}"),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics_page() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        scatter_core::telemetry::render(),
    )
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let missing = state.root.cluster.unavailable_shards();
    if missing.is_empty() {
        Json(json!({"ready": true})).into_response()
    } else {
        let body = json!({"ready": false, "shards_without_replica": missing});
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn replicas_check(State(state): State<AppState>) -> Response {
    let timeout = state.config.write_timeout.max(Duration::from_secs(60));
    Json(crate::write::replica_check::check(&state.root.cluster, timeout).await).into_response()
}

async fn cluster_state(State(state): State<AppState>) -> Response {
    let root = &state.root;
    let shards: Vec<_> = root
        .cluster
        .shards
        .iter()
        .map(|g| {
            let replicas: Vec<_> = g
                .replicas
                .iter()
                .map(|r| {
                    json!({
                        "addr": r.addr,
                        "state": r.state(),
                        "latency_estimate_ms": r.node.latency_estimate().as_secs_f64() * 1000.0,
                        "in_flight": r.node.in_flight(),
                    })
                })
                .collect();
            let c = &g.counters;
            let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            json!({
                "shard": g.shard,
                "calls": load(&c.calls),
                "hedges": load(&c.hedges),
                "hedge_wins": load(&c.hedge_wins),
                "failovers": load(&c.failovers),
                "hedge_delay_ms": g.latency.hedge_delay(root.hedging.config.min_delay).as_secs_f64() * 1000.0,
                "replicas": replicas,
            })
        })
        .collect();
    let stats_cache = root.stats.counters();
    let result_cache = root.results.counters();
    let stats_table = root.table.status(&root.cluster);
    Json(json!({"shards": shards, "stats_cache": stats_cache, "stats_table": stats_table, "result_cache": result_cache}))
        .into_response()
}

/// A root bound to its address, not yet serving.
pub struct BoundRoot {
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl BoundRoot {
    /// Connects (lazily) to the replicas and binds the HTTP listener.
    pub async fn bind(config: RootConfig) -> anyhow::Result<Self> {
        scatter_core::telemetry::prometheus();
        config.validate()?;
        let cluster = Cluster::new(&config.shards, config.probe_interval)?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(crate::api::tls::server_config(cert, key)?),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(BoundRoot {
            listener,
            state: AppState {
                root: Arc::new(Root {
                    fuse_fetch_max_docs: config.fuse_fetch_max_docs,
                    table: StatsTable::new(
                        cluster.shards.len(),
                        config.stats_table_max_terms,
                        config.stats_table_min_interval,
                    ),
                    ..Root::new(cluster.clone(), config.hedge, config.result_cache_bytes)
                }),
                ingest_budget: Arc::new(tokio::sync::Semaphore::new(
                    (config.max_ingest_bytes >> 10).max(1),
                )),
                memory: MemoryBudget::new(config.memory_budget_bytes),
                admission: Arc::new(tokio::sync::Semaphore::new(
                    config.max_concurrent_searches.max(1),
                )),
                pits: Arc::default(),
                config: Arc::new(config),
            },
            tls,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown` completes; probes replicas in the background meanwhile.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let root = &self.state.root;
        let prober = root.cluster.spawn_prober();
        let refresher = spawn_refresher(
            Arc::downgrade(root),
            root.cluster.clone(),
            self.state.config.probe_interval,
            |root: &Root| &root.table,
        );
        let limits = self.state.config.connections;
        let app = router(self.state)?;
        match self.tls {
            Some(tls) => {
                let listener = crate::api::tls::TlsListener::new(self.listener, tls)?;
                crate::api::connections::serve(listener, app, limits, shutdown).await
            }
            None => {
                let listener = self.listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                crate::api::connections::serve(listener, app, limits, shutdown).await
            }
        }
        prober.abort();
        refresher.abort();
        Ok(())
    }
}

/// Binds and serves a root until `shutdown`.
pub async fn serve(
    config: RootConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    BoundRoot::bind(config).await?.serve(shutdown).await
}
