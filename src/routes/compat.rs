//! The earlier CodeBeaker's REST API (the seeds' C# version), as thin adapters over the
//! same engine: `POST /api/execute` runs a plain program (the code is the whole program,
//! success is exit code 0) and answers the seed's `ExecutionResult` shape. Authenticated
//! like `/v1`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::domain::Scope;
use crate::error::ApiError;
use crate::requests::{ExecuteRequest, RunMode};
use crate::routes::auth::Caller;
use crate::state::AppState;

/// The seeds' `ExecuteRequest`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedExecuteRequest {
    pub code: String,
    pub language: String,
    #[serde(default)]
    pub config: SeedConfig,
    /// As on `/v1/execute`: the program's stdin, arguments and extra files.
    #[serde(default)]
    pub stdin: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub files: Vec<crate::requests::FileSpec>,
}

/// The seeds' `ExecutionConfig`: `timeout` in seconds, `memoryLimit` in MB.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedConfig {
    pub timeout: Option<u64>,
    pub memory_limit: Option<u64>,
    /// The seeds' allow-listed packages: served by an image variant that has them, never
    /// installed at run time (the seeds' `network_enabled` is ignored: never on).
    pub packages: Vec<String>,
}

/// The seeds' `ExecutionResult`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedExecutionResult {
    pub execution_id: String,
    pub stdout: String,
    pub stderr: String,
    /// The program's exit code; -1 when it was killed (time limit, memory limit).
    pub exit_code: i32,
    pub duration_ms: u64,
    /// The program ran out of time.
    pub timeout: bool,
}

/// `POST /api/execute`: a plain program, answered when it finished.
#[utoipa::path(post, path = "/api/execute", request_body = SeedExecuteRequest,
    responses((status = 200, body = SeedExecutionResult)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn execute(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Json<SeedExecuteRequest>, JsonRejection>,
) -> Result<Json<SeedExecutionResult>, ApiError> {
    caller.require(Scope::Execute)?;
    let Json(req) = body?;
    let seconds = req.config.timeout;
    let run = ExecuteRequest {
        language: req.language,
        code: req.code,
        input: crate::requests::empty_object(),
        timeout_ms: seconds.map(|s| s.saturating_mul(1000)),
        memory_limit_mb: req.config.memory_limit,
        mode: RunMode::Plain,
        packages: req.config.packages,
        isolation: Default::default(),
        stdin: req.stdin,
        args: req.args,
        files: req.files,
    };
    let r = state.invoker.execute(&caller, run, None).await?;
    let timeout = r.error.as_ref().is_some_and(|e| e.kind == "timeout");
    let mut stderr = r.stderr;
    if timeout {
        let limit =
            seconds.map_or_else(|| "its time limit".to_string(), |s| format!("{s} seconds"));
        stderr.push_str(&format!("Execution timeout after {limit}"));
    }
    Ok(Json(SeedExecutionResult {
        execution_id: r.execution_id,
        stdout: r.stdout,
        stderr,
        exit_code: r.exit_code.unwrap_or(-1),
        duration_ms: r.duration_ms,
        timeout,
    }))
}
