//! Authentication: turning a presented credential into a [`Principal`].
//!
//! A credential is an API key (`cb_<id>_<secret>`, see [`keys`]) or a JWT ([`jwt`]). This
//! layer knows nothing of HTTP: the transports take the credential out of headers or the
//! upgrade URL and map [`AuthFailure`] to their own errors. Failures are logged with the
//! key id or token subject, never the secret.

pub mod jwt;
pub mod keys;

use std::sync::Arc;

use crate::config::AuthSettings;
use crate::domain::Principal;

pub use self::jwt::JwtSetupError;
pub use self::keys::KeysFileError;

/// Why a credential was refused.
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

impl crate::failure::Failure for AuthFailure {
    fn kind(&self) -> &'static str {
        "unauthenticated"
    }
    fn class(&self) -> crate::failure::Class {
        crate::failure::Class::Caller
    }
}

/// Why the credential stores could not be set up at startup (a configuration error).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Keys(#[from] KeysFileError),
    #[error(transparent)]
    Jwt(#[from] JwtSetupError),
}

/// A presented credential (kept by a WebSocket to re-check it on every message).
#[derive(Clone)]
pub enum Credential {
    ApiKey(String),
    Bearer(String),
}

impl Credential {
    /// Names the credential for logs without revealing it: `key:<id>`, `jwt` (its subject
    /// is not trusted before verification), or `unrecognised`.
    pub fn describe(&self) -> String {
        match self {
            Credential::ApiKey(k) => keys::key_id(k)
                .map(|id| format!("key:{id}"))
                .unwrap_or_else(|| "unrecognised".into()),
            Credential::Bearer(t) if t.matches('.').count() == 2 => "jwt".into(),
            Credential::Bearer(_) => "unrecognised".into(),
        }
    }
}

/// The key store and the JWT verifier behind one `verify`.
pub struct Authenticator {
    pub keys: Arc<keys::KeyStore>,
    pub jwt: jwt::JwtVerifier,
}

impl Authenticator {
    /// Loads the keys file and the JWT keys named by `settings`.
    pub fn new(settings: &AuthSettings) -> Result<Authenticator, SetupError> {
        Ok(Authenticator {
            keys: Arc::new(keys::KeyStore::load(settings.keys_file.clone())?),
            jwt: jwt::JwtVerifier::new(&settings.jwt)?,
        })
    }

    /// Whether `subject` can have callbacks signed (`key:<id>` → the key has its own
    /// secret; `jwt:<sub>` → `auth.jwt.webhook_secret` is set). Returns the key's secret,
    /// or for a token caller the configured master secret (never sent: each tenant's
    /// callbacks are signed with a secret derived from it, [`Self::webhook_secret_for`]).
    pub fn webhook_secret(&self, subject: &str) -> Option<String> {
        if let Some(id) = subject.strip_prefix("key:") {
            self.keys.webhook_secret(id)
        } else {
            self.jwt.webhook_secret()
        }
    }

    /// The secret that signs one delivery's callback: `subject`'s key's own, or for a
    /// token caller its tenant's (derived from `auth.jwt.webhook_secret`, see
    /// [`jwt::JwtVerifier::tenant_webhook_secret`]).
    pub fn webhook_secret_for(&self, subject: &str, tenant: &str) -> Option<String> {
        if let Some(id) = subject.strip_prefix("key:") {
            self.keys.webhook_secret(id)
        } else {
            self.jwt.tenant_webhook_secret(tenant)
        }
    }

    /// The secret that signs `caller`'s callbacks (what `GET /v1/webhooks/secret` shows).
    pub fn caller_webhook_secret(&self, caller: &Principal) -> Option<String> {
        self.webhook_secret_for(&caller.subject, &caller.tenant)
    }

    /// Turns a credential into a principal (API key or JWT).
    pub fn verify(&self, c: &Credential) -> Result<Arc<Principal>, AuthFailure> {
        match c {
            Credential::ApiKey(k) => self.keys.verify(k),
            Credential::Bearer(t) => self.jwt.verify(t),
        }
    }
}

/// The compatibility APIs' anonymous caller (`compat.anonymous`): one shared principal with
/// its own tenant, allowed to execute only, within the `compat.anonymous_*` quota. Its
/// languages must be served ones.
pub fn anonymous(
    compat: &crate::config::CompatSettings,
    recipes: &codebeaker_recipe::Registry,
) -> Result<Principal, String> {
    let tenant = compat.anonymous_tenant.trim();
    if tenant.is_empty() {
        return Err("compat.anonymous_tenant must not be empty".into());
    }
    let languages = compat
        .anonymous_languages
        .iter()
        .map(|name| {
            recipes
                .resolve(name)
                .map(|d| d.language().clone())
                .ok_or_else(|| {
                    format!("compat.anonymous_languages: {name:?} is not a served language")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Principal {
        subject: format!("anonymous:{tenant}"),
        tenant: tenant.to_string(),
        scopes: vec![crate::domain::Scope::Execute],
        quota: crate::domain::Quota {
            rate_per_second: compat.anonymous_rate_per_second,
            burst: compat.anonymous_burst,
            max_concurrent: compat.anonymous_max_concurrent,
            max_sessions: 0,
            languages,
            max_timeout_ms: Some(compat.anonymous_max_timeout_ms),
            max_memory_mb: Some(compat.anonymous_max_memory_mb),
        },
        via: crate::domain::Via::Anonymous,
    })
}
