//! Point-in-time ids as clients and leaves see them: what a `pit_id` names (per shard, the
//! replica and its searcher token), its text form, keep-alives and the `pit_expired` error.
//! The rounds that open, read and close points in time are in [`crate::query::pit`].

use std::collections::HashMap;
use std::time::Duration;

use scatter_core::limits::{MAX_PIT_KEEP_ALIVE_MS, PIT_EXPIRED};

use crate::error::ApiError;

/// One shard's part of a point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitEntry {
    /// The shard.
    pub shard: usize,
    /// The replica holding the searcher.
    pub replica: String,
    /// The searcher's token there.
    pub token: u64,
}

/// A point in time: where every shard's searcher is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitId {
    /// One entry per shard.
    pub entries: Vec<PitEntry>,
}

/// A search's use of a point in time (`pit`, `pit_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitUse {
    /// Keep it open this much longer (0: as it is).
    pub keep_alive_ms: u64,
    /// The point in time read (None: open one first).
    pub id: Option<PitId>,
}

impl PitId {
    /// The opaque, URL-safe text of the id (hex of `shard@replica#token;...`).
    pub fn encode(&self) -> String {
        let text: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{}@{}#{:x}", e.shard, e.replica, e.token))
            .collect();
        text.join(";").bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads an id made by [`PitId::encode`].
    pub fn decode(text: &str) -> Result<PitId, String> {
        let bad = || format!("pit_id {text:?} is not a point in time id");
        if !text.len().is_multiple_of(2) || text.len() > 64 * 1024 {
            return Err(bad());
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let entries = text
            .split(';')
            .map(|part| {
                let (shard, rest) = part.split_once('@')?;
                let (replica, token) = rest.rsplit_once('#')?;
                Some(PitEntry {
                    shard: shard.parse().ok()?,
                    replica: replica.to_string(),
                    token: u64::from_str_radix(token, 16).ok()?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        Ok(PitId { entries })
    }

    /// Tokens by shard, as leaf requests carry them.
    pub fn tokens(&self) -> HashMap<u32, u64> {
        self.entries
            .iter()
            .map(|e| (e.shard as u32, e.token))
            .collect()
    }

    /// The replica of each shard.
    pub fn pins(&self) -> Vec<(usize, String)> {
        self.entries
            .iter()
            .map(|e| (e.shard, e.replica.clone()))
            .collect()
    }
}

/// `1m`, `30s`, `500ms`, `2h`: a keep-alive, at most an hour.
pub fn parse_keep_alive(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("pit must be a duration such as 30s, 1m or 500ms (at most 1h), got {text:?}");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(bad()),
    };
    if ms == 0 || ms > MAX_PIT_KEEP_ALIVE_MS {
        return Err(bad());
    }
    Ok(Duration::from_millis(ms))
}

/// Whether a leaf's refusal says a point in time is not open.
pub fn is_expired(reason: &str) -> bool {
    reason.contains(PIT_EXPIRED)
}

/// The 404 of a point in time that is not open.
pub fn expired(reason: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, PIT_EXPIRED, reason)
}
