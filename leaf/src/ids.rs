//! External ids of a searcher's documents, resolved in O(1). The id fast field maps a doc to
//! a term ordinal cheaply, but turning an ordinal into its string decodes an sstable block
//! (microseconds each); so each segment's id dictionary is read once, sequentially, into a
//! compact table (the bytes of all ids plus one offset per id) when a searcher generation is
//! first used. Memory: the ids' bytes + 4 bytes per document.

use std::sync::{Arc, Mutex};

use tantivy::columnar::StrColumn;
use tantivy::{DocAddress, DocId, Searcher};

/// One segment's ids, by term ordinal (which sorts like the ids).
pub struct SegmentIds {
    column: Option<StrColumn>,
    offsets: Vec<u32>,
    bytes: Vec<u8>,
}

impl SegmentIds {
    fn load(column: Option<StrColumn>) -> std::io::Result<Self> {
        let mut offsets = vec![0u32];
        let mut bytes = Vec::new();
        if let Some(col) = &column {
            let mut stream = col.dictionary().stream()?;
            while stream.advance() {
                bytes.extend_from_slice(stream.key());
                offsets.push(bytes.len() as u32);
            }
        }
        Ok(SegmentIds {
            column,
            offsets,
            bytes,
        })
    }

    /// The term ordinal of `doc`'s id (ordinals sort like ids within a segment).
    pub fn ord(&self, doc: DocId) -> Option<u64> {
        self.column.as_ref()?.term_ords(doc).next()
    }

    /// The id with ordinal `ord`.
    pub fn id_of_ord(&self, ord: u64) -> Option<&str> {
        let ord = ord as usize;
        let (start, end) = (*self.offsets.get(ord)?, *self.offsets.get(ord + 1)?);
        std::str::from_utf8(&self.bytes[start as usize..end as usize]).ok()
    }

    /// The id of `doc`.
    pub fn id(&self, doc: DocId) -> Option<&str> {
        self.id_of_ord(self.ord(doc)?)
    }
}

/// The ids of every segment of one searcher.
pub struct SearcherIds {
    generation: u64,
    segments: Vec<SegmentIds>,
}

impl SearcherIds {
    /// The segment with this ordinal.
    pub fn segment(&self, ord: u32) -> Option<&SegmentIds> {
        self.segments.get(ord as usize)
    }

    /// The id of the document at `addr`.
    pub fn id(&self, addr: DocAddress) -> Option<&str> {
        self.segment(addr.segment_ord)?.id(addr.doc_id)
    }
}

/// Keeps the id tables of the latest searcher generation.
#[derive(Default)]
pub struct IdCache {
    id_field: String,
    current: Mutex<Option<Arc<SearcherIds>>>,
}

impl IdCache {
    /// A cache for the id fast field `id_field`.
    pub fn new(id_field: &str) -> Self {
        IdCache {
            id_field: id_field.to_string(),
            current: Mutex::new(None),
        }
    }

    /// The id tables of `searcher`, loaded on its generation's first use.
    pub fn get(&self, searcher: &Searcher) -> tantivy::Result<Arc<SearcherIds>> {
        let generation = searcher.generation().generation_id();
        if let Some(ids) = &*self.current.lock().expect("id cache lock") {
            if ids.generation == generation {
                return Ok(ids.clone());
            }
        }
        let segments = searcher
            .segment_readers()
            .iter()
            .map(|s| Ok(SegmentIds::load(s.fast_fields().str(&self.id_field)?)?))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let ids = Arc::new(SearcherIds {
            generation,
            segments,
        });
        *self.current.lock().expect("id cache lock") = Some(ids.clone());
        Ok(ids)
    }
}
