//! The watch over one request's work on a leaf thread: its deadline and whether its caller
//! is gone, checked *inside* the work (collectors, snippet and fetch loops) so that work for
//! a request ends within milliseconds of its deadline instead of running to its end; and a
//! panic in that work turned into the request's error instead of a dead thread.
//!
//! The watch is thread-local: [`run`] installs it around a closure, [`tick`] (cheap, for
//! per-document loops) and [`checkpoint`] (per item) end the work when it has expired by
//! unwinding with [`Expired`] (`resume_unwind`: no panic hook, no log line), which [`run`]
//! catches. tantivy's collectors have no way to stop a search early; unwinding out of them is
//! safe because nothing the work touched outlives it (searchers are read-only).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Calls of [`tick`] between two looks at the clock.
const TICKS_PER_CHECK: u32 = 1024;

/// The unwind payload of work that ran past its deadline or lost its caller.
#[derive(Debug)]
pub struct Expired;

/// How watched work ended, when it did not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Past the deadline, or the caller went away.
    Expired,
    /// It panicked (a bug): the message.
    Panicked(String),
}

struct Watch {
    deadline: Option<Instant>,
    gone: Option<Arc<AtomicBool>>,
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
    static TICKS: Cell<u32> = const { Cell::new(0) };
    /// Set while a segment is collected by a collector that ticks per document itself
    /// ([`crate::watched_query::Watching`]): the watched weight then hands documents to it
    /// without a wrapping callback of its own.
    static COLLECTOR_TICKS: Cell<bool> = const { Cell::new(false) };
}

/// Marks (or unmarks) the segment being collected on this thread as ticked by its collector.
pub fn set_collector_ticks(on: bool) {
    COLLECTOR_TICKS.with(|c| c.set(on));
}

/// Whether the segment about to be collected on this thread is ticked by its collector; the
/// mark is taken (cleared), so that it serves one weight loop at most.
pub fn take_collector_ticks() -> bool {
    COLLECTOR_TICKS.with(|c| c.replace(false))
}

/// Runs `work` watched: it is stopped (at its next [`tick`] or [`checkpoint`]) once
/// `deadline` passes or `gone` is set; a panic in it is caught. Nested calls keep the
/// outer watch.
pub fn run<T>(
    deadline: Option<Instant>,
    gone: Option<Arc<AtomicBool>>,
    work: impl FnOnce() -> T,
) -> Result<T, Stopped> {
    let nested = WATCH.with(|w| w.borrow().is_some());
    if !nested {
        WATCH.with(|w| *w.borrow_mut() = Some(Watch { deadline, gone }));
        set_collector_ticks(false);
    }
    let result = catch_unwind(AssertUnwindSafe(work));
    if !nested {
        WATCH.with(|w| *w.borrow_mut() = None);
        // A collection stopped by an unwind never harvested: no mark outlives the work.
        set_collector_ticks(false);
    }
    match result {
        Ok(v) => Ok(v),
        Err(payload) if nested => resume_unwind(payload),
        Err(payload) => Err(stopped(payload)),
    }
}

/// What a caught unwind payload means.
fn stopped(payload: Box<dyn Any + Send>) -> Stopped {
    if payload.is::<Expired>() {
        return Stopped::Expired;
    }
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    Stopped::Panicked(msg)
}

/// Whether the watched work on this thread should stop now.
pub fn expired() -> bool {
    WATCH.with(|w| {
        w.borrow().as_ref().is_some_and(|w| {
            w.gone.as_ref().is_some_and(|g| g.load(Ordering::Relaxed))
                || w.deadline.is_some_and(|d| Instant::now() >= d)
        })
    })
}

/// Stops the watched work on this thread if it has expired (looks at the clock).
pub fn checkpoint() {
    if expired() {
        resume_unwind(Box::new(Expired));
    }
}

/// [`checkpoint`] every [`TICKS_PER_CHECK`] calls: cheap enough for once per document.
#[inline]
pub fn tick() {
    let n = TICKS.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n
    });
    if n.is_multiple_of(TICKS_PER_CHECK) {
        checkpoint();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stops_work_at_its_deadline_and_catches_panics() {
        let start = Instant::now();
        let r = run(Some(start + Duration::from_millis(50)), None, || loop {
            tick();
        });
        assert_eq!(r, Err::<(), _>(Stopped::Expired));
        assert!(start.elapsed() < Duration::from_secs(1));
        let gone = Arc::new(AtomicBool::new(true));
        assert_eq!(run(None, Some(gone), checkpoint), Err(Stopped::Expired));
        let r = run(None, None, || -> u32 { panic!("boom") });
        assert_eq!(r, Err(Stopped::Panicked("boom".into())));
        assert_eq!(run(None, None, || 7), Ok(7));
        // Outside a watch nothing stops.
        checkpoint();
        assert!(!expired());
    }
}
