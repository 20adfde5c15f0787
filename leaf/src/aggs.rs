//! Aggregations on one shard, over the documents a search matches.
//!
//! - Histogram, date_histogram, range and metric aggregations run as tantivy's
//!   [`DistributedAggregationCollector`]: the shard answers with its *intermediate* results,
//!   which the root merges exactly across shards (as Quickwit merges them across splits).
//! - Terms aggregations are counted here, term by term over the whole shard: the request
//!   says which part of the table to report this round (the top terms, every term above a
//!   count, or named terms), so that the root can prove the exact top terms of the cluster
//!   in as many rounds as it takes (see `scatter_root::terms_agg`).

use std::collections::HashMap;

use scatter_proto::v1::terms_agg_spec::Select;
use scatter_proto::v1::{AggsRequest, MetricPart, TermBucket, TermsAggPart, TermsAggSpec};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::{AggContextParams, DistributedAggregationCollector};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

use crate::error::ShardError;

/// One shard's aggregation answer.
#[derive(Debug, Default)]
pub struct ShardAggs {
    /// tantivy's intermediate results, postcard-encoded (empty without such aggregations).
    pub tantivy: Vec<u8>,
    /// One part per terms aggregation asked.
    pub terms: Vec<TermsAggPart>,
}

/// Every aggregation of a request as one collector, to run alone or beside the search's own
/// collector in the same pass over the matches (see [`Fused`]).
pub struct AggsCollector {
    tantivy: Option<DistributedAggregationCollector>,
    terms: Vec<(TermsAggSpec, TermsCollector)>,
}

/// What [`AggsCollector`] gathers: tantivy's intermediate results and each terms table.
pub type AggsFruit = (
    Option<IntermediateAggregationResults>,
    Vec<HashMap<String, Bucket>>,
);

impl AggsCollector {
    /// The collector for `req` (a malformed tantivy request is the caller's error).
    pub fn new(searcher: &Searcher, req: &AggsRequest) -> Result<Self, ShardError> {
        let tantivy = if req.tantivy_json.is_empty() {
            None
        } else {
            let aggs: Aggregations = serde_json::from_str(&req.tantivy_json)
                .map_err(|e| ShardError::InvalidArgument(format!("aggs: {e}")))?;
            let limits = scatter_core::limits::process_agg_limits();
            let context = AggContextParams::new(limits, searcher.index().tokenizers().clone());
            Some(DistributedAggregationCollector::from_aggs(aggs, context))
        };
        let terms = req
            .terms
            .iter()
            .map(|spec| {
                let collector = TermsCollector {
                    field: spec.field.clone(),
                    metrics: spec.metric_fields.clone(),
                };
                (spec.clone(), collector)
            })
            .collect();
        Ok(AggsCollector { tantivy, terms })
    }

    /// The shard's answer from what was gathered.
    pub fn finish(&self, (tantivy, tables): AggsFruit) -> Result<ShardAggs, ShardError> {
        let mut out = ShardAggs::default();
        if let Some(fruit) = tantivy {
            out.tantivy = postcard::to_allocvec(&fruit).map_err(|e| {
                ShardError::Internal(tantivy::TantivyError::InternalError(format!(
                    "encoding aggregation results: {e}"
                )))
            })?;
        }
        for ((spec, _), table) in self.terms.iter().zip(tables) {
            out.terms.push(select(spec, table));
        }
        Ok(out)
    }
}

/// One segment's part of an [`AggsCollector`].
pub struct AggsSegment {
    tantivy: Option<<DistributedAggregationCollector as Collector>::Child>,
    terms: Vec<TermsSegment>,
}

type SegmentFruit = (
    Option<<<DistributedAggregationCollector as Collector>::Child as SegmentCollector>::Fruit>,
    Vec<HashMap<String, Bucket>>,
);

impl Collector for AggsCollector {
    type Fruit = AggsFruit;
    type Child = AggsSegment;

    fn for_segment(
        &self,
        ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<AggsSegment> {
        let tantivy = match &self.tantivy {
            Some(c) => Some(c.for_segment(ord, reader)?),
            None => None,
        };
        let terms = self
            .terms
            .iter()
            .map(|(_, c)| c.for_segment(ord, reader))
            .collect::<tantivy::Result<_>>()?;
        Ok(AggsSegment { tantivy, terms })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<AggsFruit> {
        let mut tantivy_parts = Vec::new();
        let mut tables: Vec<Vec<HashMap<String, Bucket>>> =
            (0..self.terms.len()).map(|_| Vec::new()).collect();
        for (t, terms) in fruits {
            tantivy_parts.extend(t);
            for (i, table) in terms.into_iter().enumerate() {
                tables[i].push(table);
            }
        }
        let tantivy = match &self.tantivy {
            Some(c) => Some(c.merge_fruits(tantivy_parts)?),
            None => None,
        };
        let terms = self
            .terms
            .iter()
            .zip(tables)
            .map(|((_, c), parts)| c.merge_fruits(parts))
            .collect::<tantivy::Result<_>>()?;
        Ok((tantivy, terms))
    }
}

impl SegmentCollector for AggsSegment {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        if let Some(t) = &mut self.tantivy {
            t.collect(doc, score);
        }
        for t in &mut self.terms {
            t.collect(doc, score);
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        if let Some(t) = &mut self.tantivy {
            t.collect_block(docs);
        }
        for t in &mut self.terms {
            t.collect_block(docs);
        }
    }

    fn harvest(self) -> SegmentFruit {
        let tantivy = self.tantivy.map(SegmentCollector::harvest);
        (
            tantivy,
            self.terms
                .into_iter()
                .map(SegmentCollector::harvest)
                .collect(),
        )
    }
}

/// Aggregation errors are the request's (a field of the wrong type, too many buckets).
fn invalid(e: tantivy::TantivyError) -> ShardError {
    ShardError::InvalidArgument(format!("aggs: {e}"))
}

/// A term's count and its documents' metric values.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    count: u64,
    metrics: Vec<MetricPart>,
}

/// Empty statistics.
fn empty_metric() -> MetricPart {
    MetricPart {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    }
}

/// Adds `other`'s values to `into`.
pub fn merge_metric(into: &mut MetricPart, other: &MetricPart) {
    into.count += other.count;
    into.sum += other.sum;
    into.min = into.min.min(other.min);
    into.max = into.max.max(other.max);
}

/// The part of the shard's term table `spec` selects: buckets by count descending, then
/// term ascending.
fn select(spec: &TermsAggSpec, table: HashMap<String, Bucket>) -> TermsAggPart {
    let sum_counts = table.values().map(|b| b.count).sum();
    let all = table.len();
    let mut buckets: Vec<(String, Bucket)> = match &spec.select {
        None | Some(Select::Top(_)) => table.into_iter().collect(),
        Some(Select::AtLeast(t)) => table.into_iter().filter(|(_, b)| b.count >= *t).collect(),
        Some(Select::Keys(keys)) => {
            let mut table = table;
            keys.keys
                .iter()
                .filter_map(|k| Some((k.clone(), table.remove(k)?)))
                .collect()
        }
    };
    buckets.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
    if let Some(Select::Top(n)) = spec.select {
        buckets.truncate(n as usize);
    }
    TermsAggPart {
        name: spec.name.clone(),
        complete: buckets.len() == all,
        sum_counts,
        buckets: buckets
            .into_iter()
            .map(|(key, b)| TermBucket {
                key,
                doc_count: b.count,
                metrics: b.metrics,
            })
            .collect(),
    }
}

/// Counts every term of a keyword fast field over the matches, with statistics of numeric
/// fields per term.
pub struct TermsCollector {
    field: String,
    metrics: Vec<String>,
}

/// A numeric column read as `f64` (the values tantivy's own metrics see).
enum NumColumn {
    U64(Column<u64>),
    I64(Column<i64>),
    F64(Column<f64>),
    Missing,
}

impl NumColumn {
    fn open(reader: &SegmentReader, field: &str) -> tantivy::Result<Self> {
        let ff = reader.fast_fields();
        let kind = reader
            .schema()
            .get_field(field)
            .map(|f| reader.schema().get_field_entry(f).field_type().value_type())?;
        use tantivy::schema::Type;
        Ok(match kind {
            Type::U64 => ff
                .column_opt::<u64>(field)?
                .map_or(Self::Missing, Self::U64),
            Type::I64 => ff
                .column_opt::<i64>(field)?
                .map_or(Self::Missing, Self::I64),
            Type::F64 => ff
                .column_opt::<f64>(field)?
                .map_or(Self::Missing, Self::F64),
            other => {
                return Err(tantivy::TantivyError::InvalidArgument(format!(
                    "{field:?} is a {other:?} field, not a numeric one"
                )))
            }
        })
    }

    fn each(&self, doc: DocId, mut f: impl FnMut(f64)) {
        match self {
            NumColumn::U64(c) => c.values_for_doc(doc).for_each(|v| f(v as f64)),
            NumColumn::I64(c) => c.values_for_doc(doc).for_each(|v| f(v as f64)),
            NumColumn::F64(c) => c.values_for_doc(doc).for_each(f),
            NumColumn::Missing => {}
        }
    }
}

/// One segment's term counts, by term ordinal.
pub struct TermsSegment {
    column: Option<StrColumn>,
    metric_columns: Vec<NumColumn>,
    counts: Vec<u64>,
    metrics: Vec<Vec<MetricPart>>,
}

impl Collector for TermsCollector {
    type Fruit = HashMap<String, Bucket>;
    type Child = TermsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let column = reader.fast_fields().str(&self.field)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        let metric_columns = self
            .metrics
            .iter()
            .map(|m| NumColumn::open(reader, m))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let metrics = if metric_columns.is_empty() {
            Vec::new()
        } else {
            vec![vec![empty_metric(); metric_columns.len()]; terms]
        };
        Ok(TermsSegment {
            column,
            metric_columns,
            counts: vec![0; terms],
            metrics,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut fruits = fruits.into_iter();
        let mut all = fruits.next().unwrap_or_default();
        for fruit in fruits {
            for (key, b) in fruit {
                let into = all.entry(key).or_default();
                into.count += b.count;
                if into.metrics.is_empty() {
                    into.metrics = b.metrics;
                } else {
                    for (m, o) in into.metrics.iter_mut().zip(&b.metrics) {
                        merge_metric(m, o);
                    }
                }
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for TermsSegment {
    type Fruit = HashMap<String, Bucket>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let Some(column) = &self.column else {
            return;
        };
        for ord in column.ords().values_for_doc(doc) {
            let ord = ord as usize;
            self.counts[ord] += 1;
            if let Some(parts) = self.metrics.get_mut(ord) {
                for (part, col) in parts.iter_mut().zip(&self.metric_columns) {
                    col.each(doc, |v| {
                        part.count += 1;
                        part.sum += v;
                        part.min = part.min.min(v);
                        part.max = part.max.max(v);
                    });
                }
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut out = HashMap::new();
        let Some(column) = &self.column else {
            return out;
        };
        let mut metrics = self.metrics.into_iter();
        let mut text = String::new();
        for (ord, &count) in self.counts.iter().enumerate() {
            let parts = metrics.next().unwrap_or_default();
            if count == 0 {
                continue;
            }
            text.clear();
            if column.ord_to_str(ord as u64, &mut text).unwrap_or(false) {
                let bucket = Bucket {
                    count,
                    metrics: parts,
                };
                out.insert(text.clone(), bucket);
            }
        }
        out
    }
}

/// A collector borrowed, to run beside another in one pass (`(Count, top_docs, Borrowed(&a))`).
pub struct Borrowed<'a, C>(pub &'a C);

impl<C: Collector> Collector for Borrowed<'_, C> {
    type Fruit = C::Fruit;
    type Child = C::Child;

    fn for_segment(
        &self,
        ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<C::Child> {
        self.0.for_segment(ord, reader)
    }

    fn requires_scoring(&self) -> bool {
        self.0.requires_scoring()
    }

    fn merge_fruits(
        &self,
        fruits: Vec<<C::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<C::Fruit> {
        self.0.merge_fruits(fruits)
    }
}

/// A request's aggregations on their way through a search: gathered in the search's own pass
/// when that pass reads every match (a full count, a sort), else in a pass of their own.
pub struct Fused {
    collector: Option<AggsCollector>,
    fruit: Option<AggsFruit>,
}

impl Fused {
    /// For `req`'s aggregations, if any.
    pub fn new(searcher: &Searcher, req: Option<&AggsRequest>) -> Result<Self, ShardError> {
        let collector = req.map(|r| AggsCollector::new(searcher, r)).transpose()?;
        Ok(Fused {
            collector,
            fruit: None,
        })
    }

    /// The collector to add to a pass that reads every match.
    pub fn collector(&self) -> Option<Borrowed<'_, AggsCollector>> {
        self.collector.as_ref().map(Borrowed)
    }

    /// What such a pass gathered.
    pub fn gathered(&mut self, fruit: Option<AggsFruit>) {
        if fruit.is_some() {
            self.fruit = fruit;
        }
    }

    /// The shard's aggregations (a pass of their own when the search's did not gather them).
    pub fn finish(
        self,
        searcher: &Searcher,
        query: &dyn tantivy::query::Query,
    ) -> Result<ShardAggs, ShardError> {
        match (self.collector, self.fruit) {
            (None, _) => Ok(ShardAggs::default()),
            (Some(c), Some(fruit)) => c.finish(fruit),
            (Some(c), None) => {
                let fruit = searcher.search(query, &c).map_err(invalid)?;
                c.finish(fruit)
            }
        }
    }
}
