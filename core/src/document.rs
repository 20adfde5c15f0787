//! Turning a JSON document into a tantivy document (and stored fields back into JSON),
//! by the [`ScatterSchema`]. The same code serves bulk build and live ingest.

use serde_json::{Map, Value};
use tantivy::schema::{Field, OwnedValue, Schema};
use tantivy::{DateTime, TantivyDocument};

use crate::schema::{FieldKind, ScatterSchema};

/// Why one JSON document could not be indexed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocError {
    /// The line is not valid JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The JSON value is not an object.
    #[error("document is not a JSON object")]
    NotObject,
    /// The id field is absent.
    #[error("missing id field {0:?}")]
    MissingId(String),
    /// The id field is not a non-empty string.
    #[error("id field {0:?} must be a non-empty string")]
    BadId(String),
    /// The id is longer than [`MAX_ID_BYTES`](crate::limits::MAX_ID_BYTES).
    #[error("id field {0:?} is {1} bytes long; the limit is {max}", max = crate::limits::MAX_ID_BYTES)]
    IdTooLong(String, usize),
    /// A field value does not fit the field's type.
    #[error("field {field:?}: {reason}")]
    BadField {
        /// Field name.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// A document ready for a tantivy writer.
#[derive(Debug)]
pub struct ConvertedDoc {
    /// External id.
    pub id: String,
    /// The tantivy document, id included.
    pub doc: TantivyDocument,
    /// Number of JSON fields not declared in the schema (ignored).
    pub ignored_fields: usize,
}

/// Converts JSON documents for one schema; build once, use for many documents.
pub struct DocConverter {
    schema: ScatterSchema,
    id: Field,
    fields: Vec<(Field, FieldKind)>,
}

impl DocConverter {
    /// A converter for `schema`, whose tantivy form is `tantivy`.
    pub fn new(schema: &ScatterSchema, tantivy: &Schema) -> Self {
        let id = tantivy
            .get_field(&schema.id_field)
            .expect("id field in schema");
        let fields = schema
            .fields
            .iter()
            .map(|f| (tantivy.get_field(&f.name).expect("field in schema"), f.kind))
            .collect();
        DocConverter {
            schema: schema.clone(),
            id,
            fields,
        }
    }

    /// The tantivy field holding the external id.
    pub fn id_field(&self) -> Field {
        self.id
    }

    /// Parses one JSON text (a JSONL line) and converts it.
    pub fn convert_str(&self, line: &str) -> Result<ConvertedDoc, DocError> {
        let value: Value = serde_json::from_str(line).map_err(|e| DocError::Json(e.to_string()))?;
        match value {
            Value::Object(map) => self.convert(map),
            _ => Err(DocError::NotObject),
        }
    }

    /// Converts one JSON object.
    pub fn convert(&self, mut map: Map<String, Value>) -> Result<ConvertedDoc, DocError> {
        let id = match map.remove(&self.schema.id_field) {
            None | Some(Value::Null) => {
                return Err(DocError::MissingId(self.schema.id_field.clone()))
            }
            Some(Value::String(s)) if s.len() > crate::limits::MAX_ID_BYTES => {
                return Err(DocError::IdTooLong(self.schema.id_field.clone(), s.len()))
            }
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(_) => return Err(DocError::BadId(self.schema.id_field.clone())),
        };
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, &id);
        let mut ignored_fields = 0;
        for (name, value) in map {
            let Some(pos) = self.schema.fields.iter().position(|f| f.name == name) else {
                ignored_fields += 1;
                continue;
            };
            let (field, kind) = self.fields[pos];
            add_values(&mut doc, field, kind, value).map_err(|reason| DocError::BadField {
                field: name.clone(),
                reason,
            })?;
        }
        Ok(ConvertedDoc {
            id,
            doc,
            ignored_fields,
        })
    }
}

fn add_values(
    doc: &mut TantivyDocument,
    field: Field,
    kind: FieldKind,
    value: Value,
) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => items
            .into_iter()
            .try_for_each(|v| add_values(doc, field, kind, v)),
        v => {
            doc.add_field_value(field, &to_owned_value(kind, v)?);
            Ok(())
        }
    }
}

fn to_owned_value(kind: FieldKind, v: Value) -> Result<OwnedValue, String> {
    let bad = |v: &Value| format!("expected {kind:?} value, got {v}");
    Ok(match kind {
        FieldKind::Text | FieldKind::Keyword => match v {
            Value::String(s) => OwnedValue::Str(s),
            Value::Number(n) => OwnedValue::Str(n.to_string()),
            Value::Bool(b) => OwnedValue::Str(b.to_string()),
            other => return Err(bad(&other)),
        },
        FieldKind::U64 => {
            OwnedValue::U64(number(&v, |s| s.parse().ok(), Value::as_u64).ok_or_else(|| bad(&v))?)
        }
        FieldKind::I64 => {
            OwnedValue::I64(number(&v, |s| s.parse().ok(), Value::as_i64).ok_or_else(|| bad(&v))?)
        }
        FieldKind::F64 => OwnedValue::F64(
            number(&v, |s| s.parse().ok(), Value::as_f64)
                .filter(|f: &f64| f.is_finite())
                .ok_or_else(|| bad(&v))?,
        ),
        FieldKind::Date => OwnedValue::Date(parse_date(&v).ok_or_else(|| bad(&v))?),
    })
}

fn number<T>(
    v: &Value,
    from_str: impl Fn(&str) -> Option<T>,
    from_num: impl Fn(&Value) -> Option<T>,
) -> Option<T> {
    match v {
        Value::String(s) => from_str(s.trim()),
        other => from_num(other),
    }
}

fn parse_date(v: &Value) -> Option<DateTime> {
    match v {
        Value::Number(n) => n.as_i64().map(DateTime::from_timestamp_secs),
        Value::String(s) => {
            let t = tantivy::time::OffsetDateTime::parse(
                s,
                &tantivy::time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            Some(DateTime::from_utc(t))
        }
        _ => None,
    }
}

/// Stored fields of a tantivy document as a JSON object: one value per field, or an array
/// when the field holds several.
pub fn stored_fields_json(doc: &TantivyDocument, schema: &Schema) -> Map<String, Value> {
    let mut out = Map::new();
    for (field, value) in doc.field_values() {
        let name = schema.get_field_name(field).to_string();
        let json = owned_to_json(OwnedValue::from(value));
        match out.get_mut(&name) {
            None => {
                out.insert(name, json);
            }
            Some(Value::Array(items)) => items.push(json),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, json]);
            }
        }
    }
    out
}

/// A hash of a stored document's fields (and their values, in order) that does not depend
/// on the order the fields were stored in: what two replicas hold is equal exactly when
/// their hashes are (up to xxh3 collisions).
pub fn stored_content_hash(doc: &TantivyDocument, schema: &Schema) -> u64 {
    let fields = stored_fields_json(doc, schema);
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(fields[k].to_string().as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

fn owned_to_json(v: OwnedValue) -> Value {
    match v {
        OwnedValue::Str(s) => Value::String(s),
        OwnedValue::U64(n) => Value::from(n),
        OwnedValue::I64(n) => Value::from(n),
        OwnedValue::F64(f) => Value::from(f),
        OwnedValue::Bool(b) => Value::Bool(b),
        OwnedValue::Date(d) => {
            let t = d.into_utc();
            Value::String(
                t.format(&tantivy::time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            )
        }
        other => serde_json::to_value(&other).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converter() -> (DocConverter, Schema) {
        let s = ScatterSchema::default();
        let t = s.tantivy_schema();
        (DocConverter::new(&s, &t), t)
    }

    #[test]
    fn converts_and_counts_ignored_fields() {
        let (c, t) = converter();
        let d = c
            .convert_str(r#"{"id":"a","title":"Hello","body":["x","y"],"extra":1}"#)
            .unwrap();
        assert_eq!(d.id, "a");
        assert_eq!(d.ignored_fields, 1);
        let json = stored_fields_json(&d.doc, &t);
        assert_eq!(json["title"], "Hello");
        assert_eq!(json["body"], serde_json::json!(["x", "y"]));
    }

    #[test]
    fn rejects_bad_documents() {
        let (c, _) = converter();
        assert!(matches!(c.convert_str("{"), Err(DocError::Json(_))));
        assert_eq!(c.convert_str("[1]").unwrap_err(), DocError::NotObject);
        assert!(matches!(
            c.convert_str(r#"{"title":"x"}"#),
            Err(DocError::MissingId(_))
        ));
        assert!(matches!(
            c.convert_str(r#"{"id":5}"#),
            Err(DocError::BadId(_))
        ));
        assert!(matches!(
            c.convert_str(r#"{"id":"a","title":{"x":1}}"#),
            Err(DocError::BadField { .. })
        ));
    }
}
