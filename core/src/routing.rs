//! Document routing: external id → shard, by consistent hashing (hashring) with virtual nodes.
//!
//! The hash is xxh3 (seed 0) over the `std::hash::Hash` encoding of a string (its bytes, then
//! `0xff`); virtual node `v` of shard `s` sits at the hash of the label `"shard-{s}#vnode-{v}"`.
//! Both are pinned by golden values in the tests: changing them re-routes an existing cluster.

use std::hash::{Hash, Hasher};

use hashring::HashRing;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3Builder;

/// Name of the one routing scheme this version implements.
pub const SCHEME: &str = "hashring-xxh3-vnodes";

/// Default number of virtual nodes per shard.
pub const DEFAULT_VNODES: u32 = 128;

/// Routing parameters, written into the manifest so every component routes alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingParams {
    /// Routing scheme name ([`SCHEME`]).
    pub scheme: String,
    /// Number of shards.
    pub num_shards: u32,
    /// Virtual nodes per shard on the ring.
    pub vnodes_per_shard: u32,
}

impl RoutingParams {
    /// The default routing for `num_shards` shards.
    pub fn new(num_shards: u32) -> Self {
        RoutingParams {
            scheme: SCHEME.to_string(),
            num_shards,
            vnodes_per_shard: DEFAULT_VNODES,
        }
    }
}

#[derive(Debug, Clone)]
struct VNode {
    shard: u32,
    label: String,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.label.hash(state);
    }
}

/// Maps external ids to shards.
#[derive(Clone)]
pub struct Router {
    params: RoutingParams,
    ring: HashRing<VNode, Xxh3Builder>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("params", &self.params)
            .finish()
    }
}

impl Router {
    /// Builds the ring; fails on an unknown scheme or zero shards / vnodes.
    pub fn new(params: RoutingParams) -> anyhow::Result<Self> {
        anyhow::ensure!(
            params.scheme == SCHEME,
            "unknown routing scheme {:?}",
            params.scheme
        );
        anyhow::ensure!(params.num_shards > 0, "num_shards must be at least 1");
        anyhow::ensure!(
            params.vnodes_per_shard > 0,
            "vnodes_per_shard must be at least 1"
        );
        let mut ring = HashRing::with_hasher(Xxh3Builder::new());
        let nodes = (0..params.num_shards)
            .flat_map(|shard| {
                (0..params.vnodes_per_shard).map(move |v| VNode {
                    shard,
                    label: format!("shard-{shard}#vnode-{v}"),
                })
            })
            .collect();
        ring.batch_add(nodes);
        Ok(Router { params, ring })
    }

    /// The shard that owns `id`.
    pub fn shard_for(&self, id: &str) -> u32 {
        self.ring.get(&id).map(|n| n.shard).unwrap_or(0)
    }

    /// The parameters this router was built from.
    pub fn params(&self) -> &RoutingParams {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values: if this test fails, routing changed and existing clusters would be
    /// re-routed. Do not update the values; keep the old scheme and add a new one.
    #[test]
    fn golden_routing() {
        let r4 = Router::new(RoutingParams::new(4)).unwrap();
        let r8 = Router::new(RoutingParams::new(8)).unwrap();
        let ids = [
            "0ad",
            "apache2",
            "bash",
            "coreutils",
            "emacs",
            "git",
            "linux-image-amd64",
            "python3",
            "vim",
            "zsh",
        ];
        let got4: Vec<u32> = ids.iter().map(|id| r4.shard_for(id)).collect();
        let got8: Vec<u32> = ids.iter().map(|id| r8.shard_for(id)).collect();
        assert_eq!(got4, GOLDEN4, "4-shard routing changed");
        assert_eq!(got8, GOLDEN8, "8-shard routing changed");
    }

    const GOLDEN4: [u32; 10] = [3, 2, 0, 2, 3, 0, 1, 3, 0, 0];
    const GOLDEN8: [u32; 10] = [4, 2, 0, 6, 4, 7, 5, 3, 0, 0];

    #[test]
    fn balanced_and_consistent() {
        let r4 = Router::new(RoutingParams::new(4)).unwrap();
        let r5 = Router::new(RoutingParams::new(5)).unwrap();
        let mut counts = [0usize; 4];
        let mut moved = 0;
        for i in 0..20_000 {
            let id = format!("doc-{i}");
            let s4 = r4.shard_for(&id);
            counts[s4 as usize] += 1;
            let s5 = r5.shard_for(&id);
            if s5 != s4 {
                assert_eq!(s5, 4, "a key only moves to the new shard");
                moved += 1;
            }
        }
        let max = *counts.iter().max().unwrap() as f64;
        assert!(max / 5_000.0 < 1.25, "skew too high: {counts:?}");
        assert!(moved > 2_000 && moved < 6_500, "moved {moved}");
    }
}
