//! The gateway's typed configuration: defaults, then an optional TOML file, then
//! environment variables (`CODEBEAKER_SECTION__KEY`, e.g. `CODEBEAKER_SERVER__BIND`).

use codebeaker_pool::PoolSettings;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::auth::{Limits, Scope};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSettings,
    pub limits: ExecutionLimits,
    pub auth: AuthSettings,
    pub sessions: SessionSettings,
    pub pool: PoolSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionSettings {
    pub default_idle_minutes: f64,
    pub max_idle_minutes: f64,
    pub default_lifetime_minutes: f64,
    pub max_lifetime_minutes: f64,
    /// How long a command waits for the session's previous command before "session busy".
    pub busy_wait_ms: u64,
    /// How often expired sessions are closed.
    pub janitor_interval_ms: u64,
    /// Upper bound on an `execute_shell` command's `timeoutMs`.
    pub max_command_timeout_ms: u64,
    /// Upper bound on a session's `cpuShares` (Docker's relative CPU weight; 1024 is
    /// Docker's default). A larger request is lowered to this, so no session can claim
    /// more than its share of the host.
    pub max_cpu_shares: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            default_idle_minutes: 30.0,
            max_idle_minutes: 240.0,
            default_lifetime_minutes: 120.0,
            max_lifetime_minutes: 720.0,
            busy_wait_ms: 2_000,
            janitor_interval_ms: 5_000,
            max_command_timeout_ms: 300_000,
            max_cpu_shares: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// TOML file of API keys (hashes only). Missing file = no keys yet. Reloaded on SIGHUP
    /// and when its modification time changes.
    pub keys_file: Option<PathBuf>,
    pub reload_interval_ms: u64,
    pub jwt: JwtSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtSettings {
    /// HS256 shared secret; set it through `CODEBEAKER_AUTH__JWT__HS256_SECRET`.
    #[serde(skip_serializing)]
    pub hs256_secret: Option<SecretString>,
    /// PEM files of RSA public keys accepted for RS256.
    pub rs256_public_keys: Vec<PathBuf>,
    /// PEM files of EC P-256 public keys accepted for ES256.
    pub es256_public_keys: Vec<PathBuf>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    pub leeway_secs: u64,
    /// Tenant and scopes for tokens whose `cb` claim does not say.
    pub default_tenant: String,
    pub default_scopes: Vec<Scope>,
    pub defaults: Limits,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            keys_file: Some(PathBuf::from("codebeaker-keys.toml")),
            reload_interval_ms: 2_000,
            jwt: JwtSettings::default(),
        }
    }
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            hs256_secret: None,
            rs256_public_keys: Vec::new(),
            es256_public_keys: Vec::new(),
            issuer: None,
            audience: None,
            leeway_secs: 30,
            default_tenant: "default".into(),
            default_scopes: vec![Scope::Execute],
            defaults: Limits::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// How long in-flight requests get to finish at shutdown before containers go.
    pub shutdown_grace_ms: u64,
    /// `pretty` for development, `json` for production log pipelines.
    pub log_format: LogFormat,
    /// Serve `/metrics` on this separate address instead of the main one.
    pub metrics_bind: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Limits on what one request may ask for. Requests above a maximum are refused, never
/// silently clamped: a caller must know which limit its program ran under.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutionLimits {
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    /// Compiling (Go, C#) has its own limit; a cache hit skips it.
    pub compile_timeout_ms: u64,
    /// Each of stdout and stderr is cut here and `truncated` is set.
    pub stream_limit_bytes: u64,
    /// Largest `output.json` accepted.
    pub result_limit_bytes: u64,
    pub max_code_bytes: usize,
    pub max_input_bytes: usize,
    /// Whole request body; checked before any JSON parsing.
    pub max_body_bytes: usize,
    /// Invocations admitted at once across the gateway (running or waiting for a
    /// container). Past it, requests are shed at once with 503 instead of queueing.
    pub admission_limit: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_ms: 10_000,
            log_format: LogFormat::Pretty,
            metrics_bind: None,
        }
    }
}

impl Default for ExecutionLimits {
    fn default() -> Self {
        ExecutionLimits {
            default_timeout_ms: 5_000,
            max_timeout_ms: 60_000,
            compile_timeout_ms: 30_000,
            stream_limit_bytes: 1024 * 1024,
            result_limit_bytes: 4 * 1024 * 1024,
            max_code_bytes: 256 * 1024,
            max_input_bytes: 4 * 1024 * 1024,
            max_body_bytes: 5 * 1024 * 1024,
            admission_limit: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads defaults, then `file` (if given, it must exist), then the environment, and
    /// validates the result.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let settings = Settings::load_unvalidated(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Like [`Settings::load`] without the checks that only serving needs (for example
    /// that the agent bundle exists): used by `codebeaker keys`.
    pub fn load_unvalidated(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let defaults = config::Config::try_from(&Settings::default())
            .map_err(|e| ConfigError(e.to_string()))?;
        let mut b = config::Config::builder().add_source(defaults);
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).required(true));
        }
        let settings: Settings = b
            .add_source(
                config::Environment::with_prefix("CODEBEAKER")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(settings)
    }

    /// Everything checkable before binding a port or touching Docker.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.default_timeout_ms == 0 || l.default_timeout_ms > l.max_timeout_ms {
            return Err(ConfigError(
                "limits: need 0 < default_timeout_ms <= max_timeout_ms".into(),
            ));
        }
        if l.admission_limit == 0 {
            return Err(ConfigError(
                "limits.admission_limit must be positive".into(),
            ));
        }
        if l.max_body_bytes < l.max_code_bytes {
            return Err(ConfigError(
                "limits: max_body_bytes must be at least max_code_bytes".into(),
            ));
        }
        if !(2..=262_144).contains(&self.sessions.max_cpu_shares) {
            return Err(ConfigError(
                "sessions.max_cpu_shares must be 2..=262144 (Docker's CPU shares range)".into(),
            ));
        }
        self.pool.validate().map_err(ConfigError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_environment_override_defaults_key_by_key() {
        let dir = std::env::temp_dir().join(format!("cb-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        std::fs::write(dir.join("bundle/codebeaker-agent"), b"").unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            format!(
                "[pool]\nagent_bundle = {:?}\n[pool.languages.python]\nmin_idle = 5\n",
                dir.join("bundle")
            ),
        )
        .unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        let py = &s.pool.languages[&codebeaker_proto::Language::Python];
        assert_eq!(py.min_idle, 5);
        assert_eq!(
            py.image, "codebeaker-python:latest",
            "untouched keys keep defaults"
        );
        assert_eq!(
            s.pool.languages.len(),
            4,
            "other languages keep their defaults"
        );
        assert_eq!(s.server.bind.port(), 8080);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_limits_are_rejected() {
        let mut s = Settings::default();
        s.limits.default_timeout_ms = s.limits.max_timeout_ms + 1;
        assert!(s.validate().is_err());
    }
}
