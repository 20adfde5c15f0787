//! BM25 statistics as a tantivy [`Bm25StatisticsProvider`]: the global statistics the root
//! sends with a search, so that every shard scores exactly like one index would.

use std::collections::HashMap;

use scatter_core::query::{term_from_wire, term_to_wire};
use scatter_proto::v1::GlobalStats;
use tantivy::query::{Bm25StatisticsProvider, Query};
use tantivy::schema::{Field, Schema};
use tantivy::{Searcher, Term};

/// Global statistics received from the root, indexed for lookup during scoring.
pub struct GlobalStatsProvider {
    total_num_docs: u64,
    field_tokens: HashMap<Field, u64>,
    doc_freqs: HashMap<Term, u64>,
}

impl GlobalStatsProvider {
    /// Builds the provider from the wire form, resolving field names with `schema`. Unknown
    /// fields are ignored (the local statistics then stand in for them).
    pub fn new(stats: &GlobalStats, schema: &Schema) -> Self {
        let field_tokens = stats
            .field_tokens
            .iter()
            .filter_map(|ft| Some((schema.get_field(&ft.field).ok()?, ft.total_num_tokens)))
            .collect();
        let doc_freqs = stats
            .term_freqs
            .iter()
            .filter_map(|tf| {
                let field = schema.get_field(&tf.field).ok()?;
                Some((term_from_wire(field, &tf.value), tf.doc_freq))
            })
            .collect();
        GlobalStatsProvider {
            total_num_docs: stats.total_num_docs,
            field_tokens,
            doc_freqs,
        }
    }
}

impl Bm25StatisticsProvider for GlobalStatsProvider {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Ok(self.field_tokens.get(&field).copied().unwrap_or(0))
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.total_num_docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        Ok(self.doc_freqs.get(term).copied().unwrap_or(0))
    }
}

/// This shard's own statistics for the terms of `query`, in wire form (what the root sums).
pub fn local_stats(searcher: &Searcher, query: &dyn Query) -> tantivy::Result<GlobalStats> {
    let schema = searcher.schema();
    let mut terms: Vec<Term> = Vec::new();
    query.query_terms(&mut |term, _| terms.push(term.clone()));
    terms.sort();
    terms.dedup();
    let mut fields: Vec<Field> = terms.iter().map(|t| t.field()).collect();
    fields.dedup();
    let mut stats = GlobalStats {
        total_num_docs: searcher.total_num_docs()?,
        ..Default::default()
    };
    for field in fields {
        stats.field_tokens.push(scatter_proto::v1::FieldTokens {
            field: schema.get_field_name(field).to_string(),
            total_num_tokens: searcher.total_num_tokens(field)?,
        });
    }
    for term in &terms {
        stats.term_freqs.push(scatter_proto::v1::TermFreq {
            field: schema.get_field_name(term.field()).to_string(),
            value: term_to_wire(term),
            doc_freq: searcher.doc_freq(term)?,
        });
    }
    Ok(stats)
}
