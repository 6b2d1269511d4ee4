//! Typed settings for the pools. The gateway embeds these in its own config tree.
//!
//! Durations are [`Duration`]s, read from and written back to the same keys in the same
//! units as always (`*_ms` in milliseconds, `*_secs` in seconds: the [`ms`] and [`secs`]
//! helpers); counts that cannot be zero are `NonZero*`, so a zero is refused while
//! parsing. [`PoolSettings::validate`] keeps the rest: ranges, the rules that span
//! fields, and intervals that would spin their loop at zero.

use codebeaker_proto::Language;
use codebeaker_recipe::Recipe;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

/// A [`Duration`] kept in whole milliseconds (`*_ms` keys).
pub(crate) mod ms {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A [`Duration`] kept in whole seconds (`*_secs` keys).
pub(crate) mod secs {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Everything the pools need to create, run and retire containers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct PoolSettings {
    /// Value of the `codebeaker.instance` label on every container this gateway creates.
    /// At startup, containers carrying this label are leftovers of a crashed run and are
    /// removed. Two gateways sharing a Docker engine need different instance names.
    pub instance: String,
    /// Host directory holding the agent binary, mounted read-only at
    /// `/opt/codebeaker` in every container.
    pub agent_bundle: PathBuf,
    /// The languages directory (the recipes), mounted read-only at
    /// `/opt/codebeaker-languages`. Set by the gateway from `languages.dir`, not a key of
    /// `[pool]`.
    #[serde(skip)]
    pub languages_dir: PathBuf,
    /// Host directory of the shared compile cache (Go and C# artifacts), mounted
    /// read-only at `/shared-cache` in every container and written by the gateway only.
    /// Empty: no shared cache (each container compiles for itself).
    pub compile_cache_dir: PathBuf,
    /// Bound on the shared compile cache; the oldest artifacts are evicted first.
    pub compile_cache_mb: u64,
    /// The least a request waits for a container before it gets 503. It waits longer
    /// when the pool's history says a container will be free later than that (twice the
    /// expected wait), up to `max_queue_wait_ms`.
    #[serde(with = "ms")]
    pub queue_timeout_ms: Duration,
    /// A request whose expected wait exceeds this is refused at once (503 with
    /// `Retry-After`) rather than queued.
    #[serde(with = "ms")]
    pub max_queue_wait_ms: Duration,
    /// How long creating and starting one container may take (C# compiles its launcher).
    #[serde(with = "ms")]
    pub create_timeout_ms: Duration,
    /// How often the warmer checks that each pool has its `min_idle` containers.
    #[serde(with = "ms")]
    pub warm_interval_ms: Duration,
    /// How often Docker's list of our containers is compared with the pool's books (dead
    /// containers leave the pool, unknown ones and failed removals are removed).
    #[serde(with = "ms")]
    pub reconcile_interval_ms: Duration,
    /// A pool that grew under load gives back containers idle this long, down to
    /// `min_idle` (0: never).
    #[serde(with = "secs")]
    pub idle_shrink_secs: Duration,
    pub limits: ContainerLimits,
    pub languages: BTreeMap<Language, LanguageSettings>,
    /// Images with allow-listed packages (`docker/build-variants.sh`), by variant name. A
    /// variant's language and packages are read from its image's labels at startup; a
    /// variant whose image is not built is listed as unavailable, and requests that need
    /// its packages get 422. Same keys as a language; `min_idle` 0 warms on demand.
    pub variants: BTreeMap<String, LanguageSettings>,
    /// A container that served one tenant is never handed to another: each tenant draws
    /// its own containers from the language's shared idle set (the warm nursery) and keeps
    /// them until they have been idle `tenant_idle_secs`. Off: any tenant may get any
    /// idle container, cleaned after every call as always.
    pub tenant_affinity: bool,
    /// The most of a language's `max_size` one tenant may hold at once (busy or idle), as a
    /// fraction; its further calls queue for its own containers. At least one container.
    pub tenant_max_share: f64,
    /// A tenant's idle container is retired after this long unused (affinity on).
    #[serde(with = "secs")]
    pub tenant_idle_secs: Duration,
    /// The Docker engine this replica drives.
    pub engine: EngineSettings,
}

/// `[instances]`: resident program instances (`"isolation": "program"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct InstanceSettings {
    /// A runner is replaced (in its container, after a full cleanup) after this many
    /// calls...
    pub max_calls: NonZeroU64,
    /// ...or when it is this old.
    #[serde(with = "secs")]
    pub max_age_secs: Duration,
    /// An instance unused this long is ended and its container goes back to its tenant's
    /// sub-pool.
    #[serde(with = "secs")]
    pub idle_secs: Duration,
    /// Calls a batch worker keeps in flight on one instance (sent ahead of their replies).
    pub pipeline_depth: NonZeroUsize,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            max_calls: NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN),
            max_age_secs: Duration::from_secs(600),
            idle_secs: Duration::from_secs(60),
            pipeline_depth: NonZeroUsize::new(32).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// `[pool.engine]`: which Docker engine to drive. Empty: `DOCKER_HOST`, else the local
/// socket. A remote engine mounts the agent bundle and the compile cache from *its* host's
/// filesystem: both paths must exist there (or set `compile_cache_dir = ""`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct EngineSettings {
    /// `unix:///var/run/docker.sock`, `tcp://host:2376`, …
    pub host: String,
    /// A directory with `ca.pem`, `cert.pem` and `key.pem`: connect over TLS (mutual).
    pub tls_dir: PathBuf,
}

/// Isolation limits applied to every container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct ContainerLimits {
    /// Memory limit of a container (swap is set equal, so there is none).
    pub memory_mb: u64,
    /// CPU quota in cores.
    pub cpus: f64,
    pub pids: i64,
    pub workspace_mb: NonZeroU64,
    pub tmp_mb: NonZeroU64,
    /// Root-owned tmpfs for compiled artifacts.
    pub cache_mb: NonZeroU64,
    pub nofile: i64,
    /// Largest file any process may write (RLIMIT_FSIZE).
    pub fsize_mb: i64,
    /// The uid/gid user code runs as inside the container.
    pub sandbox_uid: u32,
}

/// Per-language pool settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default)]
pub struct LanguageSettings {
    pub enabled: bool,
    pub image: String,
    /// Containers kept warm and idle at all times (created at startup and topped up).
    pub min_idle: usize,
    /// Most containers this language may have at once, busy or idle.
    pub max_size: usize,
    /// A container is retired after this many invocations...
    pub max_uses: NonZeroUsize,
    /// ...or this age, whichever comes first.
    #[serde(with = "secs")]
    pub max_age_secs: Duration,
    /// The OCI runtime of this language's containers (sessions included): `runc`, or
    /// `runsc` (gVisor) once registered in the engine's daemon.json.
    pub runtime: String,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            instance: "codebeaker".into(),
            agent_bundle: PathBuf::from("target/agent-bundle"),
            languages_dir: PathBuf::from("languages"),
            compile_cache_dir: PathBuf::from("target/compile-cache"),
            compile_cache_mb: 1024,
            queue_timeout_ms: Duration::from_millis(2_000),
            max_queue_wait_ms: Duration::from_millis(30_000),
            create_timeout_ms: Duration::from_millis(60_000),
            warm_interval_ms: Duration::from_millis(250),
            reconcile_interval_ms: Duration::from_millis(5_000),
            idle_shrink_secs: Duration::from_secs(300),
            limits: ContainerLimits::default(),
            languages: Language::FIRST_FOUR
                .into_iter()
                .map(|l| {
                    let s = LanguageSettings::for_language(&l);
                    (l, s)
                })
                .collect(),
            variants: ["python-data", "javascript-libs"]
                .into_iter()
                .map(|v| (v.to_string(), LanguageSettings::for_variant(v)))
                .collect(),
            tenant_affinity: true,
            tenant_max_share: 0.75,
            tenant_idle_secs: Duration::from_secs(60),
            engine: EngineSettings::default(),
        }
    }
}

impl Default for ContainerLimits {
    fn default() -> Self {
        ContainerLimits {
            memory_mb: 512,
            cpus: 1.0,
            pids: 256,
            workspace_mb: NonZeroU64::new(64).expect("nonzero"),
            tmp_mb: NonZeroU64::new(128).expect("nonzero"),
            cache_mb: NonZeroU64::new(256).expect("nonzero"),
            nofile: 1024,
            fsize_mb: 128,
            sandbox_uid: 1000,
        }
    }
}

impl LanguageSettings {
    /// The defaults for `l`: its image name, two warm containers, at most eight.
    pub fn for_language(l: &Language) -> Self {
        LanguageSettings {
            enabled: true,
            image: format!("codebeaker-{}:latest", l.name()),
            min_idle: 2,
            max_size: 8,
            max_uses: NonZeroUsize::new(1000).expect("nonzero"),
            max_age_secs: Duration::from_secs(3600),
            runtime: "runc".into(),
        }
    }
}

impl LanguageSettings {
    /// The defaults for variant `name`: its image, none kept warm, at most four.
    pub fn for_variant(name: &str) -> Self {
        LanguageSettings {
            image: format!("codebeaker-{name}:latest"),
            min_idle: 0,
            max_size: 4,
            ..LanguageSettings::for_language(&Language::Python)
        }
    }
}

/// A table of `[pool.languages]` for a language without defaults of its own (one only a
/// recipe declares) starts from these: its image is left empty, meaning its recipe's.
impl Default for LanguageSettings {
    fn default() -> Self {
        LanguageSettings {
            image: String::new(),
            ..LanguageSettings::for_language(&Language::Python)
        }
    }
}

impl PoolSettings {
    /// A language's settings: the configured ones, or the defaults for its recipe (its
    /// image is the image recipe's: TypeScript runs in `codebeaker-javascript`).
    pub fn for_language(&self, recipe: &Recipe) -> LanguageSettings {
        let mut s = self
            .languages
            .get(&recipe.name)
            .cloned()
            .unwrap_or_default();
        if s.image.trim().is_empty() {
            s.image = format!("codebeaker-{}:latest", recipe.image());
        }
        s
    }

    /// How long a request waits for a free container.
    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout_ms
    }

    /// The longest expected wait a request is queued for.
    pub fn max_queue_wait(&self) -> Duration {
        self.max_queue_wait_ms
    }

    /// How many of a pool's `max_size` containers one tenant may hold.
    pub fn tenant_share(&self, max_size: usize) -> usize {
        if self.tenant_affinity {
            ((max_size as f64 * self.tenant_max_share).floor() as usize).clamp(1, max_size.max(1))
        } else {
            max_size
        }
    }

    /// How long creating and starting one container may take.
    pub fn create_timeout(&self) -> Duration {
        self.create_timeout_ms
    }

    /// Checks what can be checked without Docker. Errors name the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.instance.is_empty()
            || !self
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "pool.instance {:?} must be non-empty [A-Za-z0-9_-]",
                self.instance
            ));
        }
        if !self.compile_cache_dir.as_os_str().is_empty() && self.compile_cache_mb == 0 {
            return Err("pool.compile_cache_mb must be positive".into());
        }
        let l = &self.limits;
        positive("pool.queue_timeout_ms", self.queue_timeout_ms)?;
        positive("pool.max_queue_wait_ms", self.max_queue_wait_ms)?;
        positive("pool.create_timeout_ms", self.create_timeout_ms)?;
        positive("pool.warm_interval_ms", self.warm_interval_ms)?;
        positive("pool.reconcile_interval_ms", self.reconcile_interval_ms)?;
        if !(32..=1 << 20).contains(&l.memory_mb) {
            return Err("pool.limits.memory_mb must be 32..=1048576".into());
        }
        if !(l.cpus.is_finite() && l.cpus >= 0.0 && l.cpus <= 1024.0) {
            return Err(
                "pool.limits.cpus must be a number of cores (0: no quota, CPU shares only)".into(),
            );
        }
        for (key, v) in [
            ("pool.limits.pids", l.pids),
            ("pool.limits.nofile", l.nofile),
            ("pool.limits.fsize_mb", l.fsize_mb),
        ] {
            if v <= 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if l.sandbox_uid == 0 {
            return Err(
                "pool.limits.sandbox_uid must not be 0: user code never runs as root".into(),
            );
        }
        for (l, s) in &self.languages {
            s.validate(&format!("pool.languages.{l}"), false)?;
        }
        for (name, s) in &self.variants {
            let key = format!("pool.variants.{name}");
            if variant_language(name).is_none()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(format!(
                    "{key}: a variant is named <language>-<suffix> in [a-z0-9-] (python-data)"
                ));
            }
            s.validate(&key, true)?;
        }
        if !(self.tenant_max_share > 0.0 && self.tenant_max_share <= 1.0) {
            return Err("pool.tenant_max_share must be in (0, 1]".into());
        }
        positive("pool.tenant_idle_secs", self.tenant_idle_secs)?;
        // Last: the only check that looks at the file system.
        if !self.agent_bundle.join("codebeaker-agent").is_file() {
            return Err(format!(
                "pool.agent_bundle: {} has no codebeaker-agent (run `make agent`)",
                self.agent_bundle.display()
            ));
        }
        Ok(())
    }
}

impl LanguageSettings {
    /// The checks of one language's (or variant's) table, named `key` in errors.
    /// A language's `image` may be left empty (its recipe's image); a variant's may not.
    fn validate(&self, key: &str, image_required: bool) -> Result<(), String> {
        if self.enabled && (self.max_size == 0 || self.min_idle > self.max_size) {
            return Err(format!("{key}: need 0 < max_size and min_idle <= max_size"));
        }
        if self.max_age_secs.is_zero() {
            return Err(format!("{key}: max_uses and max_age_secs must be positive"));
        }
        if image_required && self.image.trim().is_empty() {
            return Err(format!("{key}.image must not be empty"));
        }
        Ok(())
    }
}

/// The language a variant's name starts with (`python-data` → Python); `None` unless the
/// name is `<language>-<suffix>`.
pub(crate) fn variant_language(name: &str) -> Option<Language> {
    let (language, suffix) = name.split_once('-')?;
    Language::new(language).filter(|_| !suffix.is_empty())
}

/// A duration that must be above zero (a zero interval would spin its loop).
fn positive(key: &str, v: Duration) -> Result<(), String> {
    if v.is_zero() {
        Err(format!("{key} must be positive"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_share_is_a_fraction_of_the_pool_and_at_least_one() {
        let mut s = PoolSettings::default();
        assert_eq!(s.tenant_share(8), 6);
        assert_eq!(s.tenant_share(2), 1);
        assert_eq!(s.tenant_share(1), 1);
        s.tenant_max_share = 1.0;
        assert_eq!(s.tenant_share(8), 8);
        s.tenant_affinity = false;
        s.tenant_max_share = 0.5;
        assert_eq!(
            s.tenant_share(8),
            8,
            "without affinity the one shared sub-pool is the pool"
        );
    }

    #[test]
    fn durations_keep_their_keys_and_units() {
        let s = PoolSettings::default();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["queue_timeout_ms"], 2_000);
        assert_eq!(v["idle_shrink_secs"], 300);
        assert_eq!(v["languages"]["python"]["max_age_secs"], 3_600);
        assert_eq!(v["languages"]["python"]["max_uses"], 1_000);
        assert_eq!(v["limits"]["tmp_mb"], 128);
        let mut v = v;
        v["warm_interval_ms"] = 100.into();
        v["tenant_idle_secs"] = 7.into();
        let back: PoolSettings = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back.warm_interval_ms, Duration::from_millis(100));
        assert_eq!(back.tenant_idle_secs, Duration::from_secs(7));
        v["limits"]["tmp_mb"] = 0.into();
        assert!(
            serde_json::from_value::<PoolSettings>(v).is_err(),
            "a zero count is refused while parsing"
        );
    }
}
