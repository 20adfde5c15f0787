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

use crate::error::ShardError;
use crate::ids::SearcherIds;

/// One key of a sort: a fast field (or `_score`) and a direction.
#[derive(Debug, Clone)]
pub struct SortKey {
    field: String,
    kind: Option<FieldKind>,
    desc: bool,
}

/// Checks `sort` against the schema (see [`ScatterSchema::sort_kind`]).
pub fn resolve(schema: &ScatterSchema, sort: &[SortField]) -> Result<Vec<SortKey>, ShardError> {
    sort.iter()
        .map(|s| {
            Ok(SortKey {
                field: s.field.clone(),
                kind: schema
                    .sort_kind(&s.field)
                    .map_err(ShardError::InvalidArgument)?,
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
    /// Only documents whose key is greater (`search_after`).
    pub after: Option<Vec<u8>>,
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
            after: self.after.clone(),
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
    after: Option<Vec<u8>>,
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
        if self.after.as_ref().is_some_and(|after| key <= *after) {
            return;
        }
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

/// One sort value of one document.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// Its score.
    Score(Score),
    /// A u64 field's value.
    U64(u64),
    /// An i64 field's value.
    I64(i64),
    /// An f64 field's value.
    F64(f64),
    /// A date field's value, in nanoseconds since the epoch.
    Date(i64),
    /// A keyword field's value.
    Str(String),
    /// No value (sorts last in either direction).
    Missing,
}

impl KeyValue {
    /// Appends its order-preserving encoding (inverted when `desc`, but missing stays last).
    fn encode(&self, key: &mut Vec<u8>, desc: bool) {
        let start = key.len() + 1;
        match self {
            KeyValue::Missing => return key.push(2),
            KeyValue::Score(v) => {
                key.push(1);
                let bits = v.to_bits();
                let ordered = if bits >> 31 == 1 {
                    !bits
                } else {
                    bits | 1 << 31
                };
                key.extend_from_slice(&ordered.to_be_bytes());
            }
            KeyValue::U64(v) => {
                key.push(1);
                key.extend_from_slice(&v.to_be_bytes());
            }
            KeyValue::I64(v) | KeyValue::Date(v) => {
                key.push(1);
                key.extend_from_slice(&((*v as u64) ^ 1 << 63).to_be_bytes());
            }
            KeyValue::F64(v) => {
                key.push(1);
                key.extend_from_slice(&f64_key(*v).to_be_bytes());
            }
            KeyValue::Str(v) => {
                key.push(1);
                escape(key, v.as_bytes());
            }
        }
        if desc {
            for b in &mut key[start..] {
                *b = !*b;
            }
        }
    }

    /// As JSON (dates as epoch milliseconds, as Elasticsearch gives them).
    fn to_json(&self) -> Value {
        match self {
            KeyValue::Score(v) => Value::from(*v),
            KeyValue::U64(v) => Value::from(*v),
            KeyValue::I64(v) => Value::from(*v),
            KeyValue::F64(v) => Value::from(*v),
            KeyValue::Date(v) => Value::from(v.div_euclid(1_000_000)),
            KeyValue::Str(v) => Value::from(v.clone()),
            KeyValue::Missing => Value::Null,
        }
    }

    /// Reads one value of a `search_after` array for a key of `kind` (None: `_score`).
    fn from_json(kind: Option<FieldKind>, v: &Value) -> Option<KeyValue> {
        if v.is_null() {
            return Some(KeyValue::Missing);
        }
        Some(match kind {
            None => KeyValue::Score(v.as_f64()? as Score),
            Some(FieldKind::U64) => KeyValue::U64(v.as_u64()?),
            Some(FieldKind::I64) => KeyValue::I64(v.as_i64()?),
            Some(FieldKind::F64) => KeyValue::F64(v.as_f64()?),
            Some(FieldKind::Date) => KeyValue::Date(v.as_i64()?.checked_mul(1_000_000)?),
            Some(_) => KeyValue::Str(v.as_str()?.to_string()),
        })
    }
}

/// The key a `search_after` array (the last hit's `sort`: its values, then its id) stands
/// for: only documents with greater keys come next.
pub fn after_key(keys: &[SortKey], json: &str) -> Result<Vec<u8>, ShardError> {
    let bad = |why: String| ShardError::InvalidArgument(format!("search_after: {why}"));
    let values: Vec<Value> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    if values.len() != keys.len() + 1 {
        return Err(bad(format!(
            "{} values for {} sort keys; give the last hit's `sort` (its values, then its id)",
            values.len(),
            keys.len()
        )));
    }
    let mut key = Vec::new();
    for (k, v) in keys.iter().zip(&values) {
        let value = KeyValue::from_json(k.kind, v)
            .ok_or_else(|| bad(format!("{v} is not a value of {:?}", k.field)))?;
        value.encode(&mut key, k.desc);
    }
    let id = values[keys.len()]
        .as_str()
        .ok_or_else(|| bad("the last value must be the hit's id".to_string()))?;
    escape(&mut key, id.as_bytes());
    Ok(key)
}

/// The smallest of `values` (the largest when `desc`).
fn pick<T: PartialOrd>(values: impl Iterator<Item = T>, desc: bool) -> Option<T> {
    values.reduce(|a, b| {
        let b_first = if desc { b > a } else { b < a };
        if b_first {
            b
        } else {
            a
        }
    })
}

impl SortSegment {
    /// The values of `doc`, key by key.
    fn key_values(&mut self, doc: DocId, score: Score) -> Vec<KeyValue> {
        let text = &mut self.text;
        self.columns
            .iter()
            .zip(&self.desc)
            .map(|(column, &desc)| {
                // A document with several values sorts by its smallest ascending and by its
                // largest descending (as Elasticsearch does).
                let v = match column {
                    KeyColumn::Score => Some(KeyValue::Score(score)),
                    KeyColumn::U64(c) => pick(c.values_for_doc(doc), desc).map(KeyValue::U64),
                    KeyColumn::I64(c) => pick(c.values_for_doc(doc), desc).map(KeyValue::I64),
                    KeyColumn::F64(c) => pick(c.values_for_doc(doc), desc).map(KeyValue::F64),
                    KeyColumn::Date(c) => pick(c.values_for_doc(doc), desc)
                        .map(|d| KeyValue::Date(d.into_timestamp_nanos())),
                    KeyColumn::Str(c) => c.as_ref().and_then(|c| {
                        let ord = pick(c.term_ords(doc), desc)?;
                        text.clear();
                        c.ord_to_str(ord, text)
                            .ok()?
                            .then(|| KeyValue::Str(text.clone()))
                    }),
                };
                v.unwrap_or(KeyValue::Missing)
            })
            .collect()
    }

    /// The key of `doc`: each value's encoding, then its id.
    fn key(&mut self, doc: DocId, score: Score) -> Vec<u8> {
        let mut key = Vec::with_capacity(32);
        for (value, &desc) in self.key_values(doc, score).iter().zip(&self.desc) {
            value.encode(&mut key, desc);
        }
        escape(&mut key, self.id(doc).as_bytes());
        key
    }

    fn id(&self, doc: DocId) -> &str {
        self.ids
            .segment(self.ord)
            .and_then(|s| s.id(doc))
            .unwrap_or_default()
    }

    /// The values of `doc` as JSON, then its id (what `search_after` takes back).
    fn values(&mut self, doc: DocId, score: Score) -> Vec<Value> {
        let mut values: Vec<Value> = self
            .key_values(doc, score)
            .iter()
            .map(KeyValue::to_json)
            .collect();
        values.push(Value::from(self.id(doc)));
        values
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
        xs.sort_by_key(|a| f64_key(*a));
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
