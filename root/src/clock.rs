//! The version clock: every write a root sends carries a version from it. A hybrid logical
//! clock — wall-clock microseconds, never going back, always past every version this root
//! has seen from a leaf — so that a write started after another was acknowledged gets a
//! higher version even through another root, as long as the roots' clocks agree to within
//! the time between the two writes (and a leaf answering `superseded` makes the root retry
//! above the version it holds; see [`crate::shard_write`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A hybrid logical clock of write versions.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: AtomicU64,
}

impl VersionClock {
    /// The next version: above the wall clock's microseconds and above every version given
    /// or observed before.
    pub fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
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

    /// Notes a version seen elsewhere (a leaf's highest): later versions are above it.
    pub fn observe(&self, version: u64) {
        self.last.fetch_max(version, Ordering::AcqRel);
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
        clock.observe(u64::MAX / 2);
        assert_eq!(clock.next(), u64::MAX / 2 + 1);
    }
}
