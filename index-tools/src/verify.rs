//! `scatter index verify`: proof that a sharded cluster ranks like one index. Runs every query
//! against the cluster (a live root over HTTP, or a build directory searched in-process the
//! way a root does) and against a single reference index, and compares the top-k: the same
//! ids in the same order with scores equal within a relative 1e-5; among hits whose scores tie,
//! any order is accepted, and at the k-th place any tied id.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use scatter_core::manifest::{MANIFEST_FILE, SHARD_META_FILE};
use scatter_core::merge::{merge_top, ShardHit};
use scatter_core::Manifest;
use scatter_leaf::Shard;
use scatter_proto::global_stats::sum;
use scatter_proto::v1::SearchRequest;

/// Relative tolerance on scores.
pub const SCORE_TOLERANCE: f32 = 1e-5;

/// A ranked list: (id, score), best first.
pub type Ranked = Vec<(String, f32)>;

/// The shards of a build directory, searched in-process exactly as a root searches a
/// cluster: summed term statistics, one search per shard with them, merge.
pub struct LocalCluster {
    shards: Vec<Shard>,
}

impl LocalCluster {
    /// Opens every shard of the build in `dir` (or the one shard directory `dir`).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let shards = if dir.join(MANIFEST_FILE).exists() {
            let manifest = Manifest::load(dir)?;
            (0..manifest.num_shards)
                .map(|k| Shard::open(&manifest.shard_path(dir, k)))
                .collect::<anyhow::Result<_>>()?
        } else if dir.join(SHARD_META_FILE).exists() {
            vec![Shard::open(dir)?]
        } else {
            anyhow::bail!("{} is neither a build directory nor a shard", dir.display());
        };
        Ok(LocalCluster { shards })
    }

    /// Number of shards.
    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }

    /// Top `k` of `query` with global statistics; `Err` carries a rejection (bad query).
    pub fn search(&self, query: &str, k: usize) -> Result<Ranked, String> {
        let mut parts = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            let resp = shard.term_stats(query).map_err(|e| e.to_string())?;
            parts.extend(resp.stats);
        }
        let stats = sum(&parts);
        let mut lists = Vec::with_capacity(self.shards.len());
        for (i, shard) in self.shards.iter().enumerate() {
            let req = SearchRequest {
                query: query.to_string(),
                k: k as u32,
                offset: 0,
                stats: Some(stats.clone()),
                skip_total_count: false,
                ..Default::default()
            };
            let resp = shard.search(&req).map_err(|e| e.to_string())?;
            lists.push(
                resp.hits
                    .into_iter()
                    .map(|h| ShardHit {
                        id: h.id,
                        score: h.score,
                        shard: i,
                        ..Default::default()
                    })
                    .collect(),
            );
        }
        Ok(merge_top(&lists, 0, k)
            .into_iter()
            .map(|h| (h.id, h.score))
            .collect())
    }
}

/// The cluster under test.
pub enum ClusterTarget {
    /// A live root (`http://host:port`).
    Url(String),
    /// A build directory, searched in-process.
    Local(LocalCluster),
}

impl ClusterTarget {
    /// A URL if `spec` starts with `http://` or `https://`, else a build directory.
    pub fn open(spec: &str) -> anyhow::Result<Self> {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            Ok(ClusterTarget::Url(spec.trim_end_matches('/').to_string()))
        } else {
            Ok(ClusterTarget::Local(LocalCluster::open(Path::new(spec))?))
        }
    }

    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        k: usize,
    ) -> Result<Ranked, String> {
        match self {
            ClusterTarget::Local(c) => c.search(query, k),
            ClusterTarget::Url(url) => search_http(http, url, query, k).await,
        }
    }
}

async fn search_http(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    k: usize,
) -> Result<Ranked, String> {
    let resp = http
        .get(format!("{url}/search"))
        .query(&[
            ("q", query),
            ("size", &k.to_string()),
            ("timeout_ms", "30000"),
        ])
        .send()
        .await
        .map_err(|e| format!("HTTP error: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("bad JSON: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", body["error"]["reason"]));
    }
    if body["partial"] != false {
        return Err(format!("partial answer: {}", body["shards"]));
    }
    let hits = body["hits"].as_array().cloned().unwrap_or_default();
    Ok(hits
        .iter()
        .map(|h| {
            let id = h["id"].as_str().unwrap_or_default().to_string();
            (id, h["score"].as_f64().unwrap_or(f64::NAN) as f32)
        })
        .collect())
}

/// Whether two scores are equal within [`SCORE_TOLERANCE`].
pub fn scores_close(a: f32, b: f32) -> bool {
    (a - b).abs() <= SCORE_TOLERANCE * a.abs().max(b.abs()).max(1e-6)
}

/// Compares a cluster's top-k with the reference's (which should hold more than k hits, so
/// that ties at the k-th place can be judged). `Ok` when identical by the rule above.
pub fn compare(
    cluster: &[(String, f32)],
    reference: &[(String, f32)],
    k: usize,
) -> Result<(), String> {
    let want = reference.len().min(k);
    if cluster.len() != want {
        return Err(format!("{} hits, reference has {want}", cluster.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, (id, score)) in cluster.iter().enumerate() {
        let (ref_id, ref_score) = &reference[i];
        if !scores_close(*score, *ref_score) {
            return Err(format!(
                "rank {}: score {score} vs reference {ref_score} ({id} / {ref_id})",
                i + 1
            ));
        }
        if !seen.insert(id) {
            return Err(format!("rank {}: {id} appears twice", i + 1));
        }
        if id != ref_id {
            let tied = reference
                .iter()
                .any(|(rid, rs)| rid == id && scores_close(*rs, *score));
            if !tied {
                return Err(format!(
                    "rank {}: {id} (score {score}), reference has {ref_id}",
                    i + 1
                ));
            }
        }
    }
    Ok(())
}

/// What to verify.
pub struct VerifyOptions {
    /// Root URL or build directory of the cluster.
    pub cluster: String,
    /// Single-index build directory (or its shard directory).
    pub reference: PathBuf,
    /// Query file.
    pub queries: PathBuf,
    /// Depth compared.
    pub k: usize,
}

/// The verdict on one query.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The query.
    pub query: String,
    /// `Ok` when identical; else what differs.
    pub result: Result<(), String>,
}

/// The verdicts on all queries.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// One per query, in file order.
    pub verdicts: Vec<Verdict>,
}

impl VerifyReport {
    /// Queries that ranked identically.
    pub fn identical(&self) -> usize {
        self.verdicts.iter().filter(|v| v.result.is_ok()).count()
    }

    /// All queries identical.
    pub fn all_identical(&self) -> bool {
        self.identical() == self.verdicts.len()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.verdicts {
            if let Err(why) = &v.result {
                writeln!(f, "MISMATCH {:?}: {why}", v.query)?;
            }
        }
        writeln!(
            f,
            "{}/{} queries identical",
            self.identical(),
            self.verdicts.len()
        )
    }
}

/// Runs the verification.
pub async fn verify(opts: &VerifyOptions) -> anyhow::Result<VerifyReport> {
    let queries = crate::queries::load_queries(&opts.queries)?;
    let reference = LocalCluster::open(&opts.reference).context("opening the reference index")?;
    anyhow::ensure!(
        reference.num_shards() == 1,
        "the reference must be a single index (build it with --shards 1)"
    );
    let cluster = ClusterTarget::open(&opts.cluster)?;
    let http = reqwest::Client::new();
    let mut report = VerifyReport::default();
    for query in queries {
        let expected = reference.search(&query, opts.k * 2 + 100);
        let got = cluster.search(&http, &query, opts.k).await;
        let result = match (got, expected) {
            (Ok(got), Ok(expected)) => compare(&got, &expected, opts.k),
            // Both refuse the query (e.g. a syntax error): the same behaviour.
            (Err(_), Err(_)) => Ok(()),
            (Err(e), Ok(_)) => Err(format!("cluster failed: {e}")),
            (Ok(_), Err(e)) => Err(format!("reference failed: {e}")),
        };
        report.verdicts.push(Verdict { query, result });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[(&str, f32)]) -> Ranked {
        v.iter().map(|(i, s)| (i.to_string(), *s)).collect()
    }

    #[test]
    fn compare_accepts_ties_and_tiny_drift_only() {
        let reference = r(&[("a", 3.0), ("b", 2.0), ("c", 2.0), ("d", 1.0)]);
        assert!(compare(&r(&[("a", 3.0), ("b", 2.0)]), &reference, 2).is_ok());
        assert!(compare(&r(&[("a", 3.000001), ("c", 2.0)]), &reference, 2).is_ok());
        assert!(compare(&r(&[("a", 3.0), ("d", 2.0)]), &reference, 2).is_err());
        assert!(compare(&r(&[("a", 3.1), ("b", 2.0)]), &reference, 2).is_err());
        assert!(compare(&r(&[("a", 3.0)]), &reference, 2).is_err());
        assert!(compare(
            &r(&[("b", 2.0), ("b", 2.0)]),
            &r(&[("b", 2.0), ("c", 2.0)]),
            2
        )
        .is_err());
    }
}
