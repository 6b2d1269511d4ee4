//! Authentication: who is calling, what they may do, and within which limits.
//!
//! Every `/v1` route and the WebSocket upgrade pass through [`authenticate`]. It accepts an
//! API key (`X-API-Key: <key>` or `Authorization: ApiKey <key>`) or a JWT
//! (`Authorization: Bearer <jwt>`), turns it into a [`Principal`], applies the caller's rate
//! limit, and hands the principal to the handler through request extensions. Failures are
//! logged with the key id or token subject, never the secret.

pub mod jwt;
pub mod keys;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use codebeaker_proto::Language;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::error::ApiError;
use crate::state::AppState;

/// What a credential allows. `admin` implies the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Execute,
    Sessions,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "execute" => Some(Scope::Execute),
            "sessions" => Some(Scope::Sessions),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Execute => "execute",
            Scope::Sessions => "sessions",
            Scope::Admin => "admin",
        }
    }
}

/// Per-caller limits, from the key record or the JWT's `cb` claim (defaults from config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Sustained requests per second (0 = unlimited).
    pub rate_per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Invocations in flight at once.
    pub max_concurrent: u32,
    /// Open sessions at once (per tenant).
    pub max_sessions: u32,
    /// Languages this caller may use; empty means all.
    pub languages: Vec<Language>,
    /// Largest `timeoutMs` this caller may ask for (the server maximum still applies).
    pub max_timeout_ms: Option<u64>,
    /// Largest `memoryLimitMb` this caller may ask for.
    pub max_memory_mb: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate_per_second: 100,
            burst: 200,
            max_concurrent: 16,
            max_sessions: 8,
            languages: Vec::new(),
            max_timeout_ms: None,
            max_memory_mb: None,
        }
    }
}

/// Which kind of credential authenticated the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    ApiKey,
    Jwt,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `key:<id>` or `jwt:<sub>`: what logs, rate limits and caps are keyed by.
    pub subject: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub limits: Limits,
    pub via: Via,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this credential lacks the `{}` scope",
                scope.as_str()
            )))
        }
    }

    /// 403 unless the caller may use `language`.
    pub fn allow_language(&self, language: Language) -> Result<(), ApiError> {
        if self.limits.languages.is_empty() || self.limits.languages.contains(&language) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this credential may not use {language}"
            )))
        }
    }
}

/// Why a credential was refused (all 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing credential: send X-API-Key, Authorization: ApiKey <key> or Authorization: Bearer <jwt>")]
    Missing,
    #[error("malformed API key")]
    MalformedKey,
    #[error("unknown or wrong API key")]
    WrongKey,
    #[error("this API key has been revoked")]
    Revoked,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("JWT authentication is not configured")]
    JwtDisabled,
    #[error("a credential in the URL (api_key / access_token) is accepted only on the WebSocket upgrade /ws/jsonrpc, because URLs end up in logs and proxies; send X-API-Key or Authorization instead")]
    CredentialInUrl,
}

/// A presented credential (kept by a WebSocket to re-check it on every message).
#[derive(Clone)]
pub enum Credential {
    ApiKey(String),
    Bearer(String),
}

/// Query parameters that carry a credential (WebSocket upgrade only).
const QUERY_API_KEY: &str = "api_key";
const QUERY_ACCESS_TOKEN: &str = "access_token";

impl Credential {
    /// The credential of a request: headers first, then, only where `allow_query` (the
    /// WebSocket upgrade, whose clients such as .NET's `ClientWebSocket` in the Loopai
    /// client cannot be configured to send a header), `?api_key=` or `?access_token=`.
    /// A credential in the query of any other route is refused rather than ignored, so a
    /// caller learns at once that it leaks the secret into URLs.
    pub fn from_request(
        headers: &HeaderMap,
        query: Option<&str>,
        allow_query: bool,
    ) -> Result<Option<Credential>, AuthFailure> {
        let from_query = query.and_then(query_credential);
        match (from_query, allow_query) {
            (Some(_), false) => Err(AuthFailure::CredentialInUrl),
            (Some(q), true) => Ok(Some(Credential::from_headers(headers).unwrap_or(q))),
            (None, _) => Ok(Credential::from_headers(headers)),
        }
    }

    pub fn from_headers(headers: &HeaderMap) -> Option<Credential> {
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

impl AppState {
    /// Turns a credential into a principal (API key or JWT).
    pub fn verify(&self, c: &Credential) -> Result<Arc<Principal>, AuthFailure> {
        match c {
            Credential::ApiKey(k) => self.keys.verify(k),
            Credential::Bearer(t) => self.jwt.verify(t),
        }
    }
}

/// The one route that takes a credential in its URL.
pub const WEBSOCKET_PATH: &str = "/ws/jsonrpc";

/// The authentication layer: credential → principal → rate limit → handler.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let span = tracing::info_span!("auth", subject = tracing::field::Empty);
    let principal = {
        let _enter = span.enter();
        let allow_query = req.uri().path() == WEBSOCKET_PATH;
        let result = match Credential::from_request(req.headers(), req.uri().query(), allow_query) {
            Ok(None) => Err(AuthFailure::Missing),
            Ok(Some(c)) => state.verify(&c),
            Err(e) => Err(e),
        };
        match result {
            Ok(p) => {
                span.record("subject", p.subject.as_str());
                p
            }
            Err(e) => {
                crate::metrics::rejection("auth");
                tracing::warn!(reason = %e, who = %keys::describe_presented(req.headers()), "authentication failed");
                return ApiError::Unauthenticated(e).into_response();
            }
        }
    };
    let rate = match state.rate.check(&principal.subject, &principal.limits) {
        Ok(info) => info,
        Err(limited) => {
            crate::metrics::rejection("rate_limit");
            tracing::info!(subject = %principal.subject, "rate limited");
            return ApiError::RateLimited(limited).into_response();
        }
    };
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    if let Some(info) = rate {
        info.write_headers(resp.headers_mut());
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
