//! How a search counts its matches and how large a window it may ask for.

use scatter_core::limits::MAX_WINDOW;
use scatter_proto::v1::SearchRequest;
use tantivy::collector::Count;
use tantivy::{DocSet, Searcher, TERMINATED};

use crate::error::ShardError;

/// `k + offset` of a search, refused above [`MAX_WINDOW`].
pub fn check_window(req: &SearchRequest) -> Result<usize, ShardError> {
    let window = u64::from(req.k) + u64::from(req.offset);
    if window > MAX_WINDOW {
        return Err(ShardError::InvalidArgument(format!(
            "k + offset = {window} exceeds {MAX_WINDOW}"
        )));
    }
    Ok(window as usize)
}

/// How a search counts its matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Every match, in the same pass as the top-k collection (no skipping).
    All,
    /// Exactly up to this many, then stop: the top-k collection skips (block-max WAND).
    UpTo(u64),
    /// Not at all: the count is the number of documents collected (a lower bound).
    Collected,
}

impl Counting {
    pub fn of(req: &SearchRequest) -> Self {
        match (req.skip_total_count, req.count_up_to) {
            (true, _) => Counting::Collected,
            (false, 0) => Counting::All,
            (false, n) => Counting::UpTo(n),
        }
    }

    /// The count on its own (no top-k collection), given that at least `collected`
    /// documents match; and whether it is exact.
    pub fn count(
        self,
        searcher: &Searcher,
        query: &dyn tantivy::query::Query,
        collected: u64,
    ) -> tantivy::Result<(u64, bool)> {
        match self {
            Counting::All => Ok((searcher.search(query, &Count)? as u64, true)),
            Counting::Collected => Ok((collected, false)),
            Counting::UpTo(cap) => count_up_to(searcher, query, cap),
        }
    }
}

/// Counts the live matches of `query` exactly up to `cap` (without scoring), then stops;
/// `(count, exact)`, where an inexact count is `cap`, a lower bound.
fn count_up_to(
    searcher: &Searcher,
    query: &dyn tantivy::query::Query,
    cap: u64,
) -> tantivy::Result<(u64, bool)> {
    let weight = query.weight(tantivy::query::EnableScoring::disabled_from_searcher(
        searcher,
    ))?;
    let mut count = 0u64;
    for segment in searcher.segment_readers() {
        let mut docs = weight.scorer(segment, 1.0)?;
        let alive = segment.alive_bitset();
        let mut doc = docs.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                count += 1;
                if count >= cap {
                    return Ok((cap, false));
                }
            }
            doc = docs.advance();
        }
    }
    Ok((count, true))
}
