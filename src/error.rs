//! The one place where errors become HTTP responses.
//!
//! Three families, kept apart: the caller's fault (4xx with a precise kind), the program's
//! fault (never an error here: 200 with `success: false`), and our fault or overload (5xx,
//! with `Retry-After` where waiting helps). Every layer returns its own error enum; this
//! module maps each of them once, and counts refused requests
//! (`codebeaker_rejections_total`) here and nowhere else. Clients get a stable JSON body;
//! logs get the full cause chain.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use codebeaker_pool::PoolError;
use serde::Serialize;

use crate::auth::AuthFailure;
use crate::domain::Denied;
use crate::executions::ExecutionsError;
use crate::invoke::ExecuteError;
use crate::limits::{RateInfo, RateLimited};
use crate::requests::RequestError;
use crate::sessions::SessionError;
use crate::store::StoreError;

/// Every refusal the HTTP transport can answer, one variant per layer error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Json(#[from] JsonRejection),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Unauthenticated(#[from] AuthFailure),
    #[error("rate limit exceeded; retry after {:.1} s", .0.retry_after.as_secs_f64())]
    RateLimited(RateLimited),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Executions(#[from] ExecutionsError),
    #[error("the gateway is at capacity; retry shortly")]
    Overloaded,
    /// Redis, which this replica shares state through, did not answer.
    #[error(transparent)]
    Shared(#[from] crate::shared::SharedError),
    /// The replica that owns the session is down (or does not answer).
    #[error("the session's replica ({0}) is unavailable; retry shortly")]
    SessionUnavailable(String),
}

/// `{"error": {"kind": "...", "message": "..."}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error body's `kind` (stable, for programs) and `message` (for people).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub kind: &'static str,
    pub message: String,
}

type Mapped = (StatusCode, &'static str);

/// The answer to a request whose handler panicked (a bug: logged with its message, never
/// shown to the caller).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = %what, "a request handler panicked");
    crate::metrics::rejection("internal");
    let body = ErrorBody {
        error: ErrorDetail {
            kind: "internal",
            message: "the gateway failed on this request; it has been logged".into(),
        },
    };
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

fn request_status(e: &RequestError) -> Mapped {
    match e {
        RequestError::UnsupportedLanguage(_) => (StatusCode::BAD_REQUEST, "unsupported_language"),
        RequestError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        RequestError::LimitExceeded(_) => (StatusCode::FORBIDDEN, "limit_exceeded"),
        RequestError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        RequestError::UnknownField(_) => (StatusCode::BAD_REQUEST, "unknown_field"),
        RequestError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
        RequestError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
        RequestError::UnknownPackages(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_packages"),
    }
}

/// Whether the body stopped arriving before `server.body_read_timeout_ms`.
fn body_timed_out(r: &JsonRejection) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(err) = e {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        e = err.source();
    }
    false
}

fn pool_status(e: &PoolError) -> Mapped {
    match e {
        PoolError::Exhausted { .. } => (StatusCode::SERVICE_UNAVAILABLE, "pool_exhausted"),
        p if p.is_engine_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable"),
        PoolError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        PoolError::Disabled(_) => (StatusCode::BAD_REQUEST, "language_disabled"),
        PoolError::UnknownPackages(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_packages"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "sandbox_failure"),
    }
}

impl ApiError {
    fn status_and_kind(&self) -> Mapped {
        match self {
            ApiError::Shared(_) => (StatusCode::SERVICE_UNAVAILABLE, "shared_state_unavailable"),
            ApiError::SessionUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "session_unavailable")
            }
            ApiError::Json(r) => match r {
                r if body_timed_out(r) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
                JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
                // Nested deeper than any parser on the path allows: a syntax-level
                // refusal, whichever field held it.
                JsonRejection::JsonDataError(e)
                    if e.body_text().contains(codebeaker_proto::TOO_DEEP) =>
                {
                    (StatusCode::BAD_REQUEST, "malformed_json")
                }
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
            ApiError::Request(e) => request_status(e),
            ApiError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Execute(e) => match e {
                ExecuteError::Shared(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "shared_state_unavailable")
                }
                ExecuteError::Request(e) => request_status(e),
                ExecuteError::Shed => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
                ExecuteError::ConcurrencyLimited(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, "concurrency_limit")
                }
                ExecuteError::Pool(p) => pool_status(p),
            },
            ApiError::Session(s) => match s {
                SessionError::NotFound => (StatusCode::NOT_FOUND, "session_not_found"),
                SessionError::Busy => (StatusCode::CONFLICT, "session_busy"),
                SessionError::LimitReached(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, "session_limit_reached")
                }
                SessionError::InvalidParams(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
                }
                SessionError::Lost => (StatusCode::GONE, "session_lost"),
                SessionError::Request(e) => request_status(e),
                SessionError::Pool(p) => pool_status(p),
            },
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Executions(e) => match e {
                ExecutionsError::Request(r) => request_status(r),
                ExecutionsError::NotFound => (StatusCode::NOT_FOUND, "execution_not_found"),
                ExecutionsError::IdempotencyMismatch => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
                }
                ExecutionsError::TenantQueueFull(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, "queue_full")
                }
                ExecutionsError::QueueFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
                ExecutionsError::Store(StoreError::Shared(_)) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "shared_state_unavailable")
                }
                ExecutionsError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_failure"),
            },
        }
    }

    /// The `codebeaker_rejections_total` reason, for a refused request.
    fn rejection(&self) -> Option<&'static str> {
        let (status, kind) = self.status_and_kind();
        match kind {
            "unauthenticated" => Some("auth"),
            "rate_limited" => Some("rate_limit"),
            "concurrency_limit" => Some("concurrency"),
            "overloaded" | "queue_full" => Some("shed"),
            _ if status == StatusCode::FORBIDDEN => Some("forbidden"),
            _ => None,
        }
    }

    fn is_overload(&self) -> bool {
        match self {
            ApiError::Overloaded | ApiError::Execute(ExecuteError::Shed) => true,
            ApiError::Execute(ExecuteError::Pool(p)) | ApiError::Session(SessionError::Pool(p)) => {
                p.is_overload()
            }
            _ => false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_kind();
        if let Some(reason) = self.rejection() {
            crate::metrics::rejection(reason);
        }
        let message = if status.is_server_error() && !self.is_overload() {
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
            ApiError::Execute(ExecuteError::Pool(PoolError::Exhausted { retry_after, .. })) => {
                // When the pool expects a container to be free, in whole seconds (at least 1).
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
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
                rate_headers(&r.info, h);
            }
            ApiError::Execute(ExecuteError::ConcurrencyLimited(_))
            | ApiError::Executions(ExecutionsError::TenantQueueFull(_)) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// The `RateLimit-*` headers (IETF draft), on successes and on 429s.
pub fn rate_headers(info: &RateInfo, h: &mut axum::http::HeaderMap) {
    h.insert("ratelimit-limit", HeaderValue::from(info.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(info.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(info.reset_secs));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Scope;
    use codebeaker_proto::Language;

    type Expected = (u16, &'static str, Option<&'static str>);

    fn mapped(e: ApiError) -> Expected {
        let (s, k) = e.status_and_kind();
        (s.as_u16(), k, e.rejection())
    }

    #[test]
    fn every_layer_error_has_one_status_kind_and_rejection_reason() {
        let cases: Vec<(ApiError, Expected)> = vec![
            (
                AuthFailure::Missing.into(),
                (401, "unauthenticated", Some("auth")),
            ),
            (
                AuthFailure::CredentialInUrl.into(),
                (401, "unauthenticated", Some("auth")),
            ),
            (
                Denied::MissingScope(Scope::Execute).into(),
                (403, "forbidden", Some("forbidden")),
            ),
            (
                RequestError::Denied(Denied::Language(Language::Go)).into(),
                (403, "forbidden", Some("forbidden")),
            ),
            (
                RequestError::LimitExceeded("x".into()).into(),
                (403, "limit_exceeded", Some("forbidden")),
            ),
            (
                RequestError::UnsupportedLanguage("rust".into()).into(),
                (400, "unsupported_language", None),
            ),
            (
                RequestError::TooLarge {
                    what: "code",
                    size: 2,
                    limit: 1,
                }
                .into(),
                (413, "payload_too_large", None),
            ),
            (
                RequestError::Invalid("x".into()).into(),
                (422, "invalid_request", None),
            ),
            (ExecuteError::Shed.into(), (503, "overloaded", Some("shed"))),
            (
                ExecuteError::ConcurrencyLimited(1).into(),
                (429, "concurrency_limit", Some("concurrency")),
            ),
            (
                ExecuteError::Pool(PoolError::ShuttingDown).into(),
                (503, "shutting_down", None),
            ),
            (
                ExecuteError::Pool(PoolError::Disabled(Language::Go)).into(),
                (400, "language_disabled", None),
            ),
            (
                SessionError::NotFound.into(),
                (404, "session_not_found", None),
            ),
            (SessionError::Busy.into(), (409, "session_busy", None)),
            (
                SessionError::LimitReached(2).into(),
                (429, "session_limit_reached", None),
            ),
            (
                SessionError::Pool(PoolError::ShuttingDown).into(),
                (503, "shutting_down", None),
            ),
            (SessionError::Lost.into(), (410, "session_lost", None)),
            (
                ExecuteError::Pool(PoolError::CreateTimeout(std::time::Duration::from_secs(1)))
                    .into(),
                (503, "engine_unavailable", None),
            ),
            (ApiError::Overloaded, (503, "overloaded", Some("shed"))),
        ];
        for (e, want) in cases {
            let label = format!("{e:?}");
            assert_eq!(mapped(e), want, "{label}");
        }
    }
}
