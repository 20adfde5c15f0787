//! Replica choice: power of two choices over each node's load (a peak-EWMA latency estimate
//! that decays on read, as tower's `load::PeakEwma`, times outstanding calls), as in Finagle
//! and tower's `balance::p2c`. The ranking is hand-rolled because the root tries replicas in an order —
//! first choice, failover, hedge — rather than sending through one balanced service.

use scatter_core::random::SharedRng;
use std::time::Duration;
use tokio::time::Instant;

/// Latency estimate as tower's `load::PeakEwma` keeps it: it jumps up to any slower
/// observation at once, moves toward faster ones with time constant `decay`, and **decays
/// on every read**, so a node that was slow once does not stay second choice until a call
/// happens to reach it. (tower's type wraps a service and is not `Clone`; tonic clients are
/// cloned per call, so the estimate is kept beside the channel instead.)
#[derive(Debug, Clone, Copy)]
pub struct PeakEwma {
    estimate_ns: f64,
    last: Instant,
    decay_ns: f64,
}

/// Estimate of a node nothing is known about yet.
pub const DEFAULT_RTT: Duration = Duration::from_millis(1);
/// Decay time constant of the estimate.
pub const DECAY: Duration = Duration::from_secs(2);

impl Default for PeakEwma {
    fn default() -> Self {
        PeakEwma {
            estimate_ns: DEFAULT_RTT.as_nanos() as f64,
            last: Instant::now(),
            decay_ns: DECAY.as_nanos() as f64,
        }
    }
}

impl PeakEwma {
    /// Folds in one observed round trip.
    pub fn observe(&mut self, rtt: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let decayed = self.decay();
        self.estimate_ns = if rtt > decayed {
            rtt
        } else {
            let elapsed = Instant::now().saturating_duration_since(self.last);
            let w = (-(elapsed.as_nanos() as f64) / self.decay_ns).exp();
            decayed * w + rtt * (1.0 - w)
        };
        self.last = Instant::now();
    }

    /// Decays the estimate for the time since its last update (as tower does on read).
    fn decay(&mut self) -> f64 {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_nanos() as f64;
        self.estimate_ns *= (-elapsed / self.decay_ns).exp();
        self.last = now;
        self.estimate_ns
    }

    /// Current estimate (decayed to now).
    pub fn estimate(&mut self) -> Duration {
        Duration::from_nanos(self.decay() as u64)
    }

    /// Load cost with `in_flight` outstanding requests (decayed to now).
    pub fn cost(&mut self, in_flight: usize) -> f64 {
        self.decay() * (in_flight as f64 + 1.0)
    }
}

/// The replica-choice random source, seeded from the OS (std's `RandomState` keys) so that
/// roots started together do not make the same choices.
static RNG: std::sync::LazyLock<SharedRng> =
    std::sync::LazyLock::new(|| SharedRng::new(scatter_core::random::os_seed()));

/// A cheap pseudo-random number.
pub fn random() -> u64 {
    RNG.next_u64()
}

/// Orders candidates by `cost` for one call: the first is the cheaper of two picked at random
/// (power of two choices), the rest follow cheapest first.
pub fn p2c_order<T>(mut items: Vec<(f64, T)>) -> Vec<T> {
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    if items.len() > 2 {
        let n = items.len() as u64;
        let a = (random() % n) as usize;
        let b = (a + 1 + (random() % (n - 1)) as usize) % items.len();
        let first = if items[a].0 <= items[b].0 { a } else { b };
        let chosen = items.remove(first);
        items.insert(0, chosen);
    }
    items.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn peak_ewma_jumps_up_and_decays_on_read() {
        let mut e = PeakEwma::default();
        e.observe(Duration::from_millis(100));
        assert!(e.estimate() > Duration::from_millis(99));
        // Two seconds (one time constant) without calls: about 1/e of it, on read alone.
        tokio::time::advance(DECAY).await;
        let one = e.estimate().as_secs_f64() * 1000.0;
        assert!((36.0..=37.5).contains(&one), "{one} ms");
        // Ten seconds more: next to nothing.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(
            e.estimate() < Duration::from_millis(1),
            "{:?}",
            e.estimate()
        );
        e.observe(Duration::from_millis(2));
        assert!(e.estimate() >= Duration::from_millis(1));
        assert!(e.cost(3) > e.cost(0));
    }

    #[test]
    fn p2c_prefers_cheaper_and_keeps_everyone() {
        let order = p2c_order(vec![(5.0, "slow"), (1.0, "fast")]);
        assert_eq!(order, ["fast", "slow"]);
        let mut firsts = std::collections::HashMap::new();
        for _ in 0..3000 {
            let o = p2c_order(vec![(1.0, 'a'), (2.0, 'b'), (3.0, 'c')]);
            assert_eq!(o.len(), 3);
            *firsts.entry(o[0]).or_insert(0) += 1;
        }
        // 'c' is never first: it loses every pair it is in.
        assert!(!firsts.contains_key(&'c') && firsts[&'a'] > firsts[&'b']);
    }
}
