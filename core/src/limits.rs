//! Limits that root and leaf must agree on, defined once.

/// Largest gRPC message a root or leaf sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Largest `from + size` (offset + k) of a ranked page.
pub const MAX_WINDOW: u64 = 10_000;

/// Most ids one `Fetch` call may ask for.
pub const MAX_FETCH_IDS: usize = 10_000;

/// Largest ingest call a root sends to a leaf (a bulk is split per shard into calls of at
/// most this size); a single document larger than this is refused with 400.
pub const MAX_INGEST_CALL_BYTES: usize = 16 << 20;

/// Most bytes of ingest calls queued at one shard's writer; beyond it a call is refused
/// with RESOURCE_EXHAUSTED (the root answers 429 with `Retry-After`).
pub const MAX_QUEUED_WRITE_BYTES: usize = 256 << 20;

/// Most bulk bytes a root holds in flight across all ingest requests; beyond it a bulk is
/// refused with 429 and `Retry-After`.
pub const MAX_ROOT_INGEST_BYTES: usize = 512 << 20;

/// Most buckets one aggregation answer may hold (tantivy's default), per shard and merged;
/// also the most buckets all of one search's aggregations may answer together (terms
/// `size`s, ranges, and the buckets a histogram can produce), checked before any shard runs.
pub const AGG_BUCKET_LIMIT: u32 = 65_000;

/// Most ranges one `range` aggregation may list.
pub const MAX_RANGES: usize = 1_000;

/// Most distinct snippet fields one search may ask for.
pub const MAX_SNIPPET_FIELDS: usize = 16;

/// Most memory the aggregations of one process (a leaf, a root) may use all together, as
/// tantivy estimates it: every request's aggregations count against one shared counter
/// ([`process_agg_limits`]), so concurrent requests cannot multiply it.
pub const AGG_MEMORY_LIMIT: u64 = 500_000_000;

/// The process-wide aggregation limits: clones share one memory counter (tantivy's
/// `AggregationLimitsGuard` counts in an `Arc`), each released when its request ends.
pub fn process_agg_limits() -> tantivy::aggregation::AggregationLimitsGuard {
    static SHARED: std::sync::OnceLock<tantivy::aggregation::AggregationLimitsGuard> =
        std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            tantivy::aggregation::AggregationLimitsGuard::new(
                Some(AGG_MEMORY_LIMIT),
                Some(AGG_BUCKET_LIMIT),
            )
        })
        .clone()
}

/// Most aggregations one request may name (sub-aggregations included).
pub const MAX_AGGS: usize = 32;

/// Largest `size` (and `shard_size`) of a terms aggregation.
pub const MAX_TERMS_SIZE: usize = 10_000;

/// Most points in time one shard keeps open; opening another is refused until some close
/// or expire.
pub const MAX_OPEN_PITS: usize = 1_000;

/// Longest keep-alive of a point in time (each use may extend it by up to this much).
pub const MAX_PIT_KEEP_ALIVE_MS: u64 = 60 * 60 * 1000;

/// How a leaf's answer starts when a point in time it was asked to read is not open (closed,
/// expired, or never opened here): the root answers 404 `pit_expired`.
pub const PIT_EXPIRED: &str = "pit_expired";

/// Most data calls (search, fetch, term statistics) a leaf node runs at once; one more is
/// refused at once with RESOURCE_EXHAUSTED (the root tries another replica). Bounds the
/// blocking pool and the memory of a leaf shared by several roots.
pub const MAX_LEAF_DATA_CALLS: usize = 256;

/// Longest external id, in bytes: a longer one is refused (400 for that line in
/// `POST /documents`, an error for that line in `index build` and `index push`).
pub const MAX_ID_BYTES: usize = 512;

/// Most concurrent HTTP/2 streams a leaf accepts on one connection (a root's channel): more
/// than [`MAX_LEAF_DATA_CALLS`], so the leaf's own limit answers first, with a status.
pub const H2_MAX_STREAMS: u32 = 1024;

/// Most streams a leaf keeps that its caller reset before the leaf accepted them: cancelled
/// calls (deadlines, hedges) are normal between root and leaf, not an attack.
pub const H2_MAX_PENDING_RESETS: usize = 4096;
