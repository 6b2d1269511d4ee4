//! What several layers share about a caller: who it is ([`Principal`]), what it may do
//! ([`Scope`]) and within which quota ([`Quota`]).
//!
//! A leaf module: it depends on no other module of this crate, so configuration, auth,
//! limits, sessions and the transports can all use it without depending on each other.

use codebeaker_proto::Language;
use serde::{Deserialize, Serialize};

/// What a credential allows. `admin` implies the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Execute,
    Sessions,
    Admin,
}

impl Scope {
    /// The scope named `s` (`execute`, `sessions`, `admin`).
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "execute" => Some(Scope::Execute),
            "sessions" => Some(Scope::Sessions),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Execute => "execute",
            Scope::Sessions => "sessions",
            Scope::Admin => "admin",
        }
    }
}

/// A caller's quota, from its key record or its JWT's `cb` claim (defaults from config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quota {
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

impl Default for Quota {
    fn default() -> Self {
        Quota {
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
    /// No credential: the compatibility APIs' anonymous caller (`compat.anonymous`).
    Anonymous,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `key:<id>` or `jwt:<sub>`: what logs, rate limits and caps are keyed by.
    pub subject: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub quota: Quota,
    pub via: Via,
}

/// Why an authenticated caller may not do something (403 over HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this credential lacks the `{}` scope", .0.as_str())]
    MissingScope(Scope),
    #[error("this credential may not use {0}")]
    Language(Language),
}

impl crate::failure::Failure for Denied {
    fn kind(&self) -> &'static str {
        "forbidden"
    }
    fn class(&self) -> crate::failure::Class {
        crate::failure::Class::Caller
    }
}
impl Principal {
    /// Whether the caller holds `scope` (or `admin`).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// Refused unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Denied> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(Denied::MissingScope(scope))
        }
    }

    /// Refused unless the caller may use `language`.
    pub fn allow_language(&self, language: &Language) -> Result<(), Denied> {
        if self.quota.languages.is_empty() || self.quota.languages.contains(language) {
            Ok(())
        } else {
            Err(Denied::Language(language.clone()))
        }
    }

    /// The most memory (MiB) this caller may ask for in a container of `container_mb`.
    pub fn memory_cap(&self, container_mb: u64) -> u64 {
        self.quota
            .max_memory_mb
            .map_or(container_mb, |k| k.min(container_mb))
    }

    /// The memory limit to apply below the container's own, if any: what the caller
    /// asked for, or else its quota's cap when that is lower than the container's.
    pub fn memory_limit(&self, asked: Option<u64>, container_mb: u64) -> Option<u64> {
        let cap = self.memory_cap(container_mb);
        asked
            .or((cap < container_mb).then_some(cap))
            .filter(|&mb| mb < container_mb)
    }

    /// The longest run time (ms) this caller may ask for, under the server's `max_ms`.
    pub fn timeout_cap(&self, max_ms: u64) -> u64 {
        self.quota.max_timeout_ms.map_or(max_ms, |k| k.min(max_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(quota: Quota, scopes: Vec<Scope>) -> Principal {
        Principal {
            subject: "key:t".into(),
            tenant: "t".into(),
            scopes,
            quota,
            via: Via::ApiKey,
        }
    }

    #[test]
    fn scopes_languages_and_caps() {
        let admin = caller(Quota::default(), vec![Scope::Admin]);
        assert!(
            admin.require(Scope::Sessions).is_ok(),
            "admin implies the others"
        );
        let exec = caller(
            Quota {
                languages: vec![Language::Go],
                max_memory_mb: Some(128),
                max_timeout_ms: Some(1000),
                ..Quota::default()
            },
            vec![Scope::Execute],
        );
        assert_eq!(
            exec.require(Scope::Sessions),
            Err(Denied::MissingScope(Scope::Sessions))
        );
        assert_eq!(
            exec.allow_language(&Language::Python)
                .unwrap_err()
                .to_string(),
            "this credential may not use python"
        );
        assert!(exec.allow_language(&Language::Go).is_ok());
        assert_eq!(exec.memory_cap(512), 128);
        assert_eq!(
            exec.memory_limit(None, 512),
            Some(128),
            "the quota's cap applies"
        );
        assert_eq!(exec.memory_limit(Some(64), 512), Some(64));
        assert_eq!(
            admin.memory_limit(None, 512),
            None,
            "no cap: the container's own"
        );
        assert_eq!(admin.memory_limit(Some(512), 512), None);
        assert_eq!(exec.timeout_cap(60_000), 1000);
        assert_eq!(admin.timeout_cap(60_000), 60_000);
    }
}
