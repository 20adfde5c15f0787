//! One memory budget for the whole root process (`--memory-budget-mb`): every request
//! reserves the bytes it may hold — a search its hit lists, fetched documents, snippets and
//! aggregation state (estimated from its parameters before it runs), a bulk write its body
//! (from `Content-Length` before reading, or chunk by chunk as it streams) — and gives them
//! back when it ends. A request that cannot get its share now gets 429; one that could never
//! fit gets 413/400. Memory is bounded per process, not per request.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Default of `--memory-budget-mb`.
pub const DEFAULT_MEMORY_BUDGET_MB: usize = 512;

/// Bytes per permit.
const UNIT: usize = 1024;

/// The process's budget.
#[derive(Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: usize,
}

/// Bytes reserved from a [`MemoryBudget`], given back when dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    budget: MemoryBudget,
}

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget {
            permits: Arc::new(Semaphore::new(units)),
            total_units: units,
        }
    }

    /// The whole budget, in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_units * UNIT
    }

    /// Bytes not reserved now.
    pub fn available_bytes(&self) -> usize {
        self.permits.available_permits() * UNIT
    }

    /// An empty reservation, to grow with [`Reservation::grow`].
    pub fn empty(&self) -> Reservation {
        Reservation {
            permit: None,
            budget: self.clone(),
        }
    }

    /// Reserves `bytes` for `what`: 429 when the budget is taken by others now, 413 when
    /// `bytes` is more than the whole budget.
    pub fn reserve(&self, bytes: usize, what: &str) -> Result<Reservation, ApiError> {
        let mut r = self.empty();
        r.grow(bytes, what)?;
        Ok(r)
    }
}

impl Reservation {
    /// Reserves `bytes` more.
    pub fn grow(&mut self, bytes: usize, what: &str) -> Result<(), ApiError> {
        let units = bytes.div_ceil(UNIT);
        let budget = &self.budget;
        let held = self.permit.as_ref().map_or(0, |p| p.num_permits());
        if units + held > budget.total_units {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!(
                    "{what} needs {} MB of memory, more than the root's whole budget of {} MB \
                     (--memory-budget-mb)",
                    ((units + held) * UNIT) >> 20,
                    budget.total_bytes() >> 20
                ),
            ));
        }
        if units == 0 {
            return Ok(());
        }
        let more = u32::try_from(units)
            .ok()
            .and_then(|n| budget.permits.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                metrics::counter!("scatter_root_memory_refusals_total").increment(1);
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "the root's memory budget ({} MB, --memory-budget-mb) is taken by other \
                         requests; retry after a moment",
                        budget.total_bytes() >> 20
                    ),
                )
            })?;
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits() * UNIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_budget() {
        let b = MemoryBudget::new(10 * UNIT);
        let mut a = b.reserve(4 * UNIT, "a").unwrap();
        let c = b.reserve(5 * UNIT, "c").unwrap();
        assert_eq!(b.reserve(2 * UNIT, "d").err().unwrap().status, 429);
        assert_eq!(b.reserve(11 * UNIT, "e").err().unwrap().status, 413);
        a.grow(UNIT, "a").unwrap();
        assert_eq!(a.bytes(), 5 * UNIT);
        assert_eq!(a.grow(1, "a").err().unwrap().status, 429);
        drop(c);
        a.grow(5 * UNIT, "a").unwrap();
        assert_eq!(b.available_bytes(), 0);
        drop(a);
        assert_eq!(b.available_bytes(), 10 * UNIT);
    }
}
