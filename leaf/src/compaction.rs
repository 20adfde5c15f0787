//! **Version log compaction**: bounds the log by what is current. The writer rewrites the
//! log into its next generation (see [`crate::versions`]) when superseded records outweigh
//! the current ones (10,000 versions of one document keep one record), and drops tombstones
//! older than the retention when no peer is known to lack one of this replica's writes (no
//! behind mark: every peer that missed a write is marked on the replicas that took it, until
//! a repair clears it). Like Elasticsearch's `index.gc_deletes`, a tombstone is kept long
//! enough for any write of its id still in flight (writes time out in minutes; the default
//! retention is an hour); a write older than a dropped tombstone arriving later, or a backup
//! older than the retention restored, can bring a deleted document back.
//!
//! Crash safety: the next generation's file is written and fsynced (with its directory)
//! before the tantivy commit whose payload names it; a crash before that commit leaves the
//! old generation authoritative (the new file is removed at open), after it the new one (the
//! old file is removed at open).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use crate::versions::{versions_file_name, VersionLog};

/// Least superseded bytes before the log is rewritten.
pub const MIN_GARBAGE_BYTES: u64 = 1 << 20;

/// How often a writer looks for expired tombstones (and compacts if it finds some).
pub const TOMBSTONE_SCAN_INTERVAL: Duration = Duration::from_secs(60);

/// Default time a tombstone is kept.
pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(3600);

/// Whether superseded records outweigh the current ones (and at least
/// [`MIN_GARBAGE_BYTES`]).
pub fn garbage_due(log: &VersionLog) -> bool {
    let garbage = log.file_len().saturating_sub(log.live_bytes());
    garbage >= MIN_GARBAGE_BYTES && garbage > log.live_bytes()
}

/// Ids whose tombstone is older than `retention` at `now_micros` (versions are wall-clock
/// microseconds); none while a peer is marked as lacking writes.
pub fn expired_tombstones(log: &VersionLog, now_micros: u64, retention: Duration) -> Vec<String> {
    if !log.behind().is_empty() {
        return Vec::new();
    }
    let horizon = retention_horizon(now_micros, retention);
    log.entries()
        .filter(|(_, e)| e.deleted && e.stamp.version < horizon)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The version below which a tombstone is past `retention` at `now_micros` (0 — none — for
/// a retention longer than the clock: `--tombstone-retention-secs` may be huge).
pub fn retention_horizon(now_micros: u64, retention: Duration) -> u64 {
    let retention = u64::try_from(retention.as_micros()).unwrap_or(u64::MAX);
    now_micros.saturating_sub(retention)
}

/// Writes the log's next generation into `dir`: the base line, each id's newest record but
/// those in `drop`, and the current marks; fsyncs the file and the directory. Returns the
/// generation and its length. The log must have no records pending.
pub fn write_next_generation(
    log: &VersionLog,
    dir: &Path,
    drop: &HashSet<String>,
) -> anyhow::Result<(u64, u64)> {
    let gen = log.generation() + 1;
    let path = dir.join(versions_file_name(gen));
    let written = (|| -> anyhow::Result<u64> {
        let file = File::create(&path)?;
        let mut out = BufWriter::new(file);
        let mut len = 0u64;
        let mut line = serde_json::json!({ "base": log.position() }).to_string();
        line.push('\n');
        out.write_all(line.as_bytes())?;
        len += line.len() as u64;
        let mut buf = Vec::new();
        for (id, e) in log.entries() {
            if drop.contains(id) {
                continue;
            }
            log.raw_record(e, &mut buf)?;
            out.write_all(&buf)?;
            len += buf.len() as u64;
        }
        for peer in log.behind() {
            let mut line = serde_json::json!({ "behind": peer }).to_string();
            line.push('\n');
            out.write_all(line.as_bytes())?;
            len += line.len() as u64;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(len)
    })();
    match written {
        Ok(len) => Ok((gen, len)),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::Stamp;

    #[test]
    fn the_next_generation_keeps_newest_records_and_marks_and_positions_grow() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = VersionLog::open(dir.path(), 0, 0).unwrap();
        let doc = format!("{{\"id\":\"a\",\"pad\":\"{}\"}}", "x".repeat(2000));
        for v in 1..=600 {
            log.record_write("a", Stamp::upsert(v, &doc), Some(&doc));
        }
        log.record_write("gone", Stamp::delete(5), None);
        log.record_write("kept", Stamp::delete(u64::MAX / 2), None);
        log.flush().unwrap();
        assert!(garbage_due(&log));
        let (digest, end) = (log.digest(), log.position());
        let drop: HashSet<String> = expired_tombstones(&log, 1_000_000, Duration::from_secs(0))
            .into_iter()
            .collect();
        assert_eq!(drop, HashSet::from(["gone".to_string()]));
        let (gen, len) = write_next_generation(&log, dir.path(), &drop).unwrap();
        assert!(len < 5000, "{len} bytes");
        drop_log(log);
        let mut log = VersionLog::open(dir.path(), len, gen).unwrap();
        assert!(!dir.path().join(versions_file_name(0)).exists());
        assert_eq!(log.get("a").unwrap().stamp.version, 600);
        assert!(log.get("gone").is_none() && log.get("kept").unwrap().deleted);
        assert_ne!(
            log.digest(),
            digest,
            "the dropped tombstone left the digest"
        );
        assert!(log.position() > end, "positions only grow");
        let (src, _) = log.sources(&["a".into()], usize::MAX).unwrap();
        assert_eq!(src[0].json, doc);
        log.mark_behind("peer");
        assert!(expired_tombstones(&log, u64::MAX, Duration::ZERO).is_empty());
        assert_eq!(
            retention_horizon(1_000_000, Duration::from_secs(u64::MAX)),
            0
        );
    }

    #[test]
    fn a_crash_before_the_commit_keeps_the_old_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = VersionLog::open(dir.path(), 0, 0).unwrap();
        log.record_write("a", Stamp::upsert(1, "x"), Some("{\"id\":\"a\"}"));
        log.record_write("a", Stamp::upsert(2, "y"), Some("{\"id\":\"a\",\"v\":2}"));
        let committed = log.flush().unwrap();
        let digest = log.digest();
        let (gen, _) = write_next_generation(&log, dir.path(), &HashSet::new()).unwrap();
        assert!(dir.path().join(versions_file_name(gen)).exists());
        drop_log(log);
        // The commit naming the new generation never happened: the payload still names 0.
        let log = VersionLog::open(dir.path(), committed, 0).unwrap();
        assert!(
            !dir.path().join(versions_file_name(gen)).exists(),
            "leftover removed"
        );
        assert_eq!(
            (log.digest(), log.get("a").unwrap().stamp.version),
            (digest, 2)
        );
    }

    fn drop_log(log: VersionLog) {
        std::mem::drop(log);
    }
}
