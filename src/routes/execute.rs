//! `POST /v1/execute`: one invocation on a warm container.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use codebeaker_pool::Invocation;
use codebeaker_proto::Language;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::error::ApiError;
use crate::state::AppState;

/// The request body. Field names are camelCase, as the .NET clients send them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    /// `python`, `javascript`, `go` or `csharp`, or an alias.
    pub language: String,
    /// The user code; the wrapper gives it `input_data` and expects it to set `result`.
    pub code: String,
    /// Any JSON value, written to `/workspace/input.json`. Defaults to `{}`.
    #[serde(default = "empty_object")]
    pub input: serde_json::Value,
    /// Run-time limit in milliseconds (server default when absent).
    pub timeout_ms: Option<u64>,
    /// Memory limit in MB, at most the container's limit.
    pub memory_limit_mb: Option<u64>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// The result of an invocation that ran, whatever the program did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResponse {
    pub execution_id: String,
    #[schema(value_type = String)]
    pub language: Language,
    pub success: bool,
    /// The JSON value of `/workspace/output.json`, or null.
    pub output: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// Time inside the container (compile included).
    pub duration_ms: u64,
    /// Compile time (0 on a cache hit or for interpreted languages).
    pub compile_ms: u64,
    /// For Go and C#: whether the compiled program came from the container's cache.
    pub cache_hit: Option<bool>,
    /// Time spent waiting for a container.
    pub queue_ms: u64,
    /// True when stdout or stderr was cut at the server's cap.
    pub truncated: bool,
    pub error: Option<ProgramErrorBody>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProgramErrorBody {
    /// compile_error, runtime_error, timeout, memory_limit_exceeded, missing_result,
    /// invalid_output or output_too_large.
    pub kind: &'static str,
    pub message: String,
}

/// Checks a request against the server's limits and turns it into an [`Invocation`].
pub fn parse(req: ExecuteRequest, state: &AppState) -> Result<Invocation, ApiError> {
    let limits = &state.settings.limits;
    let language =
        Language::parse(&req.language).ok_or(ApiError::UnsupportedLanguage(req.language))?;
    if req.code.len() > limits.max_code_bytes {
        return Err(ApiError::TooLarge {
            what: "code",
            size: req.code.len(),
            limit: limits.max_code_bytes,
        });
    }
    if req.code.trim().is_empty() {
        return Err(ApiError::Invalid("code must not be empty".into()));
    }
    let input_size = serde_json::to_vec(&req.input)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if input_size > limits.max_input_bytes {
        return Err(ApiError::TooLarge {
            what: "input",
            size: input_size,
            limit: limits.max_input_bytes,
        });
    }
    let timeout_ms = req.timeout_ms.unwrap_or(limits.default_timeout_ms);
    if timeout_ms == 0 {
        return Err(ApiError::Invalid("timeoutMs must be positive".into()));
    }
    if timeout_ms > limits.max_timeout_ms {
        return Err(ApiError::LimitExceeded(format!(
            "timeoutMs {timeout_ms} is above the maximum of {} ms",
            limits.max_timeout_ms
        )));
    }
    let max_mb = state.settings.pool.limits.memory_mb;
    if let Some(mb) = req.memory_limit_mb {
        if mb < 32 {
            return Err(ApiError::Invalid(
                "memoryLimitMb must be at least 32".into(),
            ));
        }
        if mb > max_mb {
            return Err(ApiError::LimitExceeded(format!(
                "memoryLimitMb {mb} is above the maximum of {max_mb} MB"
            )));
        }
    }
    Ok(Invocation {
        language,
        code: req.code,
        input: req.input,
        timeout: Duration::from_millis(timeout_ms),
        compile_timeout: Duration::from_millis(limits.compile_timeout_ms),
        memory_mb: req.memory_limit_mb.filter(|&mb| mb < max_mb),
        stream_limit_bytes: limits.stream_limit_bytes,
        result_limit_bytes: limits.result_limit_bytes,
    })
}

#[utoipa::path(
    post, path = "/v1/execute", request_body = ExecuteRequest,
    responses(
        (status = 200, description = "The program ran (see `success`)", body = ExecuteResponse),
        (status = 400, description = "Malformed JSON or unsupported language", body = crate::error::ErrorBody),
        (status = 403, description = "A limit above the allowed maximum", body = crate::error::ErrorBody),
        (status = 413, description = "Body, code or input too large", body = crate::error::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
        (status = 422, description = "Missing or invalid fields", body = crate::error::ErrorBody),
        (status = 503, description = "No container within the queue timeout (see Retry-After)", body = crate::error::ErrorBody),
    )
)]
pub async fn execute(
    State(state): State<AppState>,
    body: Result<Json<ExecuteRequest>, JsonRejection>,
) -> Result<Json<ExecuteResponse>, ApiError> {
    let Json(req) = body?;
    let inv = parse(req, &state)?;
    let language = inv.language;
    let execution_id = uuid::Uuid::new_v4().to_string();
    let ex = state.pools.execute(inv).await?;
    let o = ex.outcome;
    tracing::info!(
        %execution_id, %language,
        outcome = o.error.as_ref().map_or("success", |e| e.kind.as_str()),
        duration_ms = o.duration_ms, queue_ms = ex.queue_wait.as_millis() as u64,
        "invocation finished"
    );
    Ok(Json(ExecuteResponse {
        execution_id,
        language,
        success: o.error.is_none(),
        output: o.output.unwrap_or(serde_json::Value::Null),
        stdout: o.stdout,
        stderr: o.stderr,
        exit_code: o.exit_code,
        duration_ms: o.duration_ms,
        compile_ms: o.compile_ms,
        cache_hit: o.cache_hit,
        queue_ms: ex.queue_wait.as_millis() as u64,
        truncated: o.truncated,
        error: o.error.map(|e| ProgramErrorBody {
            kind: e.kind.as_str(),
            message: e.message,
        }),
    }))
}
