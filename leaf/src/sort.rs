//! Sorting by fast fields (`sort=FIELD:asc|desc,...`, `_score` allowed). Each matching
//! document gets a **sort key**: an order-preserving byte string of its values, key after key
//! (descending keys inverted, missing values last either way), ending with its external id,
//! so that comparing keys as bytes gives the exact order — ties broken by id — on every shard,
//! node and root alike. The shard keeps the `window` smallest keys.

use std::collections::BinaryHeap;
use std::sync::Arc;

use scatter_core::schema::{FieldKind, ScatterSchema};
use scatter_proto::v1::SortField;
use serde_json::Value;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::ids::SearcherIds;
use crate::shard::ShardError;

/// The pseudo-field sorting by relevance.
pub const SCORE: &str = "_score";

/// One key of a sort: a fast field (or `_score`) and a direction.
#[derive(Debug, Clone)]
pub struct SortKey {
    field: String,
    kind: Option<FieldKind>,
    desc: bool,
}

/// Checks `sort` against the schema: every field must be a fast u64, i64, f64, date or
/// keyword field (or `_score`).
pub fn resolve(schema: &ScatterSchema, sort: &[SortField]) -> Result<Vec<SortKey>, ShardError> {
    sort.iter()
        .map(|s| {
            if s.field == SCORE {
                return Ok(SortKey {
                    field: s.field.clone(),
                    kind: None,
                    desc: s.desc,
                });
            }
            let spec = schema
                .fields
                .iter()
                .find(|f| f.name == s.field)
                .ok_or_else(|| {
                    ShardError::InvalidArgument(format!(
                        "sort field {:?} is not in the schema",
                        s.field
                    ))
                })?;
            let sortable = matches!(
                spec.kind,
                FieldKind::U64
                    | FieldKind::I64
                    | FieldKind::F64
                    | FieldKind::Date
                    | FieldKind::Keyword
            );
            if !(spec.fast && sortable) {
                return Err(ShardError::InvalidArgument(format!(
                    "sort field {:?} is not a fast numeric, date or keyword field",
                    s.field
                )));
            }
            Ok(SortKey {
                field: s.field.clone(),
                kind: Some(spec.kind),
                desc: s.desc,
            })
        })
        .collect()
}

/// A sorted hit: its key (values and id), its values as JSON, its score and address.
pub struct Sorted {
    /// The order-preserving key.
    pub key: Vec<u8>,
    /// The values, as a JSON array (`null` for a missing one).
    pub values: Vec<Value>,
    /// Its score (0 when the sort does not use `_score`).
    pub score: Score,
    /// Where it is.
    pub addr: DocAddress,
}

/// Collects the `window` first documents in sort order, and counts every match.
pub struct SortCollector {
    /// The keys.
    pub keys: Vec<SortKey>,
    /// How many to keep.
    pub window: usize,
    /// The searcher's ids (the last part of every key).
    pub ids: Arc<SearcherIds>,
}

/// A key's column in one segment.
enum KeyColumn {
    Score,
    U64(Column<u64>),
    I64(Column<i64>),
    F64(Column<f64>),
    Date(Column<tantivy::DateTime>),
    Str(Option<StrColumn>),
}

impl Collector for SortCollector {
    type Fruit = (u64, Vec<Sorted>);
    type Child = SortSegment;

    fn for_segment(
        &self,
        ord: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SortSegment> {
        let ff = reader.fast_fields();
        let columns = self
            .keys
            .iter()
            .map(|k| {
                Ok(match k.kind {
                    None => KeyColumn::Score,
                    Some(FieldKind::U64) => KeyColumn::U64(ff.u64(&k.field)?),
                    Some(FieldKind::I64) => KeyColumn::I64(ff.i64(&k.field)?),
                    Some(FieldKind::F64) => KeyColumn::F64(ff.f64(&k.field)?),
                    Some(FieldKind::Date) => KeyColumn::Date(ff.date(&k.field)?),
                    Some(_) => KeyColumn::Str(ff.str(&k.field)?),
                })
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(SortSegment {
            ord,
            columns,
            desc: self.keys.iter().map(|k| k.desc).collect(),
            window: self.window,
            ids: self.ids.clone(),
            heap: BinaryHeap::new(),
            count: 0,
            text: String::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.keys.iter().any(|k| k.kind.is_none())
    }

    fn merge_fruits(&self, fruits: Vec<(u64, Vec<Sorted>)>) -> tantivy::Result<(u64, Vec<Sorted>)> {
        let count = fruits.iter().map(|f| f.0).sum();
        let mut all: Vec<Sorted> = fruits.into_iter().flat_map(|f| f.1).collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all.truncate(self.window);
        Ok((count, all))
    }
}

/// One segment's part of a [`SortCollector`].
pub struct SortSegment {
    ord: SegmentOrdinal,
    columns: Vec<KeyColumn>,
    desc: Vec<bool>,
    window: usize,
    ids: Arc<SearcherIds>,
    /// Max-heap by key: the worst kept document on top.
    heap: BinaryHeap<Kept>,
    count: u64,
    text: String,
}

/// A kept document, ordered by key.
struct Kept(Vec<u8>, Score, DocId);

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl SegmentCollector for SortSegment {
    type Fruit = (u64, Vec<Sorted>);

    fn collect(&mut self, doc: DocId, score: Score) {
        self.count += 1;
        if self.window == 0 {
            return;
        }
        let key = self.key(doc, score);
        if self.heap.len() < self.window {
            self.heap.push(Kept(key, score, doc));
        } else if self.heap.peek().is_some_and(|worst| key < worst.0) {
            self.heap.pop();
            self.heap.push(Kept(key, score, doc));
        }
    }

    fn harvest(mut self) -> (u64, Vec<Sorted>) {
        let kept = std::mem::take(&mut self.heap).into_sorted_vec();
        let hits = kept
            .into_iter()
            .map(|Kept(key, score, doc)| Sorted {
                values: self.values(doc, score),
                key,
                score,
                addr: DocAddress::new(self.ord, doc),
            })
            .collect();
        (self.count, hits)
    }
}

impl SortSegment {
    /// The key of `doc`: each value's encoding, then its id.
    fn key(&mut self, doc: DocId, score: Score) -> Vec<u8> {
        let mut key = Vec::with_capacity(32);
        for (i, column) in self.columns.iter().enumerate() {
            let start = key.len();
            let present = match column {
                KeyColumn::Score => {
                    key.push(1);
                    let bits = score.to_bits();
                    let ordered = if bits >> 31 == 1 {
                        !bits
                    } else {
                        bits | 1 << 31
                    };
                    key.extend_from_slice(&ordered.to_be_bytes());
                    true
                }
                KeyColumn::U64(c) => put(&mut key, c.first(doc).map(|v| v.to_be_bytes())),
                KeyColumn::I64(c) => put(
                    &mut key,
                    c.first(doc).map(|v| ((v as u64) ^ 1 << 63).to_be_bytes()),
                ),
                KeyColumn::F64(c) => put(&mut key, c.first(doc).map(|v| f64_key(v).to_be_bytes())),
                KeyColumn::Date(c) => put(
                    &mut key,
                    c.first(doc)
                        .map(|d| ((d.into_timestamp_nanos() as u64) ^ 1 << 63).to_be_bytes()),
                ),
                KeyColumn::Str(c) => {
                    let ord = c.as_ref().and_then(|c| c.term_ords(doc).next());
                    match (c, ord) {
                        (Some(c), Some(ord))
                            if c.ord_to_str(ord, &mut self.text).unwrap_or(false) =>
                        {
                            key.push(1);
                            escape(&mut key, self.text.as_bytes());
                            true
                        }
                        _ => {
                            key.push(2);
                            false
                        }
                    }
                }
            };
            if present && self.desc[i] {
                // Invert the value, not the presence byte: missing stays last.
                for b in &mut key[start + 1..] {
                    *b = !*b;
                }
            }
        }
        let id = self
            .ids
            .segment(self.ord)
            .and_then(|s| s.id(doc))
            .unwrap_or_default();
        escape(&mut key, id.as_bytes());
        key
    }

    /// The values of `doc` as JSON (dates as epoch milliseconds, as Elasticsearch does).
    fn values(&mut self, doc: DocId, score: Score) -> Vec<Value> {
        self.columns
            .iter()
            .map(|column| match column {
                KeyColumn::Score => Value::from(score),
                KeyColumn::U64(c) => c.first(doc).map_or(Value::Null, Value::from),
                KeyColumn::I64(c) => c.first(doc).map_or(Value::Null, Value::from),
                KeyColumn::F64(c) => c.first(doc).map_or(Value::Null, Value::from),
                KeyColumn::Date(c) => c
                    .first(doc)
                    .map_or(Value::Null, |d| Value::from(d.into_timestamp_millis())),
                KeyColumn::Str(c) => {
                    let mut text = String::new();
                    c.as_ref()
                        .and_then(|c| c.term_ords(doc).next().map(|o| (c, o)))
                        .filter(|(c, o)| c.ord_to_str(*o, &mut text).unwrap_or(false))
                        .map_or(Value::Null, |_| Value::from(text))
                }
            })
            .collect()
    }
}

/// Appends a fixed-width value (presence byte 1) or a missing marker (2, sorts last).
fn put<const N: usize>(key: &mut Vec<u8>, value: Option<[u8; N]>) -> bool {
    match value {
        Some(bytes) => {
            key.push(1);
            key.extend_from_slice(&bytes);
            true
        }
        None => {
            key.push(2);
            false
        }
    }
}

/// IEEE 754 bits turned into an unsigned order (negative below positive, NaN last).
fn f64_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Appends `bytes` so that shorter strings sort first and no encoding is a prefix of
/// another: 0x00 becomes 0x00 0xFF, and 0x00 0x00 ends it.
fn escape(key: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        key.push(b);
        if b == 0 {
            key.push(0xFF);
        }
    }
    key.extend_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_keep_the_order() {
        let mut xs = [-3.5f64, -0.0, 0.0, 1e-9, 2.0, f64::INFINITY];
        xs.sort_by(|a, b| f64_key(*a).cmp(&f64_key(*b)));
        assert_eq!(xs[0], -3.5);
        assert_eq!(xs[5], f64::INFINITY);
        let enc = |s: &str| {
            let mut k = Vec::new();
            escape(&mut k, s.as_bytes());
            k
        };
        assert!(enc("ab") < enc("abc") && enc("abc") < enc("abd") && enc("") < enc("a"));
        let inv = |s: &str| enc(s).iter().map(|b| !b).collect::<Vec<u8>>();
        assert!(inv("ab") > inv("abc") && inv("abc") > inv("abd"));
    }
}
