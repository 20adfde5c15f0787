//! What a `scatter up` build was made from (`DATA_DIR/up-source.json`): the input file (path,
//! size, modification time) and the schema (a hash of its text). A later `scatter up` naming
//! another input or schema, or an input that changed since, is refused with a message saying
//! how to rebuild — never silently served from the old build (which may also hold live
//! writes a rebuild would drop).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The record's file name in the data directory.
pub const SOURCE_FILE: &str = "up-source.json";

/// What a build was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSource {
    /// The input file (absolute), or `None` for the bundled sample.
    pub input: Option<PathBuf>,
    /// The input's size in bytes when built.
    pub input_bytes: u64,
    /// The input's modification time (nanoseconds since the epoch) when built.
    pub input_mtime_ns: u128,
    /// xxh3 of the schema file's text (`None`: the bundled or default schema).
    pub schema_hash: Option<u64>,
}

impl BuildSource {
    /// The source `input` and `schema` name now (`None`: the bundled ones).
    pub fn of(input: Option<&Path>, schema: Option<&Path>) -> anyhow::Result<Self> {
        let (input, input_bytes, input_mtime_ns) = match input {
            None => (None, 0, 0),
            Some(path) => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                (Some(std::path::absolute(path)?), meta.len(), mtime)
            }
        };
        let schema_hash = match schema {
            None => None,
            Some(path) => Some(xxhash_rust::xxh3::xxh3_64(&std::fs::read(path)?)),
        };
        Ok(BuildSource {
            input,
            input_bytes,
            input_mtime_ns,
            schema_hash,
        })
    }

    /// The record in `dir`, if any (builds made before the record existed have none).
    pub fn load(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(SOURCE_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record into `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join(SOURCE_FILE), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

/// Whether the build in `dir`, made from `built` (if known), may serve a start that names
/// `input` and `schema`: without either, any build is served as it is; with them, only a build
/// of that very input and schema. The error says what differs and how to rebuild.
pub fn check(
    dir: &Path,
    built: Option<&BuildSource>,
    input: Option<&Path>,
    schema: Option<&Path>,
) -> anyhow::Result<()> {
    if input.is_none() && schema.is_none() {
        return Ok(());
    }
    let now = BuildSource::of(input, schema)?;
    let differs = match built {
        None => Some("a build made before builds recorded their input".to_string()),
        Some(b) if input.is_some() && b.input != now.input => Some(format!(
            "a build of {}",
            b.input
                .as_deref()
                .map_or("the bundled sample".to_string(), |p| p
                    .display()
                    .to_string())
        )),
        Some(b)
            if input.is_some()
                && (b.input_bytes, b.input_mtime_ns) != (now.input_bytes, now.input_mtime_ns) =>
        {
            Some("a build of this input as it was before it changed".to_string())
        }
        Some(b) if schema.is_some() && b.schema_hash != now.schema_hash => {
            Some("a build with another schema".to_string())
        }
        Some(_) => None,
    };
    match differs {
        None => Ok(()),
        Some(what) => anyhow::bail!(
            "{} holds {what}. Rerun with --rebuild to build again from what you named (the \
             documents written since the build are dropped), or pick another --data-dir.",
            dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_input_or_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, s) = (
            dir.path().join("a.jsonl"),
            dir.path().join("b.jsonl"),
            dir.path().join("s.toml"),
        );
        std::fs::write(&a, "{}\n").unwrap();
        std::fs::write(&b, "{}\n").unwrap();
        std::fs::write(&s, "default_fields = [\"title\"]\n").unwrap();
        let built = BuildSource::of(Some(&a), None).unwrap();
        assert!(check(dir.path(), Some(&built), None, None).is_ok());
        assert!(check(dir.path(), Some(&built), Some(&a), None).is_ok());
        let e = check(dir.path(), Some(&built), Some(&b), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.jsonl") && e.contains("--rebuild"), "{e}");
        assert!(check(dir.path(), Some(&built), Some(&a), Some(&s)).is_err());
        assert!(check(dir.path(), None, Some(&a), None).is_err());
        std::fs::write(&a, "{}\n{}\n").unwrap();
        let e = check(dir.path(), Some(&built), Some(&a), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("changed"), "{e}");
    }
}
