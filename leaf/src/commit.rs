//! What a live commit records beside its segments, in tantivy's commit payload: the
//! replica's operation count and the length of its version log (see [`crate::versions`]).

/// What a live commit records beside its segments (tantivy's commit payload): absent on a
/// bulk-built index (both 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommitPayload {
    /// Write operations committed in this replica's life.
    #[serde(rename = "scatter_ops", default)]
    pub ops: u64,
    /// Length of the version log this commit covers (see [`crate::versions`]).
    #[serde(rename = "scatter_versions_len", default)]
    pub versions_len: u64,
    /// Generation of the version log file this commit covers (see [`crate::versions`]).
    #[serde(rename = "scatter_versions_gen", default)]
    pub versions_gen: u64,
}

impl CommitPayload {
    /// Reads a commit's payload (defaults when absent or unreadable).
    pub fn parse(payload: Option<&str>) -> Self {
        payload
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default()
    }

    /// The payload text to commit with.
    pub fn to_json(self) -> String {
        serde_json::to_string(&self).expect("payload serializes")
    }
}
