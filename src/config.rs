//! The gateway's typed configuration: defaults, then an optional TOML file, then
//! environment variables (`CODEBEAKER_SECTION__KEY`, e.g. `CODEBEAKER_SERVER__BIND`).

use codebeaker_pool::PoolSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::{Quota, Scope};

/// A [`Duration`] kept in whole milliseconds (`*_ms` keys), as files always wrote it.
mod ms {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    /// Refuses zero while parsing: an interval or a limit of nothing (the error names
    /// the key).
    pub mod positive {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(d, s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            match u64::deserialize(d)? {
                0 => Err(serde::de::Error::custom("must be positive")),
                n => Ok(Duration::from_millis(n)),
            }
        }
    }
}

/// A [`Duration`] kept in whole seconds (`*_secs` keys).
mod secs {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }

    /// As [`super::ms::positive`], in seconds.
    pub mod positive {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(d, s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            match u64::deserialize(d)? {
                0 => Err(serde::de::Error::custom("must be positive")),
                n => Ok(Duration::from_secs(n)),
            }
        }
    }
}

/// A `redis://` URL may carry a password: kept secret, never logged or rendered.
mod secret_url {
    use super::*;

    pub fn serialize<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }
}

const fn nz64(n: u64) -> NonZeroU64 {
    match NonZeroU64::new(n) {
        Some(n) => n,
        None => NonZeroU64::MIN,
    }
}

const fn nzu(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// Every setting, by section (`[server]`, `[limits]`, `[auth]`, `[sessions]`, `[pool]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSettings,
    pub limits: ExecutionLimits,
    pub auth: AuthSettings,
    pub sessions: SessionSettings,
    pub executions: ExecutionSettings,
    pub webhooks: WebhookSettings,
    pub shared: SharedSettings,
    pub pool: PoolSettings,
    /// `[instances]`: resident program instances (`"isolation": "program"`).
    pub instances: codebeaker_pool::InstanceSettings,
    /// `[languages]`: where the recipes are, and which are served.
    pub languages: LanguagesSettings,
    /// `[compat]`: the Piston and Judge0 APIs and their optional anonymous caller.
    pub compat: CompatSettings,
}

/// `[compat]`: the compatibility APIs (Piston v2 at `/api/v2`, Judge0 CE at
/// `/submissions` and its siblings). They are authenticated like every route; with
/// `anonymous` on, a request to them that carries no credential runs as one shared
/// anonymous caller with its own tenant and quota (Piston clients cannot send a header).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatSettings {
    /// Serve the Piston API v2.
    pub piston: bool,
    /// Serve the Judge0 CE API.
    pub judge0: bool,
    /// Let requests without a credential use the compatibility APIs as the anonymous
    /// caller. Off by default; logged loudly at start-up when on.
    pub anonymous: bool,
    /// The anonymous caller's tenant (its executions, metrics and pools' share).
    pub anonymous_tenant: String,
    /// Its sustained requests per second, shared by every anonymous client (0 = unlimited).
    pub anonymous_rate_per_second: u32,
    /// Its burst above that rate.
    pub anonymous_burst: u32,
    /// Its invocations in flight at once.
    pub anonymous_max_concurrent: u32,
    /// The languages it may use, by name; empty means every served language.
    pub anonymous_languages: Vec<String>,
    /// Its longest run time (ms), under `limits.max_timeout_ms`.
    pub anonymous_max_timeout_ms: u64,
    /// Its largest memory limit (MB), under the container's.
    pub anonymous_max_memory_mb: u64,
}

impl Default for CompatSettings {
    fn default() -> Self {
        CompatSettings {
            piston: true,
            judge0: true,
            anonymous: false,
            anonymous_tenant: "anonymous".into(),
            anonymous_rate_per_second: 5,
            anonymous_burst: 10,
            anonymous_max_concurrent: 2,
            anonymous_languages: Vec::new(),
            anonymous_max_timeout_ms: 10_000,
            anonymous_max_memory_mb: 256,
        }
    }
}

/// `[languages]`: each language is a recipe directory (`languages/<name>/language.toml`);
/// the gateway serves those `enabled` names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanguagesSettings {
    /// The languages directory. The gateway reads the recipes from it and Docker
    /// bind-mounts it read-only into every sandbox, so (like `pool.agent_bundle`) it must
    /// be the same path on the engine's host.
    pub dir: std::path::PathBuf,
    /// The languages served, by name or alias; empty serves every recipe in `dir`.
    pub enabled: Vec<String>,
}

impl Default for LanguagesSettings {
    fn default() -> Self {
        LanguagesSettings {
            dir: "languages".into(),
            enabled: Vec::new(),
        }
    }
}

/// `[shared]`: several gateway replicas sharing one Redis (off by default: a single node
/// keeps its queue in SQLite and its limits in memory, and needs no Redis).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedSettings {
    /// `redis://host:port/db` (or `rediss://` for TLS). Empty: single node.
    #[serde(with = "secret_url")]
    pub redis_url: SecretString,
    /// Prefix of every key (several deployments can share one Redis).
    pub prefix: String,
    /// Where the other replicas reach this one (session forwarding), e.g.
    /// `http://10.0.0.5:8080`. Empty: `http://` + `server.bind`.
    pub advertise_url: String,
    /// Replicas known without Redis: instance label → URL (used when a replica has no
    /// heartbeat in Redis).
    pub peers: std::collections::BTreeMap<String, String>,
    /// How often this replica announces itself; it is taken for gone after
    /// `replica_ttl_ms` without an announcement.
    #[serde(with = "ms::positive")]
    pub heartbeat_ms: Duration,
    #[serde(with = "ms")]
    pub replica_ttl_ms: Duration,
    /// A queued execution claimed by a replica that stops renewing its claim (it died) is
    /// reclaimed by another after this long.
    #[serde(with = "ms::positive")]
    pub visibility_timeout_ms: Duration,
    /// Time one Redis command may take before the request that needed it gets 503.
    #[serde(with = "ms::positive")]
    pub command_timeout_ms: Duration,
}

impl Default for SharedSettings {
    fn default() -> Self {
        SharedSettings {
            redis_url: SecretString::from(String::new()),
            prefix: "codebeaker".into(),
            advertise_url: String::new(),
            peers: Default::default(),
            heartbeat_ms: Duration::from_millis(2_000),
            replica_ttl_ms: Duration::from_millis(6_000),
            visibility_timeout_ms: Duration::from_millis(30_000),
            command_timeout_ms: Duration::from_millis(1_000),
        }
    }
}

impl SharedSettings {
    pub fn enabled(&self) -> bool {
        !self.redis_url.expose_secret().is_empty()
    }
}

/// `[webhooks]`: callbacks of async executions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Allow callback URLs that resolve to loopback, link-local or private addresses
    /// (off: a callback must not become a way into the gateway's own network).
    pub allow_private: bool,
    /// Deliveries tried before a callback goes to the dead letters.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, with ±50 % jitter.
    #[serde(with = "ms")]
    pub backoff_ms: Duration,
    /// Time one delivery attempt may take.
    #[serde(with = "ms")]
    pub timeout_ms: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private: false,
            max_attempts: 6,
            backoff_ms: Duration::from_millis(1_000),
            timeout_ms: Duration::from_millis(10_000),
        }
    }
}

/// `[executions]`: async executions and their durable queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutionSettings {
    /// The SQLite database (created if missing; WAL mode).
    pub database: PathBuf,
    /// Executions run at once (each a single invocation or a whole batch).
    pub workers: usize,
    /// How long finished executions and their results are kept.
    #[serde(with = "secs")]
    pub retention_secs: Duration,
    /// Queued executions per tenant before 429.
    pub max_queued_per_tenant: usize,
    /// Queued executions in total before 503.
    pub max_queued: usize,
    /// How often an idle worker looks at the queue (new submissions wake it at once).
    #[serde(with = "ms")]
    pub poll_interval_ms: Duration,
    /// Executions of one tenant running at once (across replicas with `[shared]`), so that
    /// one tenant's long work cannot hold every worker. 0 means `workers - 1` (at least 1).
    pub max_running_per_tenant: usize,
    /// An async batch's overall deadline, from its start: items not finished by then are
    /// `skipped` and the execution completes with the rest.
    #[serde(with = "secs::positive")]
    pub max_run_secs: Duration,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        ExecutionSettings {
            database: PathBuf::from("codebeaker-executions.db"),
            workers: 4,
            retention_secs: Duration::from_secs(86_400),
            max_queued_per_tenant: 1_000,
            max_queued: 10_000,
            poll_interval_ms: Duration::from_millis(500),
            max_running_per_tenant: 0,
            max_run_secs: Duration::from_secs(3_600),
        }
    }
}

/// `[sessions]`: timeouts and caps of stateful sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionSettings {
    pub default_idle_minutes: f64,
    pub max_idle_minutes: f64,
    pub default_lifetime_minutes: f64,
    pub max_lifetime_minutes: f64,
    /// How long a command waits for the session's previous command before "session busy".
    #[serde(with = "ms::positive")]
    pub busy_wait_ms: Duration,
    /// How often expired sessions are closed.
    #[serde(with = "ms::positive")]
    pub janitor_interval_ms: Duration,
    /// Upper bound on an `execute_shell` command's `timeoutMs`.
    #[serde(with = "ms::positive")]
    pub max_command_timeout_ms: Duration,
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
            busy_wait_ms: Duration::from_millis(2_000),
            janitor_interval_ms: Duration::from_millis(5_000),
            max_command_timeout_ms: Duration::from_millis(300_000),
            max_cpu_shares: 1024,
        }
    }
}

/// `[auth]`: the API keys file and JWT validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// TOML file of API keys (hashes only). Missing file = no keys yet. Reloaded on SIGHUP
    /// and when its modification time changes.
    pub keys_file: Option<PathBuf>,
    #[serde(with = "ms::positive")]
    pub reload_interval_ms: Duration,
    pub jwt: JwtSettings,
}

/// `[auth.jwt]`: accepted algorithms and keys, required claims, and defaults for claims a token omits.
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
    /// Required `iss`: must be set when JWT is enabled (any key configured).
    pub issuer: Option<String>,
    /// Required `aud`: must be set when JWT is enabled.
    pub audience: Option<String>,
    #[serde(with = "secs")]
    pub leeway_secs: Duration,
    /// The claim whose value names a token's tenant (as `jwt:<value>`) when its `cb` claim
    /// has no `tenant`; a token with neither is refused.
    pub tenant_claim: String,
    /// Scopes for tokens whose `cb` claim does not say.
    pub default_scopes: Vec<Scope>,
    pub defaults: Quota,
    /// Signs webhook callbacks of token callers (API keys have their own secret); set it
    /// through `CODEBEAKER_AUTH__JWT__WEBHOOK_SECRET`. Without it, token callers cannot
    /// use `callbackUrl`.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<SecretString>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            keys_file: Some(PathBuf::from("codebeaker-keys.toml")),
            reload_interval_ms: Duration::from_millis(2_000),
            jwt: JwtSettings::default(),
        }
    }
}

impl JwtSettings {
    /// Whether any key is configured (an empty HS256 secret is none).
    pub fn enabled(&self) -> bool {
        self.hs256_secret
            .as_ref()
            .is_some_and(|s| !secrecy::ExposeSecret::expose_secret(s).is_empty())
            || !self.rs256_public_keys.is_empty()
            || !self.es256_public_keys.is_empty()
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
            leeway_secs: Duration::from_secs(30),
            tenant_claim: "sub".into(),
            default_scopes: vec![Scope::Execute],
            defaults: Quota::default(),
            webhook_secret: None,
        }
    }
}

/// `[server]`: where and how the gateway listens, logs and shuts down.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// How long in-flight requests get to finish at shutdown before containers go.
    #[serde(with = "ms")]
    pub shutdown_grace_ms: Duration,
    /// `pretty` for development, `json` for production log pipelines.
    pub log_format: LogFormat,
    /// Serve `/metrics` on this separate address instead of the main one.
    pub metrics_bind: Option<SocketAddr>,
    /// A connection must deliver a request's complete headers within this time (slowloris),
    /// and an idle keep-alive connection is closed after it (it is waiting for headers).
    #[serde(with = "ms::positive")]
    pub header_read_timeout_ms: Duration,
    /// A request body must arrive within this time, or the request gets 408.
    #[serde(with = "ms::positive")]
    pub body_read_timeout_ms: Duration,
    /// Open connections at most; beyond, a new connection gets 503 and is closed.
    pub max_connections: NonZeroUsize,
    /// A WebSocket is pinged this often...
    #[serde(with = "ms::positive")]
    pub websocket_ping_interval_ms: Duration,
    /// ...and closed when nothing (message or pong) arrived for this long.
    #[serde(with = "ms")]
    pub websocket_idle_timeout_ms: Duration,
}

/// Log output format.
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
    #[serde(with = "ms::positive")]
    pub default_timeout_ms: Duration,
    #[serde(with = "ms::positive")]
    pub max_timeout_ms: Duration,
    /// Compiling (Go, C#) has its own limit; a cache hit skips it.
    #[serde(with = "ms::positive")]
    pub compile_timeout_ms: Duration,
    /// Each of stdout and stderr is cut here and `truncated` is set.
    pub stream_limit_bytes: NonZeroU64,
    /// Largest `output.json` accepted.
    pub result_limit_bytes: NonZeroU64,
    pub max_code_bytes: NonZeroUsize,
    pub max_input_bytes: NonZeroUsize,
    /// Largest `stdin` of a program.
    pub max_stdin_bytes: NonZeroUsize,
    /// Most `args` of a program (their total size is capped at 64 KiB).
    pub max_args: NonZeroUsize,
    /// Most `files` written beside a program...
    pub max_files: NonZeroUsize,
    /// ...and their total size, decoded.
    pub max_files_bytes: NonZeroUsize,
    /// Whole request body; checked before any JSON parsing.
    pub max_body_bytes: NonZeroUsize,
    /// Most items in one batch.
    pub max_batch_items: NonZeroUsize,
    /// Whole body of a batch request (its own limit: a batch carries many inputs).
    pub max_batch_body_bytes: NonZeroUsize,
    /// Most bytes of item results (output, stdout, stderr) one batch answer or one async
    /// execution's stored result may hold. Reached, the items after it are not run and
    /// get `result_budget_exceeded` (NDJSON streams hold nothing and have no budget).
    pub max_batch_result_bytes: NonZeroUsize,
    /// Invocations admitted at once across the gateway (running or waiting for a
    /// container). Past it, requests are shed at once with 503 instead of queueing.
    pub admission_limit: NonZeroUsize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_ms: Duration::from_millis(10_000),
            log_format: LogFormat::Pretty,
            metrics_bind: None,
            header_read_timeout_ms: Duration::from_millis(10_000),
            body_read_timeout_ms: Duration::from_millis(30_000),
            max_connections: nzu(1_024),
            websocket_ping_interval_ms: Duration::from_millis(30_000),
            websocket_idle_timeout_ms: Duration::from_millis(90_000),
        }
    }
}

impl Default for ExecutionLimits {
    fn default() -> Self {
        ExecutionLimits {
            default_timeout_ms: Duration::from_millis(5_000),
            max_timeout_ms: Duration::from_millis(60_000),
            compile_timeout_ms: Duration::from_millis(30_000),
            stream_limit_bytes: nz64(1024 * 1024),
            result_limit_bytes: nz64(4 * 1024 * 1024),
            max_code_bytes: nzu(256 * 1024),
            max_input_bytes: nzu(4 * 1024 * 1024),
            max_stdin_bytes: nzu(1024 * 1024),
            max_args: nzu(64),
            max_files: nzu(32),
            max_files_bytes: nzu(4 * 1024 * 1024),
            max_body_bytes: nzu(5 * 1024 * 1024),
            max_batch_items: nzu(10_000),
            max_batch_body_bytes: nzu(32 * 1024 * 1024),
            max_batch_result_bytes: nzu(64 * 1024 * 1024),
            admission_limit: nzu(256),
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or variable that does not parse into the settings (a wrong type, a zero
    /// where a positive number is needed): the loader's message names the key.
    #[error("configuration: {0}")]
    Load(#[source] config::ConfigError),
    /// A key the settings do not have (a typo would otherwise be ignored in silence).
    #[error("configuration: {0}")]
    UnknownKey(String),
    /// Values that do not go together, or are out of range.
    #[error("configuration: {0}")]
    Invalid(String),
}

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
        let defaults = config::Config::try_from(&Settings::default()).map_err(ConfigError::Load)?;
        let mut b = config::Config::builder().add_source(defaults);
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).required(true));
        }
        let built = b
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    // CODEBEAKER_LANGUAGES__ENABLED=python,go
                    .list_separator(",")
                    .with_list_parse_key("languages.enabled")
                    .source(Some(settings_environment())),
            )
            .build()
            .map_err(ConfigError::Load)?;
        // A misspelt key would otherwise be ignored and its default used in silence.
        let mut unknown = Vec::new();
        let settings: Settings =
            serde_ignored::deserialize(built, |path| unknown.push(path.to_string()))
                .map_err(ConfigError::Load)?;
        match unknown.first() {
            Some(key) => Err(ConfigError::UnknownKey(unknown_key(key))),
            None => Ok(settings),
        }
    }

    /// The rules that span fields, and ranges the types do not carry. Zero durations and
    /// counts are refused while parsing (`ms::positive`, `NonZero*`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        let l = &self.limits;
        if l.default_timeout_ms > l.max_timeout_ms {
            return fail("limits: need default_timeout_ms <= max_timeout_ms");
        }
        if l.max_body_bytes < l.max_code_bytes {
            return fail("limits: max_body_bytes must be at least max_code_bytes");
        }
        let sh = &self.shared;
        if sh.replica_ttl_ms <= sh.heartbeat_ms {
            return fail("shared: replica_ttl_ms must exceed heartbeat_ms");
        }
        let url = sh.redis_url.expose_secret();
        if sh.enabled() && !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return fail("shared.redis_url must start with redis:// or rediss://");
        }
        let s = &self.sessions;
        for (what, default, max) in [
            ("idle", s.default_idle_minutes, s.max_idle_minutes),
            (
                "lifetime",
                s.default_lifetime_minutes,
                s.max_lifetime_minutes,
            ),
        ] {
            // Written so that NaN fails too.
            if !(default > 0.0 && max.is_finite() && default <= max) {
                return Err(ConfigError::Invalid(format!(
                    "sessions: need 0 < default_{what}_minutes <= max_{what}_minutes (finite)"
                )));
            }
        }
        if !(2..=262_144).contains(&s.max_cpu_shares) {
            return fail("sessions.max_cpu_shares must be 2..=262144 (Docker's CPU shares range)");
        }
        if self.server.websocket_idle_timeout_ms <= self.server.websocket_ping_interval_ms {
            return fail(
                "server.websocket_idle_timeout_ms must be above websocket_ping_interval_ms (a pong needs time to come back)",
            );
        }
        if self.server.shutdown_grace_ms > Duration::from_secs(3_600) {
            return fail("server.shutdown_grace_ms must be at most 3600000 (an hour)");
        }
        let jwt = &self.auth.jwt;
        if jwt.enabled() {
            let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
            if !set(&jwt.issuer) || !set(&jwt.audience) {
                return fail(
                    "auth.jwt: issuer and audience are required when JWT is enabled (a key is configured): without them any token from the identity provider, for any application, would be accepted",
                );
            }
            if jwt.tenant_claim.trim().is_empty() {
                return fail("auth.jwt.tenant_claim must name a claim (default \"sub\")");
            }
        }
        self.pool.validate().map_err(ConfigError::Invalid)
    }
}

const ENV_PREFIX: &str = "CODEBEAKER";
/// Variables with the prefix that are not settings: the config file's path, and the
/// client commands' gateway address and key (`codebeaker run`, docs/cli.md), which a shell
/// that also starts the gateway may well export.
const NOT_SETTINGS: &[&str] = &["CODEBEAKER_CONFIG", "CODEBEAKER_URL", "CODEBEAKER_API_KEY"];

/// The process environment minus the variables that share the prefix but are not settings.
fn settings_environment() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_SETTINGS.contains(&k.as_str()))
        .collect()
}

/// "unknown key `pool.languages.python.min_idel`; did you mean `min_idle`?"
fn unknown_key(path: &str) -> String {
    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    let siblings = parent
        .split('.')
        .filter(|p| !p.is_empty())
        .try_fold(&defaults, |v, part| v.get(part));
    let closest = siblings
        .and_then(|v| v.as_object())
        .into_iter()
        .flat_map(|m| m.keys())
        .map(|k| (strsim::jaro_winkler(leaf, k), k))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, k)) => format!("unknown key `{path}`; did you mean `{k}`?"),
        None => format!("unknown key `{path}`"),
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
                "[pool]\nagent_bundle = {:?}\n[pool.languages.python]\nmin_idle = 5\n[pool.languages.typescript]\nmin_idle = 1\n",
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
            5,
            "other languages keep their defaults"
        );
        // A language only a recipe declares: its table's image is its recipe's.
        let ts = codebeaker_recipe::Recipe::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("languages/typescript"),
        )
        .unwrap();
        let t = s.pool.for_language(&ts);
        assert_eq!((t.min_idle, t.max_size), (1, 8));
        assert_eq!(t.image, "codebeaker-javascript:latest");
        assert_eq!(s.server.bind.port(), 8080);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jwt_without_issuer_or_audience_is_refused() {
        let mut s = Settings::default();
        s.auth.jwt.hs256_secret = Some("secret".into());
        s.auth.jwt.issuer = Some("idp".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("issuer and audience are required"), "{e}");
        s.auth.jwt.issuer = None;
        s.auth.jwt.audience = Some("api".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("issuer and audience"), "{e}");
        s.auth.jwt.hs256_secret = None;
        s.auth.jwt.rs256_public_keys = vec!["k.pem".into()];
        s.auth.jwt.issuer = Some(" ".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("issuer and audience"), "{e}");
        // An empty HS256 secret (an unset Helm value) is JWT off, not a key.
        s.auth.jwt.rs256_public_keys.clear();
        s.auth.jwt.hs256_secret = Some("".into());
        s.auth.jwt.issuer = None;
        assert!(!s.auth.jwt.enabled());
        if let Err(e) = s.validate() {
            assert!(!e.to_string().contains("auth.jwt"), "{e}");
        }
    }

    #[test]
    fn invalid_limits_are_rejected() {
        let mut s = Settings::default();
        s.limits.default_timeout_ms = s.limits.max_timeout_ms + Duration::from_millis(1);
        assert!(s.validate().is_err());
    }

    fn load_toml(name: &str, toml: &str) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("cb-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let r = Settings::load_unvalidated(Some(&file));
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    fn unknown(e: ConfigError) -> String {
        match e {
            ConfigError::UnknownKey(m) => m,
            other => panic!("not an unknown key: {other}"),
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_the_closest_known_one() {
        let e = load_toml("idel", "[pool.languages.python]\nmin_idel = 5\n").unwrap_err();
        assert_eq!(
            unknown(e),
            "unknown key `pool.languages.python.min_idel`; did you mean `min_idle`?"
        );
        let e = load_toml("bnd", "[server]\nbnd = \"0.0.0.0:1\"\n").unwrap_err();
        assert_eq!(unknown(e), "unknown key `server.bnd`; did you mean `bind`?");
        let e = unknown(load_toml("top", "[sesions]\nbusy_wait_ms = 1\n").unwrap_err());
        assert!(e.starts_with("unknown key `sesions"), "{e}");
        assert!(e.contains("did you mean `sessions`?"), "{e}");
        let e = load_toml("far", "[server]\nzzzz = 1\n").unwrap_err();
        assert_eq!(unknown(e), "unknown key `server.zzzz`");
        assert!(load_toml("ok", "[server]\nshutdown_grace_ms = 5\n").is_ok());
    }

    #[test]
    fn durations_and_counts_keep_their_keys_and_units() {
        let s = load_toml(
            "units",
            "[server]\nshutdown_grace_ms = 1500\nmax_connections = 7\n[executions]\nretention_secs = 90\n",
        )
        .unwrap();
        assert_eq!(s.server.shutdown_grace_ms, Duration::from_millis(1500));
        assert_eq!(s.server.max_connections.get(), 7);
        assert_eq!(s.executions.retention_secs, Duration::from_secs(90));
        let rendered = serde_json::to_value(Settings::default()).unwrap();
        assert_eq!(rendered["server"]["shutdown_grace_ms"], 10_000);
        assert_eq!(rendered["executions"]["retention_secs"], 86_400);
        assert_eq!(rendered["limits"]["max_body_bytes"], 5 * 1024 * 1024);
        // The Redis URL may hold a password: never rendered.
        let mut with_url = Settings::default();
        with_url.shared.redis_url = SecretString::from("redis://:pw@host:6379".to_string());
        let text = serde_json::to_string(&with_url).unwrap();
        assert!(!text.contains("pw@host"), "{text}");
    }

    #[test]
    fn every_interval_and_session_setting_is_range_checked() {
        // Zero intervals and counts are refused while parsing, naming the key.
        for (section, key) in [
            ("sessions", "janitor_interval_ms"),
            ("auth", "reload_interval_ms"),
            ("sessions", "busy_wait_ms"),
            ("limits", "compile_timeout_ms"),
            ("limits", "max_body_bytes"),
            ("server", "max_connections"),
        ] {
            let e = load_toml(key, &format!("[{section}]\n{key} = 0\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("{section}.{key}")), "{key}: {e}");
        }
        let check = |f: &dyn Fn(&mut Settings), needle: &str| {
            let mut s = Settings::default();
            f(&mut s);
            // The pool's agent-bundle check runs last; everything before it is ours.
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        check(
            &|s| s.sessions.default_idle_minutes = -1.0,
            "default_idle_minutes",
        );
        check(
            &|s| s.sessions.max_lifetime_minutes = f64::NAN,
            "max_lifetime_minutes",
        );
        check(
            &|s| s.sessions.default_lifetime_minutes = 1e9,
            "default_lifetime_minutes",
        );
        check(
            &|s| s.sessions.max_cpu_shares = 1,
            "sessions.max_cpu_shares",
        );
        check(
            &|s| s.pool.warm_interval_ms = std::time::Duration::ZERO,
            "pool.warm_interval_ms",
        );
        check(&|s| s.pool.limits.sandbox_uid = 0, "sandbox_uid");
    }
}
