//! A tiny, dependency-free pseudo-random source (splitmix64): for choices that must be cheap
//! and well spread (replica choice, fault injection, query shuffling), never for security.

use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output function: a well-mixed 64-bit value for each input.
pub fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A splitmix64 sequence that many threads may draw from.
#[derive(Debug, Default)]
pub struct SharedRng(AtomicU64);

impl SharedRng {
    /// A sequence starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        SharedRng(AtomicU64::new(seed))
    }

    /// The next value.
    pub fn next_u64(&self) -> u64 {
        mix(self
            .0
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN))
    }
}

/// A seed from the OS (std's `RandomState` keys are drawn from the OS's random source).
pub fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Fisher–Yates shuffle driven by a splitmix64 sequence: the same seed gives the same order.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let rng = SharedRng::new(seed);
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_reproducible() {
        let rng = SharedRng::new(1);
        let buckets = (0..10_000).fold([0u32; 4], |mut b, _| {
            b[(rng.next_u64() % 4) as usize] += 1;
            b
        });
        assert!(
            buckets.iter().all(|&n| (2_300..2_700).contains(&n)),
            "{buckets:?}"
        );
        let (mut a, mut b) = ((0..50).collect::<Vec<_>>(), (0..50).collect::<Vec<_>>());
        shuffle(&mut a, 9);
        shuffle(&mut b, 9);
        assert_eq!(a, b);
        assert_ne!(a, (0..50).collect::<Vec<_>>());
    }
}
