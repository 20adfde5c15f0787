//! What a benchmark sends requests to.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use scatter_leaf::Shard;
use scatter_proto::v1::{FetchRequest, SearchRequest};
use serde::Deserialize;

/// The result of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered; `partial` when some shard was missing.
    Ok {
        /// The answer lacked some shard.
        partial: bool,
    },
    /// Failed; the kind (`http_503`, `connect`, `timeout`, `decode`, ...).
    Error(String),
}

/// Something that answers search requests.
pub trait Target: Send + Sync + 'static {
    /// Sends one query.
    fn call(&self, query: &str) -> BoxFuture<'static, Outcome>;
    /// A label for reports.
    fn label(&self) -> String;
}

/// A Scatter root (or any server with the same `/search` API) over HTTP.
pub struct HttpTarget {
    client: reqwest::Client,
    url: String,
    params: Vec<(String, String)>,
}

impl HttpTarget {
    /// Targets `url` (e.g. `http://127.0.0.1:8080`, whose `/search` is called), adding
    /// `params` to every request. A URL with a path is called as given, with the query in
    /// `q`: e.g. `http://127.0.0.1:3000/api/` with `--param nhits=10` for `tantivy-cli serve`.
    pub fn new(url: &str, params: Vec<(String, String)>) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url)?;
        let url = if parsed.path() == "/" || parsed.path().is_empty() {
            format!("{}/search", url.trim_end_matches('/'))
        } else {
            url.to_string()
        };
        Ok(HttpTarget {
            client: http_client()?,
            url,
            params,
        })
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    partial: bool,
}

impl Target for HttpTarget {
    fn call(&self, query: &str) -> BoxFuture<'static, Outcome> {
        let request = self
            .client
            .get(&self.url)
            .query(&[("q", query)])
            .query(&self.params);
        Box::pin(send(request))
    }

    fn label(&self) -> String {
        self.url.trim_end_matches("/search").to_string()
    }
}

/// Any HTTP search endpoint given as a URL template whose `{q}` is replaced by the
/// URL-encoded query, e.g. `http://127.0.0.1:3000/api/?nhits=10&q={q}` for
/// `tantivy-cli serve`. Any 2xx answer counts as answered (JSON with `"partial": true` as
/// partial).
pub struct TemplateTarget {
    client: reqwest::Client,
    template: String,
}

impl TemplateTarget {
    /// Targets `template`, which must contain `{q}`.
    pub fn new(template: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            template.contains("{q}"),
            "--compare wants a URL with {{q}} where the query goes, got {template:?}"
        );
        reqwest::Url::parse(&template.replace("{q}", "x"))?;
        Ok(TemplateTarget {
            client: http_client()?,
            template: template.to_string(),
        })
    }
}

impl Target for TemplateTarget {
    fn call(&self, query: &str) -> BoxFuture<'static, Outcome> {
        let encoded: String = url_encode(query);
        let request = self.client.get(self.template.replace("{q}", &encoded));
        Box::pin(send(request))
    }

    fn label(&self) -> String {
        self.template.clone()
    }
}

/// Percent-encodes a query for a URL's query string.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The HTTP client every HTTP target uses (TCP_NODELAY, connection reuse).
fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

/// Sends one request and reads its outcome.
async fn send(request: reqwest::RequestBuilder) -> Outcome {
    let resp = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Outcome::Error("timeout".into()),
        Err(e) if e.is_connect() => return Outcome::Error("connect".into()),
        Err(_) => return Outcome::Error("transport".into()),
    };
    let status = resp.status();
    let body = resp.bytes().await;
    if !status.is_success() {
        return Outcome::Error(format!("http_{}", status.as_u16()));
    }
    match body
        .ok()
        .and_then(|b| serde_json::from_slice::<Answer>(&b).ok())
    {
        Some(a) => Outcome::Ok { partial: a.partial },
        None => Outcome::Error("decode".into()),
    }
}

/// One tantivy index searched in-process, doing what a root does for a query (top 10 by
/// BM25, then the stored fields of those 10): the floor a sharded system has to beat.
pub struct IndexTarget {
    shard: Arc<Shard>,
    size: u32,
}

impl IndexTarget {
    /// Opens the single-shard build in `dir` (a build directory or its shard directory).
    pub fn open(dir: &Path, size: u32) -> anyhow::Result<Self> {
        let manifest = dir.join(scatter_core::manifest::MANIFEST_FILE);
        let shard_dir = if manifest.exists() {
            dir.join("shard-0")
        } else {
            dir.to_path_buf()
        };
        Ok(IndexTarget {
            shard: Arc::new(Shard::open(&shard_dir)?),
            size,
        })
    }
}

impl Target for IndexTarget {
    fn call(&self, query: &str) -> BoxFuture<'static, Outcome> {
        let shard = self.shard.clone();
        let request = SearchRequest {
            query: query.to_string(),
            k: self.size,
            offset: 0,
            stats: None,
            skip_total_count: false,
            ..Default::default()
        };
        Box::pin(async move {
            let work = tokio::task::spawn_blocking(move || {
                let hits = shard.search(&request).map_err(|_| "search")?.hits;
                let ids = hits.into_iter().map(|h| h.id).collect();
                let fetch = FetchRequest {
                    ids,
                    ..Default::default()
                };
                shard.fetch(&fetch).map_err(|_| "fetch")?;
                Ok::<_, &str>(())
            });
            match work.await {
                Ok(Ok(())) => Outcome::Ok { partial: false },
                Ok(Err(kind)) => Outcome::Error(kind.into()),
                Err(_) => Outcome::Error("panic".into()),
            }
        })
    }

    fn label(&self) -> String {
        format!("in-process index {}", self.shard.path().display())
    }
}
