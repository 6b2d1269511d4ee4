//! Authentication over HTTP: the credential from headers (or, on the WebSocket upgrade
//! only, from the URL), the `authenticate` layer and the [`Caller`] extractor.
//!
//! Every `/v1` route and the WebSocket upgrade pass through [`authenticate`]. It accepts an
//! API key (`X-API-Key: <key>` or `Authorization: ApiKey <key>`) or a JWT
//! (`Authorization: Bearer <jwt>`), turns it into a [`Principal`], applies the caller's rate
//! limit, and hands the principal to the handler through request extensions.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

use crate::auth::{AuthFailure, Credential};
use crate::domain::Principal;
use crate::error::{ApiError, Dialect};
use crate::limits::RateError;
use crate::state::AppState;

/// The one route that takes a credential in its URL.
pub const WEBSOCKET_PATH: &str = "/ws/jsonrpc";
/// Query parameters that carry a credential (WebSocket upgrade only).
const QUERY_API_KEY: &str = "api_key";
const QUERY_ACCESS_TOKEN: &str = "access_token";

/// The credential of a request: headers first, then, only where `allow_query` (the
/// WebSocket upgrade, whose clients such as .NET's `ClientWebSocket` in the Loopai client
/// cannot be configured to send a header), `?api_key=` or `?access_token=`. A credential
/// in the query of any other route is refused rather than ignored, so a caller learns at
/// once that it leaks the secret into URLs.
pub fn credential(
    headers: &HeaderMap,
    query: Option<&str>,
    allow_query: bool,
) -> Result<Option<Credential>, AuthFailure> {
    let from_query = query.and_then(query_credential);
    match (from_query, allow_query) {
        (Some(_), false) => Err(AuthFailure::CredentialInUrl),
        (Some(q), true) => Ok(Some(from_headers(headers).unwrap_or(q))),
        (None, _) => Ok(from_headers(headers)),
    }
}

fn from_headers(headers: &HeaderMap) -> Option<Credential> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Credential::ApiKey(k.trim().to_string()));
    }
    let auth = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, value) = auth.split_once(' ')?;
    let value = value.trim().to_string();
    if scheme.eq_ignore_ascii_case("apikey") {
        Some(Credential::ApiKey(value))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Credential::Bearer(value))
    } else {
        None
    }
}

/// Judge0's credential header: `X-Auth-Token: <key>` (a JWT if it has the JWT's shape).
fn judge0_token(headers: &HeaderMap) -> Option<Credential> {
    let t = headers.get("x-auth-token")?.to_str().ok()?.trim();
    if t.is_empty() {
        return None;
    }
    Some(if t.split('.').count() == 3 && !t.starts_with("cb_") {
        Credential::Bearer(t.to_string())
    } else {
        Credential::ApiKey(t.to_string())
    })
}

/// `api_key` or `access_token` from a query string (form-decoded).
fn query_credential(query: &str) -> Option<Credential> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(name, value)| {
        let value = value.trim().to_string();
        match name.as_ref() {
            QUERY_API_KEY => Some(Credential::ApiKey(value)),
            QUERY_ACCESS_TOKEN => Some(Credential::Bearer(value)),
            _ => None,
        }
    })
}

/// The authentication layer: credential → principal → rate limit → handler.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    admit(state, Dialect::Native, req, next).await
}

/// The compatibility APIs' authentication layer (its state names the API): as
/// [`authenticate`], plus Judge0's `X-Auth-Token` header carrying a key, and, when
/// `compat.anonymous` is on, the anonymous caller for a request that presents no
/// credential at all (a wrong one is still refused). Refusals in the API's own shape.
pub async fn authenticate_compat(
    State((state, dialect)): State<(AppState, Dialect)>,
    req: Request,
    next: Next,
) -> Response {
    admit(state, dialect, req, next).await
}

async fn admit(state: AppState, dialect: Dialect, mut req: Request, next: Next) -> Response {
    let span = tracing::info_span!("auth", subject = tracing::field::Empty);
    let compat = dialect != Dialect::Native;
    let principal = {
        let _enter = span.enter();
        let allow_query = req.uri().path() == WEBSOCKET_PATH;
        let presented = credential(req.headers(), req.uri().query(), allow_query)
            .map(|c| c.or_else(|| compat.then(|| judge0_token(req.headers())).flatten()));
        let who = match &presented {
            Ok(Some(c)) => c.describe(),
            _ => "none".into(),
        };
        let result = match (presented, &state.anonymous) {
            (Ok(None), Some(anonymous)) if compat => Ok(anonymous.clone()),
            (Ok(None), _) => Err(AuthFailure::Missing),
            (Ok(Some(c)), _) => state.auth.verify(&c),
            (Err(e), _) => Err(e),
        };
        match result {
            Ok(p) => {
                span.record("subject", p.subject.as_str());
                p
            }
            Err(e) => {
                tracing::warn!(reason = %e, %who, "authentication failed");
                return ApiError::Unauthenticated(e).respond(dialect);
            }
        }
    };
    // A request another replica forwarded was counted against the limit there.
    let forwarded = state.shared.as_ref().is_some_and(|s| {
        s.is_peer(
            req.headers()
                .get(crate::shared::PEER_HEADER)
                .map(|v| v.as_bytes()),
        )
    });
    let rate = match forwarded {
        true => Ok(None),
        false => state.rate.check(&principal.subject, &principal.quota).await,
    };
    let rate = match rate {
        Ok(info) => info,
        Err(RateError::Limited(limited)) => {
            tracing::info!(subject = %principal.subject, "rate limited");
            return ApiError::RateLimited(limited).respond(dialect);
        }
        Err(RateError::Unavailable(e)) => return ApiError::Shared(e).respond(dialect),
    };
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    if let Some(info) = rate {
        crate::error::rate_headers(&info, resp.headers_mut());
    }
    resp
}

/// Extractor for the authenticated caller (set by [`authenticate`]).
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthenticated(AuthFailure::Missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_only_where_allowed() {
        let h = HeaderMap::new();
        assert!(matches!(
            credential(&h, Some("api_key=cb_a_b"), false),
            Err(AuthFailure::CredentialInUrl)
        ));
        assert!(matches!(
            credential(&h, Some("x=1&api_key=cb_a%5Fb"), true),
            Ok(Some(Credential::ApiKey(k))) if k == "cb_a_b"
        ));
        assert!(matches!(
            credential(&h, Some("access_token=t.t.t"), true),
            Ok(Some(Credential::Bearer(t))) if t == "t.t.t"
        ));
        let mut with_header = HeaderMap::new();
        with_header.insert("x-api-key", "cb_h_h".parse().unwrap());
        assert!(
            matches!(
                credential(&with_header, Some("api_key=cb_q_q"), true),
                Ok(Some(Credential::ApiKey(k))) if k == "cb_h_h"
            ),
            "a header wins"
        );
        assert!(matches!(credential(&h, Some("page=2"), false), Ok(None)));
    }
}
