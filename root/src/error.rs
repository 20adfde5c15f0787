//! API errors: every failure answers with an HTTP status and
//! `{"error": {"type": ..., "reason": ...}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// `{"type", "reason"}` of an error (or of a failed item of a bulk write).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// Every error's body: `{"error": {"type", "reason"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ApiErrorResponse {
    /// What went wrong.
    pub error: ErrorBody,
}

/// An error returned to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable kind, e.g. `query_parse_error`.
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            reason: reason.into(),
        }
    }

    /// 400 `illegal_argument`.
    pub fn bad_param(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "illegal_argument", reason)
    }

    /// 400 `query_parse_error`.
    pub fn query_parse(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "query_parse_error", reason)
    }

    /// 503 `shards_unavailable`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shards_unavailable",
            reason,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorResponse {
            error: ErrorBody {
                kind: self.kind,
                reason: self.reason,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // Overload passes quickly or not at all: ask for a retry a second later.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
