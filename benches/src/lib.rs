//! Scatter latency benchmarking, as performance engineers expect it:
//!
//! - [`load`]: open-loop load at a fixed rate, latency measured from each request's
//!   *intended* send time (no coordinated omission, as in wrk2), or closed-loop saturation;
//! - [`target`]: what is measured — a root over HTTP, or one tantivy index in-process (the
//!   baseline a sharded system has to beat);
//! - [`report`]: HdrHistogram percentiles, errors by kind, JSON reports, baseline ratios;
//! - [`runner`]: a whole invocation: sweeps and the baseline at the same load;
//! - [`plot`]: latency-by-percentile SVG plots, several runs overlaid.

pub mod cpu;
pub mod load;
pub mod plot;
pub mod report;
pub mod runner;
pub mod target;

pub use load::{run, LoadSpec, Rate};
pub use report::{BenchReport, RunReport};
pub use runner::{bench, root_metrics_url, BenchOptions};

/// Parses a duration such as `500ms`, `10s`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let text = text.trim();
    let (num, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("bad duration {text:?} (want e.g. 500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => anyhow::bail!("bad duration unit in {text:?} (ms, s or m)"),
    };
    anyhow::ensure!(secs.is_finite() && secs >= 0.0, "bad duration {text:?}");
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(super::parse_duration("2m").unwrap().as_secs(), 120);
        assert_eq!(super::parse_duration("3").unwrap().as_secs(), 3);
        assert!(super::parse_duration("3h").is_err());
    }
}
