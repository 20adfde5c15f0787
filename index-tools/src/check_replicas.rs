//! `scatter index check-replicas --target URL`: asks the root to compare every replica of
//! every shard document by document (`GET /cluster/replicas/check`), prints the differences
//! and fails when any replica differs or could not be read.

use std::fmt::Write as _;

use serde_json::Value;

/// The root's comparison, fetched and summarised.
pub struct ReplicaReport {
    /// The root's JSON answer.
    pub body: Value,
}

impl ReplicaReport {
    /// Every replica answered and all agree.
    pub fn consistent(&self) -> bool {
        self.body["consistent"] == true
    }

    /// A human-readable summary: one line per replica, then the differing ids.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for shard in self.body["shards"].as_array().into_iter().flatten() {
            let k = &shard["shard"];
            for r in shard["replicas"].as_array().into_iter().flatten() {
                match r["error"].as_str() {
                    Some(e) => writeln!(out, "shard {k} {}: NOT READ: {e}", r["replica"]),
                    None => writeln!(
                        out,
                        "shard {k} {}: {} documents, {} tombstones",
                        r["replica"], r["documents"], r["tombstones"]
                    ),
                }
                .expect("write to a string");
            }
            let differing = shard["differing"].as_u64().unwrap_or(0);
            if differing > 0 {
                writeln!(out, "shard {k}: {differing} ids differ").expect("write");
                for d in shard["differences"].as_array().into_iter().flatten() {
                    writeln!(out, "  {}: {}", d["id"], d["held"]).expect("write");
                }
            }
        }
        let verdict = if self.consistent() {
            "replicas agree"
        } else {
            "REPLICAS DIFFER (or could not all be read)"
        };
        writeln!(out, "{verdict}").expect("write");
        out
    }
}

/// Fetches the comparison from the root at `target` (`http://host:port`).
pub async fn check_replicas(target: &str) -> anyhow::Result<ReplicaReport> {
    let url = format!("{}/cluster/replicas/check", target.trim_end_matches('/'));
    let resp = reqwest::get(&url).await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    anyhow::ensure!(status.is_success(), "{url}: HTTP {status}: {body}");
    Ok(ReplicaReport { body })
}
