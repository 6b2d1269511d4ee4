//! The one place where errors become HTTP responses.
//!
//! Each layer's error says its kind and class once (`failure.rs`): the caller's fault (4xx
//! with a precise kind), overload (429 for the caller's own limits, 503 for the gateway's,
//! both with `Retry-After`), or ours (5xx, details only in the log). The program's fault is
//! never an error here (200 with `success: false`). This module turns class plus kind into
//! a status and headers, and counts the HTTP transport's refused requests
//! (`codebeaker_rejections_total`, by `failure::rejection_reason`). Clients get a stable
//! JSON body; logs get the full cause chain.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::auth::AuthFailure;
use crate::domain::Denied;
use crate::executions::ExecutionsError;
use crate::failure::{Class, Failure};
use crate::invoke::ExecuteError;
use crate::limits::{RateInfo, RateLimited};
use crate::requests::RequestError;
use crate::sessions::SessionError;

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
    #[error(transparent)]
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

/// The body axum could not read as JSON: the one refusal that is HTTP's own.
fn json_kind(r: &JsonRejection) -> &'static str {
    match r {
        r if body_timed_out(r) => "body_timeout",
        JsonRejection::JsonSyntaxError(_) => "malformed_json",
        // Nested deeper than any parser on the path allows: a syntax-level refusal,
        // whichever field held it.
        JsonRejection::JsonDataError(e) if e.body_text().contains(codebeaker_proto::TOO_DEEP) => {
            "malformed_json"
        }
        JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        _ => "invalid_request",
    }
}

impl Failure for ApiError {
    fn kind(&self) -> &'static str {
        match self {
            ApiError::Json(r) => json_kind(r),
            ApiError::Request(e) => e.kind(),
            ApiError::Denied(e) => e.kind(),
            ApiError::Unauthenticated(e) => e.kind(),
            ApiError::RateLimited(e) => e.kind(),
            ApiError::Execute(e) => e.kind(),
            ApiError::Session(e) => e.kind(),
            ApiError::Executions(e) => e.kind(),
            ApiError::Overloaded => "overloaded",
            ApiError::Shared(e) => e.kind(),
            ApiError::SessionUnavailable(_) => "session_unavailable",
        }
    }

    fn class(&self) -> Class {
        match self {
            ApiError::Json(_) => Class::Caller,
            ApiError::Request(e) => e.class(),
            ApiError::Denied(e) => e.class(),
            ApiError::Unauthenticated(e) => e.class(),
            ApiError::RateLimited(e) => e.class(),
            ApiError::Execute(e) => e.class(),
            ApiError::Session(e) => e.class(),
            ApiError::Executions(e) => e.class(),
            ApiError::Overloaded => crate::failure::BUSY,
            ApiError::Shared(e) => e.class(),
            ApiError::SessionUnavailable(_) => Class::Internal { transient: true },
        }
    }
}

/// HTTP's status for a refusal: by class, and by kind among the caller's faults.
fn status_of(kind: &str, class: Class) -> StatusCode {
    match class {
        Class::Overload { quota: true, .. } => StatusCode::TOO_MANY_REQUESTS,
        Class::Overload { quota: false, .. } | Class::Internal { transient: true } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Class::Internal { transient: false } => StatusCode::INTERNAL_SERVER_ERROR,
        Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Class::Caller => match kind {
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "forbidden" | "limit_exceeded" => StatusCode::FORBIDDEN,
            "session_not_found" | "execution_not_found" => StatusCode::NOT_FOUND,
            "body_timeout" => StatusCode::REQUEST_TIMEOUT,
            "session_busy" => StatusCode::CONFLICT,
            "session_lost" => StatusCode::GONE,
            "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request" | "unknown_packages" | "idempotency_key_reused" => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            "session_limit_reached" => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        },
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            // A rejection axum did not name (for example a body that is not UTF-8) keeps
            // the status axum gave it.
            ApiError::Json(r) if json_kind(r) == "invalid_request" => r.status(),
            e => status_of(e.kind(), e.class()),
        }
    }
}

/// Whose error shape a refusal is written in: the native API's, or a compatibility API's
/// (its clients parse their peer's shape). Status, headers and metrics are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `{"error": {"kind", "message"}}`
    Native,
    /// Piston: `{"message"}` (its clients raise exactly a one-member `message` object).
    Piston,
    /// Judge0: `{"error"}`, and an empty body for 401 as Judge0 answers it.
    Judge0,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(Dialect::Native)
    }
}

impl ApiError {
    /// The response to this refusal, with its body in `dialect`'s shape.
    pub fn respond(self, dialect: Dialect) -> Response {
        let (kind, class) = (self.kind(), self.class());
        let status = self.status();
        if let Some(reason) = crate::failure::rejection_reason(kind) {
            crate::metrics::rejection(reason);
        }
        let message = if let Class::Internal { .. } = class {
            // Internals (container ids, Docker and Redis messages) stay in the logs.
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "request failed");
            "the sandbox failed before the program could finish; it was not your program's fault, retry".to_string()
        } else {
            tracing::debug!(%status, kind, error = %self, "request rejected");
            self.to_string()
        };
        let mut resp = match dialect {
            Dialect::Native => (
                status,
                Json(ErrorBody {
                    error: ErrorDetail { kind, message },
                }),
            )
                .into_response(),
            Dialect::Piston => {
                (status, Json(serde_json::json!({ "message": message }))).into_response()
            }
            Dialect::Judge0 if status == StatusCode::UNAUTHORIZED => status.into_response(),
            Dialect::Judge0 => {
                (status, Json(serde_json::json!({ "error": message }))).into_response()
            }
        };
        let h = resp.headers_mut();
        match class {
            // When waiting helps, in whole seconds (at least 1).
            Class::Overload { retry_after, .. } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Class::Internal { transient: true } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        match &self {
            ApiError::Unauthenticated(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"ApiKey realm="codebeaker", Bearer realm="codebeaker""#,
                    ),
                );
            }
            ApiError::RateLimited(r) => rate_headers(&r.info, h),
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
    use codebeaker_pool::PoolError;
    use codebeaker_proto::Language;

    type Expected = (u16, &'static str, Option<&'static str>);

    fn mapped(e: ApiError) -> Expected {
        let kind = e.kind();
        (
            e.status().as_u16(),
            kind,
            crate::failure::rejection_reason(kind),
        )
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
                RequestError::UnsupportedLanguage {
                    name: "cobol".into(),
                    served: vec!["python (py)".into()],
                }
                .into(),
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
            (
                ExecutionsError::TenantQueueFull(1).into(),
                (429, "queue_full", Some("shed")),
            ),
            (
                ExecutionsError::QueueFull(1).into(),
                (503, "queue_full", Some("shed")),
            ),
            (
                ExecutionsError::NotFound.into(),
                (404, "execution_not_found", None),
            ),
            (
                ExecutionsError::IdempotencyMismatch.into(),
                (422, "idempotency_key_reused", None),
            ),
            (
                ApiError::SessionUnavailable("r1".into()),
                (503, "session_unavailable", None),
            ),
        ];
        for (e, want) in cases {
            let label = format!("{e:?}");
            assert_eq!(mapped(e), want, "{label}");
        }
    }
}
