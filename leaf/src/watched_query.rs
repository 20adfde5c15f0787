//! A query whose matching is watched ([`crate::watch`]): every document it hands to a
//! collector ticks the request's watch, so a search past its deadline stops inside the
//! collector loop, whatever the collector. The inner query's fast paths are kept
//! (block-WAND through `for_each_pruning`, buffered unions through `for_each`); only the
//! callbacks are wrapped.

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SegmentReader, Term};

use crate::watch::{checkpoint, tick};

/// `query`, watched.
#[derive(Debug)]
pub struct Watched(pub Box<dyn Query>);

impl Clone for Watched {
    fn clone(&self) -> Self {
        Watched(self.0.box_clone())
    }
}

impl Query for Watched {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(WatchedWeight(self.0.weight(enable_scoring)?)))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.0.query_terms(visitor)
    }
}

struct WatchedWeight(Box<dyn Weight>);

impl Weight for WatchedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        checkpoint();
        Ok(Box::new(WatchedScorer(self.0.scorer(reader, boost)?)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.0.explain(reader, doc)
    }

    fn count(&self, reader: &SegmentReader) -> tantivy::Result<u32> {
        checkpoint();
        self.0.count(reader)
    }

    fn for_each(
        &self,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score),
    ) -> tantivy::Result<()> {
        checkpoint();
        self.0.for_each(reader, &mut |doc, score| {
            tick();
            callback(doc, score)
        })
    }

    fn for_each_no_score(
        &self,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(&[DocId]),
    ) -> tantivy::Result<()> {
        checkpoint();
        self.0.for_each_no_score(reader, &mut |docs| {
            tick();
            callback(docs)
        })
    }

    fn for_each_pruning(
        &self,
        threshold: Score,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score) -> Score,
    ) -> tantivy::Result<()> {
        checkpoint();
        self.0
            .for_each_pruning(threshold, reader, &mut |doc, score| {
                tick();
                callback(doc, score)
            })
    }
}

struct WatchedScorer(Box<dyn Scorer>);

impl DocSet for WatchedScorer {
    fn advance(&mut self) -> DocId {
        tick();
        self.0.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        tick();
        self.0.seek(target)
    }

    fn doc(&self) -> DocId {
        self.0.doc()
    }

    fn size_hint(&self) -> u32 {
        self.0.size_hint()
    }

    fn cost(&self) -> u64 {
        self.0.cost()
    }
}

impl Scorer for WatchedScorer {
    fn score(&mut self) -> Score {
        self.0.score()
    }
}
