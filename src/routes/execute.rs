//! `POST /v1/execute`: one invocation on a warm container.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use crate::domain::Scope;
use crate::error::ApiError;
use crate::invoke::ExecuteResponse;
use crate::requests::ExecuteRequest;
use crate::routes::auth::Caller;
use crate::routes::strict::Strict;
use crate::state::AppState;

#[utoipa::path(
    post, path = "/v1/execute", request_body = ExecuteRequest,
    responses(
        (status = 200, description = "The program ran (see `success`)", body = ExecuteResponse),
        (status = 400, description = "Malformed JSON or unsupported language", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid credential", body = crate::error::ErrorBody),
        (status = 403, description = "Missing scope, language not allowed, or a limit above the allowed maximum", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limit or concurrency cap (see Retry-After, RateLimit-*)", body = crate::error::ErrorBody),
        (status = 413, description = "Body, code or input too large", body = crate::error::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::error::ErrorBody),
        (status = 422, description = "Missing or invalid fields", body = crate::error::ErrorBody),
        (status = 503, description = "Shed at admission, or no container within the queue timeout (see Retry-After)", body = crate::error::ErrorBody),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
/// `POST /v1/execute`: one program run, answered when it finished.
pub async fn execute(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<Strict<ExecuteRequest>, ApiError>,
) -> Result<Json<ExecuteResponse>, ApiError> {
    caller.require(Scope::Execute)?;
    let Strict(req) = body?;
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Json(state.invoker.execute(&caller, req, request_id).await?))
}
