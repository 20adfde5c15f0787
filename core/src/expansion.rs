//! Prefix (`foo*`) and fuzzy (`foo~1`, `foo~2`) terms: a word of the query that stands for
//! every term of the index that starts with it, or lies within an edit distance of it.
//!
//! Both score a **constant** (their boost, 1 by default) for every document they match, as
//! Elasticsearch's prefix and fuzzy queries do by default (`constant_score` rewrite): a
//! constant needs no statistics, so it is the same on every shard and the answer is the
//! same at any shard count (ties are broken by id, as everywhere).
//!
//! Expansion is bounded: a word that stands for more than [`MAX_EXPANSIONS`] terms in a
//! shard is refused (400 naming the word) instead of reading every term's postings. The
//! count is per shard's segment (the terms a shard would read), checked before any posting
//! is read.

use tantivy::query::{EnableScoring, FuzzyTermQuery, Query, Weight};
use tantivy::schema::Field;
use tantivy::{Searcher, TantivyError, Term};

/// Most index terms one prefix or fuzzy word may stand for in one segment of a shard.
pub const MAX_EXPANSIONS: usize = 1000;

/// Largest edit distance of a fuzzy word.
pub const MAX_EDIT_DISTANCE: u8 = 2;

/// Longest fuzzy word, in characters: its automaton grows with its length.
pub const MAX_FUZZY_LEN: usize = 64;

/// Start of the error a too-wide word gives (a leaf reports it as the caller's error).
pub const TOO_WIDE: &str = "expands to more than";

/// How a word expands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// Every term starting with the word.
    Prefix,
    /// Every term within this many edits (insertions, deletions, substitutions,
    /// transpositions) of the word.
    Fuzzy(u8),
}

/// One expanded word on one field.
#[derive(Debug, Clone)]
pub struct ExpandedTerm {
    field: Field,
    text: String,
    expansion: Expansion,
    /// What the user typed, for errors.
    shown: String,
    /// A search box's completion: too wide, it matches nothing instead of failing the query.
    optional: bool,
}

impl ExpandedTerm {
    /// `text` (already normalized as the field's terms are) on `field`; `shown` is the word
    /// as typed (`foo*`, `foo~1`).
    pub fn new(field: Field, text: String, expansion: Expansion, shown: String) -> Self {
        ExpandedTerm {
            field,
            text,
            expansion,
            shown,
            optional: false,
        }
    }

    /// This word as a search box's completion: a prefix wider than [`MAX_EXPANSIONS`] terms
    /// in a segment matches nothing there instead of failing the query (a search box never
    /// fails while the user types; the exact words still match).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    fn inner(&self) -> FuzzyTermQuery {
        let term = Term::from_field_text(self.field, &self.text);
        match self.expansion {
            Expansion::Prefix => FuzzyTermQuery::new_prefix(term, 0, false),
            Expansion::Fuzzy(d) => FuzzyTermQuery::new(term, d.min(MAX_EDIT_DISTANCE), true),
        }
    }

    /// Refuses a prefix that stands for more than [`MAX_EXPANSIONS`] terms in a segment of
    /// `searcher` (counted on the term dictionary's range, stopping past the limit). A fuzzy
    /// word is bounded by its distance and length (see [`min_fuzzy_len`]).
    fn check_width(&self, searcher: &Searcher) -> tantivy::Result<()> {
        if self.expansion != Expansion::Prefix {
            return Ok(());
        }
        let lower = Term::from_field_text(self.field, &self.text);
        for segment in searcher.segment_readers() {
            let index = segment.inverted_index(self.field)?;
            let mut stream = index
                .terms()
                .range()
                .ge(lower.serialized_value_bytes())
                .into_stream()?;
            let mut n = 0;
            while stream.advance() {
                if !stream.key().starts_with(self.text.as_bytes()) {
                    break;
                }
                n += 1;
                if n > MAX_EXPANSIONS {
                    return Err(TantivyError::InvalidArgument(format!(
                        "{TOO_WIDE} {MAX_EXPANSIONS} terms: {} (use a longer prefix)",
                        self.shown
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Shortest word that may carry `distance` edits (`~1`: 3 characters, `~2`: 5): shorter
/// words would stand for most of a dictionary.
pub fn min_fuzzy_len(distance: u8) -> usize {
    match distance {
        0 => 1,
        1 => 3,
        _ => 5,
    }
}

impl Query for ExpandedTerm {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        if let Some(searcher) = scoring.searcher() {
            match self.check_width(searcher) {
                Err(_) if self.optional => return tantivy::query::EmptyQuery.weight(scoring),
                checked => checked?,
            }
        }
        self.inner().weight(scoring)
    }

    fn query_terms<'a>(&'a self, _visitor: &mut dyn FnMut(&'a Term, bool)) {
        // A constant score needs no statistics: no terms to gather.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::Count;
    use tantivy::schema::{Schema, STRING};
    use tantivy::{doc, Index};

    #[test]
    fn a_prefix_wider_than_the_cap_is_refused_before_reading_postings() {
        let mut builder = Schema::builder();
        let f = builder.add_text_field("w", STRING);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for i in 0..=MAX_EXPANSIONS {
            writer.add_document(doc!(f => format!("ab{i:05}"))).unwrap();
        }
        writer.add_document(doc!(f => "zz")).unwrap();
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let wide = ExpandedTerm::new(f, "ab".into(), Expansion::Prefix, "ab*".into());
        let e = searcher.search(&wide, &Count).unwrap_err().to_string();
        assert!(e.contains(TOO_WIDE) && e.contains("ab*"), "{e}");
        let narrow = ExpandedTerm::new(f, "ab0001".into(), Expansion::Prefix, "ab0001*".into());
        assert_eq!(searcher.search(&narrow, &Count).unwrap(), 10);
        let completion = wide.clone().optional();
        assert_eq!(searcher.search(&completion, &Count).unwrap(), 0);
        let fuzzy = ExpandedTerm::new(f, "zy".into(), Expansion::Fuzzy(1), "zy~1".into());
        assert_eq!(searcher.search(&fuzzy, &Count).unwrap(), 1);
    }
}
