//! Benchmark reports: HdrHistogram percentiles (microseconds), outcomes by kind, the full
//! percentile distribution for plots, and ratios against an in-process baseline.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::{LoadSpec, Rate};
use crate::target::Outcome;

/// Counts of outcomes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Answered requests.
    pub ok: u64,
    /// Answered but partial.
    pub partial: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    /// Counts one outcome.
    pub fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok { partial } => {
                self.ok += 1;
                self.partial += u64::from(*partial);
            }
            Outcome::Error(kind) => *self.errors.entry(kind.clone()).or_default() += 1,
        }
    }

    /// All failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Summary percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// The summary of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let q = |p: f64| h.value_at_quantile(p);
        Percentiles {
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// One point of the latency distribution.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Point {
    /// Percentile, 0–100.
    pub percentile: f64,
    /// Latency at it, microseconds.
    pub latency_us: u64,
}

/// The result of one load run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// What was measured.
    pub label: String,
    /// `open` (fixed rate) or `closed` (saturation).
    pub mode: String,
    /// Offered rate (requests/s), open loop only.
    pub rate_requested: Option<f64>,
    /// Measured seconds.
    pub duration_s: f64,
    /// Connections (outstanding requests at most, or workers).
    pub connections: usize,
    /// Requests measured.
    pub requests: u64,
    /// Requests completed per second.
    pub achieved_rate: f64,
    /// Outcomes.
    pub outcomes: Tally,
    /// Summary percentiles.
    pub latency: Percentiles,
    /// The distribution, for plots.
    pub distribution: Vec<Point>,
    /// Open loop: how late requests were launched after their intended time (the load
    /// generator's own error, included in the latencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag: Option<Percentiles>,
    /// CPU seconds the servers used during the measured time (every process read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_s: Option<f64>,
    /// When some requests were refused by load shedding (429): the answered ones' latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_latency: Option<Percentiles>,
    /// ... and the refused ones' (how fast "not now" came back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shed_latency: Option<Percentiles>,
}

impl RunReport {
    /// Server CPU per answered request, in microseconds.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let answered = self.outcomes.ok.max(1) as f64;
        self.server_cpu_s.map(|s| s * 1e6 / answered)
    }
}

impl RunReport {
    /// Builds a report from a run's histogram and tally.
    pub fn new(label: &str, spec: &LoadSpec, h: &Histogram<u64>, outcomes: Tally) -> Self {
        let q = |p: f64| h.value_at_quantile(p);
        let requests = h.len();
        let duration_s = spec.duration.as_secs_f64();
        let mut distribution = Vec::new();
        for step in 0..=50 {
            // 0, 20.6, 36.9, ... 99.999: evenly spaced on a log(1 / (1 - p)) axis.
            let p = 1.0 - 10f64.powf(-(step as f64) / 10.0);
            if requests > 0 {
                distribution.push(Point {
                    percentile: p * 100.0,
                    latency_us: q(p),
                });
            }
        }
        RunReport {
            label: label.to_string(),
            mode: match spec.rate {
                Rate::Fixed(_) => "open".into(),
                Rate::Max => "closed".into(),
            },
            rate_requested: match spec.rate {
                Rate::Fixed(r) => Some(r),
                Rate::Max => None,
            },
            duration_s,
            connections: spec.connections,
            requests,
            achieved_rate: requests as f64 / duration_s.max(1e-9),
            outcomes,
            latency: Percentiles::of(h),
            distribution,
            send_lag: None,
            server_cpu_s: None,
            answered_latency: None,
            shed_latency: None,
        }
    }

    /// Header of the one-line table form.
    pub fn header() -> &'static str {
        "mode    rate/s  achieved/s  requests      p50      p90      p99    p99.9      max  errors partial  cpu_us/req"
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self
            .rate_requested
            .map_or("max".to_string(), |r| format!("{r:.0}"));
        write!(
            f,
            "{:<6} {:>7} {:>11.1} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>11}",
            self.mode,
            rate,
            self.achieved_rate,
            self.requests,
            ms(self.latency.p50_us),
            ms(self.latency.p90_us),
            ms(self.latency.p99_us),
            ms(self.latency.p999_us),
            ms(self.latency.max_us),
            self.outcomes.error_count(),
            self.outcomes.partial,
            self.cpu_us_per_request()
                .map_or("-".to_string(), |c| format!("{c:.1}")),
        )?;
        if let (Some(a), Some(s)) = (&self.answered_latency, &self.shed_latency) {
            let shed = self.outcomes.errors.get("http_429").copied().unwrap_or(0);
            write!(
                f,
                "\n       answered {}: p50 {} p99 {} max {} ms; shed (429) {shed}: p50 {} p99 {} max {} ms",
                self.outcomes.ok,
                ms(a.p50_us),
                ms(a.p99_us),
                ms(a.max_us),
                ms(s.p50_us),
                ms(s.p99_us),
                ms(s.max_us),
            )?;
        }
        Ok(())
    }
}

/// Per-percentile ratio of a run to the baseline (run / baseline).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ratios {
    /// p50 ratio.
    pub p50: f64,
    /// p90 ratio.
    pub p90: f64,
    /// p99 ratio.
    pub p99: f64,
    /// p99.9 ratio.
    pub p999: f64,
    /// max ratio.
    pub max: f64,
}

impl Ratios {
    /// `run / baseline` for every summary percentile.
    pub fn of(run: &Percentiles, baseline: &Percentiles) -> Self {
        let r = |a: u64, b: u64| a as f64 / (b.max(1)) as f64;
        Ratios {
            p50: r(run.p50_us, baseline.p50_us),
            p90: r(run.p90_us, baseline.p90_us),
            p99: r(run.p99_us, baseline.p99_us),
            p999: r(run.p999_us, baseline.p999_us),
            max: r(run.max_us, baseline.max_us),
        }
    }
}

/// Everything one `scatter bench` invocation measured (the `--out` JSON file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchReport {
    /// Target URL.
    pub target: String,
    /// Query file.
    pub queries: String,
    /// One run per rate (several with `--sweep`).
    pub runs: Vec<RunReport>,
    /// The in-process single-index baseline at the same load, if asked.
    pub baseline: Vec<RunReport>,
    /// Per run: run / baseline, when a baseline was measured.
    pub ratios: Vec<Ratios>,
    /// `--compare`: the second endpoint's URL template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
    /// `--compare`: its runs, alternated with the target's (one per target run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compared: Vec<RunReport>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "target {}  (latencies in ms)", self.target)?;
        writeln!(f, "{}", RunReport::header())?;
        for run in &self.runs {
            writeln!(f, "{run}")?;
        }
        if !self.baseline.is_empty() {
            writeln!(f, "baseline: {}", self.baseline[0].label)?;
            for run in &self.baseline {
                writeln!(f, "{run}")?;
            }
            writeln!(
                f,
                "ratio target/baseline:   p50    p90    p99  p99.9    max"
            )?;
            for r in &self.ratios {
                writeln!(
                    f,
                    "                      {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2}",
                    r.p50, r.p90, r.p99, r.p999, r.max
                )?;
            }
        }
        if let Some(url) = &self.compare {
            writeln!(f, "compare: {url}")?;
            for run in &self.compared {
                writeln!(f, "{run}")?;
            }
            writeln!(
                f,
                "ratio target/compare:  req/s    p50    p90    p99  p99.9  cpu/req"
            )?;
            for (a, b) in self.runs.iter().zip(&self.compared) {
                let r = Ratios::of(&a.latency, &b.latency);
                let cpu = match (a.cpu_us_per_request(), b.cpu_us_per_request()) {
                    (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                    _ => "-".to_string(),
                };
                writeln!(
                    f,
                    "                      {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>8}",
                    a.achieved_rate / b.achieved_rate.max(1e-9),
                    r.p50,
                    r.p90,
                    r.p99,
                    r.p999,
                    cpu
                )?;
            }
        }
        for run in self.runs.iter().chain(&self.baseline).chain(&self.compared) {
            if let Some(lag) = &run.send_lag {
                writeln!(
                    f,
                    "send lag of the load generator ({}, {}/s): p50 {} ms, p99 {} ms, max {} ms",
                    run.label,
                    run.rate_requested.unwrap_or_default(),
                    ms(lag.p50_us),
                    ms(lag.p99_us),
                    ms(lag.max_us)
                )?;
            }
            if !run.outcomes.errors.is_empty() {
                writeln!(f, "errors ({}): {:?}", run.label, run.outcomes.errors)?;
            }
        }
        Ok(())
    }
}
