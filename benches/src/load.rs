//! Load generation. Open loop (default): request i is due at `start + i / rate`, whatever
//! happened to earlier requests, and its latency is measured from that intended time, so a
//! stall shows up in the percentiles instead of silently lowering the offered load (no
//! coordinated omission, as in wrk2). At most `connections` requests are outstanding; a request
//! waiting for a free connection is already late, and that wait is counted. Requests are
//! launched by a pacing thread that sleeps with the OS's high-resolution timer (tokio's timer
//! has 1 ms ticks, which would add up to a millisecond to every measured latency); how late
//! each request started running (the tool's own error, included in its latency) is reported
//! as `send_lag`. Closed loop
//! (`Rate::Max`): `connections` workers send back to back, to find saturation throughput.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, Semaphore};

use crate::report::{RunReport, Tally};
use crate::target::{Outcome, Target};

/// Offered load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Requests per second, open loop.
    Fixed(f64),
    /// As fast as `connections` closed-loop workers can go.
    Max,
}

impl std::str::FromStr for Rate {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        let r: f64 = s.parse().map_err(|_| anyhow::anyhow!("bad rate {s:?}"))?;
        anyhow::ensure!(r.is_finite() && r > 0.0, "rate must be > 0");
        Ok(Rate::Fixed(r))
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Offered load.
    pub rate: Rate,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it (same load).
    pub warmup: Duration,
    /// Outstanding requests at most (open loop) or workers (closed loop).
    pub connections: usize,
    /// Queries, used in order (shuffle them beforehand if wanted).
    pub queries: Arc<Vec<String>>,
    /// Print a progress line to stderr.
    pub progress: bool,
    /// Where to read the servers' CPU time (none: not reported).
    pub cpu: crate::cpu::CpuSources,
}

type Sample = (Duration, Outcome);

/// Query stride of a closed-loop worker (a prime, so workers walk the list differently).
const WORKER_STRIDE: usize = 7;

/// Runs `spec` against `target` and reports.
pub async fn run(target: Arc<dyn Target>, spec: &LoadSpec) -> anyhow::Result<RunReport> {
    anyhow::ensure!(!spec.queries.is_empty(), "no queries to send");
    let (tx, rx) = mpsc::unbounded_channel::<Sample>();
    let start = Instant::now() + Duration::from_millis(5);
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let collector = tokio::spawn(collect(rx, spec.progress, start));
    let cpu = (!spec.cpu.is_empty()).then(|| {
        let sources = spec.cpu.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            tokio::time::sleep_until(measure_from.into()).await;
            let before = sources.sample(&http).await?;
            tokio::time::sleep_until(end.into()).await;
            Some(sources.sample(&http).await? - before)
        })
    });
    let window = Window {
        start,
        measure_from,
        end,
    };
    let send_lag = match spec.rate {
        Rate::Fixed(rate) => Some(open_loop(&target, spec, rate, window, tx).await?),
        Rate::Max => {
            closed_loop(&target, spec, measure_from, end, tx).await;
            None
        }
    };
    let (histogram, tally, split) = collector.await.expect("collector task");
    let mut report = RunReport::new(&target.label(), spec, &histogram, tally);
    if !split.shed.is_empty() {
        report.answered_latency = Some(crate::report::Percentiles::of(&split.answered));
        report.shed_latency = Some(crate::report::Percentiles::of(&split.shed));
    }
    report.send_lag = send_lag.map(|h| crate::report::Percentiles::of(&h));
    if let Some(task) = cpu {
        report.server_cpu_s = task.await.ok().flatten();
    }
    Ok(report)
}

/// When a run starts, starts being measured, and ends.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// The open loop; returns how late the launches were (measured ones only).
async fn open_loop(
    target: &Arc<dyn Target>,
    spec: &LoadSpec,
    rate: f64,
    window: Window,
    tx: mpsc::UnboundedSender<Sample>,
) -> anyhow::Result<Histogram<u64>> {
    let permits = Arc::new(Semaphore::new(spec.connections.max(1)));
    let runtime = tokio::runtime::Handle::current();
    let (target, queries) = (target.clone(), spec.queries.clone());
    let lag = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new(3).expect("histogram"),
    ));
    let lags = lag.clone();
    let pacer = tokio::task::spawn_blocking(move || {
        let mut tasks = Vec::new();
        for i in 0u64.. {
            let intended = window.start + Duration::from_secs_f64(i as f64 / rate);
            if intended >= window.end {
                break;
            }
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            let query = queries[(i as usize) % queries.len()].clone();
            let (target, permits, tx) = (target.clone(), permits.clone(), tx.clone());
            let lag = lags.clone();
            tasks.push(runtime.spawn(async move {
                if intended >= window.measure_from {
                    let late = intended.elapsed().as_micros() as u64;
                    let _ = lag.lock().expect("lag histogram").record(late);
                }
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                let outcome = target.call(&query).await;
                if intended >= window.measure_from {
                    let _ = tx.send((intended.elapsed(), outcome));
                }
            }));
        }
        tasks
    });
    let tasks = pacer.await?;
    futures::future::join_all(tasks).await;
    let lag = lag.lock().expect("lag histogram").clone();
    Ok(lag)
}

async fn closed_loop(
    target: &Arc<dyn Target>,
    spec: &LoadSpec,
    measure_from: Instant,
    end: Instant,
    tx: mpsc::UnboundedSender<Sample>,
) {
    let workers = (0..spec.connections.max(1)).map(|w| {
        let (target, tx, queries) = (target.clone(), tx.clone(), spec.queries.clone());
        tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < end {
                let sent = Instant::now();
                let outcome = target.call(&queries[i % queries.len()]).await;
                if sent >= measure_from {
                    let _ = tx.send((sent.elapsed(), outcome));
                }
                i += WORKER_STRIDE;
            }
        })
    });
    let workers: Vec<_> = workers.collect();
    drop(tx);
    futures::future::join_all(workers).await;
}

/// Latencies of answered requests and of those refused by load shedding (429), apart.
struct Split {
    answered: Histogram<u64>,
    shed: Histogram<u64>,
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")
}

async fn collect(
    mut rx: mpsc::UnboundedReceiver<Sample>,
    progress: bool,
    start: Instant,
) -> (Histogram<u64>, Tally, Split) {
    let mut histogram = latency_histogram();
    let mut split = Split {
        answered: latency_histogram(),
        shed: latency_histogram(),
    };
    let mut tally = Tally::default();
    let tty = progress && std::io::stderr().is_terminal();
    let mut last = Instant::now();
    while let Some((latency, outcome)) = rx.recv().await {
        let micros = (latency.as_micros() as u64).max(1);
        histogram.saturating_record(micros);
        match &outcome {
            Outcome::Ok { .. } => split.answered.saturating_record(micros),
            Outcome::Error(kind) if kind == "http_429" => split.shed.saturating_record(micros),
            Outcome::Error(_) => {}
        }
        tally.record(&outcome);
        if progress && last.elapsed() >= Duration::from_secs(if tty { 1 } else { 5 }) {
            last = Instant::now();
            let line = format!(
                "  {:>5.1}s  {} done, {} errors, p50 {:.2} ms, p99 {:.2} ms",
                start.elapsed().as_secs_f64(),
                histogram.len(),
                tally.error_count(),
                histogram.value_at_quantile(0.5) as f64 / 1000.0,
                histogram.value_at_quantile(0.99) as f64 / 1000.0
            );
            if tty {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
        }
    }
    if tty {
        eprintln!();
    }
    (histogram, tally, split)
}
