//! Session routing between replicas. A session lives in the containers of the replica
//! that created it, and its id names that replica (`<instance>.<uuid>`). A request for it
//! that reaches another replica is forwarded to the owner, with the caller's own
//! credential (the owner authenticates it again) and the peer token (so that the caller's
//! rate limit is not charged twice). While the owner is down the answer is 503
//! `session_unavailable` with `Retry-After`, not "not found".

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::Credential;
use crate::error::ApiError;
use crate::shared::{session_owner, PEER_HEADER};
use crate::state::AppState;

/// Where a request for a session goes.
pub enum Route {
    Here,
    /// The owner replica's base URL.
    Owner(String),
}

/// Finds where session `id` lives. With one replica (no `[shared]`), always here.
pub async fn route(state: &AppState, id: &str, headers: &HeaderMap) -> Result<Route, ApiError> {
    let Some(shared) = &state.shared else {
        return Ok(Route::Here);
    };
    let owner = match session_owner(id) {
        Some(o) if o != shared.instance => o,
        _ => return Ok(Route::Here),
    };
    // A forwarded request is never forwarded again (two replicas that disagree about an
    // owner must not bounce a request between them).
    if shared.is_peer(headers.get(PEER_HEADER).map(|v| v.as_bytes())) {
        return Err(ApiError::SessionUnavailable(owner.to_string()));
    }
    match shared.replica_url(owner).await? {
        Some(url) => Ok(Route::Owner(url)),
        None => Err(ApiError::SessionUnavailable(owner.to_string())),
    }
}

/// The caller's credential as request headers.
pub fn credential_headers(c: &Credential) -> Vec<(&'static str, String)> {
    match c {
        Credential::ApiKey(k) => vec![("x-api-key", k.clone())],
        Credential::Bearer(t) => vec![("authorization", format!("Bearer {t}"))],
    }
}

/// Sends one request to the owner of session `id`; the owner's status and JSON body.
pub async fn send(
    state: &AppState,
    base: &str,
    id: &str,
    method: Method,
    path: &str,
    credential: &[(&'static str, String)],
    body: Option<&Value>,
) -> Result<(StatusCode, Value), ApiError> {
    let shared = state
        .shared
        .as_ref()
        .expect("routes are remote only with [shared]");
    let owner = session_owner(id).unwrap_or_default().to_string();
    let mut req = shared
        .http()
        .request(method, format!("{base}{path}"))
        .header(PEER_HEADER, shared.peer_token());
    for (k, v) in credential {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.map_err(|e| {
        tracing::warn!(%owner, error = %e, "the replica that owns the session does not answer");
        ApiError::SessionUnavailable(owner.clone())
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = resp
        .json::<Value>()
        .await
        .map_err(|_| ApiError::SessionUnavailable(owner))?;
    Ok((status, body))
}

/// A REST request for a session on another replica, answered with the owner's reply.
pub async fn proxy(
    state: &AppState,
    base: &str,
    id: &str,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<Response, ApiError> {
    let credential: Vec<(&'static str, String)> = ["authorization", "x-api-key"]
        .into_iter()
        .filter_map(|h| Some((h, headers.get(h)?.to_str().ok()?.to_string())))
        .collect();
    let (status, body) = send(state, base, id, method, path, &credential, body).await?;
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    Ok(resp)
}
