//! Clock bounds shared by roots and leaves: write versions are wall-clock microseconds (a
//! hybrid logical clock at the root), so a version far ahead of a node's own clock is either
//! a root whose clock is wrong or a forged one. Neither is ever adopted: a leaf refuses to
//! persist it, a root refuses to move its clock to it (CockroachDB's max-offset rule).

use std::time::{SystemTime, UNIX_EPOCH};

/// Most a version may be ahead of the clock of the node that receives it: 500 ms.
pub const MAX_CLOCK_OFFSET_MICROS: u64 = 500_000;

/// This node's wall clock in microseconds since the epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// How far `version` is ahead of this node's clock beyond [`MAX_CLOCK_OFFSET_MICROS`], in
/// microseconds; `None` when it is within the bound.
pub fn ahead_beyond_bound(version: u64) -> Option<u64> {
    let now = now_micros();
    (version > now.saturating_add(MAX_CLOCK_OFFSET_MICROS)).then(|| version - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_the_future_are_out_of_bounds() {
        let now = now_micros();
        assert_eq!(ahead_beyond_bound(now), None);
        assert_eq!(ahead_beyond_bound(now + 100_000), None);
        assert!(ahead_beyond_bound(now + 10_000_000).is_some());
        assert!(ahead_beyond_bound(u64::MAX - 1).is_some());
        assert_eq!(ahead_beyond_bound(1), None);
    }
}
