//! Exact tie-breaking at a top-k cut: when documents tie with the k-th score, the ones with the
//! smallest external ids make the cut, so the page is the same whatever the segment or shard
//! layout. [`TiedIds`] collects, among documents scoring exactly a given score, the `need`
//! smallest ids: a cheap second pass instead of ordering every hit by (score, id).

use std::collections::BinaryHeap;
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::ids::SearcherIds;

/// Collects the `need` smallest ids of the documents whose score is exactly `score`.
pub struct TiedIds {
    /// The tied score.
    pub score: Score,
    /// The searcher's id tables.
    pub ids: Arc<SearcherIds>,
    /// How many ids are wanted.
    pub need: usize,
}

/// Per-segment part of [`TiedIds`]: the smallest id ordinals seen (ordinals sort like ids
/// within a segment).
pub struct TiedIdsSegment {
    score: Score,
    need: usize,
    ids: Arc<SearcherIds>,
    segment: SegmentOrdinal,
    smallest: BinaryHeap<u64>,
}

impl Collector for TiedIds {
    type Fruit = Vec<String>;
    type Child = TiedIdsSegment;

    fn for_segment(&self, ord: SegmentOrdinal, _: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(TiedIdsSegment {
            score: self.score,
            need: self.need,
            ids: self.ids.clone(),
            segment: ord,
            smallest: BinaryHeap::with_capacity(self.need + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<String>>) -> tantivy::Result<Vec<String>> {
        let mut ids: Vec<String> = fruits.into_iter().flatten().collect();
        ids.sort_unstable();
        ids.truncate(self.need);
        Ok(ids)
    }
}

impl SegmentCollector for TiedIdsSegment {
    type Fruit = Vec<String>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if score != self.score {
            return;
        }
        let Some(ord) = self.ids.segment(self.segment).and_then(|s| s.ord(doc)) else {
            return;
        };
        if self.smallest.len() < self.need {
            self.smallest.push(ord);
        } else if self.smallest.peek().is_some_and(|&max| ord < max) {
            self.smallest.pop();
            self.smallest.push(ord);
        }
    }

    fn harvest(self) -> Vec<String> {
        let Some(segment) = self.ids.segment(self.segment) else {
            return Vec::new();
        };
        self.smallest
            .into_sorted_vec()
            .into_iter()
            .filter_map(|ord| segment.id_of_ord(ord).map(str::to_string))
            .collect()
    }
}
