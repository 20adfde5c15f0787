//! Reading a bulk body within the process's memory budget: `Content-Length` is checked
//! and reserved before a byte is read; a chunked body is reserved chunk by chunk as it
//! streams. Either way a body never holds memory the budget did not grant, and a body over
//! `--max-bulk-mb` is refused (413) as soon as that is known.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use futures::StreamExt;

use crate::api::memory::{MemoryBudget, Reservation};
use crate::error::ApiError;

/// A bulk body costs about four times its size while it is written (the body, its lines
/// parsed, the calls it is split into per shard and their encoding): measured, four 60 MB
/// bulks at once took a root from 250 to 950 MB (docs/benchmarks.md, session 7).
const COPIES: usize = 4;

/// Reads `request`'s body (at most `max` bytes), reserving memory for it from `budget` as it
/// goes.
pub async fn read(
    budget: &MemoryBudget,
    max: usize,
    request: Request,
) -> Result<(Bytes, Reservation), ApiError> {
    let too_large = |n: usize| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("bulk body of {n} bytes or more; the limit is {max} (--max-bulk-mb)"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut memory = budget.empty();
    if let Some(n) = declared {
        if n > max {
            return Err(too_large(n));
        }
        memory.grow(n.saturating_mul(COPIES), "this bulk body")?;
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    let mut stream = request.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "body_rejected", e.to_string()))?;
        let len = body.len() + chunk.len();
        if len > max {
            return Err(too_large(len));
        }
        let need = len.saturating_mul(COPIES);
        if need > memory.bytes() {
            // Grown in steps of at least 1 MB, not per chunk.
            let want = need.max(memory.bytes() + (1 << 20)).min(max * COPIES);
            memory.grow(want - memory.bytes(), "this bulk body")?;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((Bytes::from(body), memory))
}
