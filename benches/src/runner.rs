//! A whole `scatter bench` invocation: one run per rate (a sweep when several), each followed,
//! when asked, by the same load against the in-process single-index baseline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cpu::CpuSources;
use crate::load::{run, LoadSpec, Rate};
use crate::report::{BenchReport, Ratios};
use crate::target::{HttpTarget, IndexTarget, Target, TemplateTarget};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Root URL.
    pub target: String,
    /// Query file (plain, TSV or JSONL).
    pub queries: PathBuf,
    /// Rates to run, in order.
    pub rates: Vec<Rate>,
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Connections.
    pub connections: usize,
    /// Extra query parameters for every request (e.g. `scoring=local`).
    pub params: Vec<(String, String)>,
    /// Single-index build to measure in-process with the same load.
    pub baseline_index: Option<PathBuf>,
    /// Shuffle the queries with this seed (default: file order).
    pub shuffle: Option<u64>,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Where to read the target's server CPU.
    pub cpu: CpuSources,
    /// A second endpoint (URL template with `{q}`) run with the same queries, alternated
    /// with the target: one compare run after each target run.
    pub compare: Option<String>,
    /// Where to read the compared server's CPU.
    pub compare_cpu: CpuSources,
}

/// The default CPU source of a Scatter root target: its own `/metrics` (in `scatter up`
/// the leaves share the root's process, so that is the whole cluster).
pub fn root_metrics_url(target: &str) -> Option<String> {
    let url = reqwest::Url::parse(target).ok()?;
    (url.path() == "/" || url.path().is_empty())
        .then(|| format!("{}/metrics", target.trim_end_matches('/')))
}

/// Runs every rate against the target (and the baseline).
pub async fn bench(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let mut queries = scatter_index_tools::queries::load_queries(&opts.queries)?;
    anyhow::ensure!(
        !queries.is_empty(),
        "{} holds no queries",
        opts.queries.display()
    );
    if let Some(seed) = opts.shuffle {
        scatter_core::random::shuffle(&mut queries, seed);
    }
    let queries = Arc::new(queries);
    let target: Arc<dyn Target> = Arc::new(HttpTarget::new(&opts.target, opts.params.clone())?);
    let size = opts
        .params
        .iter()
        .find(|(k, _)| k == "size")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(10);
    let baseline: Option<Arc<dyn Target>> = match &opts.baseline_index {
        Some(dir) => Some(Arc::new(IndexTarget::open(dir, size)?)),
        None => None,
    };
    let compare: Option<Arc<dyn Target>> = match &opts.compare {
        Some(t) => Some(Arc::new(TemplateTarget::new(t)?)),
        None => None,
    };
    let mut report = BenchReport {
        target: opts.target.clone(),
        queries: opts.queries.display().to_string(),
        compare: opts.compare.clone(),
        ..Default::default()
    };
    for rate in &opts.rates {
        let spec = LoadSpec {
            rate: *rate,
            duration: opts.duration,
            warmup: opts.warmup,
            connections: opts.connections,
            queries: queries.clone(),
            progress: opts.progress,
            cpu: opts.cpu.clone(),
        };
        let run_report = run(target.clone(), &spec).await?;
        if let Some(other) = &compare {
            let spec = LoadSpec {
                cpu: opts.compare_cpu.clone(),
                ..spec.clone()
            };
            report.compared.push(run(other.clone(), &spec).await?);
        }
        if let Some(base) = &baseline {
            let base_report = run(base.clone(), &spec).await?;
            report
                .ratios
                .push(Ratios::of(&run_report.latency, &base_report.latency));
            report.baseline.push(base_report);
        }
        report.runs.push(run_report);
    }
    Ok(report)
}
