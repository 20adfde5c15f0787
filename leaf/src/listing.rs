//! The **document listing** a replica check compares (`Versions` with `documents`): every
//! live document of one searcher — id, version (0 for bulk-built ones), and a hash of its
//! stored content as the index holds it — plus every tombstone, **sorted by id** and
//! streamed in chunks, so a root can compare replicas by a merge-join without holding any
//! listing whole.
//!
//! Memory: one chunk, the version log's entries (copied once, sorted: the log already keeps
//! them in memory), and one term-dictionary cursor per segment — not one entry per document.
//! The ids come from each segment's id term dictionary (sorted), merged across segments; a
//! document's stored fields are read by random access.

use std::sync::Arc;

use scatter_proto::v1::{VersionEntry, VersionsChunk};
use tantivy::index::InvertedIndexReader;
use tantivy::schema::IndexRecordOption;
use tantivy::store::StoreReader;
use tantivy::termdict::TermStreamer;
use tantivy::{DocId, DocSet, SegmentReader, TERMINATED};
use tokio::sync::mpsc::Sender;
use tonic::Status;

use crate::shard::Shard;

/// Entries per streamed listing chunk.
pub const LIST_CHUNK: usize = 4096;
/// Doc store blocks cached per segment while listing.
const STORE_CACHE_BLOCKS: usize = 32;

/// One segment's ids in order, each with its live document.
struct SegmentCursor<'a> {
    terms: TermStreamer<'a>,
    inverted: &'a InvertedIndexReader,
    segment: &'a SegmentReader,
    store: StoreReader,
    /// The current id and its live document, if the cursor is not exhausted.
    head: Option<(Vec<u8>, DocId)>,
}

impl<'a> SegmentCursor<'a> {
    /// Moves to the next id with a live document.
    fn advance(&mut self) -> anyhow::Result<()> {
        self.head = None;
        while self.terms.advance() {
            let info = self.terms.value().clone();
            let mut postings = self
                .inverted
                .read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
            let mut doc = postings.doc();
            while doc != TERMINATED && self.segment.is_deleted(doc) {
                doc = postings.advance();
            }
            if doc != TERMINATED {
                self.head = Some((self.terms.key().to_vec(), doc));
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Streams the listing of `shard` (see the module doc) to `tx`.
pub fn stream_documents(
    shard: &Arc<Shard>,
    tx: &Sender<Result<VersionsChunk, Status>>,
) -> Result<(), Status> {
    list(shard, tx).map_err(|e| Status::internal(format!("{e:#}")))
}

fn list(shard: &Shard, tx: &Sender<Result<VersionsChunk, Status>>) -> anyhow::Result<()> {
    // The searcher and the log's entries describe one commit: taken under the log's lock.
    let (searcher, mut versioned, position) = {
        let log = shard.versions();
        (shard.searcher(), log.list(), log.position())
    };
    versioned.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let schema = searcher.schema().clone();
    let id_field = schema.get_field(&shard.meta().schema.id_field)?;
    let inverted: Vec<Arc<InvertedIndexReader>> = searcher
        .segment_readers()
        .iter()
        .map(|s| s.inverted_index(id_field))
        .collect::<tantivy::Result<_>>()?;
    let mut cursors = Vec::new();
    for (segment, inv) in searcher.segment_readers().iter().zip(&inverted) {
        let mut cursor = SegmentCursor {
            terms: inv.terms().stream()?,
            inverted: inv,
            segment,
            store: segment.get_store_reader(STORE_CACHE_BLOCKS)?,
            head: None,
        };
        cursor.advance()?;
        cursors.push(cursor);
    }
    let mut out = Sink::new(shard, tx, position);
    let mut log = versioned.into_iter().peekable();
    loop {
        let next = cursors
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.head.as_ref().map(|(key, _)| (key, i)))
            .min()
            .map(|(_, i)| i);
        let Some(i) = next else { break };
        let cursor = &mut cursors[i];
        let (key, doc) = cursor.head.take().expect("a head");
        let id = String::from_utf8_lossy(&key).into_owned();
        // Tombstones of smaller ids come first; the log entry of this id gives its version.
        while let Some(e) = log.next_if(|e| e.id < id) {
            out.push_tombstone(e)?;
        }
        let held = log.next_if(|e| e.id == id);
        let stored: tantivy::TantivyDocument = cursor.store.get(doc)?;
        let live = held.as_ref().filter(|e| !e.deleted);
        out.push(VersionEntry {
            content: scatter_core::document::stored_content_hash(&stored, &schema),
            version: live.map_or(0, |e| e.version),
            tiebreak: live.map_or(0, |e| e.tiebreak),
            deleted: false,
            id,
        })?;
        if let Some(e) = held.filter(|e| e.deleted) {
            out.push(e)?; // a live document and a tombstone: a difference the check shows
        }
        cursor.advance()?;
    }
    for e in log {
        out.push_tombstone(e)?;
    }
    out.finish()
}

/// Chunks entries onto the stream; the first chunk carries the position and replica id.
struct Sink<'a> {
    shard: &'a Shard,
    tx: &'a Sender<Result<VersionsChunk, Status>>,
    position: u64,
    chunk: Vec<VersionEntry>,
    sent: bool,
}

impl<'a> Sink<'a> {
    fn new(shard: &'a Shard, tx: &'a Sender<Result<VersionsChunk, Status>>, position: u64) -> Self {
        Sink {
            shard,
            tx,
            position,
            chunk: Vec::with_capacity(LIST_CHUNK),
            sent: false,
        }
    }

    fn push_tombstone(&mut self, e: VersionEntry) -> anyhow::Result<()> {
        if e.deleted {
            self.push(e)?;
        }
        Ok(())
    }

    fn push(&mut self, e: VersionEntry) -> anyhow::Result<()> {
        self.chunk.push(e);
        if self.chunk.len() >= LIST_CHUNK {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> anyhow::Result<()> {
        let first = !self.sent;
        let chunk = VersionsChunk {
            entries: std::mem::take(&mut self.chunk),
            position: if first { self.position } else { 0 },
            replica_id: if first {
                self.shard.replica_id().to_string()
            } else {
                String::new()
            },
        };
        self.sent = true;
        anyhow::ensure!(
            self.tx.blocking_send(Ok(chunk)).is_ok(),
            "listing cancelled"
        );
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        if !self.chunk.is_empty() || !self.sent {
            self.send()?;
        }
        Ok(())
    }
}
