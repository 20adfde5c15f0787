//! Global BM25 statistics: the shards' statistics summed into the cluster's, what every shard
//! scores with so that a sharded search ranks exactly as one index would.

use std::collections::HashMap;

use crate::v1::{FieldTokens, GlobalStats, TermFreq};

/// Sums per-shard statistics into cluster-wide ones.
pub fn sum<'a>(parts: impl IntoIterator<Item = &'a GlobalStats>) -> GlobalStats {
    let mut total_num_docs = 0;
    let mut fields: HashMap<&str, u64> = HashMap::new();
    let mut terms: HashMap<(&str, &[u8]), u64> = HashMap::new();
    for part in parts {
        total_num_docs += part.total_num_docs;
        for ft in &part.field_tokens {
            *fields.entry(&ft.field).or_default() += ft.total_num_tokens;
        }
        for tf in &part.term_freqs {
            *terms.entry((&tf.field, &tf.value)).or_default() += tf.doc_freq;
        }
    }
    let mut stats = GlobalStats {
        total_num_docs,
        field_tokens: fields
            .into_iter()
            .map(|(field, total_num_tokens)| FieldTokens {
                field: field.to_string(),
                total_num_tokens,
            })
            .collect(),
        term_freqs: terms
            .into_iter()
            .map(|((field, value), doc_freq)| TermFreq {
                field: field.to_string(),
                value: value.to_vec(),
                doc_freq,
            })
            .collect(),
    };
    stats.field_tokens.sort_by(|a, b| a.field.cmp(&b.field));
    stats
        .term_freqs
        .sort_by(|a, b| (&a.field, &a.value).cmp(&(&b.field, &b.value)));
    stats
}
