//! JWT bearer tokens: HS256 with a shared secret, RS256 and ES256 with PEM public keys.
//!
//! The algorithm in a token's header only selects among keys we configured for that
//! algorithm: an HS256 token is checked against the HMAC secret alone, never against an RSA
//! public key, which rules out RS/HS key confusion; `alg: none` does not even parse. `exp`
//! is required; `nbf`, `iss` and `aud` are checked with a small leeway. Validated tokens are
//! cached (moka) until they expire.

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use moka::sync::Cache;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use super::AuthFailure;
use crate::config::JwtSettings;
use crate::domain::{Principal, Quota, Scope, Via};

/// Why a configured public key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("auth.jwt: {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("auth.jwt: {path}: not a usable PEM public key: {source}")]
    Pem {
        path: std::path::PathBuf,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

/// The `cb` claim: tenant, scopes and limits. Anything absent comes from config defaults.
#[derive(Debug, Default, Deserialize)]
struct CbClaim {
    tenant: Option<String>,
    scopes: Option<Vec<Scope>>,
    rate_per_second: Option<u32>,
    burst: Option<u32>,
    max_concurrent: Option<u32>,
    max_sessions: Option<u32>,
    languages: Option<Vec<codebeaker_proto::Language>>,
    max_timeout_ms: Option<u64>,
    max_memory_mb: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    cb: CbClaim,
}

/// Validates bearer tokens against the configured keys.
pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    rs256: Vec<DecodingKey>,
    es256: Vec<DecodingKey>,
    settings: JwtSettings,
    /// token → (principal, exp)
    cache: Cache<String, (Arc<Principal>, u64)>,
}

impl JwtVerifier {
    /// Loads the configured public keys; a file that is missing or not a PEM key is a configuration error.
    pub fn new(settings: &JwtSettings) -> Result<JwtVerifier, JwtSetupError> {
        let read = |p: &std::path::PathBuf| {
            std::fs::read(p).map_err(|source| JwtSetupError::Read {
                path: p.clone(),
                source,
            })
        };
        let pem = |p: &std::path::PathBuf| {
            let path = p.clone();
            move |source| JwtSetupError::Pem { path, source }
        };
        let rs256 = settings
            .rs256_public_keys
            .iter()
            .map(|p| DecodingKey::from_rsa_pem(&read(p)?).map_err(pem(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let es256 = settings
            .es256_public_keys
            .iter()
            .map(|p| DecodingKey::from_ec_pem(&read(p)?).map_err(pem(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let hs256 = settings
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes()));
        Ok(JwtVerifier {
            hs256,
            rs256,
            es256,
            settings: settings.clone(),
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        })
    }

    /// The secret that signs webhook callbacks of token callers, if configured.
    pub fn webhook_secret(&self) -> Option<String> {
        self.settings
            .webhook_secret
            .as_ref()
            .map(|s| s.expose_secret().to_string())
    }

    fn enabled(&self) -> bool {
        self.hs256.is_some() || !self.rs256.is_empty() || !self.es256.is_empty()
    }

    /// Validates a token (signature by its algorithm's keys, `exp`, `nbf`, `iss`, `aud`) and turns its claims into a principal; valid tokens are cached until they expire.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthFailure> {
        if !self.enabled() {
            return Err(AuthFailure::JwtDisabled);
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(hit) = self.cache.get(token) {
            if hit.1 + self.settings.leeway_secs > now {
                return Ok(hit.0);
            }
            self.cache.invalidate(token);
        }
        let header = decode_header(token).map_err(|e| AuthFailure::InvalidToken(e.to_string()))?;
        let keys: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.hs256.iter().collect(),
            Algorithm::RS256 => self.rs256.iter().collect(),
            Algorithm::ES256 => self.es256.iter().collect(),
            _ => Vec::new(),
        };
        if keys.is_empty() {
            return Err(AuthFailure::InvalidToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let mut v = Validation::new(header.alg);
        v.leeway = self.settings.leeway_secs;
        v.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.settings.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.settings.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        let mut last = None;
        for key in keys {
            match decode::<Claims>(token, key, &v) {
                Ok(data) => {
                    let p = Arc::new(self.principal(data.claims.sub, data.claims.cb));
                    self.cache
                        .insert(token.to_string(), (p.clone(), data.claims.exp));
                    return Ok(p);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(AuthFailure::InvalidToken(
            last.map(|e| e.to_string()).unwrap_or_default(),
        ))
    }

    fn principal(&self, sub: String, cb: CbClaim) -> Principal {
        let d = &self.settings.defaults;
        Principal {
            subject: format!("jwt:{sub}"),
            tenant: cb
                .tenant
                .unwrap_or_else(|| self.settings.default_tenant.clone()),
            scopes: cb
                .scopes
                .unwrap_or_else(|| self.settings.default_scopes.clone()),
            quota: Quota {
                rate_per_second: cb.rate_per_second.unwrap_or(d.rate_per_second),
                burst: cb.burst.unwrap_or(d.burst),
                max_concurrent: cb.max_concurrent.unwrap_or(d.max_concurrent),
                max_sessions: cb.max_sessions.unwrap_or(d.max_sessions),
                languages: cb.languages.unwrap_or_else(|| d.languages.clone()),
                max_timeout_ms: cb.max_timeout_ms.or(d.max_timeout_ms),
                max_memory_mb: cb.max_memory_mb.or(d.max_memory_mb),
            },
            via: Via::Jwt,
        }
    }
}
