//! **Schema inference**: a schema read off the documents themselves, so that a JSONL file
//! builds with every field typed without a hand-written schema. The first
//! [`SAMPLE_DOCS`] documents are read; per top-level field:
//!
//! - integers → fast `u64` (`i64` when one is negative), any float → fast `f64`;
//! - strings that are all RFC 3339 dates → fast `date`;
//! - other strings: short (≤ [`KEYWORD_MAX_LEN`] characters on average), mostly without spaces
//!   and repeating (fewer distinct values than half the documents, or at most
//!   [`KEYWORD_MAX_DISTINCT`]) → fast `keyword` (exact match, facets, sort); otherwise `text`
//!   (tokenized, BM25, searched by default; `title`/`name` boosted ×2);
//! - arrays: multi-valued, typed by their elements; booleans → `keyword` (`true`/`false`);
//!   fields holding mostly objects, or mostly numbers with some strings, are left out
//!   (reported); an odd value of another type is that document's error at build.
//!
//! The id field is `id`. The result is printed and saved beside the build as `schema.toml`,
//! for the user to edit and rebuild with `--schema`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use scatter_core::{FieldKind, FieldSpec, ScatterSchema};
use serde_json::Value;

use crate::jsonl::JsonlReader;

/// Documents read to infer a schema.
pub const SAMPLE_DOCS: usize = 20_000;
/// Longest average string length of a keyword.
pub const KEYWORD_MAX_LEN: f64 = 32.0;
/// Distinct values a keyword may have regardless of the document count.
pub const KEYWORD_MAX_DISTINCT: usize = 1_000;
/// Most distinct field names followed (beyond, further names are left out and counted).
pub const MAX_FIELDS: usize = 1_000;
/// Distinct values remembered per field (beyond, it is "many").
const DISTINCT_CAP: usize = 20_000;

/// What was seen of one field.
#[derive(Debug, Default)]
struct Seen {
    docs: usize,
    ints: usize,
    negatives: usize,
    floats: usize,
    bools: usize,
    strings: usize,
    dates: usize,
    objects: usize,
    string_chars: usize,
    with_spaces: usize,
    /// Hashes of the distinct strings (not the strings: memory stays per field, not per byte).
    distinct: HashSet<u64>,
}

impl Seen {
    fn add(&mut self, v: &Value) {
        match v {
            Value::Null => {}
            Value::Bool(_) => self.bools += 1,
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                self.ints += 1;
                self.negatives += usize::from(n.as_i64().is_some_and(|i| i < 0));
            }
            Value::Number(_) => self.floats += 1,
            Value::String(s) => {
                self.strings += 1;
                self.string_chars += s.chars().count();
                self.with_spaces += usize::from(s.contains(char::is_whitespace));
                let date = tantivy::time::OffsetDateTime::parse(
                    s,
                    &tantivy::time::format_description::well_known::Rfc3339,
                );
                self.dates += usize::from(date.is_ok());
                if self.distinct.len() < DISTINCT_CAP {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    std::hash::Hash::hash(s, &mut h);
                    self.distinct.insert(std::hash::Hasher::finish(&h));
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.add(i)),
            Value::Object(_) => self.objects += 1,
        }
    }

    /// The field's kind, or why it is left out.
    fn kind(&self) -> Result<FieldKind, &'static str> {
        let numbers = self.ints + self.floats;
        if self.objects * 2 >= self.objects + numbers + self.strings + self.bools {
            // (An odd object among other values is that document's error at build.)
            return Err("objects are not indexed");
        }
        if numbers > 0 && self.strings == 0 && self.bools == 0 {
            return Ok(match (self.floats, self.negatives) {
                (0, 0) => FieldKind::U64,
                (0, _) => FieldKind::I64,
                _ => FieldKind::F64,
            });
        }
        if self.strings == 0 && self.bools > 0 && numbers == 0 {
            return Ok(FieldKind::Keyword);
        }
        if self.strings == 0 {
            return Err("no values seen");
        }
        if numbers > self.strings {
            return Err("mostly numbers, some strings");
        }
        if self.dates == self.strings {
            return Ok(FieldKind::Date);
        }
        let avg = self.string_chars as f64 / self.strings as f64;
        let repeats =
            self.distinct.len() <= KEYWORD_MAX_DISTINCT || self.distinct.len() * 2 <= self.docs;
        let spaced = self.with_spaces * 10 > self.strings;
        Ok(if avg <= KEYWORD_MAX_LEN && repeats && !spaced {
            FieldKind::Keyword
        } else {
            FieldKind::Text
        })
    }
}

/// An inferred schema and the fields left out (with why).
#[derive(Debug)]
pub struct Inferred {
    /// The schema.
    pub schema: ScatterSchema,
    /// Fields seen but not indexed, with the reason.
    pub left_out: Vec<(String, &'static str)>,
    /// Documents read.
    pub sampled: usize,
}

/// Infers a schema from the first [`SAMPLE_DOCS`] documents of the JSONL file `input`.
pub fn infer(input: &Path) -> anyhow::Result<Inferred> {
    let mut reader = JsonlReader::open(input)?;
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let (mut sampled, mut too_many) = (0, 0usize);
    while sampled < SAMPLE_DOCS {
        let Some(line) = reader.next_line()? else {
            break;
        };
        let Ok(text) = line.text else { continue };
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        sampled += 1;
        for (k, v) in &doc {
            if !seen.contains_key(k) && seen.len() >= MAX_FIELDS {
                too_many += 1;
                continue;
            }
            let s = seen.entry(k.clone()).or_default();
            s.docs += 1;
            s.add(v);
        }
    }
    anyhow::ensure!(
        sampled > 0,
        "{}: no JSON object found to infer a schema from",
        input.display()
    );
    anyhow::ensure!(
        seen.contains_key("id"),
        "{}: the documents have no \"id\" field (every document needs a unique string id)",
        input.display()
    );
    let mut inferred = schema_of(seen, sampled);
    if too_many > 0 {
        let what = format!("{too_many} values of fields past the first {MAX_FIELDS} names");
        inferred
            .left_out
            .push((what, "too many distinct field names"));
    }
    Ok(inferred)
}

fn schema_of(seen: BTreeMap<String, Seen>, sampled: usize) -> Inferred {
    let mut fields = Vec::new();
    let mut left_out = Vec::new();
    for (name, s) in &seen {
        if name == "id" {
            continue;
        }
        match s.kind() {
            Ok(kind) => fields.push(FieldSpec {
                name: name.clone(),
                kind,
                stored: true,
                indexed: true,
                fast: kind != FieldKind::Text,
                tokenizer: None,
                boost: (kind == FieldKind::Text && matches!(name.as_str(), "title" | "name"))
                    .then_some(2.0),
            }),
            Err(why) => left_out.push((name.clone(), why)),
        }
    }
    let default_fields: Vec<String> = fields
        .iter()
        .filter(|f| f.kind == FieldKind::Text)
        .map(|f| f.name.clone())
        .collect();
    let schema = ScatterSchema {
        id_field: "id".into(),
        default_fields,
        fields,
    };
    Inferred {
        schema,
        left_out,
        sampled,
    }
}

impl std::fmt::Display for Inferred {
    /// The schema as TOML, with what was left out as comments.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "# Inferred from {} documents; edit and rebuild with --schema.",
            self.sampled
        )?;
        for (name, why) in &self.left_out {
            writeln!(f, "# left out: {name} ({why})")?;
        }
        let toml = toml::to_string(&self.schema).map_err(|_| std::fmt::Error)?;
        f.write_str(&toml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn types_are_read_off_the_documents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..200 {
            let license = ["MIT", "Apache-2.0", "GPL-3.0"][i % 3];
            let doc = serde_json::json!({
                "id": format!("pkg-{i}"),
                "name": format!("package number {i}"),
                "summary": "a long description of what this package does, with words",
                "downloads": i * 10,
                "delta": i as i64 - 100,
                "rating": 0.5 + i as f64,
                "released": "2024-05-01T12:00:00Z",
                "license": license,
                "keywords": ["web", "http"],
                "stable": i % 2 == 0,
                "meta": {"a": 1},
            });
            writeln!(f, "{doc}").unwrap();
        }
        drop(f);
        let inferred = infer(&path).unwrap();
        let kind = |n: &str| inferred.schema.field(n).map(|f| f.kind);
        assert_eq!(kind("name"), Some(FieldKind::Text));
        assert_eq!(kind("summary"), Some(FieldKind::Text));
        assert_eq!(kind("downloads"), Some(FieldKind::U64));
        assert_eq!(kind("delta"), Some(FieldKind::I64));
        assert_eq!(kind("rating"), Some(FieldKind::F64));
        assert_eq!(kind("released"), Some(FieldKind::Date));
        assert_eq!(kind("license"), Some(FieldKind::Keyword));
        assert_eq!(kind("keywords"), Some(FieldKind::Keyword));
        assert_eq!(kind("stable"), Some(FieldKind::Keyword));
        assert_eq!(kind("meta"), None);
        assert_eq!(inferred.schema.field("name").unwrap().boost, Some(2.0));
        assert_eq!(inferred.schema.default_fields, ["name", "summary"]);
        inferred.schema.validate().unwrap();
        let text = inferred.to_string();
        assert!(text.contains("left out: meta"), "{text}");
        let again: ScatterSchema = toml::from_str(&text).unwrap();
        assert_eq!(again, inferred.schema);
    }
}
