//! Points in time: searchers a shard keeps open under a random token until their keep-alive
//! ends, so that pages of a search (and its statistics, fetches and aggregation rounds) all
//! read the same view of the data while writes land. Expired ones are dropped whenever the
//! table is touched; the number open is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scatter_core::limits::{MAX_OPEN_PITS, MAX_PIT_KEEP_ALIVE_MS, PIT_EXPIRED};
use tantivy::Searcher;

use crate::error::ShardError;

/// One open point in time.
struct Pinned {
    searcher: Searcher,
    expires: Instant,
}

/// A shard's open points in time, by token.
#[derive(Default)]
pub struct Pits {
    open: Mutex<HashMap<u64, Pinned>>,
}

/// A keep-alive in milliseconds, capped.
fn keep_alive(ms: u64) -> Duration {
    Duration::from_millis(ms.min(MAX_PIT_KEEP_ALIVE_MS))
}

impl Pits {
    /// Keeps `searcher` open for `keep_alive_ms`; its token.
    pub fn open(&self, searcher: Searcher, keep_alive_ms: u64) -> Result<u64, ShardError> {
        let mut open = self.open.lock().expect("pits lock");
        let now = Instant::now();
        open.retain(|_, p| p.expires > now);
        if open.len() >= MAX_OPEN_PITS {
            return Err(ShardError::InvalidArgument(format!(
                "{MAX_OPEN_PITS} points in time are open on this shard: close some (DELETE /pit) \
                 or let them expire"
            )));
        }
        let token = loop {
            let t = scatter_core::random::mix(scatter_core::random::os_seed());
            if t != 0 && !open.contains_key(&t) {
                break t;
            }
        };
        let expires = now + keep_alive(keep_alive_ms);
        open.insert(token, Pinned { searcher, expires });
        Ok(token)
    }

    /// The searcher of `token`, its keep-alive extended to `keep_alive_ms` from now when
    /// that is later; `pit_expired` when it is not open.
    pub fn get(&self, token: u64, keep_alive_ms: u64) -> Result<Searcher, ShardError> {
        let mut open = self.open.lock().expect("pits lock");
        let now = Instant::now();
        open.retain(|_, p| p.expires > now);
        let pinned = open.get_mut(&token).ok_or_else(|| {
            ShardError::InvalidArgument(format!(
                "{PIT_EXPIRED}: point in time {token:016x} is not open on this replica \
                 (expired, closed, or its replica restarted)"
            ))
        })?;
        pinned.expires = pinned.expires.max(now + keep_alive(keep_alive_ms));
        Ok(pinned.searcher.clone())
    }

    /// Drops the expired ones (their searchers, and the segments only they held). Run on
    /// every `Info` probe, so an expired point in time is released within a probe interval
    /// even when no other point in time is used.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.open
            .lock()
            .expect("pits lock")
            .retain(|_, p| p.expires > now);
    }

    /// Closes `token`; whether it was open.
    pub fn close(&self, token: u64) -> bool {
        let mut open = self.open.lock().expect("pits lock");
        let now = Instant::now();
        open.retain(|_, p| p.expires > now);
        open.remove(&token).is_some()
    }
}
