//! JWT bearer tokens: HS256 with a shared secret, RS256 and ES256 with PEM public keys.
//!
//! The algorithm in a token's header only selects among keys we configured for that
//! algorithm: an HS256 token is checked against the HMAC secret alone, never against an RSA
//! public key, which rules out RS/HS key confusion; `alg: none` does not even parse. `exp`
//! and `sub` are required; `iss` and `aud` too (the configuration refuses to start without
//! `auth.jwt.issuer` and `audience`: without them any token from the identity provider, for
//! any application, would be accepted); `nbf` is checked; all with a small leeway. Validated
//! tokens are cached (moka) until they expire.
//!
//! The tenant is the `cb.tenant` claim, or else `jwt:<value>` of the claim named by
//! `auth.jwt.tenant_claim` (`sub` by default); a token with neither is refused. There is no
//! shared fallback tenant: tokens of unrelated callers must not see each other's
//! executions. The `jwt:` prefix keeps a claim's value from naming an API key's tenant.

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
    /// Every other claim (one of them may be `auth.jwt.tenant_claim`).
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// The longest tenant a claim may name (it becomes part of store keys and metrics).
const MAX_TENANT_LEN: usize = 256;

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
        // An empty secret (an unset Helm value) is no secret: anyone could sign with it.
        let hs256 = settings
            .hs256_secret
            .as_ref()
            .filter(|s| !s.expose_secret().is_empty())
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

    /// The configured master secret for token callers' callbacks, if any. It never signs
    /// a callback itself: see [`Self::tenant_webhook_secret`].
    pub fn webhook_secret(&self) -> Option<String> {
        self.settings
            .webhook_secret
            .as_ref()
            .map(|s| s.expose_secret().to_string())
    }

    /// The secret that signs `tenant`'s callbacks: `whsec_` and the hex of
    /// HMAC-SHA256(`auth.jwt.webhook_secret`, `"codebeaker-webhook:" + tenant`). Each
    /// tenant has its own, so one tenant cannot forge callbacks to another's receiver; the
    /// operator can compute it, and a caller reads its own at `GET /v1/webhooks/secret`.
    pub fn tenant_webhook_secret(&self, tenant: &str) -> Option<String> {
        let master = self.settings.webhook_secret.as_ref()?;
        Some(derive_webhook_secret(master.expose_secret(), tenant))
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
            if hit.1 + self.settings.leeway_secs.as_secs() > now {
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
        v.leeway = self.settings.leeway_secs.as_secs();
        v.validate_nbf = true;
        // Settings::validate refuses to start without both; checked here again so that a
        // verifier built from unvalidated settings fails closed.
        let (Some(iss), Some(aud)) = (&self.settings.issuer, &self.settings.audience) else {
            return Err(AuthFailure::InvalidToken(
                "auth.jwt.issuer and auth.jwt.audience are not configured".into(),
            ));
        };
        v.set_issuer(&[iss]);
        v.set_audience(&[aud]);
        let required = vec!["exp", "sub", "iss", "aud"];
        v.set_required_spec_claims(&required);
        let mut last = None;
        for key in keys {
            match decode::<Claims>(token, key, &v) {
                Ok(data) => {
                    let tenant = self.tenant(&data.claims)?;
                    let p = Arc::new(self.principal(data.claims.sub, tenant, data.claims.cb));
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

    /// The token's tenant: `cb.tenant`, else `jwt:` and the `tenant_claim`'s value (a
    /// string or an integer), else the token is refused.
    fn tenant(&self, claims: &Claims) -> Result<String, AuthFailure> {
        let name = &self.settings.tenant_claim;
        let tenant = match &claims.cb.tenant {
            Some(t) => t.clone(),
            None => {
                let value = if name == "sub" {
                    Some(claims.sub.clone())
                } else {
                    match claims.other.get(name) {
                        Some(serde_json::Value::String(s)) => Some(s.clone()),
                        Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => {
                            Some(n.to_string())
                        }
                        _ => None,
                    }
                };
                match value {
                    Some(v) if !v.is_empty() => format!("jwt:{v}"),
                    _ => {
                        return Err(AuthFailure::InvalidToken(format!(
                            "the token names no tenant: it needs a non-empty `{name}` claim (auth.jwt.tenant_claim) or `cb.tenant`"
                        )))
                    }
                }
            }
        };
        if tenant.is_empty()
            || tenant.len() > MAX_TENANT_LEN
            || tenant.chars().any(char::is_control)
        {
            return Err(AuthFailure::InvalidToken(format!(
                "the token's tenant must be 1 to {MAX_TENANT_LEN} bytes without control characters"
            )));
        }
        Ok(tenant)
    }

    fn principal(&self, sub: String, tenant: String, cb: CbClaim) -> Principal {
        let d = &self.settings.defaults;
        Principal {
            subject: format!("jwt:{sub}"),
            tenant,
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

/// `whsec_` and the hex of HMAC-SHA256(`master`, `"codebeaker-webhook:" + tenant`).
pub fn derive_webhook_secret(master: &str, tenant: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(master.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"codebeaker-webhook:");
    mac.update(tenant.as_bytes());
    format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn settings() -> JwtSettings {
        JwtSettings {
            hs256_secret: Some("unit-test-secret-0123456789".into()),
            issuer: Some("idp".into()),
            audience: Some("api".into()),
            webhook_secret: Some("master".into()),
            ..JwtSettings::default()
        }
    }

    fn token(claims: serde_json::Value) -> String {
        let mut c =
            json!({"iss": "idp", "aud": "api", "exp": jsonwebtoken::get_current_timestamp() + 600});
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        encode(
            &Header::default(),
            &c,
            &EncodingKey::from_secret(b"unit-test-secret-0123456789"),
        )
        .unwrap()
    }

    #[test]
    fn the_tenant_comes_from_cb_tenant_or_the_tenant_claim_or_the_token_is_refused() {
        let v = JwtVerifier::new(&settings()).unwrap();
        let p = v.verify(&token(json!({"sub": "alice"}))).unwrap();
        assert_eq!(p.tenant, "jwt:alice");
        let p = v
            .verify(&token(json!({"sub": "bob", "cb": {"tenant": "acme"}})))
            .unwrap();
        assert_eq!(p.tenant, "acme");

        let v = JwtVerifier::new(&JwtSettings {
            tenant_claim: "org".into(),
            ..settings()
        })
        .unwrap();
        assert_eq!(
            v.verify(&token(json!({"sub": "a", "org": "o-1"})))
                .unwrap()
                .tenant,
            "jwt:o-1"
        );
        assert_eq!(
            v.verify(&token(json!({"sub": "a", "org": 42})))
                .unwrap()
                .tenant,
            "jwt:42"
        );
        for claims in [
            json!({"sub": "a"}),
            json!({"sub": "a", "org": ""}),
            json!({"sub": "a", "org": ["x"]}),
        ] {
            let e = v.verify(&token(claims.clone())).expect_err("refused");
            assert!(e.to_string().contains("names no tenant"), "{claims}: {e}");
        }
    }

    #[test]
    fn issuer_and_audience_are_always_checked() {
        let v = JwtVerifier::new(&settings()).unwrap();
        assert!(v
            .verify(&token(json!({"sub": "a", "aud": "other"})))
            .is_err());
        assert!(v
            .verify(&token(json!({"sub": "a", "iss": "other"})))
            .is_err());
        // Settings that skipped validation fail closed.
        let v = JwtVerifier::new(&JwtSettings {
            audience: None,
            ..settings()
        })
        .unwrap();
        assert!(v.verify(&token(json!({"sub": "a"}))).is_err());
        // An empty HS256 secret is no key: a token signed with "" is not accepted.
        let v = JwtVerifier::new(&JwtSettings {
            hs256_secret: Some("".into()),
            ..settings()
        })
        .unwrap();
        let forged = encode(
            &Header::default(),
            &json!({"sub": "a", "iss": "idp", "aud": "api", "exp": jsonwebtoken::get_current_timestamp() + 600}),
            &EncodingKey::from_secret(b""),
        )
        .unwrap();
        assert!(matches!(v.verify(&forged), Err(AuthFailure::JwtDisabled)));
    }

    #[test]
    fn each_tenant_has_its_own_webhook_secret() {
        let v = JwtVerifier::new(&settings()).unwrap();
        let a = v.tenant_webhook_secret("jwt:alice").unwrap();
        let b = v.tenant_webhook_secret("jwt:bob").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
        assert_eq!(a, derive_webhook_secret("master", "jwt:alice"));
        // HMAC-SHA256("master", "codebeaker-webhook:jwt:alice"), computed independently
        // (Python's hmac), so that the operator's derivation is pinned.
        assert_eq!(
            a,
            "whsec_5aae64ece1ca7cf34151d4f931bcb19eb224c998e4a5219aff9164ec36d202b7"
        );
        let none = JwtVerifier::new(&JwtSettings {
            webhook_secret: None,
            ..settings()
        })
        .unwrap();
        assert_eq!(none.tenant_webhook_secret("jwt:alice"), None);
    }
}
