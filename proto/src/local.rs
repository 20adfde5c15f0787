//! **In-process leaves.** A leaf node served by this process registers itself under the
//! address it listens on; [`crate::leaf_api::connect`] for that address then calls the node's
//! service directly ([`crate::leaf_api::InProcess`]) instead of over the network. A local
//! replica is one replica among others: failover, hedging and coverage work the same. Peers
//! on other hosts still reach the node over its listener.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use crate::leaf_api::LeafHandle;

fn registry() -> &'static RwLock<HashMap<String, LeafHandle>> {
    static LOCAL: OnceLock<RwLock<HashMap<String, LeafHandle>>> = OnceLock::new();
    LOCAL.get_or_init(Default::default)
}

/// Registers `leaf` as the leaf node served by this process at `addr` (`host:port`).
pub fn register(addr: &str, leaf: LeafHandle) {
    registry()
        .write()
        .expect("local registry")
        .insert(addr.to_string(), leaf);
}

/// Removes the leaf registered at `addr` (it stopped serving).
pub fn unregister(addr: &str) {
    registry().write().expect("local registry").remove(addr);
}

/// The in-process leaf at `addr`, if this process serves one there.
pub fn lookup(addr: &str) -> Option<LeafHandle> {
    registry()
        .read()
        .expect("local registry")
        .get(addr)
        .cloned()
}
