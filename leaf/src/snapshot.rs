//! Snapshots: the files of a shard's current commit, streamed to a replica that repairs
//! itself from them. Every file is opened (mapped) before the first byte is sent, so a merge
//! that deletes it meanwhile does not matter; `meta.json`, which names the segments, is
//! sent last, so a receiver never holds a `meta.json` whose files it lacks.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use scatter_proto::v1::{FileHave, SnapshotChunk};
use tantivy::directory::{Directory, FileSlice, MmapDirectory};
use tokio::sync::mpsc;

use crate::commit::CommitPayload;
use crate::shard::Shard;
use crate::versions::versions_file_name;

/// Bytes per streamed chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Name of tantivy's commit file.
pub const META_FILE: &str = "meta.json";

/// The files of one commit, opened.
pub struct Snapshot {
    /// Segment files (name, contents), then nothing else.
    files: Vec<(String, FileSlice)>,
    /// `meta.json` as read when the files were opened.
    meta: Vec<u8>,
    /// The version log (file name, bytes up to the length that commit records).
    versions: (String, Vec<u8>),
}

impl Snapshot {
    /// Pins the shard's current commit. Retries when a merge replaced a file between
    /// reading `meta.json` and opening the files.
    pub fn take(shard: &Shard) -> anyhow::Result<Self> {
        let mut last_error = None;
        for _ in 0..5 {
            match Self::try_take(shard) {
                Ok(s) => return Ok(s),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("an attempt"))
    }

    fn try_take(shard: &Shard) -> anyhow::Result<Self> {
        // The raw directory: the index's own (managed) directory strips and checks file
        // footers on open, but the copy needs the files byte for byte.
        let dir = MmapDirectory::open(shard.path())?;
        let meta = dir.atomic_read(std::path::Path::new(META_FILE))?;
        let segments = segment_ids(&meta)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(shard.path())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let stem = name.split('.').next().unwrap_or_default();
            if segments.contains(stem) {
                let slice = dir
                    .open_read(std::path::Path::new(&name))
                    .with_context(|| format!("opening {name}"))?;
                files.push((name, slice));
            }
        }
        let versions = read_versions(shard, &meta)?;
        let again = dir.atomic_read(std::path::Path::new(META_FILE))?;
        anyhow::ensure!(again == meta, "the commit changed while pinning it");
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Snapshot {
            files,
            meta,
            versions,
        })
    }

    /// Sends the files the receiver lacks (by name, length and checksum), then the version
    /// log and `meta.json`, as chunks.
    /// Runs on a blocking thread; stops when the receiver goes away.
    pub fn stream(
        self,
        have: &[FileHave],
        tx: &mpsc::Sender<Result<SnapshotChunk, tonic::Status>>,
    ) -> anyhow::Result<()> {
        let have: HashMap<&str, (u64, u64)> = have
            .iter()
            .map(|f| (f.name.as_str(), (f.len, f.xxh3)))
            .collect();
        let mut names: Vec<String> = self.files.iter().map(|(n, _)| n.clone()).collect();
        names.push(self.versions.0.clone());
        names.push(META_FILE.to_string());
        let mut first = Some(names);
        for (name, slice) in &self.files {
            let bytes = slice.read_bytes()?;
            if receiver_has(&have, name, bytes.as_slice()) {
                continue;
            }
            send_file(tx, name, bytes.as_slice(), &mut first)?;
        }
        send_file(tx, &self.versions.0, &self.versions.1, &mut first)?;
        send_file(tx, META_FILE, &self.meta, &mut first)
    }
}

/// Whether the receiver holds `name` with exactly these bytes: same length **and** checksum.
/// (Delete files are named `{segment}.{opstamp}.del` and sized by the segment alone, so two
/// replicas that committed different deletes can hold different files of one name and size.)
fn receiver_has(have: &HashMap<&str, (u64, u64)>, name: &str, bytes: &[u8]) -> bool {
    let mine = (bytes.len() as u64, xxhash_rust::xxh3::xxh3_64(bytes));
    have.get(name) == Some(&mine)
}

/// Sends one file in chunks (the first chunk of the stream carries the file list).
fn send_file(
    tx: &mpsc::Sender<Result<SnapshotChunk, tonic::Status>>,
    name: &str,
    data: &[u8],
    first: &mut Option<Vec<String>>,
) -> anyhow::Result<()> {
    let mut offset = 0;
    loop {
        let end = (offset + CHUNK_BYTES).min(data.len());
        let chunk = SnapshotChunk {
            name: name.to_string(),
            offset: offset as u64,
            data: data[offset..end].to_vec(),
            eof: end == data.len(),
            files: first.take().unwrap_or_default(),
        };
        tx.blocking_send(Ok(chunk))
            .map_err(|_| anyhow::anyhow!("receiver went away"))?;
        if end == data.len() {
            return Ok(());
        }
        offset = end;
    }
}

/// The version log file the commit in `meta` names, up to the length it records.
fn read_versions(shard: &Shard, meta: &[u8]) -> anyhow::Result<(String, Vec<u8>)> {
    let value: serde_json::Value = serde_json::from_slice(meta).context("parsing meta.json")?;
    let payload = CommitPayload::parse(value.get("payload").and_then(|p| p.as_str()));
    let name = versions_file_name(payload.versions_gen);
    let mut bytes = vec![0; payload.versions_len as usize];
    if !bytes.is_empty() {
        use std::os::unix::fs::FileExt;
        std::fs::File::open(shard.path().join(&name))?.read_exact_at(&mut bytes, 0)?;
    }
    Ok((name, bytes))
}

/// Segment ids named in a `meta.json`, in the form tantivy uses in file names (no dashes).
fn segment_ids(meta: &[u8]) -> anyhow::Result<HashSet<String>> {
    let value: serde_json::Value = serde_json::from_slice(meta).context("parsing meta.json")?;
    let segments = value
        .get("segments")
        .and_then(|s| s.as_array())
        .context("meta.json without segments")?;
    Ok(segments
        .iter()
        .filter_map(|s| s.get("segment_id").and_then(|id| id.as_str()))
        .map(|id| id.replace('-', ""))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_the_same_name_and_length_but_other_bytes_is_sent() {
        let theirs = b"deletes: 0110";
        let have = HashMap::from([(
            "abc.7.del",
            (theirs.len() as u64, xxhash_rust::xxh3::xxh3_64(theirs)),
        )]);
        assert!(receiver_has(&have, "abc.7.del", theirs));
        assert!(!receiver_has(&have, "abc.7.del", b"deletes: 1001"));
        assert!(!receiver_has(&have, "other.del", theirs));
    }
}
