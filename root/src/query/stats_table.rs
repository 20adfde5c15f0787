//! Global statistics for every term, held at the root: each shard's whole term dictionary
//! (document frequency per term of every text field, and the totals), downloaded with the
//! leaf's `TermDictionary` stream and kept as compact FST maps. With a table for every shard
//! at the generation its replicas serve, any query's global statistics are sums of local
//! lookups — no `TermStats` round trip before the search, whatever the terms.
//!
//! Once every shard has a table, they are also summed into one merged table, so a term costs
//! one FST walk rather than one per shard (the per-shard sums stand in while it is rebuilt).
//!
//! A table is used only while every searchable replica of its shard reports the generation
//! it was read at; otherwise the per-query path ([`crate::query::stats::global_stats`]) stands in.
//! Tables are refreshed in the background once a shard's generation has held still for one
//! refresh tick (so a shard under continuous writes is not re-downloaded on every commit),
//! and not more often than [`StatsTable::min_interval`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

use scatter_proto::v1::{FieldTokens, GlobalStats, TermDictionaryRequest, TermFreq};
use tantivy_fst::map::OpBuilder;
use tantivy_fst::{Map, MapBuilder, Streamer};

use crate::cluster::{Cluster, ShardGroup};

/// Default of [`StatsTable::max_terms`]: per shard, a few MB of FST.
pub const DEFAULT_MAX_TERMS: u64 = 5_000_000;
/// Default of [`StatsTable::min_interval`].
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// A query's terms as `(field, wire bytes)`, see [`scatter_core::query::query_terms_wire`].
pub type Terms = [(String, Vec<u8>)];
/// Longest a dictionary download may take (a stalled stream is given up).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// One shard's dictionary at one generation.
pub struct ShardTable {
    /// Index generation the dictionary was read at.
    pub generation: u64,
    total_num_docs: u64,
    field_tokens: HashMap<String, u64>,
    fields: HashMap<String, Map<Vec<u8>>>,
    /// Distinct terms held.
    pub terms: u64,
    /// Bytes of the FST maps.
    pub bytes: usize,
}

impl ShardTable {
    /// Reads a dictionary stream (see `scatter.v1.TermDictionaryChunk`).
    pub async fn download(
        replica: &crate::cluster::Replica,
        max_terms: u64,
    ) -> anyhow::Result<Self> {
        let req = TermDictionaryRequest {
            max_terms,
            shard: replica.shard_id(),
        };
        let mut stream = replica
            .client()
            .term_dictionary(crate::cluster::request_id::request(req, DOWNLOAD_TIMEOUT))
            .await?
            .into_inner();
        let header = stream
            .message()
            .await?
            .ok_or_else(|| anyhow::anyhow!("empty dictionary stream"))?;
        let mut builder = TableBuilder::new(&header);
        while let Some(chunk) = stream.message().await? {
            builder.add(chunk)?;
        }
        builder.finish()
    }

    /// Document frequency of a term on this shard: `None` when the field is not covered.
    fn doc_freq(&self, field: &str, wire: &[u8]) -> Option<u64> {
        Some(self.fields.get(field)?.get(wire).unwrap_or(0))
    }
}

/// Assembles a [`ShardTable`] from its chunks.
struct TableBuilder {
    table: ShardTable,
    current: Option<(String, MapBuilder<Vec<u8>>)>,
}

impl TableBuilder {
    fn new(header: &scatter_proto::v1::TermDictionaryChunk) -> Self {
        let table = ShardTable {
            generation: header.generation,
            total_num_docs: header.total_num_docs,
            field_tokens: header
                .field_tokens
                .iter()
                .map(|f| (f.field.clone(), f.total_num_tokens))
                .collect(),
            fields: HashMap::new(),
            terms: 0,
            bytes: 0,
        };
        TableBuilder {
            table,
            current: None,
        }
    }

    fn add(&mut self, chunk: scatter_proto::v1::TermDictionaryChunk) -> anyhow::Result<()> {
        anyhow::ensure!(
            chunk.generation == self.table.generation,
            "the dictionary changed generation while streaming"
        );
        anyhow::ensure!(
            chunk.terms.len() == chunk.doc_freqs.len(),
            "terms and frequencies differ in number"
        );
        if self.current.as_ref().is_none_or(|(f, _)| *f != chunk.field) {
            self.close_field()?;
            anyhow::ensure!(
                self.table.field_tokens.contains_key(&chunk.field)
                    && !self.table.fields.contains_key(&chunk.field),
                "unexpected field {:?} in the dictionary stream",
                chunk.field
            );
            self.current = Some((chunk.field.clone(), MapBuilder::memory()));
        }
        let (_, builder) = self.current.as_mut().expect("set above");
        for (term, df) in chunk.terms.iter().zip(&chunk.doc_freqs) {
            builder.insert(term, *df)?;
        }
        self.table.terms += chunk.terms.len() as u64;
        Ok(())
    }

    fn close_field(&mut self) -> anyhow::Result<()> {
        if let Some((field, builder)) = self.current.take() {
            let bytes = builder.into_inner()?;
            self.table.bytes += bytes.len();
            self.table.fields.insert(field, Map::from_bytes(bytes)?);
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<ShardTable> {
        self.close_field()?;
        // Covered fields without any term (empty shard) still answer: every frequency 0.
        for field in self.table.field_tokens.keys() {
            if !self.table.fields.contains_key(field) {
                let empty = MapBuilder::memory().into_inner()?;
                self.table
                    .fields
                    .insert(field.clone(), Map::from_bytes(empty)?);
            }
        }
        Ok(self.table)
    }
}

/// The shards' generations a merged table was made of, and the table.
type Merged = (Vec<u64>, ShardTable);

#[derive(Default)]
struct Slot {
    table: Option<Arc<ShardTable>>,
    /// Generation seen at the previous tick (a refresh waits until it holds still).
    seen: Option<u64>,
    refreshing: bool,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The tables of every shard (see the module doc).
pub struct StatsTable {
    slots: Vec<Mutex<Slot>>,
    /// Largest dictionary (in terms, per shard) downloaded; larger shards use the per-query
    /// path only.
    pub max_terms: u64,
    /// Shortest time between two downloads for one shard.
    pub min_interval: Duration,
    hits: AtomicU64,
    downloads: AtomicU64,
    /// All shards' tables summed into one (one FST walk per term instead of one per shard),
    /// with the shard generations it was made of.
    merged: Mutex<Option<Arc<Merged>>>,
}

impl StatsTable {
    /// No tables yet, for `num_shards` shards; `max_terms` 0 disables the tables.
    pub fn new(num_shards: usize, max_terms: u64, min_interval: Duration) -> Self {
        StatsTable {
            slots: (0..num_shards).map(|_| Mutex::default()).collect(),
            max_terms,
            min_interval,
            hits: AtomicU64::new(0),
            downloads: AtomicU64::new(0),
            merged: Mutex::new(None),
        }
    }

    /// The global statistics of `terms` from the tables, if every shard's table is current
    /// and covers every term's field.
    pub fn lookup(&self, cluster: &Cluster, terms: &Terms) -> Option<GlobalStats> {
        let tables: Vec<Arc<ShardTable>> = cluster
            .shards
            .iter()
            .map(|g| self.current(g))
            .collect::<Option<_>>()?;
        let merged = self.merged.lock().expect("merged").clone();
        let stats = match merged {
            Some(m) if tables.iter().map(|t| t.generation).eq(m.0.iter().copied()) => {
                sum_tables(&[&m.1], terms)
            }
            _ => sum_tables(&tables.iter().map(|t| &**t).collect::<Vec<_>>(), terms),
        }?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(stats)
    }
}

/// The statistics of `terms` summed over `tables`; `None` when some field is not covered.
fn sum_tables(tables: &[&ShardTable], terms: &Terms) -> Option<GlobalStats> {
    let mut stats = GlobalStats {
        total_num_docs: tables.iter().map(|t| t.total_num_docs).sum(),
        ..Default::default()
    };
    let mut fields: Vec<&String> = terms.iter().map(|(f, _)| f).collect();
    fields.dedup();
    for field in fields {
        let total_num_tokens = tables
            .iter()
            .map(|t| t.field_tokens.get(field).copied())
            .sum::<Option<u64>>()?;
        stats.field_tokens.push(FieldTokens {
            field: field.clone(),
            total_num_tokens,
        });
    }
    for (field, wire) in terms {
        let doc_freq = tables
            .iter()
            .map(|t| t.doc_freq(field, wire))
            .sum::<Option<u64>>()?;
        stats.term_freqs.push(TermFreq {
            field: field.clone(),
            value: wire.clone(),
            doc_freq,
        });
    }
    Some(stats)
}

/// One table holding, per term, the sum of `tables`' document frequencies (fields covered by
/// every table only).
fn merge_tables(tables: &[Arc<ShardTable>]) -> anyhow::Result<ShardTable> {
    let mut merged = ShardTable {
        generation: 0,
        total_num_docs: tables.iter().map(|t| t.total_num_docs).sum(),
        field_tokens: HashMap::new(),
        fields: HashMap::new(),
        terms: 0,
        bytes: 0,
    };
    let Some(first) = tables.first() else {
        return Ok(merged);
    };
    for name in first.fields.keys() {
        let maps: Option<Vec<&Map<Vec<u8>>>> = tables.iter().map(|t| t.fields.get(name)).collect();
        let tokens: Option<u64> = tables.iter().map(|t| t.field_tokens.get(name)).sum();
        let (Some(maps), Some(tokens)) = (maps, tokens) else {
            continue;
        };
        let mut union = maps
            .iter()
            .fold(OpBuilder::new(), |op, map| op.add(map.stream()))
            .union();
        let mut builder = MapBuilder::memory();
        while let Some((term, parts)) = union.next() {
            builder.insert(term, parts.iter().map(|p| p.value).sum())?;
            merged.terms += 1;
        }
        let bytes = builder.into_inner()?;
        merged.bytes += bytes.len();
        merged.fields.insert(name.clone(), Map::from_bytes(bytes)?);
        merged.field_tokens.insert(name.clone(), tokens);
    }
    Ok(merged)
}

impl StatsTable {
    /// The shard's table if every searchable replica serves its generation.
    fn current(&self, group: &ShardGroup) -> Option<Arc<ShardTable>> {
        let table = self.slots[group.shard]
            .lock()
            .expect("slot")
            .table
            .clone()?;
        let agree = group
            .replicas
            .iter()
            .filter_map(|r| r.searchable_generation())
            .all(|g| g == table.generation);
        agree.then_some(table)
    }

    /// Notes that a replica of `shard` answered at `generation`: a table read at another
    /// generation is dropped (a write another root made, learnt before the next probe).
    pub fn observe(&self, shard: usize, generation: u64) {
        let Some(slot) = self.slots.get(shard) else {
            return;
        };
        let mut slot = slot.lock().expect("slot");
        if slot
            .table
            .as_ref()
            .is_some_and(|t| t.generation != generation)
        {
            slot.table = None;
        }
    }

    /// One refresh tick: downloads, concurrently, the dictionary of every shard whose
    /// generation has held still since the last tick and differs from its table's.
    pub async fn tick(&self, cluster: &Cluster) {
        if self.max_terms == 0 {
            return;
        }
        let due: Vec<_> = cluster
            .shards
            .iter()
            .filter_map(|g| self.due(g).map(|r| (g.shard, r)))
            .collect();
        let downloads = due.into_iter().map(|(shard, replica)| async move {
            let result = ShardTable::download(&replica, self.max_terms).await;
            let mut slot = self.slots[shard].lock().expect("slot");
            slot.refreshing = false;
            match result {
                Ok(table) => {
                    self.downloads.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        shard,
                        terms = table.terms,
                        bytes = table.bytes,
                        "statistics table loaded"
                    );
                    slot.table = Some(Arc::new(table));
                    slot.last_error = None;
                    true
                }
                Err(e) => {
                    tracing::info!(shard, "statistics table not loaded: {e:#}");
                    slot.last_error = Some(format!("{e:#}"));
                    false
                }
            }
        });
        let loaded = futures::future::join_all(downloads).await;
        if loaded.contains(&true) {
            self.remerge().await;
        }
    }

    /// Rebuilds the merged table from the shards' tables (when every shard has one).
    async fn remerge(&self) {
        let tables: Option<Vec<Arc<ShardTable>>> = self
            .slots
            .iter()
            .map(|s| s.lock().expect("slot").table.clone())
            .collect();
        let Some(tables) = tables else {
            return;
        };
        let generations: Vec<u64> = tables.iter().map(|t| t.generation).collect();
        match tokio::task::spawn_blocking(move || merge_tables(&tables)).await {
            Ok(Ok(table)) => {
                *self.merged.lock().expect("merged") = Some(Arc::new((generations, table)));
            }
            Ok(Err(e)) => tracing::warn!("statistics tables not merged: {e:#}"),
            Err(e) => tracing::warn!("statistics tables not merged: {e}"),
        }
    }

    /// The replica to download shard `group`'s dictionary from, if a download is due.
    fn due(&self, group: &ShardGroup) -> Option<Arc<crate::cluster::Replica>> {
        let (replica, generation) = group
            .replicas
            .iter()
            .find_map(|r| Some((r.clone(), r.searchable_generation()?)))?;
        let mut slot = self.slots[group.shard].lock().expect("slot");
        let still = slot.seen.replace(generation) == Some(generation);
        let have = slot
            .table
            .as_ref()
            .is_some_and(|t| t.generation == generation);
        let rested = slot
            .last_attempt
            .is_none_or(|t| t.elapsed() >= self.min_interval);
        if !still || have || slot.refreshing || !rested {
            return None;
        }
        slot.refreshing = true;
        slot.last_attempt = Some(Instant::now());
        Some(replica)
    }

    /// Per shard: the table's generation, size and whether it is in use; and the counters.
    pub fn status(&self, cluster: &Cluster) -> serde_json::Value {
        let shards: Vec<_> = cluster
            .shards
            .iter()
            .map(|g| {
                let current = self.current(g).is_some();
                let slot = self.slots[g.shard].lock().expect("slot");
                let t = slot.table.as_ref();
                serde_json::json!({
                    "shard": g.shard,
                    // 64-bit: a string, as JavaScript numbers cannot hold it.
                    "generation": t.map(|t| t.generation.to_string()),
                    "terms": t.map(|t| t.terms),
                    "bytes": t.map(|t| t.bytes),
                    "current": current,
                    "last_error": slot.last_error,
                })
            })
            .collect();
        let merged = self.merged.lock().expect("merged").clone();
        serde_json::json!({
            "merged": merged.map(|m| serde_json::json!({
                "generations": m.0.iter().map(u64::to_string).collect::<Vec<_>>(),
                "terms": m.1.terms,
                "bytes": m.1.bytes,
            })),
            "hits": self.hits.load(Ordering::Relaxed),
            "downloads": self.downloads.load(Ordering::Relaxed),
            "max_terms": self.max_terms,
            "shards": shards,
        })
    }
}

/// Refreshes `table` every `interval` while `owner` (whatever holds the table) lives.
pub fn spawn_refresher<T: Send + Sync + 'static>(
    owner: Weak<T>,
    cluster: Arc<Cluster>,
    interval: Duration,
    table: impl Fn(&T) -> &StatsTable + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(owner) = owner.upgrade() else {
                return;
            };
            table(&owner).tick(&cluster).await;
        }
    })
}
