//! The shard's **version log**: for every id written live, its newest write (version,
//! tiebreak, upsert or tombstone, and the source document), plus the peers known to lack
//! some of its writes. Replicas order writes of one id by [`Stamp`] and keep the highest, so
//! they converge whatever order writes arrive in; the log's source documents let a peer merge
//! in what it missed (see [`crate::merge`]).
//!
//! On disk: `scatter-versions.log` in the shard directory, one JSON record per line, appended
//! and fsynced *before* the tantivy commit whose payload records the log length. On open the
//! log is cut back to that length, so the log and the index always describe the same commit
//! (a record written for a commit that never happened is dropped with it).
//!
//! Documents from a bulk build have no entry: their stamp is [`Stamp::BULK`], older than any
//! live write. Memory: one entry per id written live (the id plus ~40 bytes).
//!
//! **Compaction** (see [`crate::compaction`]) rewrites the log into a new *generation* file
//! holding only each id's newest record and the current marks, and drops tombstones older
//! than the retention once no peer is known to lack a write; the commit payload names the
//! generation. Positions (marks, merges) are *logical*: a generation's file starts at the
//! logical position where the previous one ended (its first line, `{"base": N}`), so they
//! only grow.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use scatter_proto::v1::{SourceEntry, VersionEntry};
use serde::Deserialize;

/// File name of the version log inside a shard directory (generation 0).
pub const VERSIONS_FILE: &str = "scatter-versions.log";

/// File name of generation `gen` of the version log.
pub fn versions_file_name(gen: u64) -> String {
    if gen == 0 {
        VERSIONS_FILE.to_string()
    } else {
        format!("scatter-versions.{gen}.log")
    }
}

/// Whether `name` is a version log file of any generation.
pub fn is_versions_file(name: &str) -> bool {
    name == VERSIONS_FILE
        || name
            .strip_prefix("scatter-versions.")
            .and_then(|r| r.strip_suffix(".log"))
            .is_some_and(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Marker of a shard created empty, removed by the copy repair that fills it.
pub const AWAITING_COPY_FILE: &str = "scatter-awaiting-copy";

/// File holding the replica's id inside a shard directory.
pub const REPLICA_ID_FILE: &str = "scatter-replica-id";

/// Where a write stands in the order of writes of its id: higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    /// Version assigned by the root (a hybrid logical clock).
    pub version: u64,
    /// Breaks ties between different writes given the same version by different roots: a
    /// hash of the document, [`u64::MAX`] for a delete (a delete wins a tie).
    pub tiebreak: u64,
}

impl Stamp {
    /// The stamp of a document from a bulk build (no live write yet).
    pub const BULK: Stamp = Stamp {
        version: 0,
        tiebreak: 0,
    };

    /// The stamp of an upsert of `json` at `version`.
    pub fn upsert(version: u64, json: &str) -> Self {
        Stamp {
            version,
            tiebreak: xxhash_rust::xxh3::xxh3_64(json.as_bytes()) >> 1,
        }
    }

    /// The stamp of a delete at `version`.
    pub fn delete(version: u64) -> Self {
        Stamp {
            version,
            tiebreak: u64::MAX,
        }
    }
}

/// An id's newest write.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its stamp.
    pub stamp: Stamp,
    /// A delete (tombstone).
    pub deleted: bool,
    /// Where its record starts in the log, and its length.
    offset: u64,
    len: u32,
}

/// One line of the log, as read: a write (`id`, `v`, `t`, `d`, and the source `s` — raw JSON
/// written by [`write_record`] without re-encoding, or a JSON string when it spans lines), a
/// mark (`behind`) or a clear (`clear`, `upto`).
#[derive(Deserialize)]
struct Line {
    id: Option<String>,
    #[serde(default)]
    v: u64,
    #[serde(default)]
    t: u64,
    #[serde(default)]
    d: bool,
    s: Option<Box<serde_json::value::RawValue>>,
    behind: Option<String>,
    clear: Option<String>,
    #[serde(default)]
    upto: u64,
    base: Option<u64>,
}

/// What a line records.
enum Record {
    Write { id: String, v: u64, t: u64, d: bool },
    Behind { behind: String },
    Clear { clear: String, upto: u64 },
    Base { base: u64 },
}

impl Line {
    fn record(self) -> Option<Record> {
        match (self.id, self.behind, self.clear) {
            (Some(id), _, _) => Some(Record::Write {
                id,
                v: self.v,
                t: self.t,
                d: self.d,
            }),
            (_, Some(behind), _) => Some(Record::Behind { behind }),
            (_, _, Some(clear)) => Some(Record::Clear {
                clear,
                upto: self.upto,
            }),
            _ => self.base.map(|base| Record::Base { base }),
        }
    }
}

/// The version log of one shard (see the module doc).
pub struct VersionLog {
    file: File,
    /// Generation of the file (see the module doc).
    gen: u64,
    /// Logical position of the file's first byte.
    base: u64,
    /// Bytes of the records `entries` point to (the rest of the file is superseded).
    live_bytes: u64,
    /// Bytes written to the file (records of the commit in progress included).
    len: u64,
    /// Records of the commit in progress, not written yet.
    pending: Vec<u8>,
    entries: HashMap<String, Entry>,
    /// Peer replica id → log position of the latest write it is known to lack.
    behind: HashMap<String, u64>,
    digest: u64,
    max_version: u64,
}

impl VersionLog {
    /// Opens (or creates) generation `gen` of the log in `dir`, cut back to `committed`
    /// bytes; files of other generations (an older one a compaction replaced, or a newer one
    /// whose commit never happened) are removed.
    pub fn open(dir: &Path, committed: u64, gen: u64) -> anyhow::Result<Self> {
        let path = dir.join(versions_file_name(gen));
        remove_other_generations(dir, gen);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        File::open(dir)?.sync_all()?; // the log's directory entry, if just created
        let on_disk = file.metadata()?.len();
        anyhow::ensure!(
            on_disk >= committed,
            "{} holds {on_disk} bytes, the last commit recorded {committed}",
            path.display()
        );
        if on_disk > committed {
            tracing::warn!(path = %path.display(), on_disk, committed, "dropping version records of an unfinished commit");
            file.set_len(committed)?;
            file.sync_all()?;
        }
        let mut log = VersionLog {
            file,
            gen,
            base: 0,
            live_bytes: 0,
            len: 0,
            pending: Vec::new(),
            entries: HashMap::new(),
            behind: HashMap::new(),
            digest: 0,
            max_version: 0,
        };
        log.replay(&path, committed)?;
        Ok(log)
    }

    fn replay(&mut self, path: &Path, committed: u64) -> anyhow::Result<()> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut line = Vec::new();
        while self.len < committed {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            anyhow::ensure!(n > 0, "{} ends early", path.display());
            let record = serde_json::from_slice::<Line>(&line)
                .ok()
                .and_then(Line::record)
                .with_context(|| format!("{}: bad record at byte {}", path.display(), self.len))?;
            let offset = self.len;
            self.len += n as u64;
            self.note(record, offset, n as u32);
        }
        Ok(())
    }

    /// Applies one record to the in-memory state.
    fn note(&mut self, record: Record, offset: u64, len: u32) {
        match record {
            Record::Write { id, v, t, d, .. } => {
                let stamp = Stamp {
                    version: v,
                    tiebreak: t,
                };
                let entry = Entry {
                    stamp,
                    deleted: d,
                    offset,
                    len,
                };
                self.note_write(&id, entry);
            }
            Record::Behind { behind } => {
                self.behind.insert(behind, self.base + offset + len as u64);
            }
            Record::Base { base } => self.base = base,
            Record::Clear { clear, upto } => {
                if self.behind.get(&clear).is_some_and(|&at| at <= upto) {
                    self.behind.remove(&clear);
                }
            }
        }
    }

    fn push(&mut self, record: Record) {
        let offset = self.len + self.pending.len() as u64;
        let mut line = match &record {
            Record::Behind { behind } => serde_json::json!({ "behind": behind }),
            Record::Clear { clear, upto } => serde_json::json!({ "clear": clear, "upto": upto }),
            Record::Base { base } => serde_json::json!({ "base": base }),
            Record::Write { .. } => unreachable!("writes go through push_write"),
        }
        .to_string()
        .into_bytes();
        line.push(b'\n');
        let len = line.len() as u32;
        self.pending.extend_from_slice(&line);
        self.note(record, offset, len);
    }

    /// Appends a write record (see [`write_record`]) and notes it.
    fn push_write(&mut self, id: &str, stamp: Stamp, json: Option<&str>) {
        let offset = self.len + self.pending.len() as u64;
        write_record(&mut self.pending, id, stamp, json);
        let len = (self.len + self.pending.len() as u64 - offset) as u32;
        let entry = Entry {
            stamp,
            deleted: json.is_none(),
            offset,
            len,
        };
        self.note_write(id, entry);
    }

    fn note_write(&mut self, id: &str, entry: Entry) {
        self.max_version = self.max_version.max(entry.stamp.version);
        self.digest ^= entry_hash(id, &entry);
        self.live_bytes += u64::from(entry.len);
        if let Some(old) = self.entries.insert(id.to_string(), entry) {
            self.digest ^= entry_hash(id, &old);
            self.live_bytes -= u64::from(old.len);
        }
    }

    /// The newest write of `id` held (committed or in the commit in progress).
    pub fn get(&self, id: &str) -> Option<Entry> {
        self.entries.get(id).copied()
    }

    /// Records an upsert (`json` given) or a delete (`json` None) of `id`.
    pub fn record_write(&mut self, id: &str, stamp: Stamp, json: Option<&str>) {
        self.push_write(id, stamp, json);
    }

    /// Records that peer `replica_id` lacks the writes held now.
    pub fn mark_behind(&mut self, replica_id: &str) {
        self.push(Record::Behind {
            behind: replica_id.to_string(),
        });
    }

    /// Clears the mark of `replica_id` if it was set at or before `upto`.
    pub fn clear_behind(&mut self, replica_id: &str, upto: u64) {
        if self.behind.contains_key(replica_id) {
            self.push(Record::Clear {
                clear: replica_id.to_string(),
                upto,
            });
        }
    }

    /// Writes and fsyncs the records of the commit in progress; returns the length the
    /// commit must record.
    pub fn flush(&mut self) -> std::io::Result<u64> {
        if !self.pending.is_empty() {
            self.file.write_all_at(&self.pending, self.len)?;
            self.len += self.pending.len() as u64;
            self.pending.clear();
            self.file.sync_data()?;
        }
        Ok(self.len)
    }

    /// Logical log position after the records so far (only grows, across compactions).
    pub fn position(&self) -> u64 {
        self.base + self.len + self.pending.len() as u64
    }

    /// Generation of the file.
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Bytes of the file (committed records).
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Bytes of the records still current (the newest of each id).
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Every entry with its id (for compaction).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The raw record (one line) of `e`, as written.
    pub(crate) fn raw_record(&self, e: &Entry, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.resize(e.len as usize, 0);
        self.file.read_exact_at(buf, e.offset)
    }

    /// Order-independent digest of the entries (equal on replicas holding the same writes).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Highest version recorded.
    pub fn max_version(&self) -> u64 {
        self.max_version
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entry held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replica ids known to lack some of this replica's writes, sorted.
    pub fn behind(&self) -> Vec<String> {
        let mut v: Vec<String> = self.behind.keys().cloned().collect();
        v.sort();
        v
    }

    /// Every entry, as sent to peers.
    pub fn list(&self) -> Vec<VersionEntry> {
        self.entries
            .iter()
            .map(|(id, e)| version_entry(id, e))
            .collect()
    }

    /// The entries of the first ids of `ids` with their source documents (ids without an
    /// entry are left out), stopping before the documents outgrow `max_bytes` (at least one
    /// id is always covered); returns them and how many ids they cover.
    pub fn sources(
        &self,
        ids: &[String],
        max_bytes: usize,
    ) -> anyhow::Result<(Vec<SourceEntry>, usize)> {
        let mut out = Vec::with_capacity(ids.len());
        let mut buf = Vec::new();
        let mut bytes = 0;
        for (n, id) in ids.iter().enumerate() {
            let Some(e) = self.entries.get(id) else {
                continue;
            };
            bytes += e.len as usize;
            if n > 0 && bytes > max_bytes {
                return Ok((out, n));
            }
            let json = if e.deleted {
                String::new()
            } else {
                self.read_source(e, &mut buf)?
            };
            out.push(SourceEntry {
                entry: Some(version_entry(id, e)),
                json,
            });
        }
        Ok((out, ids.len()))
    }

    fn read_source(&self, e: &Entry, buf: &mut Vec<u8>) -> anyhow::Result<String> {
        anyhow::ensure!(
            e.offset + e.len as u64 <= self.len,
            "entry of the commit in progress"
        );
        buf.resize(e.len as usize, 0);
        self.file.read_exact_at(buf, e.offset)?;
        let line: Line = serde_json::from_slice(buf)?;
        match line.s {
            Some(raw) if raw.get().starts_with('"') => Ok(serde_json::from_str(raw.get())?),
            Some(raw) => Ok(raw.get().to_string()),
            None => anyhow::bail!("version log record at {} has no source", e.offset),
        }
    }
}

/// Appends one write record to `buf`: the source document, already validated JSON, is
/// copied in as is (no re-encoding) unless it spans lines (then it is a JSON string).
fn write_record(buf: &mut Vec<u8>, id: &str, stamp: Stamp, json: Option<&str>) {
    buf.extend_from_slice(b"{\"id\":");
    serde_json::to_writer(&mut *buf, id).expect("a string serializes");
    write!(buf, ",\"v\":{},\"t\":{}", stamp.version, stamp.tiebreak).expect("to a Vec");
    match json {
        None => buf.extend_from_slice(b",\"d\":true"),
        Some(src) => {
            buf.extend_from_slice(b",\"s\":");
            if src.contains(['\n', '\r']) {
                serde_json::to_writer(&mut *buf, src).expect("a string serializes");
            } else {
                buf.extend_from_slice(src.as_bytes());
            }
        }
    }
    buf.extend_from_slice(b"}\n");
}

fn version_entry(id: &str, e: &Entry) -> VersionEntry {
    VersionEntry {
        id: id.to_string(),
        version: e.stamp.version,
        tiebreak: e.stamp.tiebreak,
        deleted: e.deleted,
        content: 0,
    }
}

fn entry_hash(id: &str, e: &Entry) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(id.as_bytes());
    h.update(&[0xff]);
    h.update(&e.stamp.version.to_le_bytes());
    h.update(&e.stamp.tiebreak.to_le_bytes());
    h.update(&[e.deleted as u8]);
    h.digest()
}

/// The replica id kept in `dir`, created (random) on first use. The file also records the
/// directory's device and inode: a copied directory (a new replica made with `cp -r`) has
/// other ones, so it gets an id of its own instead of its source's.
pub fn replica_id(dir: &Path) -> anyhow::Result<String> {
    let here = dir_identity(dir)?;
    if let Ok(text) = std::fs::read_to_string(dir.join(REPLICA_ID_FILE)) {
        let mut parts = text.split_whitespace();
        if let (Some(id), Some(place)) = (parts.next(), parts.next()) {
            if place == here {
                return Ok(id.to_string());
            }
        }
    }
    let rng = scatter_core::random::SharedRng::new(scatter_core::random::os_seed());
    let id = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    write_replica_id(dir, &id)?;
    Ok(id)
}

/// Records `id` as the replica id of `dir` (durably).
pub fn write_replica_id(dir: &Path, id: &str) -> anyhow::Result<()> {
    let path: PathBuf = dir.join(REPLICA_ID_FILE);
    let tmp = dir.join(format!("{REPLICA_ID_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    writeln!(f, "{id} {}", dir_identity(dir)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes version log files of generations other than `gen` (best effort).
fn remove_other_generations(dir: &Path, gen: u64) {
    let keep = versions_file_name(gen);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_versions_file(&name) && name != keep {
            tracing::info!(file = %name, "removing a version log of another generation");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `device:inode` of a directory.
fn dir_identity(dir: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    Ok(format!("{}:{}", m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_write_wins_and_survives_reopen_cut_to_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = VersionLog::open(dir.path(), 0, 0).unwrap();
        log.record_write("a", Stamp::upsert(5, "{}"), Some("{\"id\":\"a\"}"));
        log.record_write("b", Stamp::delete(3), None);
        log.mark_behind("peer");
        let committed = log.flush().unwrap();
        let digest = log.digest();
        log.record_write("a", Stamp::upsert(9, "{}"), Some("{\"id\":\"a\",\"x\":1}"));
        log.flush().unwrap();
        drop(log);
        let log = VersionLog::open(dir.path(), committed, 0).unwrap();
        assert_eq!(log.get("a").unwrap().stamp.version, 5);
        assert!(log.get("b").unwrap().deleted);
        assert_eq!(log.digest(), digest);
        assert_eq!(log.behind(), vec!["peer".to_string()]);
        let (src, consumed) = log
            .sources(&["a".into(), "b".into(), "c".into()], usize::MAX)
            .unwrap();
        assert_eq!((src.len(), consumed), (2, 3));
        let (src, consumed) = log.sources(&["a".into(), "b".into()], 1).unwrap();
        assert_eq!(
            (src.len(), consumed),
            (1, 1),
            "stops at the byte limit, one at least"
        );
        assert_eq!(src[0].json, "{\"id\":\"a\"}");
    }

    #[test]
    fn digest_is_order_independent_and_marks_clear_only_up_to_their_position() {
        let dir1 = tempfile::tempdir().unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let mut l1 = VersionLog::open(dir1.path(), 0, 0).unwrap();
        let mut l2 = VersionLog::open(dir2.path(), 0, 0).unwrap();
        l1.record_write("a", Stamp::upsert(1, "x"), Some("x"));
        l1.record_write("b", Stamp::upsert(2, "y"), Some("y"));
        l2.record_write("b", Stamp::upsert(2, "y"), Some("y"));
        l2.record_write("a", Stamp::upsert(1, "x"), Some("x"));
        assert_eq!(l1.digest(), l2.digest());
        l1.mark_behind("p");
        let at = l1.position();
        l1.mark_behind("p");
        l1.clear_behind("p", at);
        assert_eq!(l1.behind(), vec!["p".to_string()]);
        l1.clear_behind("p", l1.position());
        assert!(l1.behind().is_empty());
    }

    #[test]
    fn sources_come_back_byte_for_byte_even_across_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = VersionLog::open(dir.path(), 0, 0).unwrap();
        let one = r#"{"id":"a","title":"x \"q\" é"}"#;
        let two = "{\"id\":\"b\",\n \"title\":\"y\"}";
        log.record_write("a", Stamp::upsert(1, one), Some(one));
        log.record_write("b", Stamp::upsert(1, two), Some(two));
        let len = log.flush().unwrap();
        let log = VersionLog::open(dir.path(), len, 0).unwrap();
        let (src, _) = log.sources(&["a".into(), "b".into()], usize::MAX).unwrap();
        assert_eq!((src[0].json.as_str(), src[1].json.as_str()), (one, two));
    }

    #[test]
    fn a_copied_directory_gets_its_own_replica_id() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        let id = replica_id(&a).unwrap();
        assert_eq!(replica_id(&a).unwrap(), id);
        std::fs::create_dir(&b).unwrap();
        std::fs::copy(a.join(REPLICA_ID_FILE), b.join(REPLICA_ID_FILE)).unwrap();
        assert_ne!(replica_id(&b).unwrap(), id);
    }

    #[test]
    fn a_delete_wins_a_tie_and_any_live_write_beats_a_bulk_document() {
        assert!(Stamp::delete(4) > Stamp::upsert(4, "z"));
        assert!(Stamp::upsert(1, "") > Stamp::BULK);
    }
}
