//! Query parsing shared by root (validation, term statistics) and leaf (search): both build
//! the parser from the same [`ScatterSchema`], so they read every query the same way.

use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser};
use tantivy::schema::{Field, Schema};
use tantivy::tokenizer::TokenizerManager;
use tantivy::Term;

use crate::schema::ScatterSchema;

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Why a query text was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// Empty or whitespace-only query.
    #[error("query is empty (use `*` to match every document)")]
    Empty,
    /// Longer than [`MAX_QUERY_BYTES`].
    #[error("query is {0} bytes long; the limit is {MAX_QUERY_BYTES}")]
    TooLong(usize),
    /// The query parser rejected it.
    #[error("{0}")]
    Syntax(String),
}

/// How the user's query text is read (`query_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QueryMode {
    /// The query language; a syntax error is the caller's error (the default).
    #[default]
    Strict,
    /// Never fails to parse: what the language cannot read is taken as text (tantivy's
    /// `parse_query_lenient`). For search boxes.
    Lenient,
}

/// Most filter clauses one search may carry.
pub const MAX_FILTERS: usize = 32;

/// Parses query texts for one schema (tantivy's query language: terms, `AND`/`OR`, `+`/`-`,
/// `"phrases"`, `field:term`, ranges, `*`). Terms without a field search the schema's default
/// fields, each with its boost; the default operator is OR.
pub struct ScatterQueryParser {
    parser: QueryParser,
}

impl ScatterQueryParser {
    /// A parser for `schema`, whose tantivy form is `tantivy`.
    pub fn new(schema: &ScatterSchema, tantivy: &Schema) -> Self {
        let fields = schema
            .default_fields
            .iter()
            .filter_map(|name| tantivy.get_field(name).ok())
            .collect();
        let mut parser = QueryParser::new(tantivy.clone(), fields, TokenizerManager::default());
        for f in &schema.fields {
            if let (Some(boost), Ok(field)) = (f.boost, tantivy.get_field(&f.name)) {
                parser.set_field_boost(field, boost);
            }
        }
        ScatterQueryParser { parser }
    }

    /// Parses `text`, or says why it cannot.
    pub fn parse(&self, text: &str) -> Result<Box<dyn Query>, QueryError> {
        self.parse_in(text, QueryMode::Strict)
    }

    /// Parses `text` in `mode` (lenient: never a syntax error; still refused when empty or
    /// too long).
    pub fn parse_in(&self, text: &str, mode: QueryMode) -> Result<Box<dyn Query>, QueryError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong(text.len()));
        }
        if text.trim().is_empty() {
            return Err(QueryError::Empty);
        }
        match mode {
            QueryMode::Strict => self
                .parser
                .parse_query(text)
                .map_err(|e| QueryError::Syntax(e.to_string())),
            QueryMode::Lenient => Ok(self.parser.parse_query_lenient(text).0),
        }
    }

    /// The query of a search: `text` in `mode`, restricted by every filter clause (each in
    /// the query language, parsed strictly). Filters only restrict: each is a required
    /// clause scoring 0, so every document that passes keeps the score the query alone
    /// gives it.
    pub fn parse_search(
        &self,
        text: &str,
        mode: QueryMode,
        filters: &[String],
    ) -> Result<Box<dyn Query>, QueryError> {
        let query = self.parse_in(text, mode)?;
        if filters.is_empty() {
            return Ok(query);
        }
        if filters.len() > MAX_FILTERS {
            return Err(QueryError::Syntax(format!(
                "{} filters; at most {MAX_FILTERS}",
                filters.len()
            )));
        }
        let mut clauses = vec![(Occur::Must, query)];
        for filter in filters {
            let clause = self
                .parse(filter)
                .map_err(|e| QueryError::Syntax(format!("filter {filter:?}: {e}")))?;
            let zero: Box<dyn Query> = Box::new(ConstScoreQuery::new(clause, 0.0));
            clauses.push((Occur::Must, zero));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }
}

/// Rebuilds a term from its field and wire bytes (as in [`term_to_wire`]).
///
/// The wire form is tantivy's serialized term without the 4-byte field id (type tag and
/// value), so that shards whose schemas agree by name agree on the bytes.
#[allow(deprecated)]
pub fn term_from_wire(field: Field, value: &[u8]) -> Term {
    let mut bytes = field.field_id().to_be_bytes().to_vec();
    bytes.extend_from_slice(value);
    Term::wrap(&bytes)
}

/// The wire bytes of a term: type tag and value, without the field id.
#[allow(deprecated)]
pub fn term_to_wire(term: &Term) -> Vec<u8> {
    term.serialized_term()[4..].to_vec()
}

/// The distinct terms of a query as `(field name, wire bytes)`, sorted: what global statistics
/// are gathered for. Fuzzy, regex and prefix queries have none (they score as constants).
pub fn query_terms_wire(query: &dyn Query, schema: &Schema) -> Vec<(String, Vec<u8>)> {
    let mut terms = Vec::new();
    query.query_terms(&mut |term, _| {
        terms.push((
            schema.get_field_name(term.field()).to_string(),
            term_to_wire(term),
        ))
    });
    terms.sort();
    terms.dedup();
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let s = ScatterSchema::default();
        let p = ScatterQueryParser::new(&s, &s.tantivy_schema());
        for ok in [
            "web server",
            "+title:editor -emacs",
            "\"text editor\"",
            "*",
            "a OR b",
        ] {
            assert!(p.parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(p.parse("  ").unwrap_err(), QueryError::Empty);
        assert!(matches!(p.parse("title:(foo"), Err(QueryError::Syntax(_))));
        assert!(matches!(
            p.parse("nosuchfield:x"),
            Err(QueryError::Syntax(_))
        ));
        assert!(matches!(
            p.parse(&"a ".repeat(5000)),
            Err(QueryError::TooLong(_))
        ));
        for text in ["title:(foo", "\"don't panic", "a AND", "nosuchfield:x ]["] {
            assert!(p.parse_in(text, QueryMode::Lenient).is_ok(), "{text}");
        }
        assert!(p
            .parse_search("web", QueryMode::Strict, &["title:(".into()])
            .is_err());
    }
}
