//! The Scatter schema: which fields a document has, how each is indexed, and how queries
//! search them. Declared in TOML or JSON; turned into a tantivy [`Schema`].

use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use tantivy::schema::{
    DateOptions, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};

/// Kind of a declared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Tokenized full text, scored with BM25.
    Text,
    /// One untokenized string (exact match), e.g. a section or a tag.
    Keyword,
    /// Unsigned integer.
    U64,
    /// Signed integer.
    I64,
    /// Floating point number.
    F64,
    /// Date: RFC 3339 string or Unix seconds.
    Date,
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Field name, as in the JSON documents.
    pub name: String,
    /// How the field is indexed.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// Kept in the document store and returned with hits.
    #[serde(default = "yes")]
    pub stored: bool,
    /// Searchable.
    #[serde(default = "yes")]
    pub indexed: bool,
    /// Columnar (for sorting and aggregations).
    #[serde(default)]
    pub fast: bool,
    /// Tokenizer of a text field (tantivy names: `default`, `en_stem`, `raw`, `whitespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Score multiplier when the field is searched by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boost: Option<f32>,
}

fn yes() -> bool {
    true
}

fn default_id_field() -> String {
    "id".to_string()
}

/// Uncompressed size of a doc store block. Fetching a document decompresses its whole
/// block, and a result page fetches a few scattered documents per shard, so blocks are kept
/// small: tantivy's default is 16 KB; 4 KB costs ~4× less per fetched document for a few per
/// cent more disk (measured in docs/benchmarks.md).
pub const DOCSTORE_BLOCK_SIZE: usize = 4096;

/// The whole schema of a Scatter cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScatterSchema {
    /// Name of the external id field (a stored, indexed, fast raw string).
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Fields a query term without `field:` searches.
    pub default_fields: Vec<String>,
    /// Declared fields (the id field is implicit).
    pub fields: Vec<FieldSpec>,
}

/// Tokenizer used for text fields when a schema does not name one.
pub const DEFAULT_TOKENIZER: &str = "en_stem";

impl Default for ScatterSchema {
    /// `title` and `body` as stored text with English stemming; `id` as the external id.
    fn default() -> Self {
        let text = |name: &str| FieldSpec {
            name: name.to_string(),
            kind: FieldKind::Text,
            stored: true,
            indexed: true,
            fast: false,
            tokenizer: None,
            boost: None,
        };
        ScatterSchema {
            id_field: default_id_field(),
            default_fields: vec!["title".into(), "body".into()],
            fields: vec![text("title"), text("body")],
        }
    }
}

impl ScatterSchema {
    /// What sorting by `field` reads: `None` for `_score`, else the kind of a fast u64, i64,
    /// f64, date or keyword field; why it cannot be a sort key otherwise.
    pub fn sort_kind(&self, field: &str) -> Result<Option<FieldKind>, String> {
        if field == "_score" {
            return Ok(None);
        }
        let spec = self
            .fields
            .iter()
            .find(|f| f.name == field)
            .ok_or_else(|| format!("sort field {field:?} is not in the schema"))?;
        let sortable = matches!(
            spec.kind,
            FieldKind::U64 | FieldKind::I64 | FieldKind::F64 | FieldKind::Date | FieldKind::Keyword
        );
        if spec.fast && sortable {
            Ok(Some(spec.kind))
        } else {
            Err(format!(
                "sort field {field:?} is not a fast numeric, date or keyword field"
            ))
        }
    }

    /// Reads a schema from a `.toml` or `.json` file and validates it.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading schema file {}", path.display()))?;
        let schema: ScatterSchema = if path.extension().is_some_and(|e| e == "toml") {
            Self::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        } else {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        };
        schema.validate()?;
        Ok(schema)
    }

    /// Parses a schema from TOML text and validates it.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let schema: ScatterSchema = toml::from_str(text).context("parsing schema TOML")?;
        schema.validate()?;
        Ok(schema)
    }

    /// Parses a schema from its JSON form (as leaves report it) and validates it.
    pub fn from_json(json: &str) -> anyhow::Result<Self> {
        let schema: ScatterSchema = serde_json::from_str(json).context("parsing schema JSON")?;
        schema.validate()?;
        Ok(schema)
    }

    /// Canonical JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("schema serializes")
    }

    /// Stable hash of the schema: shards of one cluster must have the same fingerprint.
    pub fn fingerprint(&self) -> String {
        format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(self.to_json().as_bytes())
        )
    }

    /// Checks names, duplicates, default fields and tokenizers.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.id_field.is_empty() {
            bail!("id_field must not be empty");
        }
        let mut seen = std::collections::HashSet::new();
        seen.insert(self.id_field.as_str());
        for f in &self.fields {
            if f.name.is_empty() || f.name.starts_with('_') {
                bail!("invalid field name {:?}", f.name);
            }
            if !seen.insert(f.name.as_str()) {
                bail!("field {:?} is declared twice (or is the id field)", f.name);
            }
            if f.tokenizer.is_some() && f.kind != FieldKind::Text {
                bail!("field {:?}: only text fields take a tokenizer", f.name);
            }
            if let Some(t) = &f.tokenizer {
                if !["default", "en_stem", "raw", "whitespace"].contains(&t.as_str()) {
                    bail!("field {:?}: unknown tokenizer {t:?}", f.name);
                }
            }
            if f.boost.is_some_and(|b| !(b.is_finite() && b > 0.0)) {
                bail!("field {:?}: boost must be a positive number", f.name);
            }
        }
        if self.default_fields.is_empty() {
            bail!("default_fields must name at least one field");
        }
        for name in &self.default_fields {
            match self.field(name) {
                Some(f) if f.indexed => {}
                Some(_) => bail!("default field {name:?} is not indexed"),
                None => bail!("default field {name:?} is not declared"),
            }
        }
        Ok(())
    }

    /// The declared field with this name.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Settings of every index made for this schema (bulk-built or created by a leaf): the
    /// doc store in [`DOCSTORE_BLOCK_SIZE`] blocks.
    pub fn index_settings(&self) -> tantivy::IndexSettings {
        tantivy::IndexSettings {
            docstore_blocksize: DOCSTORE_BLOCK_SIZE,
            ..Default::default()
        }
    }

    /// The tantivy schema: the id field first, then the declared fields in order.
    pub fn tantivy_schema(&self) -> Schema {
        let mut b = Schema::builder();
        b.add_text_field(&self.id_field, STRING | STORED | FAST);
        for f in &self.fields {
            add_field(&mut b, f);
        }
        b.build()
    }
}

fn add_field(b: &mut tantivy::schema::SchemaBuilder, f: &FieldSpec) {
    match f.kind {
        FieldKind::Text | FieldKind::Keyword => {
            let mut opts = TextOptions::default();
            if f.indexed {
                let (tokenizer, record) = if f.kind == FieldKind::Text {
                    let t = f.tokenizer.as_deref().unwrap_or(DEFAULT_TOKENIZER);
                    (t, IndexRecordOption::WithFreqsAndPositions)
                } else {
                    ("raw", IndexRecordOption::Basic)
                };
                opts = opts.set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(tokenizer)
                        .set_index_option(record),
                );
            }
            if f.stored {
                opts = opts.set_stored();
            }
            if f.fast {
                opts = opts.set_fast("raw");
            }
            b.add_text_field(&f.name, opts);
        }
        FieldKind::U64 | FieldKind::I64 | FieldKind::F64 => {
            let opts = numeric_options(f);
            match f.kind {
                FieldKind::U64 => b.add_u64_field(&f.name, opts),
                FieldKind::I64 => b.add_i64_field(&f.name, opts),
                _ => b.add_f64_field(&f.name, opts),
            };
        }
        FieldKind::Date => {
            let mut opts = DateOptions::default();
            if f.indexed {
                opts = opts.set_indexed();
            }
            if f.stored {
                opts = opts.set_stored();
            }
            if f.fast {
                opts = opts.set_fast();
            }
            b.add_date_field(&f.name, opts);
        }
    }
}

fn numeric_options(f: &FieldSpec) -> NumericOptions {
    let mut opts = NumericOptions::default();
    if f.indexed {
        opts = opts | INDEXED;
    }
    if f.stored {
        opts = opts | STORED;
    }
    if f.fast {
        opts = opts | FAST;
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_is_valid_and_stable() {
        let s = ScatterSchema::default();
        s.validate().unwrap();
        let again = ScatterSchema::from_json(&s.to_json()).unwrap();
        assert_eq!(s.fingerprint(), again.fingerprint());
        let t = s.tantivy_schema();
        assert!(t.get_field("id").is_ok() && t.get_field("body").is_ok());
    }

    #[test]
    fn toml_schema_with_all_kinds() {
        let text = r#"
            default_fields = ["title"]
            [[fields]]
            name = "title"
            type = "text"
            boost = 2.0
            [[fields]]
            name = "section"
            type = "keyword"
            fast = true
            [[fields]]
            name = "size"
            type = "u64"
            [[fields]]
            name = "released"
            type = "date"
        "#;
        let s: ScatterSchema = toml::from_str(text).unwrap();
        s.validate().unwrap();
        assert_eq!(s.tantivy_schema().fields().count(), 5);
    }

    #[test]
    fn rejects_bad_schemas() {
        let s = ScatterSchema {
            default_fields: vec!["nope".into()],
            ..Default::default()
        };
        assert!(s.validate().is_err());
        let mut s = ScatterSchema::default();
        s.fields.push(s.fields[0].clone());
        assert!(s.validate().is_err());
    }
}
