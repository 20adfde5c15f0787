//! The shard's whole term dictionary, streamed: every term of every indexed text field with
//! its document frequency summed over segments (deleted documents included, as tantivy's
//! BM25 counts them), and the totals BM25 needs. A root that holds these for every shard has
//! global statistics for any query without a per-query `TermStats` round trip.

use scatter_proto::v1::{FieldTokens, TermDictionaryChunk};
use tantivy::query::Bm25StatisticsProvider;
use tantivy::schema::{Field, Type};
use tantivy::termdict::TermStreamer;
use tantivy::Searcher;
use tonic::Status;

use crate::shard::{generation, Shard};

/// Terms per chunk: a few hundred KB on the wire.
pub const TERMS_PER_CHUNK: usize = 16 * 1024;

/// Streams the dictionary of `shard` (see the module doc) through `send`, which returns
/// `false` when the receiver has gone. Refuses with `RESOURCE_EXHAUSTED`, before sending any
/// term, when the dictionary holds more than `max_terms` terms (0: no limit).
pub fn stream(
    shard: &Shard,
    max_terms: u64,
    mut send: impl FnMut(TermDictionaryChunk) -> bool,
) -> Result<(), Status> {
    let searcher = shard.searcher();
    let generation = generation(&searcher);
    let fields = text_fields(&searcher);
    let internal = |e: std::io::Error| Status::internal(format!("term dictionary: {e}"));
    let mut header = TermDictionaryChunk {
        generation,
        // As `local_stats` reports it: the sum of max_doc.
        total_num_docs: searcher.total_num_docs().map_err(tantivy_error)?,
        ..Default::default()
    };
    let mut num_terms = 0u64;
    for &field in &fields {
        let mut tokens = 0;
        for segment in searcher.segment_readers() {
            let index = segment.inverted_index(field).map_err(tantivy_error)?;
            tokens += index.total_num_tokens();
            // An upper bound (a term in several segments counts once per segment).
            num_terms += index.terms().num_terms() as u64;
        }
        header.field_tokens.push(FieldTokens {
            field: searcher.schema().get_field_name(field).to_string(),
            total_num_tokens: tokens,
        });
    }
    if max_terms > 0 && num_terms > max_terms {
        return Err(Status::resource_exhausted(format!(
            "the shard's dictionary holds up to {num_terms} terms; at most {max_terms} asked"
        )));
    }
    if !send(header) {
        return Ok(());
    }
    for field in fields {
        let indexes = searcher
            .segment_readers()
            .iter()
            .map(|s| s.inverted_index(field))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(tantivy_error)?;
        let streams = indexes
            .iter()
            .map(|i| i.terms().stream())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(internal)?;
        let name = searcher.schema().get_field_name(field).to_string();
        let mut chunk = empty_chunk(generation, &name);
        let mut gone = false;
        merge_terms(streams, |key, doc_freq| {
            let mut wire = Vec::with_capacity(key.len() + 1);
            wire.push(Type::Str.to_code());
            wire.extend_from_slice(key);
            chunk.terms.push(wire);
            chunk.doc_freqs.push(doc_freq);
            if chunk.terms.len() == TERMS_PER_CHUNK {
                let full = std::mem::replace(&mut chunk, empty_chunk(generation, &name));
                gone = !send(full);
            }
            !gone
        });
        if gone || (!chunk.terms.is_empty() && !send(chunk)) {
            return Ok(());
        }
    }
    Ok(())
}

fn empty_chunk(generation: u64, field: &str) -> TermDictionaryChunk {
    TermDictionaryChunk {
        generation,
        field: field.to_string(),
        ..Default::default()
    }
}

fn tantivy_error(e: tantivy::TantivyError) -> Status {
    Status::internal(format!("term dictionary: {e}"))
}

/// The indexed text fields: the ones BM25 scores (and queries name terms of).
fn text_fields(searcher: &Searcher) -> Vec<Field> {
    searcher
        .schema()
        .fields()
        .filter(|(_, entry)| entry.is_indexed() && entry.field_type().value_type() == Type::Str)
        .map(|(field, _)| field)
        .collect()
}

/// Merges the segments' sorted term streams: calls `emit(term, doc_freq summed over the
/// segments holding it)` for each distinct term in ascending order, until it returns `false`.
fn merge_terms(mut streams: Vec<TermStreamer<'_>>, mut emit: impl FnMut(&[u8], u64) -> bool) {
    let mut live: Vec<bool> = streams.iter_mut().map(|s| s.advance()).collect();
    let mut key = Vec::new();
    loop {
        let smallest = (0..streams.len())
            .filter(|&i| live[i])
            .min_by(|&a, &b| streams[a].key().cmp(streams[b].key()));
        let Some(smallest) = smallest else {
            return;
        };
        key.clear();
        key.extend_from_slice(streams[smallest].key());
        let mut doc_freq = 0u64;
        for (i, stream) in streams.iter_mut().enumerate() {
            if live[i] && stream.key() == key.as_slice() {
                doc_freq += u64::from(stream.value().doc_freq);
                live[i] = stream.advance();
            }
        }
        if !emit(&key, doc_freq) {
            return;
        }
    }
}
