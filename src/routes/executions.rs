//! Async executions over HTTP: `/v1/executions` and the seeds' `/api/execute/async` and
//! `/api/execute/status/{id}`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::Scope;
use crate::error::ApiError;
use crate::executions::{ExecutionResource, ExecutionsError};
use crate::requests::RequestError;
use crate::routes::auth::Caller;
use crate::routes::compat::SeedExecuteRequest;
use crate::state::AppState;
use crate::store::Status;

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `POST /v1/executions`: an execute or a batch body, queued; 202 at once.
#[utoipa::path(post, path = "/v1/executions",
    responses((status = 202, description = "Queued: `executionId`, `status`, `statusUrl`"),
              (status = 200, description = "The execution of an earlier request with the same Idempotency-Key and body"),
              (status = 422, description = "Invalid body, or an Idempotency-Key reused with another body", body = crate::error::ErrorBody),
              (status = 429, description = "The tenant's queue is full", body = crate::error::ErrorBody),
              (status = 503, description = "The queue is full", body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::Execute)?;
    let Json(body) = body?;
    strict_body(&body)?;
    let (job, created) = state
        .executions
        .submit(&caller, body, idempotency_key(&headers))
        .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "executionId": job.id,
            "status": job.status,
            "statusUrl": format!("/v1/executions/{}", job.id),
        })),
    ))
}

/// The native route refuses members it does not know, as `POST /v1/execute` and
/// `/v1/execute/batch` do: the body is theirs plus `callbackUrl`. (The Judge0 and seed
/// routes submit through the same queue with their own members.)
fn strict_body(body: &Value) -> Result<(), ApiError> {
    let mut own = body.clone();
    if let Some(o) = own.as_object_mut() {
        o.remove("callbackUrl");
    }
    let text = own.to_string();
    match crate::store::JobKind::of_body(body) {
        crate::store::JobKind::Batch => {
            crate::routes::strict::parse::<crate::batch::BatchRequest>(&text).map(drop)
        }
        _ => crate::routes::strict::parse::<crate::requests::ExecuteRequest>(&text).map(drop),
    }
}

/// Paging of a batch's results.
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// `GET /v1/executions/{id}`: status, and the result when done.
#[utoipa::path(get, path = "/v1/executions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionResource), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<ExecutionResource>, ApiError> {
    caller.require(Scope::Execute)?;
    let job = state.executions.get(&caller, &id).await?;
    let mut view = ExecutionResource::of(&job, page.offset, page.limit.unwrap_or(1000));
    if job.callback_url.is_some() {
        view.callbacks = Some(state.executions.deliveries(&caller, Some(&job.id)).await?);
    }
    Ok(Json(view))
}

/// `GET /v1/webhooks/dead`: the caller's tenant's callbacks that used all their attempts.
#[utoipa::path(get, path = "/v1/webhooks/dead",
    responses((status = 200, description = "`count`, `deliveries`: execution, URL, attempts, last error")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn dead_letters(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Execute)?;
    let dead = state.executions.deliveries(&caller, None).await?;
    Ok(Json(json!({"count": dead.len(), "deliveries": dead})))
}

/// `GET /v1/webhooks/secret`: the secret that signs the caller's own callbacks (an API
/// key's `whsec_…`, or a token tenant's, derived from `auth.jwt.webhook_secret`).
#[utoipa::path(get, path = "/v1/webhooks/secret",
    responses((status = 200, description = "`secret`: the HMAC-SHA256 key of the caller's callbacks' `X-CodeBeaker-Signature`, and `tenant`"),
              (status = 422, body = crate::error::ErrorBody, description = "The credential has no webhook signing secret")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn webhook_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Execute)?;
    let secret = state.auth.caller_webhook_secret(&caller).ok_or_else(|| {
        RequestError::Invalid(
            "this credential has no webhook signing secret (keys made by `codebeaker keys create` have one; tokens need auth.jwt.webhook_secret)".into(),
        )
    })?;
    Ok(Json(json!({"tenant": caller.tenant, "secret": secret})))
}

/// `DELETE /v1/executions/{id}`: cancels.
#[utoipa::path(delete, path = "/v1/executions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ExecutionResource), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<ExecutionResource>, ApiError> {
    caller.require(Scope::Execute)?;
    let job = state.executions.cancel(&caller, &id).await?;
    Ok(Json(ExecutionResource::of(&job, 0, 0)))
}

/// Filter of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/executions?status=…`: the caller's tenant's executions, newest first.
#[utoipa::path(get, path = "/v1/executions",
    responses((status = 200, description = "`count`, `executions` (without results)")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Execute)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            RequestError::Invalid(format!(
                "status {s:?} is not one of queued, running, completed, failed, cancelled"
            ))
        })?),
    };
    let jobs = state
        .executions
        .list(&caller, status, q.limit.unwrap_or(100).min(1000))
        .await?;
    let views: Vec<ExecutionResource> = jobs
        .iter()
        .map(|j| {
            let mut v = ExecutionResource::of(j, 0, 0);
            v.result = None;
            v
        })
        .collect();
    Ok(Json(json!({"count": views.len(), "executions": views})))
}

/// `POST /api/execute/async` (the seeds' API): a plain program, queued.
pub async fn seed_submit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Json<SeedExecuteRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::Execute)?;
    let Json(req) = body?;
    let body = json!({
        "language": req.language,
        "code": req.code,
        "mode": "plain",
        "timeoutMs": req.config.timeout.map(|s| s.saturating_mul(1000)),
        "memoryLimitMb": req.config.memory_limit,
        "packages": req.config.packages,
        "stdin": req.stdin,
        "args": req.args,
        "files": req.files,
    });
    let (job, _) = state.executions.submit(&caller, body, None).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"executionId": job.id}))))
}

/// `GET /api/execute/status/{id}` (the seeds' API, as seed 000 has it): the
/// `ExecutionResult` itself once the execution has ended, 404 until then. An execution
/// that failed or was cancelled without running ends with exit code -1 and the reason on
/// stderr.
pub async fn seed_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Execute)?;
    let job = state.executions.get(&caller, &id).await?;
    if !job.status.is_final() {
        return Err(ExecutionsError::NoResultYet(job.id, job.status.as_str()).into());
    }
    let view = ExecutionResource::of(&job, 0, 0);
    let r = view.result.unwrap_or(Value::Null);
    let timeout = r["error"]["kind"] == "timeout";
    let duration = job
        .finished_at
        .zip(job.started_at)
        .map_or(0, |(f, s)| (f - s).num_milliseconds().max(0) as u64);
    Ok(Json(json!({
        "executionId": job.id,
        "stdout": r["stdout"].as_str().unwrap_or_default(),
        "stderr": r["stderr"].as_str().map_or_else(|| view.error.unwrap_or_default(), str::to_string),
        "exitCode": r["exitCode"].as_i64().unwrap_or(-1),
        "durationMs": r["durationMs"].as_u64().unwrap_or(duration),
        "timeout": timeout,
    })))
}
