//! Hedged requests ("The Tail at Scale", Dean & Barroso): if a shard's call has not answered
//! after the hedge delay — that shard's recent p95 call latency, with a floor — the same
//! request goes to a second replica and the first good answer wins. A token budget caps
//! hedges at a fraction of calls so a sick cluster is not doubled in load.

use std::sync::Mutex;
use std::time::Duration;

/// Hedging settings of a root.
#[derive(Debug, Clone, Copy)]
pub struct HedgeConfig {
    /// Hedge at all.
    pub enabled: bool,
    /// Hedges allowed per call, long-run (0.05 = 5%).
    pub budget_ratio: f64,
    /// Smallest hedge delay, whatever the p95.
    pub min_delay: Duration,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            enabled: true,
            budget_ratio: 0.05,
            min_delay: Duration::from_millis(2),
        }
    }
}

/// Token bucket: every call deposits `ratio` tokens, a hedge spends one; at most
/// `burst` tokens accumulate, and a new root starts with a full bucket so its first calls
/// can hedge before any latency is known.
#[derive(Debug)]
pub struct HedgeBudget {
    ratio: f64,
    burst: f64,
    tokens: Mutex<f64>,
}

impl HedgeBudget {
    /// A budget of `ratio` hedges per call, with bursts of up to [`BURST`] hedges.
    pub fn new(ratio: f64) -> Self {
        HedgeBudget {
            ratio: ratio.clamp(0.0, 1.0),
            burst: BURST,
            tokens: Mutex::new(if ratio > 0.0 { BURST } else { 0.0 }),
        }
    }

    /// Records one (non-hedge) call.
    pub fn deposit(&self) {
        let mut t = self.tokens.lock().expect("hedge budget");
        *t = (*t + self.ratio).min(self.burst);
    }

    /// Takes a token for one hedge, if there is one.
    pub fn try_spend(&self) -> bool {
        let mut t = self.tokens.lock().expect("hedge budget");
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Hedges a budget allows beyond its long-run ratio.
pub const BURST: f64 = 20.0;

/// Recent call latencies of one shard and their p95.
#[derive(Debug)]
pub struct LatencyWindow {
    inner: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    samples: Vec<u32>,
    next: usize,
    since_update: usize,
    p95_us: u32,
}

/// Samples kept per shard.
const WINDOW: usize = 512;
/// The p95 is recomputed every this many samples.
const UPDATE_EVERY: usize = 32;

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            inner: Mutex::new(Window {
                samples: Vec::with_capacity(WINDOW),
                next: 0,
                since_update: 0,
                p95_us: 0,
            }),
        }
    }
}

impl LatencyWindow {
    /// Records one successful call's latency.
    pub fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u32::MAX as u128) as u32;
        let mut w = self.inner.lock().expect("latency window");
        if w.samples.len() < WINDOW {
            w.samples.push(us);
        } else {
            let i = w.next;
            w.samples[i] = us;
        }
        w.next = (w.next + 1) % WINDOW;
        w.since_update += 1;
        if w.since_update >= UPDATE_EVERY || w.samples.len() < UPDATE_EVERY {
            w.since_update = 0;
            let mut sorted = w.samples.clone();
            let rank = (sorted.len() * 95).div_ceil(100).saturating_sub(1);
            let (_, p95, _) = sorted.select_nth_unstable(rank);
            w.p95_us = *p95;
        }
    }

    /// Recent p95 (zero before any sample).
    pub fn p95(&self) -> Duration {
        Duration::from_micros(u64::from(self.inner.lock().expect("latency window").p95_us))
    }

    /// The hedge delay: recent p95, at least `floor`.
    pub fn hedge_delay(&self, floor: Duration) -> Duration {
        self.p95().max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_caps_hedges_at_the_ratio() {
        let b = HedgeBudget::new(0.05);
        let mut hedges = 0;
        for _ in 0..10_000 {
            b.deposit();
            if b.try_spend() {
                hedges += 1;
            }
        }
        assert!((510..=530).contains(&hedges), "{hedges}");
        assert!(!HedgeBudget::new(0.0).try_spend());
    }

    #[test]
    fn p95_of_recent_latencies() {
        let w = LatencyWindow::default();
        for i in 1..=1000u64 {
            w.record(Duration::from_micros(i));
        }
        // The window holds the last 512 samples: 489..=1000; their p95 is ~975.
        let p95 = w.p95().as_micros();
        assert!((960..=990).contains(&p95), "{p95}");
        assert_eq!(
            w.hedge_delay(Duration::from_millis(5)),
            Duration::from_millis(5)
        );
    }
}
