//! The one place where errors become HTTP responses.
//!
//! Three families, kept apart: the caller's fault (4xx with a precise kind), the program's
//! fault (never an error here: 200 with `success: false`), and our fault or overload (5xx,
//! with `Retry-After` where waiting helps). Clients get a stable JSON body; logs get the
//! full cause chain.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use codebeaker_pool::PoolError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Json(#[from] JsonRejection),
    #[error("unsupported language {0:?}; supported: python (py, python3), javascript (js, node, nodejs), go (golang), csharp (cs, c#, dotnet)")]
    UnsupportedLanguage(String),
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// `{"error": {"kind": "...", "message": "..."}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Json(r) => match r {
                JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
                JsonRejection::JsonDataError(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
                }
                JsonRejection::MissingJsonContentType(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                }
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                }
                other => (other.status(), "invalid_request"),
            },
            ApiError::UnsupportedLanguage(_) => (StatusCode::BAD_REQUEST, "unsupported_language"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::LimitExceeded(_) => (StatusCode::FORBIDDEN, "limit_exceeded"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::Pool(e) => match e {
                PoolError::Exhausted { .. } => (StatusCode::SERVICE_UNAVAILABLE, "pool_exhausted"),
                PoolError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
                PoolError::Disabled(_) => (StatusCode::BAD_REQUEST, "language_disabled"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "sandbox_failure"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_kind();
        let message = if status.is_server_error()
            && !matches!(&self, ApiError::Pool(e) if e.is_overload())
        {
            // Internals (container ids, Docker messages) stay in the logs.
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "request failed");
            "the sandbox failed before the program could finish; it was not your program's fault, retry".to_string()
        } else {
            tracing::debug!(%status, kind, error = %self, "request rejected");
            self.to_string()
        };
        let mut resp = (
            status,
            Json(ErrorBody {
                error: ErrorDetail { kind, message },
            }),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
