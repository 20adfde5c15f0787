//! A whole `scatter bench` invocation: one run per rate (a sweep when several), each followed,
//! when asked, by the same load against the in-process single-index baseline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::load::{run, LoadSpec, Rate};
use crate::report::{BenchReport, Ratios};
use crate::target::{HttpTarget, IndexTarget, Target};

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
    let mut report = BenchReport {
        target: opts.target.clone(),
        queries: opts.queries.display().to_string(),
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
        };
        let run_report = run(target.clone(), &spec).await?;
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
