//! A query whose matching is watched ([`crate::watch`]): every document it hands to a
//! collector ticks the request's watch, so a search past its deadline stops inside the
//! collector loop, whatever the collector. The inner query's fast paths are kept
//! (block-WAND through `for_each_pruning`, buffered unions through `for_each`); only the
//! callbacks are wrapped — or, under a [`Watching`] collector, not even they: that collector
//! ticks in its own (statically dispatched) per-document call, which saves the weight's
//! extra dynamic call per document.

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SegmentOrdinal, SegmentReader, Term};

use crate::watch::{checkpoint, set_collector_ticks, take_collector_ticks, tick};

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
        if take_collector_ticks() {
            return self.0.for_each(reader, callback);
        }
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
        if take_collector_ticks() {
            return self.0.for_each_no_score(reader, callback);
        }
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

/// A collector that ticks the request's watch for every document (or block) it is handed,
/// for collectors that take every match through tantivy's default per-segment loop (tuples
/// such as `(Count, TopDocs)`): a [`Watched`] query's weight then skips its own wrapping
/// callback. Not for collectors with their own segment loop (`TopDocs` alone prunes with
/// block-max WAND): wrapped, they would lose it. Deleted documents are dropped before the
/// collector sees them, so they do not tick; a segment's deletes are bounded by the segment
/// and merges drop them, and every segment starts with a look at the clock.
pub struct Watching<C>(pub C);

impl<C: Collector> Collector for Watching<C> {
    type Fruit = C::Fruit;
    type Child = WatchingSegment<C::Child>;

    fn check_schema(&self, schema: &tantivy::schema::Schema) -> tantivy::Result<()> {
        self.0.check_schema(schema)
    }

    fn for_segment(
        &self,
        segment_local_id: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let child = self.0.for_segment(segment_local_id, segment)?;
        // For the weight's loop that follows (it takes the mark): it hands documents straight
        // to `collect` below.
        set_collector_ticks(true);
        Ok(WatchingSegment(child))
    }

    fn requires_scoring(&self) -> bool {
        self.0.requires_scoring()
    }

    fn merge_fruits(
        &self,
        segment_fruits: Vec<<Self::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<Self::Fruit> {
        self.0.merge_fruits(segment_fruits)
    }
}

/// The per-segment part of [`Watching`].
pub struct WatchingSegment<S>(S);

impl<S: SegmentCollector> SegmentCollector for WatchingSegment<S> {
    type Fruit = S::Fruit;

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        tick();
        self.0.collect(doc, score)
    }

    #[inline]
    fn collect_block(&mut self, docs: &[DocId]) {
        tick();
        self.0.collect_block(docs)
    }

    fn harvest(self) -> Self::Fruit {
        set_collector_ticks(false);
        self.0.harvest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::{run, Stopped};
    use std::time::{Duration, Instant};
    use tantivy::collector::{Count, TopDocs};
    use tantivy::query::AllQuery;
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{doc, Index};

    /// Sleeps for every document it collects: a collection that would run for seconds.
    struct Slow;
    struct SlowSegment;

    impl Collector for Slow {
        type Fruit = ();
        type Child = SlowSegment;
        fn for_segment(
            &self,
            _: SegmentOrdinal,
            _: &SegmentReader,
        ) -> tantivy::Result<SlowSegment> {
            Ok(SlowSegment)
        }
        fn requires_scoring(&self) -> bool {
            true
        }
        fn merge_fruits(&self, _: Vec<()>) -> tantivy::Result<()> {
            Ok(())
        }
    }

    impl SegmentCollector for SlowSegment {
        type Fruit = ();
        fn collect(&mut self, _: DocId, _: Score) {
            std::thread::sleep(Duration::from_micros(200));
        }
        fn harvest(self) {}
    }

    #[test]
    fn a_watching_collector_stops_at_the_deadline_and_counts_like_an_unwatched_one() {
        let mut builder = Schema::builder();
        let f = builder.add_text_field("t", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for i in 0..20_000 {
            writer
                .add_document(doc!(f => format!("w{}", i % 7)))
                .unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let query = Watched(Box::new(AllQuery));
        // 20,000 documents at 200 µs each would take 4 s: stopped near the 50 ms deadline.
        let start = Instant::now();
        let deadline = Some(start + Duration::from_millis(50));
        let r = run(deadline, None, || {
            searcher.search(&query, &Watching((Count, Slow))).unwrap()
        });
        assert_eq!(r.map(|(n, ())| n), Err(Stopped::Expired));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // Nothing of that collection outlives it: the next one is watched by its weight.
        assert!(!take_collector_ticks());
        let top = TopDocs::with_limit(3).order_by_score();
        let watched = run(None, None, || {
            searcher.search(&query, &Watching((Count, top))).unwrap()
        });
        let top = TopDocs::with_limit(3).order_by_score();
        let plain = searcher.search(&AllQuery, &(Count, top)).unwrap();
        assert_eq!(watched.unwrap(), plain);
        assert!(!take_collector_ticks());
    }
}
