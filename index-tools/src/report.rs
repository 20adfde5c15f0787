//! The result of a bulk build, printed as a summary and kept in the manifest directory.

use std::fmt;

use serde::Serialize;

/// How many bad lines are kept (and printed) with their reasons; the rest are only counted.
pub const MAX_BAD_LINE_SAMPLES: usize = 10;

/// A line that could not be indexed.
#[derive(Debug, Clone, Serialize)]
pub struct BadLine {
    /// 1-based line number in the input.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What a build did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildReport {
    /// Non-empty input lines read.
    pub lines: u64,
    /// Documents in the shards after the build (upserts counted once).
    pub docs: u64,
    /// Lines rejected.
    pub bad_lines: u64,
    /// The first rejected lines, with reasons.
    pub bad_line_samples: Vec<BadLine>,
    /// Lines whose id had been seen before (the later line replaced the earlier).
    pub duplicate_ids: u64,
    /// JSON fields not in the schema (ignored), over all documents.
    pub ignored_fields: u64,
    /// Documents per shard.
    pub docs_per_shard: Vec<u64>,
    /// Bytes read from the input file.
    pub input_bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl BuildReport {
    /// Largest shard over the mean shard size (1.0 = perfectly even).
    pub fn skew(&self) -> f64 {
        let n = self.docs_per_shard.len().max(1) as f64;
        let mean = self.docs as f64 / n;
        let max = self.docs_per_shard.iter().copied().max().unwrap_or(0) as f64;
        if mean > 0.0 {
            max / mean
        } else {
            1.0
        }
    }

    /// Documents indexed per second.
    pub fn docs_per_sec(&self) -> f64 {
        self.docs as f64 / self.seconds.max(1e-9)
    }

    /// Records a rejected line.
    pub fn bad_line(&mut self, line: u64, reason: String) {
        self.bad_lines += 1;
        if self.bad_line_samples.len() < MAX_BAD_LINE_SAMPLES {
            self.bad_line_samples.push(BadLine { line, reason });
        }
    }
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "indexed {} docs into {} shards in {:.2}s ({:.0} docs/s, {:.1} MB read)",
            self.docs,
            self.docs_per_shard.len(),
            self.seconds,
            self.docs_per_sec(),
            self.input_bytes as f64 / 1e6
        )?;
        let per: Vec<String> = self
            .docs_per_shard
            .iter()
            .enumerate()
            .map(|(k, n)| format!("shard-{k}: {n}"))
            .collect();
        writeln!(
            f,
            "docs per shard: {} (skew {:.3})",
            per.join(", "),
            self.skew()
        )?;
        writeln!(
            f,
            "lines: {}, bad lines: {}, duplicate ids (upserted): {}, ignored fields: {}",
            self.lines, self.bad_lines, self.duplicate_ids, self.ignored_fields
        )?;
        for bad in &self.bad_line_samples {
            writeln!(f, "  line {}: {}", bad.line, bad.reason)?;
        }
        if self.bad_lines > self.bad_line_samples.len() as u64 {
            writeln!(
                f,
                "  ... and {} more bad lines",
                self.bad_lines - self.bad_line_samples.len() as u64
            )?;
        }
        Ok(())
    }
}
