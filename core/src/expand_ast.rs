//! Queries with prefix and fuzzy words (`foo*`, `foo~1`): the user's query AST is walked,
//! every such word becomes an [`ExpandedTerm`] per field it searches, and every other part is
//! built by tantivy's parser as usual — so a query without such words reads exactly as
//! before. Quoted phrases keep tantivy's meaning (`"a b"~2` is a sloppy phrase, `"a b"*` a
//! phrase prefix).

use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, Occur, Query, QueryParser};
use tantivy::query_grammar::{Delimiter, UserInputAst, UserInputLeaf, UserInputLiteral};
use tantivy::schema::Field;

use crate::expansion::{min_fuzzy_len, ExpandedTerm, Expansion, MAX_EDIT_DISTANCE, MAX_FUZZY_LEN};
use crate::query::QueryError;

/// A field a word may search: its id, boost, and whether its terms are lowercased text
/// (keywords are matched as given).
#[derive(Debug, Clone)]
pub struct WordField {
    /// Name in the schema.
    pub name: String,
    /// tantivy field.
    pub field: Field,
    /// Boost of the field among the default fields.
    pub boost: Option<f32>,
    /// Text (lowercased terms) rather than keyword.
    pub text: bool,
}

/// Whether `ast` holds a prefix or fuzzy word (quoted phrases do not count).
pub fn has_expansion(ast: &UserInputAst) -> bool {
    match ast {
        UserInputAst::Clause(clauses) => clauses.iter().any(|(_, a)| has_expansion(a)),
        UserInputAst::Boost(a, _) => has_expansion(a),
        UserInputAst::Leaf(leaf) => {
            matches!(&**leaf, UserInputLeaf::Literal(l) if expansion_of(l).is_some())
        }
    }
}

/// How a bare word expands, and the word itself: `foo*` (tantivy's grammar keeps the star in
/// the word) or `foo~N` (a slop on a bare word, or kept in it).
fn expansion_of(l: &UserInputLiteral) -> Option<(Expansion, &str)> {
    if !matches!(l.delimiter, Delimiter::None) || l.phrase.is_empty() {
        return None;
    }
    let word = l.phrase.as_str();
    if let Some(stem) = word
        .strip_suffix('*')
        .filter(|s| !s.is_empty() && !s.ends_with('\\'))
    {
        return Some((Expansion::Prefix, stem));
    }
    if l.prefix {
        return Some((Expansion::Prefix, word));
    }
    if l.slop > 0 {
        return Some((Expansion::Fuzzy(l.slop.min(255) as u8), word));
    }
    let (stem, edits) = word.rsplit_once('~')?;
    let edits: u8 = edits.parse().ok()?;
    (!stem.is_empty() && edits > 0).then_some((Expansion::Fuzzy(edits), stem))
}

/// Builds `ast`: expanded words here, everything else by `parser`. `fields` are the
/// searchable fields by name; `defaults` those a word without a field searches.
pub struct AstBuilder<'a> {
    /// tantivy's parser (for everything but expanded words).
    pub parser: &'a QueryParser,
    /// Every field a word may name.
    pub fields: &'a [WordField],
    /// The default fields (indexes into `fields`).
    pub defaults: &'a [usize],
    /// A search box: a too-wide prefix matches nothing instead of failing the query.
    pub lenient: bool,
}

impl AstBuilder<'_> {
    /// The query of `ast`.
    pub fn build(&self, ast: UserInputAst) -> Result<Box<dyn Query>, QueryError> {
        match ast {
            UserInputAst::Clause(clauses) => {
                let mut built = Vec::with_capacity(clauses.len() + 1);
                for (occur, sub) in clauses {
                    built.push((occur.unwrap_or(Occur::Should), self.build(sub)?));
                }
                if built.iter().all(|(o, _)| *o == Occur::MustNot) {
                    // As tantivy's parser: a purely negative clause excludes from everything.
                    built.push((Occur::Must, Box::new(AllQuery)));
                }
                Ok(Box::new(BooleanQuery::new(built)))
            }
            UserInputAst::Boost(sub, boost) => Ok(Box::new(BoostQuery::new(
                self.build(*sub)?,
                boost.into_inner() as f32,
            ))),
            UserInputAst::Leaf(leaf) => match *leaf {
                UserInputLeaf::Literal(l) if expansion_of(&l).is_some() => self.word(&l),
                other => self
                    .parser
                    .build_query_from_user_input_ast(UserInputAst::Leaf(Box::new(other)))
                    .map_err(|e| QueryError::Syntax(e.to_string())),
            },
        }
    }

    /// One expanded word, on its field or on every default field (each with its boost).
    fn word(&self, l: &UserInputLiteral) -> Result<Box<dyn Query>, QueryError> {
        let (expansion, word) = expansion_of(l).expect("an expanded word");
        self.expanded(l.field_name.as_deref(), word, expansion, self.lenient)
    }

    /// `word` expanded on `field` (or every default field, each with its boost).
    fn expanded(
        &self,
        field: Option<&str>,
        word: &str,
        expansion: Expansion,
        optional: bool,
    ) -> Result<Box<dyn Query>, QueryError> {
        let shown = match expansion {
            Expansion::Prefix => format!("{word}*"),
            Expansion::Fuzzy(d) => format!("{word}~{d}"),
        };
        if let Expansion::Fuzzy(d) = expansion {
            if d > MAX_EDIT_DISTANCE {
                return Err(QueryError::Syntax(format!(
                    "{shown}: at most {MAX_EDIT_DISTANCE} edits"
                )));
            }
            let len = word.chars().count();
            if len > MAX_FUZZY_LEN {
                return Err(QueryError::Syntax(format!(
                    "a fuzzy word of {len} characters; at most {MAX_FUZZY_LEN}"
                )));
            }
            if len < min_fuzzy_len(d) {
                return Err(QueryError::Syntax(format!(
                    "{shown}: a word with {d} edit(s) needs at least {} characters",
                    min_fuzzy_len(d)
                )));
            }
        }
        let targets: Vec<&WordField> = match field {
            Some(name) => vec![self.fields.iter().find(|f| f.name == name).ok_or_else(|| {
                QueryError::Syntax(format!("{shown}: no searchable field {name:?}"))
            })?],
            None => self.defaults.iter().map(|&i| &self.fields[i]).collect(),
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for f in targets {
            let text = match f.text {
                true => word.to_lowercase(),
                false => word.to_string(),
            };
            let q = ExpandedTerm::new(f.field, text, expansion, shown.clone());
            let q: Box<dyn Query> = match optional {
                true => Box::new(q.optional()),
                false => Box::new(q),
            };
            let q = match f.boost {
                Some(b) => Box::new(BoostQuery::new(q, b)),
                None => q,
            };
            clauses.push((Occur::Should, q));
        }
        Ok(match clauses.len() {
            1 => clauses.pop().expect("one").1,
            _ => Box::new(BooleanQuery::new(clauses)),
        })
    }
}

/// Boost of a search-box word's typo and prefix variants: below any exact match (a document
/// matching the word itself scores its BM25 on top), equal among themselves.
pub const VARIANT_BOOST: f32 = 0.1;

/// Edits a search-box word tolerates: one from 5 letters, two from 9 (as Meilisearch and
/// Typesense do); none below.
pub fn typos_for(len: usize) -> u8 {
    match len {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// Shortest last word of a search box read as a prefix too.
pub const MIN_AUTO_PREFIX: usize = 3;

/// Search-box words that get typo variants (the first ones; the rest match as typed), so a
/// long text does not build an automaton per word.
pub const MAX_TYPO_WORDS: usize = 10;

impl AstBuilder<'_> {
    /// The search box (`query_mode=lenient`): `ast` as [`AstBuilder::build`] reads it, and
    /// every bare word also matches its typos ([`typos_for`]) and, for the last word, as a
    /// prefix — both at [`VARIANT_BOOST`], so exact matches rank first. A variant that cannot
    /// be built is left out (a search box never fails on its words).
    ///
    /// Only a flat text is read so (words and phrases, each perhaps with `+`, `-` or a
    /// boost); anything nested is left to tantivy's lenient reading (`Err`).
    pub fn search_box(&self, ast: UserInputAst) -> Result<Box<dyn Query>, QueryError> {
        if !is_flat(&ast) {
            return Err(QueryError::Syntax("not a flat search-box text".into()));
        }
        let words = count_words(&ast);
        let mut seen = 0;
        self.boxed(ast, words, &mut seen)
    }

    fn boxed(
        &self,
        ast: UserInputAst,
        words: usize,
        seen: &mut usize,
    ) -> Result<Box<dyn Query>, QueryError> {
        match ast {
            UserInputAst::Clause(clauses) => {
                let mut built = Vec::with_capacity(clauses.len() + 1);
                for (occur, sub) in clauses {
                    built.push((
                        occur.unwrap_or(Occur::Should),
                        self.boxed(sub, words, seen)?,
                    ));
                }
                if built.iter().all(|(o, _)| *o == Occur::MustNot) {
                    built.push((Occur::Must, Box::new(AllQuery)));
                }
                Ok(Box::new(BooleanQuery::new(built)))
            }
            UserInputAst::Boost(sub, boost) => Ok(Box::new(BoostQuery::new(
                self.boxed(*sub, words, seen)?,
                boost.into_inner() as f32,
            ))),
            UserInputAst::Leaf(leaf) => match *leaf {
                UserInputLeaf::Literal(l) if is_bare_word(&l) => {
                    *seen += 1;
                    let typos = *seen <= MAX_TYPO_WORDS;
                    self.box_word(l, typos, *seen == words)
                }
                other => self.build(UserInputAst::Leaf(Box::new(other))),
            },
        }
    }

    /// A search-box word: itself, its typos and (the last word) its prefix.
    fn box_word(
        &self,
        l: UserInputLiteral,
        typos: bool,
        last: bool,
    ) -> Result<Box<dyn Query>, QueryError> {
        let word = l.phrase.clone();
        let field = l.field_name.clone();
        let exact = self.build(UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(l))))?;
        let len = word.chars().count();
        let mut variants = Vec::new();
        if typos && typos_for(len) > 0 && len <= MAX_FUZZY_LEN {
            variants.push(Expansion::Fuzzy(typos_for(len)));
        }
        if last && len >= MIN_AUTO_PREFIX {
            variants.push(Expansion::Prefix);
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, exact)];
        for v in variants {
            if let Ok(q) = self.expanded(field.as_deref(), &word, v, true) {
                clauses.push((Occur::Should, Box::new(BoostQuery::new(q, VARIANT_BOOST))));
            }
        }
        Ok(match clauses.len() {
            1 => clauses.pop().expect("one").1,
            _ => Box::new(BooleanQuery::new(clauses)),
        })
    }
}

/// A plain word: unquoted, no `*` or `~`, made of letters and digits.
fn is_bare_word(l: &UserInputLiteral) -> bool {
    matches!(l.delimiter, Delimiter::None)
        && expansion_of(l).is_none()
        && !l.phrase.is_empty()
        && l.phrase.chars().all(char::is_alphanumeric)
}

/// Words and phrases side by side, nothing nested: what a search box holds.
fn is_flat(ast: &UserInputAst) -> bool {
    fn literal(a: &UserInputAst) -> bool {
        match a {
            UserInputAst::Leaf(leaf) => matches!(&**leaf, UserInputLeaf::Literal(_)),
            UserInputAst::Boost(inner, _) => literal(inner),
            UserInputAst::Clause(_) => false,
        }
    }
    match ast {
        UserInputAst::Clause(clauses) => clauses.iter().all(|(_, a)| literal(a)),
        other => literal(other),
    }
}

fn count_words(ast: &UserInputAst) -> usize {
    match ast {
        UserInputAst::Clause(clauses) => clauses.iter().map(|(_, a)| count_words(a)).sum(),
        UserInputAst::Boost(a, _) => count_words(a),
        UserInputAst::Leaf(leaf) => {
            usize::from(matches!(&**leaf, UserInputLeaf::Literal(l) if is_bare_word(l)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_a_star_or_a_tilde_are_expanded() {
        for text in ["linu*", "linx~1", "title:linu*", "a b*"] {
            let ast = tantivy::query_grammar::parse_query(text);
            let json = serde_json::to_string(ast.as_ref().unwrap()).unwrap();
            assert!(ast.as_ref().is_ok_and(has_expansion), "{text}: {json}");
        }
        for text in ["\"a b\"~2", "linux", "\"a b\"*", "*", "a~b"] {
            let ast = tantivy::query_grammar::parse_query(text).unwrap();
            assert!(!has_expansion(&ast), "{text}: {ast:?}");
        }
    }
}
