//! Limits that root and leaf must agree on, defined once.

/// Largest gRPC message a root or leaf sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Largest `from + size` (offset + k) of a ranked page.
pub const MAX_WINDOW: u64 = 10_000;

/// Most ids one `Fetch` call may ask for.
pub const MAX_FETCH_IDS: usize = 10_000;
