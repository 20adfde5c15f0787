//! `scatter bench` arguments and their hand-off to the `scatter-bench` library.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use scatter_bench::{bench, parse_duration, BenchOptions, BenchReport, Rate};

/// Arguments of `scatter bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Root URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    target: Option<String>,
    /// Queries: plain text, TSV (id<TAB>query) or JSONL with a "query" field.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Requests per second (open loop), or `max` (closed loop, --connections workers).
    #[arg(long, default_value = "100")]
    rate: Rate,
    /// Several rates, one run each (the latency/throughput curve); overrides --rate.
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<Rate>,
    /// Measured time per run (500ms, 10s, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// Unmeasured warm-up before each run.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: std::time::Duration,
    /// Outstanding requests at most (open loop) or workers (closed loop).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Extra query parameter for every request, `name=value` (repeatable), e.g. scoring=local.
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Single-index build (`index build --shards 1`) to run the same load against in-process.
    #[arg(long)]
    baseline_index: Option<PathBuf>,
    /// A second HTTP endpoint run with the same queries in the same invocation, alternated
    /// with the target (a URL template: `{q}` is replaced by the URL-encoded query), e.g.
    /// `http://127.0.0.1:3000/api/?nhits=10&q={q}`; both rows and their ratios are printed.
    #[arg(long)]
    compare: Option<String>,
    /// Server CPU of the target: read `process_cpu_seconds_total` from these metrics pages
    /// (repeatable; default: the target root's own `/metrics` unless --cpu-pid is given).
    #[arg(long = "cpu-metrics")]
    cpu_metrics: Vec<String>,
    /// Server CPU of the target: add these local process ids (repeatable; e.g. the leaves).
    #[arg(long = "cpu-pid")]
    cpu_pids: Vec<u32>,
    /// Server CPU of the --compare endpoint: these local process ids (repeatable).
    #[arg(long = "compare-cpu-pid")]
    compare_cpu_pids: Vec<u32>,
    /// Shuffle the queries with this seed (default: file order, round-robin).
    #[arg(long)]
    shuffle: Option<u64>,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a latency-by-percentile SVG plot here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Overlay the runs of several JSON reports in one SVG plot.
    Plot {
        /// Reports written by `scatter bench --out`.
        reports: Vec<PathBuf>,
        /// Output SVG.
        #[arg(short, long)]
        out: PathBuf,
    },
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("want name=value, got {text:?}"))
}

/// Runs `scatter bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchCommand::Plot { reports, out }) = args.command {
        let mut runs = Vec::new();
        for path in &reports {
            let report: BenchReport = serde_json::from_str(&std::fs::read_to_string(path)?)?;
            runs.extend(labelled_runs(&report, &path.display().to_string()));
        }
        scatter_bench::plot::plot(&runs, &out)?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let (Some(target), Some(queries)) = (args.target, args.queries) else {
        anyhow::bail!("scatter bench needs --target URL and --queries FILE");
    };
    let rates = if args.sweep.is_empty() {
        vec![args.rate]
    } else {
        args.sweep
    };
    let mut cpu_metrics = args.cpu_metrics;
    if cpu_metrics.is_empty() && args.cpu_pids.is_empty() {
        cpu_metrics.extend(scatter_bench::root_metrics_url(&target));
    }
    let report = bench(&BenchOptions {
        cpu: scatter_bench::cpu::CpuSources {
            metrics_urls: cpu_metrics,
            pids: args.cpu_pids,
        },
        compare: args.compare,
        compare_cpu: scatter_bench::cpu::CpuSources {
            metrics_urls: Vec::new(),
            pids: args.compare_cpu_pids,
        },
        target,
        queries,
        rates,
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        params: args.params,
        baseline_index: args.baseline_index,
        shuffle: args.shuffle,
        progress: true,
    })
    .await?;
    print!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", out.display());
    }
    if let Some(plot) = &args.plot {
        scatter_bench::plot::plot(&labelled_runs(&report, "target"), plot)?;
        println!("wrote {}", plot.display());
    }
    Ok(())
}

/// Every run of a report with a legend label.
fn labelled_runs(report: &BenchReport, name: &str) -> Vec<(String, scatter_bench::RunReport)> {
    let rate = |r: &scatter_bench::RunReport| {
        r.rate_requested
            .map_or("max".to_string(), |x| format!("{x:.0}/s"))
    };
    let runs = report
        .runs
        .iter()
        .map(|r| (format!("{name} @ {}", rate(r)), r.clone()));
    let base = report
        .baseline
        .iter()
        .map(|r| (format!("{name} baseline @ {}", rate(r)), r.clone()));
    runs.chain(base).collect()
}
