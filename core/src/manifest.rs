//! The cluster manifest (`manifest.json` at the top of a build's output) and the per-shard
//! metadata file (`scatter-shard.json` inside each shard directory). Together they make every
//! component agree on schema, routing and shard identity.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::routing::RoutingParams;
use crate::schema::ScatterSchema;

/// File name of the manifest inside a build's output directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the shard metadata inside a shard directory.
pub const SHARD_META_FILE: &str = "scatter-shard.json";

/// Describes a whole sharded build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// Number of shards.
    pub num_shards: u32,
    /// Schema of every shard.
    pub schema: ScatterSchema,
    /// Routing of ids to shards.
    pub routing: RoutingParams,
    /// Per shard: its directory (relative to the manifest) and document count.
    pub shards: Vec<ShardEntry>,
}

/// One shard as listed in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Shard number.
    pub shard: u32,
    /// Directory, relative to the manifest's directory.
    pub dir: String,
    /// Documents at build time.
    pub docs: u64,
}

/// Metadata kept inside a shard directory, so a leaf knows what it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Shard number.
    pub shard: u32,
    /// Number of shards in the cluster.
    pub num_shards: u32,
    /// Schema.
    pub schema: ScatterSchema,
    /// Routing parameters.
    pub routing: RoutingParams,
}

/// Current manifest format version.
pub const FORMAT_VERSION: u32 = 1;

/// Directory name of shard `k` inside a build's output directory.
pub fn shard_dir_name(k: u32) -> String {
    format!("shard-{k}")
}

impl Manifest {
    /// Reads `DIR/manifest.json`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        read_json(&dir.join(MANIFEST_FILE))
    }

    /// Writes `DIR/manifest.json` (atomically, via a temporary file).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_json(&dir.join(MANIFEST_FILE), self)
    }

    /// Absolute directory of shard `k`.
    pub fn shard_path(&self, dir: &Path, k: u32) -> PathBuf {
        self.shards
            .iter()
            .find(|s| s.shard == k)
            .map(|s| dir.join(&s.dir))
            .unwrap_or_else(|| dir.join(shard_dir_name(k)))
    }
}

impl ShardMeta {
    /// Reads `SHARD_DIR/scatter-shard.json`.
    pub fn load(shard_dir: &Path) -> anyhow::Result<Self> {
        read_json(&shard_dir.join(SHARD_META_FILE))
    }

    /// Writes `SHARD_DIR/scatter-shard.json`.
    pub fn save(&self, shard_dir: &Path) -> anyhow::Result<()> {
        write_json(&shard_dir.join(SHARD_META_FILE), self)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
