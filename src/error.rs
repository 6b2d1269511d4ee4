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

use crate::auth::AuthFailure;
use crate::limits::RateLimited;
use crate::sessions::SessionError;

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
    #[error(transparent)]
    Unauthenticated(#[from] AuthFailure),
    #[error("{0}")]
    Forbidden(String),
    #[error("rate limit exceeded; retry after {:.1} s", .0.retry_after.as_secs_f64())]
    RateLimited(RateLimited),
    #[error("this credential already has {0} invocations in flight")]
    ConcurrencyLimited(u32),
    #[error("the gateway is at capacity; retry shortly")]
    Overloaded,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Session(SessionError),
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            // Pool failures keep their own mapping (503 for overload, 500 otherwise).
            SessionError::Pool(p) => ApiError::Pool(p),
            other => ApiError::Session(other),
        }
    }
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
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::ConcurrencyLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "concurrency_limit"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Session(s) => match s {
                SessionError::NotFound => (StatusCode::NOT_FOUND, "session_not_found"),
                SessionError::Busy => (StatusCode::CONFLICT, "session_busy"),
                SessionError::LimitReached(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, "session_limit_reached")
                }
                SessionError::InvalidParams(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
                }
                SessionError::Pool(_) => (StatusCode::INTERNAL_SERVER_ERROR, "sandbox_failure"),
            },
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
        let overload = matches!(&self, ApiError::Overloaded)
            || matches!(&self, ApiError::Pool(e) if e.is_overload());
        let message = if status.is_server_error() && !overload {
            // Internals (container ids, Docker messages) stay in the logs.
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "request failed");
            "the sandbox failed before the program could finish; it was not your program's fault, retry".to_string()
        } else {
            tracing::debug!(%status, kind, error = %self, "request rejected");
            self.to_string()
        };
        let body = Json(ErrorBody {
            error: ErrorDetail { kind, message },
        });
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        match &self {
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthenticated(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"ApiKey realm="codebeaker", Bearer realm="codebeaker""#,
                    ),
                );
            }
            ApiError::RateLimited(r) => {
                let secs = r.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                r.info.write_headers(h);
            }
            ApiError::ConcurrencyLimited(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}
