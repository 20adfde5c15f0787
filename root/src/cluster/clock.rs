//! The version clock: every write a root sends carries a version from it. A hybrid logical
//! clock — wall-clock microseconds, never going back, always past every version this root
//! has seen from a leaf — so that a write started after another was acknowledged gets a
//! higher version even through another root, as long as the roots' clocks agree to within
//! the time between the two writes (and a leaf answering `superseded` makes the root retry
//! above the version it holds; see [`crate::write::shard_write`]).

use std::sync::atomic::{AtomicU64, Ordering};

use scatter_core::clock::{ahead_beyond_bound, now_micros, MAX_CLOCK_OFFSET_MICROS};

/// A hybrid logical clock of write versions.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: AtomicU64,
}

impl VersionClock {
    /// The next version: above the wall clock's microseconds and above every version given
    /// or observed before.
    pub fn next(&self) -> u64 {
        let now = now_micros();
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = now.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Notes a version seen elsewhere (a leaf's highest): later versions are above it. A
    /// version more than [`MAX_CLOCK_OFFSET_MICROS`] ahead of this root's clock is refused
    /// (false), never adopted: one forged or broken answer must not push every later write
    /// into a future no other node accepts.
    pub fn observe(&self, version: u64) -> bool {
        if let Some(ahead) = ahead_beyond_bound(version) {
            metrics::counter!("scatter_root_versions_from_the_future_total").increment(1);
            tracing::warn!(
                "ignored version {version}: {} ms ahead of this root's clock (at most {} ms)",
                ahead / 1000,
                MAX_CLOCK_OFFSET_MICROS / 1000
            );
            return false;
        }
        self.last.fetch_max(version, Ordering::AcqRel);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_and_past_what_it_observed() {
        let clock = VersionClock::default();
        let a = clock.next();
        assert!(clock.next() > a);
        let soon = now_micros() + 200_000;
        assert!(clock.observe(soon));
        assert!(clock.next() > soon);
        // A version from the far future (a forged or broken answer) is not adopted.
        assert!(!clock.observe(u64::MAX - 1));
        assert!(clock.next() < now_micros() + 1_000_000);
    }
}
