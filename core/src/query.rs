//! Query parsing shared by root (validation, term statistics) and leaf (search): both build
//! the parser from the same [`ScatterSchema`], so they read every query the same way.

use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser};
use tantivy::schema::{Field, Schema};
use tantivy::tokenizer::TokenizerManager;
use tantivy::Term;

use crate::expand_ast::{has_expansion, AstBuilder, WordField};
use crate::schema::{FieldKind, ScatterSchema};

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
    /// Nested deeper than [`MAX_QUERY_DEPTH`] (groups and `NOT`s).
    #[error("query nests {0} levels deep (parentheses and NOT); the limit is {MAX_QUERY_DEPTH}")]
    TooDeep(usize),
    /// The query parser rejected it.
    #[error("{0}")]
    Syntax(String),
}

/// Deepest nesting of groups `( )` and `NOT` operators a query may have. tantivy's parser
/// (strict and lenient) recurses once per level, so an unbounded depth overflows the stack;
/// the depth is measured by [`nesting_depth`] before the parser runs.
pub const MAX_QUERY_DEPTH: usize = 32;

/// How deep `text` nests in tantivy's query language: every `(` opens a level and every
/// `NOT`, `-` or `+` before a group or another `NOT` adds one, counted as the parser
/// recurses; quoted phrases and escaped characters count for nothing. An over-estimate is
/// harmless (the check is an upper bound), an under-estimate is not, so unbalanced text is
/// counted as if every `(` stayed open.
pub fn nesting_depth(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    // Levels opened at each `(` still open: 1 + the operators that stood before it.
    let mut stack: Vec<usize> = Vec::new();
    let mut pending = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\\' => {
                i += 2;
                pending = 0;
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                pending = 0;
            }
            b'(' => {
                let opened = 1 + pending;
                stack.push(opened);
                depth += opened;
                pending = 0;
            }
            b')' => {
                depth -= stack.pop().unwrap_or(0);
                pending = 0;
            }
            b'-' | b'+' | b'!' => pending += 1,
            b'N' if bytes[i..].starts_with(b"NOT") => {
                pending += 1;
                i += 3;
                continue;
            }
            c if c.is_ascii_whitespace() => {}
            _ => pending = 0,
        }
        max = max.max(depth + pending);
        i += 1;
    }
    max
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

/// A search's query text as its caller in this process already parsed it, handed to an
/// in-process leaf node with the request (an `Arc<ParsedText>` tonic request extension,
/// which never travels on the wire), so that a request's text is parsed once, not once by
/// the root and again by the node. The node uses it only for the same text and mode; a
/// remote node parses the text.
#[derive(Clone, Debug)]
pub struct ParsedText {
    /// The text parsed.
    pub text: String,
    /// Whether it was parsed leniently ([`QueryMode::Lenient`]).
    pub lenient: bool,
    /// The parsed query (no filters).
    pub query: std::sync::Arc<dyn Query>,
}

impl ParsedText {
    /// A copy of the query for `text` parsed in mode `lenient`, if this is its parse.
    pub fn query_for(&self, text: &str, lenient: bool) -> Option<Box<dyn Query>> {
        (self.text == text && self.lenient == lenient).then(|| self.query.box_clone())
    }
}

/// Parses query texts for one schema (tantivy's query language: terms, `AND`/`OR`, `+`/`-`,
/// `"phrases"`, `field:term`, ranges, `*`). Terms without a field search the schema's default
/// fields, each with its boost; the default operator is OR.
pub struct ScatterQueryParser {
    parser: QueryParser,
    /// Fields a prefix or fuzzy word may search (see [`crate::expand_ast`]).
    words: Vec<WordField>,
    /// The default fields among `words`.
    defaults: Vec<usize>,
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
        let words: Vec<WordField> = schema
            .fields
            .iter()
            .filter(|f| f.indexed && matches!(f.kind, FieldKind::Text | FieldKind::Keyword))
            .filter_map(|f| {
                Some(WordField {
                    name: f.name.clone(),
                    field: tantivy.get_field(&f.name).ok()?,
                    boost: f.boost,
                    text: f.kind == FieldKind::Text,
                })
            })
            .collect();
        let defaults = schema
            .default_fields
            .iter()
            .filter_map(|name| words.iter().position(|w| &w.name == name))
            .collect();
        ScatterQueryParser {
            parser,
            words,
            defaults,
        }
    }

    /// Strict: with prefix or fuzzy words (`foo*`, `foo~1`), the query built with them
    /// expanded (see [`crate::expand_ast`]); `None` when the text has none (tantivy's parser
    /// reads it). Lenient: the search box, words matching their typos and the last one as a
    /// prefix too; `None` when that cannot be built (tantivy's lenient parser reads it).
    fn with_expansions(
        &self,
        text: &str,
        mode: QueryMode,
    ) -> Option<Result<Box<dyn Query>, QueryError>> {
        let builder = AstBuilder {
            parser: &self.parser,
            fields: &self.words,
            defaults: &self.defaults,
            lenient: mode == QueryMode::Lenient,
        };
        match mode {
            QueryMode::Strict => {
                if !text.contains(['*', '~']) {
                    return None;
                }
                let ast = tantivy::query_grammar::parse_query(text).ok()?;
                has_expansion(&ast).then(|| builder.build(ast))
            }
            QueryMode::Lenient => {
                let ast = tantivy::query_grammar::parse_query_lenient(text).0;
                builder.search_box(ast).ok().map(Ok)
            }
        }
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
        let depth = nesting_depth(text);
        if depth > MAX_QUERY_DEPTH {
            return Err(QueryError::TooDeep(depth));
        }
        if let Some(expanded) = self.with_expansions(text, mode) {
            return expanded;
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
        self.with_filters(query, filters)
    }

    /// `query` (a text parsed with [`ScatterQueryParser::parse_in`]) with `filters`, each a
    /// query that must match and adds nothing to the score.
    pub fn with_filters(
        &self,
        query: Box<dyn Query>,
        filters: &[String],
    ) -> Result<Box<dyn Query>, QueryError> {
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
    fn a_parse_stands_only_for_its_own_text_and_mode() {
        let s = ScatterSchema::default();
        let p = ScatterQueryParser::new(&s, &s.tantivy_schema());
        let parsed = ParsedText {
            text: "web server".into(),
            lenient: false,
            query: p.parse_in("web server", QueryMode::Strict).unwrap().into(),
        };
        let mine = parsed.query_for("web server", false).unwrap();
        let fresh = p.parse_in("web server", QueryMode::Strict).unwrap();
        assert_eq!(format!("{mine:?}"), format!("{fresh:?}"));
        assert!(parsed.query_for("web servers", false).is_none());
        assert!(parsed.query_for("web server", true).is_none());
    }

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

    #[test]
    fn measures_nesting() {
        assert_eq!(nesting_depth("a b c"), 0);
        assert_eq!(nesting_depth("(a (b)) c"), 2);
        assert_eq!(nesting_depth("\"((((\" \\( x"), 0);
        assert_eq!(nesting_depth("NOT NOT NOT a"), 3);
        assert_eq!(nesting_depth("a NOT b NOT c"), 1);
        assert_eq!(nesting_depth("-(+(a))"), 4);
        assert_eq!(nesting_depth("(((a"), 3);
        assert_eq!(nesting_depth(")))((a"), 2);
    }

    /// Deep nesting is refused before tantivy's recursive parser sees it, in both modes and
    /// in filters, on a thread with a small stack (the parser is not reached at all).
    #[test]
    fn refuses_deep_nesting_without_recursing() {
        let s = ScatterSchema::default();
        let p = ScatterQueryParser::new(&s, &s.tantivy_schema());
        let deep = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        let nots = |n: usize| format!("{}a", "NOT ".repeat(n));
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                for mode in [QueryMode::Strict, QueryMode::Lenient] {
                    for text in [deep(750), deep(3000), nots(2000), "(".repeat(4000)] {
                        assert!(
                            matches!(p.parse_in(&text, mode), Err(QueryError::TooDeep(_))),
                            "{mode:?} {}",
                            &text[..20]
                        );
                    }
                }
                let err = p.parse_search("a", QueryMode::Strict, &[deep(1000)]);
                assert!(err.unwrap_err().to_string().contains("nests"));
            })
            .unwrap()
            .join()
            .unwrap();
        // The deepest accepted query parses on a thread with the stack of a tokio worker or
        // blocking thread (2 MiB), in a debug build too.
        let s = ScatterSchema::default();
        let p = ScatterQueryParser::new(&s, &s.tantivy_schema());
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for mode in [QueryMode::Strict, QueryMode::Lenient] {
                    let mixed = format!("{}a{}", "NOT (".repeat(16), ")".repeat(16));
                    for text in [deep(MAX_QUERY_DEPTH), nots(MAX_QUERY_DEPTH), mixed] {
                        assert_eq!(nesting_depth(&text), MAX_QUERY_DEPTH);
                        let r = p.parse_in(&text, mode);
                        assert!(!matches!(r, Err(QueryError::TooDeep(_))), "{text}");
                    }
                    assert!(p.parse_in(&deep(MAX_QUERY_DEPTH), mode).is_ok());
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
