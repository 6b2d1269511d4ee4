//! REST equivalents of the session methods (the same engine as the JSON-RPC socket).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::domain::Scope;
use crate::error::ApiError;
use crate::requests::{CreateSession, RequestError};
use crate::routes::auth::Caller;
use crate::routes::forward::{self, Route};
use crate::sessions::commands::{self, Command};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/sessions", request_body = CreateSession,
    responses((status = 201, description = "Session created"), (status = 422, body = crate::error::ErrorBody),
              (status = 429, description = "Session limit reached", body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
/// `POST /v1/sessions`: a session on a warm container.
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::Sessions)?;
    let Json(p) = body?;
    let s = state.sessions.create(&caller, p).await?;
    Ok((StatusCode::CREATED, Json(s.created_view())))
}

#[utoipa::path(get, path = "/v1/sessions", responses((status = 200, description = "The caller's sessions")),
    security(("api_key" = []), ("bearer" = [])))]
/// `GET /v1/sessions`: the caller's tenant's sessions.
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Sessions)?;
    let list: Vec<Value> = state
        .sessions
        .list(&caller)
        .iter()
        .map(|s| s.list_view())
        .collect();
    Ok(Json(json!({"count": list.len(), "sessions": list})))
}

#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "One session"), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
/// `GET /v1/sessions/{id}`: one session.
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::Sessions)?;
    if let Route::Owner(base) = forward::route(&state, &id, &headers).await? {
        let path = format!("/v1/sessions/{id}");
        return forward::proxy(&state, &base, &id, Method::GET, &path, &headers, None).await;
    }
    Ok(Json(state.sessions.get(&caller, &id)?.list_view()).into_response())
}

#[utoipa::path(post, path = "/v1/sessions/{id}/commands", params(("id" = String, Path)),
    responses((status = 200, description = "{success, result, error, durationMs}"),
              (status = 404, body = crate::error::ErrorBody), (status = 409, description = "Session busy", body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
/// `POST /v1/sessions/{id}/commands`: one command, answered when it finished.
pub async fn command(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Sessions)?;
    let Json(v) = body?;
    if let Route::Owner(base) = forward::route(&state, &id, &headers).await? {
        let path = format!("/v1/sessions/{id}/commands");
        return forward::proxy(&state, &base, &id, Method::POST, &path, &headers, Some(&v)).await;
    }
    let cmd = Command::parse(v).map_err(RequestError::Invalid)?;
    let session = state.sessions.get(&caller, &id)?;
    let admitted = state
        .admission
        .clone()
        .try_admit_owned()
        .ok_or(ApiError::Overloaded)?;
    // Its own task: if the HTTP caller goes away mid-command, the command still completes
    // and the session's container stays in step with its agent. Tracked, so shutdown
    // waits for it.
    let task = state.tasks.clone().spawn(async move {
        let _admitted = admitted;
        // REST has no side channel for streamed output; the final result carries it all.
        let mut ignore = |_: &str, _: String| {};
        commands::execute(
            &state.sessions,
            &state.settings,
            &caller,
            &session,
            cmd,
            &mut ignore,
        )
        .await
    });
    let out = task.await.map_err(|_| ApiError::Overloaded)??;
    Ok(Json(out).into_response())
}

#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "{sessionId, closed}"), (status = 404, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
/// `DELETE /v1/sessions/{id}`: closes the session; its container is removed.
pub async fn close(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::Sessions)?;
    if let Route::Owner(base) = forward::route(&state, &id, &headers).await? {
        let path = format!("/v1/sessions/{id}");
        return forward::proxy(&state, &base, &id, Method::DELETE, &path, &headers, None).await;
    }
    state.sessions.close(&caller, &id)?;
    Ok(Json(json!({"sessionId": id, "closed": true})).into_response())
}
