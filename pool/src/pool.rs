//! The warm pools: one deadpool pool per language, kept topped up by a warmer task.
//!
//! deadpool creates objects lazily and has no notion of "minimum idle". We add it without
//! fighting the library: the warmer creates containers ahead of time into a small
//! *nursery*, and the deadpool `Manager::create` takes from the nursery when it can. So a
//! request that finds no idle container in the pool gets a warm one from the nursery in
//! microseconds, and only when both are empty does it pay for a cold container start.

use codebeaker_proto::{
    ItemRequest, Language, PrepareRequest, ProgramError, ProgramErrorKind, RawJson, RunOutcome,
    RunRequest,
};
use deadpool::managed::{self, Object, Timeouts};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use bollard::Docker;

use crate::agent::short;
use crate::cache::{ArtifactKeys, Pin, SharedCache};
use crate::config::{LanguageSettings, PoolSettings};
use crate::container::{self, Container, CLEAN_TIMEOUT};
use crate::docker;
use crate::error::{PoolError, UnknownPackages};
use crate::health::Health;
use crate::manager::{Lifecycle, LifecycleSnapshot, Manager};
use crate::queue::{Occupancy, WaitEstimate};
use crate::wrap::wrap;

/// One invocation as the gateway hands it to the pools.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub language: Language,
    /// Shared: a batch's items all point at one copy of its code.
    pub code: Arc<str>,
    /// Written verbatim to `input.json` (validated and compacted at the edge).
    pub input: RawJson,
    pub timeout: Duration,
    pub compile_timeout: Duration,
    /// Lower memory limit for this invocation only (must not exceed the container's).
    pub memory_mb: Option<u64>,
    pub stream_limit_bytes: u64,
    pub result_limit_bytes: u64,
    /// Run `code` as the whole program, without the language's wrapper (the seeds' API,
    /// and `mode: "plain"`): success is exit code 0, there is no result value.
    pub plain: bool,
    /// Packages the program needs: it runs on the smallest variant image that has them
    /// all (none: the language's default image).
    pub packages: Vec<String>,
    /// Whose call this is: with tenant affinity, it runs only on a container that never
    /// served another tenant.
    pub tenant: Arc<str>,
}

/// What came back, with where the time went.
#[derive(Debug, Clone)]
pub struct Execution {
    pub outcome: RunOutcome,
    pub container_id: String,
    /// Time spent waiting for a container (queue and, rarely, a cold start).
    pub queue_wait: Duration,
    /// Time of the agent round trip.
    pub run_time: Duration,
}

/// A snapshot of one language's pool, for `/v1/languages`, readiness and metrics.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub language: Language,
    /// The pool's name: the language's (`python`) or its variant's (`python-data`).
    pub name: String,
    /// For a variant: its allow-listed packages and their versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<BTreeMap<String, String>>,
    pub image: String,
    /// Toolchain version reported by the first agent that started, if any did yet.
    pub toolchain: Option<String>,
    pub idle: usize,
    pub busy: usize,
    pub warming: usize,
    pub total: usize,
    pub min_idle: usize,
    pub max_size: usize,
    /// Containers any tenant may still get (never used, or, without tenant affinity,
    /// idle): what `min_idle` is kept at.
    pub shared_idle: usize,
    /// Tenants holding containers of this pool, and how many one may hold at most.
    pub tenants: usize,
    pub tenant_share: usize,
    /// The pool has had its `min_idle` containers ready at least once since startup.
    pub warmed: bool,
    pub lifecycle: LifecycleSnapshot,
}

impl PoolStatus {
    /// Whether the pool finished its warm-up. Readiness asks no more: with tenant
    /// affinity every new tenant's first call takes a container from the shared set, and
    /// the short gap until the warmer replaces it is queueing, not unreadiness.
    pub fn is_warm(&self) -> bool {
        self.warmed
    }
}

type Pool = managed::Pool<Manager>;

tokio::task_local! {
    /// Until when the checkout under way may wait, for a tenant pool's `create` (which
    /// deadpool calls without it) to know how long it may wait for a free slot.
    static CHECKOUT_DEADLINE: Instant;
}

/// One language's pool (or one variant's): its `max_size` slots, the nursery of warm
/// containers no tenant has used yet, and the tenants' own sub-pools.
///
/// Every pooled container holds one slot (a semaphore permit) from creation to removal,
/// so the pool never holds more than `max_size` however its containers are split among
/// tenants. (A session's container leaves the pool and gives its slot back, as before.)
/// Each tenant's sub-pool is a deadpool pool capped at the tenant's share: a returned
/// container goes back to its tenant's sub-pool only, and a tenant at its share queues
/// there for its own. Without tenant affinity there is one sub-pool, shared by all.
pub(crate) struct LanguagePool {
    pub(crate) language: Language,
    pub(crate) name: String,
    /// A variant's packages (name to version), from its image's labels.
    pub(crate) packages: Option<BTreeMap<String, String>>,
    /// The image's size, which orders variants (the smallest that fits is chosen).
    pub(crate) image_size: i64,
    pub(crate) settings: LanguageSettings,
    pub(crate) pool_settings: Arc<PoolSettings>,
    pub(crate) docker: Docker,
    pub(crate) shutdown: CancellationToken,
    pub(crate) cache: Option<Arc<SharedCache>>,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) share: usize,
    pub(crate) tenants: Mutex<HashMap<Arc<str>, Arc<Pool>>>,
    pub(crate) nursery: Mutex<Vec<Container>>,
    /// Containers the warmer is creating (a claim waits for them rather than starting
    /// one more).
    pub(crate) warming: AtomicUsize,
    /// How soon a container is expected to be free.
    pub(crate) wait: WaitEstimate,
    pub(crate) toolchain: Mutex<Option<String>>,
    /// Shared with the leases taken from this pool.
    pub(crate) lifecycle: Arc<Lifecycle>,
    /// Whether the pool has had its `min_idle` containers ready at least once.
    pub(crate) warmed: AtomicBool,
}

/// Locks a mutex whose data stays valid even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LanguagePool {
    /// The container counts alone (what a checkout needs, without the status's copies).
    pub(crate) fn occupancy(&self) -> Occupancy {
        let nursery = lock(&self.nursery).len();
        let warming = self.warming.load(Ordering::Relaxed);
        let (mut available, mut size) = (0, 0);
        for p in lock(&self.tenants).values() {
            let st = p.status();
            available += st.available;
            size += st.size;
        }
        let total = self.settings.max_size - self.slots.available_permits();
        Occupancy {
            idle: available + nursery,
            busy: size - available,
            warming,
            total: total.max(size + nursery + warming),
            max_size: self.settings.max_size,
        }
    }

    /// The pool as one tenant's caller sees it: its sub-pool's idle and busy containers,
    /// plus the nursery while it is below its share (it may claim from it), and room to
    /// grow up to its share while the pool has a free slot or a fresh container.
    fn tenant_occupancy(&self, pool: &Pool) -> Occupancy {
        let st = pool.status();
        let nursery = lock(&self.nursery).len();
        let below_share = st.size < self.share;
        let room = below_share && (nursery > 0 || self.slots.available_permits() > 0);
        Occupancy {
            idle: st.available + if below_share { nursery } else { 0 },
            busy: st.size - st.available,
            warming: self.warming.load(Ordering::Relaxed),
            total: st.size,
            max_size: if room { self.share } else { st.size },
        }
    }

    /// Containers any tenant may get now: the nursery, and without tenant affinity the
    /// shared sub-pool's idle ones too.
    fn shared_idle(&self, occ: &Occupancy) -> usize {
        if self.pool_settings.tenant_affinity {
            lock(&self.nursery).len()
        } else {
            occ.idle
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let occ = self.occupancy();
        let shared_idle = self.shared_idle(&occ);
        if shared_idle >= self.settings.min_idle {
            self.warmed.store(true, Ordering::Relaxed);
        }
        PoolStatus {
            language: self.language,
            name: self.name.clone(),
            packages: self.packages.clone(),
            image: self.settings.image.clone(),
            toolchain: lock(&self.toolchain).clone(),
            idle: occ.idle,
            busy: occ.busy,
            warming: occ.warming,
            total: occ.total,
            min_idle: self.settings.min_idle,
            max_size: occ.max_size,
            shared_idle,
            warmed: self.warmed.load(Ordering::Relaxed),
            tenants: lock(&self.tenants).len(),
            tenant_share: self.share,
            lifecycle: LifecycleSnapshot {
                created: self.lifecycle.created.load(Ordering::Relaxed),
                recycled: self.lifecycle.recycled.load(Ordering::Relaxed),
                retired_max_uses: self.lifecycle.retired_max_uses.load(Ordering::Relaxed),
                retired_max_age: self.lifecycle.retired_max_age.load(Ordering::Relaxed),
                retired_idle: self.lifecycle.retired_idle.load(Ordering::Relaxed),
                retired_reclaimed: self.lifecycle.retired_reclaimed.load(Ordering::Relaxed),
                retired_failure: self.lifecycle.retired_failure.load(Ordering::Relaxed),
            },
        }
    }

    /// The sub-pool of `tenant` (the one shared sub-pool without tenant affinity), made
    /// on its first call.
    fn tenant_pool(self: &Arc<Self>, tenant: &str) -> Result<Arc<Pool>, PoolError> {
        let key = if self.pool_settings.tenant_affinity {
            tenant
        } else {
            ""
        };
        let mut tenants = lock(&self.tenants);
        if let Some(p) = tenants.get(key) {
            return Ok(p.clone());
        }
        let pool = Pool::builder(Manager {
            lp: Arc::downgrade(self),
        })
        .max_size(self.share)
        // FIFO hands out the container that has been idle longest, which gives each
        // one the most time to have its next runner process pre-started.
        .queue_mode(managed::QueueMode::Fifo)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| PoolError::Build(self.language, e.to_string()))?;
        let pool = Arc::new(pool);
        tenants.insert(key.into(), pool.clone());
        Ok(pool)
    }

    /// A container no tenant has used, for a tenant sub-pool that has none idle: from the
    /// nursery, else a cold start in a free slot, else (every slot taken) after retiring
    /// the longest-idle container of another tenant. Waits for the warmer's containers
    /// or a free slot until the checkout's deadline.
    pub(crate) async fn claim_fresh(&self) -> Result<Container, PoolError> {
        let started = Instant::now();
        let deadline = CHECKOUT_DEADLINE
            .try_with(|d| *d)
            .unwrap_or_else(|_| started + self.pool_settings.queue_timeout());
        loop {
            if let Some(c) = lock(&self.nursery).pop() {
                return Ok(c);
            }
            // While the warmer is creating containers, wait for one of them instead of
            // starting another for the same demand.
            if self.warming.load(Ordering::Relaxed) == 0 {
                if let Ok(slot) = self.slots.clone().try_acquire_owned() {
                    tracing::info!(pool = %self.name, "no warm container: cold start on the request path");
                    let mut c = self.create_detached().await?;
                    c.slot = Some(slot);
                    return Ok(c);
                }
                if self.reclaim_idle(Duration::ZERO) {
                    continue;
                }
            }
            if Instant::now() >= deadline {
                return Err(PoolError::Exhausted {
                    language: self.language,
                    waited: started.elapsed(),
                    retry_after: self.wait.expected(self.occupancy(), 0),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Creates a container in its own task: if the caller stops waiting, the creation
    /// still finishes and the container is removed by its `Drop`, never leaked. The
    /// caller gives it its slot.
    pub(crate) async fn create_detached(&self) -> Result<Container, PoolError> {
        let (docker, settings, language, lang, shutdown) = (
            self.docker.clone(),
            self.pool_settings.clone(),
            self.language,
            self.settings.clone(),
            self.shutdown.clone(),
        );
        let cache_dir = self.cache.as_ref().map(|c| c.dir().to_path_buf());
        let started = Instant::now();
        let c = tokio::spawn(async move {
            let mut c =
                container::create(&docker, &settings, language, &lang, cache_dir.as_deref())
                    .await?;
            // Finished after shutdown began: the shutdown sweep may already have run, so
            // remove it here, before anyone can lose track of it.
            if shutdown.is_cancelled() {
                docker::remove(&docker, &c.id).await;
                c.keep_on_drop = true;
                return Err(PoolError::ShuttingDown);
            }
            Ok(c)
        })
        .await
        .map_err(|_| PoolError::ShuttingDown)??;
        self.lifecycle.created.fetch_add(1, Ordering::Relaxed);
        self.wait.record_create(started.elapsed());
        lock(&self.toolchain).get_or_insert_with(|| c.info.toolchain.clone());
        Ok(c)
    }

    /// Removes idle containers of every tenant sub-pool for which `keep` is false, and
    /// returns them (dropping them removes them).
    pub(crate) fn retain_idle(&self, mut keep: impl FnMut(&Container) -> bool) -> Vec<Container> {
        let pools: Vec<Arc<Pool>> = lock(&self.tenants).values().cloned().collect();
        pools
            .iter()
            .flat_map(|p| p.retain(|c, _| keep(c)).removed)
            .collect()
    }

    /// Retires the idle container that has been unused longest, whichever tenant's it is,
    /// to free its slot for another tenant, if it has been idle at least `min_idle`.
    /// False if there is none.
    pub(crate) fn reclaim_idle(&self, min_idle: Duration) -> bool {
        let mut oldest: Option<(Duration, String)> = None;
        self.retain_idle(|c| {
            let idle = c.idle_since.elapsed();
            if idle >= min_idle && oldest.as_ref().is_none_or(|(d, _)| idle > *d) {
                oldest = Some((idle, c.id.clone()));
            }
            true
        });
        let Some((_, id)) = oldest else {
            return false;
        };
        let removed = self.retain_idle(|c| c.id != id);
        if removed.is_empty() {
            return false;
        }
        self.lifecycle
            .retired_reclaimed
            .fetch_add(removed.len() as u64, Ordering::Relaxed);
        tracing::debug!(pool = %self.name, container = %short(&id), "idle container of a tenant retired to make room for another");
        true
    }

    /// Forgets tenant sub-pools that hold no container and that no checkout is using.
    pub(crate) fn forget_empty_tenants(&self) {
        lock(&self.tenants).retain(|_, p| {
            let st = p.status();
            st.size > 0 || st.waiting > 0 || Arc::strong_count(p) > 1
        });
    }

    /// Closes every tenant sub-pool and empties the nursery (shutdown).
    fn close(&self) {
        for p in lock(&self.tenants).values() {
            p.close();
        }
        lock(&self.nursery).clear();
    }
}

/// What a session may use of the host, beyond the pool's container defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionResources {
    /// A memory limit below the container's (MiB).
    pub memory_mb: Option<u64>,
    /// Docker's relative CPU weight for the container (`--cpu-shares`).
    pub cpu_shares: Option<u64>,
}

/// How often, at most, the images of unbuilt variants are looked for again on a miss.
const VARIANT_RECHECK: Duration = Duration::from_secs(2);

/// Makes a language's or a variant's pool from its settings.
pub(crate) struct PoolFactory {
    settings: Arc<PoolSettings>,
    docker: Docker,
    shutdown: CancellationToken,
    cache: Option<Arc<SharedCache>>,
}

impl PoolFactory {
    fn build(
        &self,
        language: Language,
        name: &str,
        lang: &LanguageSettings,
        packages: Option<BTreeMap<String, String>>,
        image_size: i64,
    ) -> Arc<LanguagePool> {
        Arc::new(LanguagePool {
            language,
            name: name.to_string(),
            packages,
            image_size,
            settings: lang.clone(),
            pool_settings: self.settings.clone(),
            docker: self.docker.clone(),
            shutdown: self.shutdown.clone(),
            cache: self.cache.clone(),
            slots: Arc::new(Semaphore::new(lang.max_size)),
            share: self.settings.tenant_share(lang.max_size),
            tenants: Mutex::new(HashMap::new()),
            nursery: Mutex::new(Vec::new()),
            warming: AtomicUsize::new(0),
            wait: WaitEstimate::default(),
            toolchain: Mutex::new(None),
            lifecycle: Arc::new(Lifecycle::default()),
            warmed: AtomicBool::new(false),
        })
    }
}

/// All language pools of one gateway.
pub struct Pools {
    pub(crate) docker: Docker,
    pub(crate) settings: Arc<PoolSettings>,
    pub(crate) pools: BTreeMap<Language, Arc<LanguagePool>>,
    /// The variants whose image is built, by name. Grows when a variant built while the
    /// gateway runs is found ([`Pools::refresh_variants`]); never shrinks.
    pub(crate) variants: std::sync::RwLock<BTreeMap<String, Arc<LanguagePool>>>,
    /// Configured variants whose image is missing: (name, language, image).
    pub(crate) unbuilt: Mutex<Vec<(String, Language, String)>>,
    /// When the unbuilt variants' images were last looked for (at most every
    /// [`VARIANT_RECHECK`], so misses cannot turn into a stream of engine calls).
    variants_checked: Mutex<Option<Instant>>,
    /// What a new pool is made of.
    factory: PoolFactory,
    /// One warming start at a time across every pool (see `warm.rs`).
    pub(crate) warming_gate: Arc<Semaphore>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) adopted: Mutex<Vec<(Container, serde_json::Value)>>,
    /// The shared compile cache, if configured.
    pub(crate) cache: Option<Arc<SharedCache>>,
    /// The keys of compiled programs (the shared cache's, or this process's own).
    pub(crate) keys: Arc<ArtifactKeys>,
    pub(crate) health: Health,
}

impl Pools {
    /// Removes leftovers of an earlier run, builds the pools and starts warming them.
    /// Returns at once; use [`Pools::wait_warm`] to wait for the warm-up.
    pub async fn start(
        docker: Docker,
        settings: PoolSettings,
        shutdown: CancellationToken,
    ) -> Result<Arc<Pools>, PoolError> {
        // Containers of an earlier run: sessions are re-adopted, everything else removed.
        let mut adopted = Vec::new();
        let mut removed = 0;
        for (id, language, running) in docker::list_instance(&docker, &settings.instance).await? {
            if let (true, Some(language)) = (running, language) {
                let attempt = tokio::time::timeout(
                    Duration::from_secs(5),
                    container::reattach(&docker, &id, language, settings.limits.memory_mb),
                )
                .await;
                match attempt {
                    Ok(Ok((c, Some(meta)))) => {
                        adopted.push((c, meta));
                        continue;
                    }
                    Ok(Ok((mut c, None))) => c.keep_on_drop = true,
                    Ok(Err(e)) => {
                        tracing::warn!(container = %short(&id), error = %e, "cannot re-adopt container")
                    }
                    Err(_) => tracing::warn!(container = %short(&id), "re-adoption timed out"),
                }
            }
            docker::remove(&docker, &id).await;
            removed += 1;
        }
        if removed > 0 {
            tracing::warn!(removed, instance = %settings.instance, "removed leftover containers of an earlier run");
        }
        if !adopted.is_empty() {
            tracing::info!(
                sessions = adopted.len(),
                "re-adopted session containers of an earlier run"
            );
        }
        let cache = if settings.compile_cache_dir.as_os_str().is_empty() {
            None
        } else {
            let dir = &settings.compile_cache_dir;
            let cache = SharedCache::open(dir, settings.compile_cache_mb * 1024 * 1024).map_err(
                |source| PoolError::CompileCache {
                    path: dir.clone(),
                    source,
                },
            )?;
            // The sandbox uid owning the mounted directory could list it (0711 binds
            // others only): the gateway must run as another user.
            let owner = std::fs::metadata(cache.dir()).map(|m| m.uid()).ok();
            if owner == Some(settings.limits.sandbox_uid) {
                tracing::warn!(path = %cache.dir().display(), uid = settings.limits.sandbox_uid, "the shared compile cache is owned by the sandbox uid: programs can list it; run the gateway as another user");
            }
            Some(Arc::new(cache))
        };
        let keys = match &cache {
            Some(c) => c.keys(),
            None => Arc::new(
                ArtifactKeys::random().map_err(|source| PoolError::CompileCache {
                    path: "/dev/urandom".into(),
                    source,
                })?,
            ),
        };
        let settings = Arc::new(settings);
        let factory = PoolFactory {
            settings: settings.clone(),
            docker: docker.clone(),
            shutdown: shutdown.clone(),
            cache: cache.clone(),
        };
        let pools: BTreeMap<_, _> = settings
            .languages
            .iter()
            .filter(|(_, s)| s.enabled)
            .map(|(&language, lang)| {
                (
                    language,
                    factory.build(language, language.name(), lang, None, 0),
                )
            })
            .collect();
        let (mut variants, mut unbuilt) = (BTreeMap::new(), Vec::new());
        for (name, lang) in settings.variants.iter().filter(|(_, s)| s.enabled) {
            match docker::variant_image(&docker, &lang.image).await {
                // A variant of a language this gateway does not run is not offered.
                Some(v) if !pools.contains_key(&v.language) => continue,
                Some(v) => {
                    tracing::info!(variant = %name, image = %lang.image, packages = ?v.packages, "package variant available");
                    let lp = factory.build(v.language, name, lang, Some(v.packages), v.size);
                    variants.insert(name.clone(), lp);
                }
                None => {
                    // The name says the language when the image cannot (validated).
                    if let Some(language) = crate::config::variant_language(name) {
                        unbuilt.push((name.clone(), language, lang.image.clone()));
                    }
                }
            }
        }
        let this = Arc::new(Pools {
            docker,
            settings,
            pools,
            variants: std::sync::RwLock::new(variants),
            unbuilt: Mutex::new(unbuilt),
            variants_checked: Mutex::new(None),
            factory,
            warming_gate: Arc::new(Semaphore::new(1)),
            shutdown,
            tasks: TaskTracker::new(),
            adopted: Mutex::new(adopted),
            cache,
            keys,
            health: Health::default(),
        });
        for lp in this.all() {
            this.tasks
                .spawn(crate::warm::warm_loop(this.clone(), lp.clone()));
        }
        this.tasks.spawn(crate::health::watch_events(this.clone()));
        this.tasks
            .spawn(crate::health::reconcile_loop(this.clone()));
        Ok(this)
    }

    /// The enabled languages.
    pub fn languages(&self) -> impl Iterator<Item = Language> + '_ {
        self.pools.keys().copied()
    }

    /// The settings the pools were started with.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Every pool: the languages', then the variants'.
    pub(crate) fn all(&self) -> Vec<Arc<LanguagePool>> {
        let variants = self.variants.read().unwrap_or_else(|p| p.into_inner());
        self.pools
            .values()
            .chain(variants.values())
            .cloned()
            .collect()
    }

    /// A snapshot of every pool, variants included (for `/readyz`, `/v1/languages` and
    /// metrics).
    pub fn status(&self) -> Vec<PoolStatus> {
        self.all().iter().map(|lp| lp.status()).collect()
    }

    /// Configured variants whose image is not built: (name, language, image).
    pub fn unbuilt_variants(&self) -> Vec<(String, Language, String)> {
        self.unbuilt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Looks again for the images of configured variants that were not built (a variant
    /// built while the gateway runs is served without a restart), at most every
    /// [`VARIANT_RECHECK`]. Returns whether a variant became available. Called on a miss.
    pub async fn refresh_variants(self: &Arc<Self>) -> bool {
        let unbuilt = {
            let mut checked = self
                .variants_checked
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if checked.is_some_and(|t| t.elapsed() < VARIANT_RECHECK) {
                return false;
            }
            *checked = Some(Instant::now());
            self.unbuilt_variants()
        };
        let mut found = false;
        for (name, language, image) in unbuilt {
            let Some(v) = docker::variant_image(&self.docker, &image).await else {
                continue;
            };
            let Some(lang) = self.settings.variants.get(&name) else {
                continue;
            };
            if v.language != language || !self.pools.contains_key(&language) {
                continue;
            }
            tracing::info!(variant = %name, %image, packages = ?v.packages, "package variant built while running: now available");
            let lp = self
                .factory
                .build(language, &name, lang, Some(v.packages), v.size);
            self.variants
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), lp.clone());
            self.unbuilt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(n, _, _)| n != &name);
            self.tasks.spawn(crate::warm::warm_loop(self.clone(), lp));
            found = true;
        }
        found
    }

    /// True when every enabled pool has at least `min_idle` containers ready for any
    /// tenant.
    pub fn is_warm(&self) -> bool {
        self.status().iter().all(|s| s.is_warm())
    }

    /// The pool an invocation of `language` needing `packages` runs on: the language's
    /// own without packages, else the smallest built variant that has them all.
    pub(crate) fn select(
        &self,
        language: Language,
        packages: &[String],
    ) -> Result<Arc<LanguagePool>, PoolError> {
        let base = self
            .pools
            .get(&language)
            .ok_or(PoolError::Disabled(language))?;
        if packages.is_empty() {
            return Ok(base.clone());
        }
        let variants = self.variants.read().unwrap_or_else(|p| p.into_inner());
        let wanted: Vec<String> = packages.iter().map(|p| package_name(language, p)).collect();
        let of_language = || variants.values().filter(|v| v.language == language);
        let has =
            |lp: &LanguagePool, p: &String| lp.packages.as_ref().is_some_and(|k| k.contains_key(p));
        if let Some(best) = of_language()
            .filter(|v| wanted.iter().all(|p| has(v, p)))
            .min_by_key(|v| (v.image_size, v.name.clone()))
        {
            return Ok(best.clone());
        }
        let mut missing: Vec<String> = wanted
            .iter()
            .filter(|p| !of_language().any(|v| has(v, p)))
            .cloned()
            .collect();
        if missing.is_empty() {
            // Each exists somewhere, but no one variant has them all.
            missing = wanted;
        }
        missing.sort();
        missing.dedup();
        Err(PoolError::UnknownPackages(Box::new(UnknownPackages {
            language,
            missing,
            available: of_language()
                .map(|v| (v.name.clone(), v.packages.clone().unwrap_or_default()))
                .collect(),
            unbuilt: self
                .unbuilt
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, l, _)| *l == language)
                .map(|(n, _, _)| n.clone())
                .collect(),
        })))
    }

    /// How many containers of the pool that `language` with `packages` runs on one tenant
    /// may hold at once (None: no such pool).
    pub fn tenant_share(&self, language: Language, packages: &[String]) -> Option<usize> {
        self.select(language, packages).ok().map(|lp| lp.share)
    }

    /// Refuses, before any work is queued, an invocation whose packages no variant has.
    pub fn check_packages(&self, language: Language, packages: &[String]) -> Result<(), PoolError> {
        self.select(language, packages).map(|_| ())
    }

    /// Waits until [`Pools::is_warm`] or `timeout`; returns whether the pools are warm.
    pub async fn wait_warm(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.is_warm() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.is_warm()
    }

    /// Bytes held by the shared compile cache, if there is one.
    pub fn compile_cache_bytes(&self) -> Option<u64> {
        self.cache.as_ref().map(|c| c.size())
    }

    /// Whether the Docker engine answers.
    pub async fn docker_alive(&self) -> bool {
        self.docker.ping().await.is_ok()
    }

    /// Runs one invocation on a pooled container.
    ///
    /// The work runs in its own task: if the HTTP caller goes away, the invocation still
    /// completes and the container goes back to the pool clean, instead of being abandoned
    /// with a reply in flight.
    pub async fn execute(self: &Arc<Self>, inv: Invocation) -> Result<Execution, PoolError> {
        self.execute_holding(inv, ()).await
    }

    /// [`Pools::execute`], holding `guard` (the caller's admission place and concurrency
    /// permit) until the container's work is over, not until the caller stops waiting: a
    /// caller that disconnects must not free its place while its program still runs.
    pub async fn execute_holding<G: Send + 'static>(
        self: &Arc<Self>,
        inv: Invocation,
        guard: G,
    ) -> Result<Execution, PoolError> {
        let lp = self.select(inv.language, &inv.packages)?;
        if self.shutdown.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let pools = self.clone();
        // The task keeps the caller's span as parent, so traces show the pool work.
        let span = tracing::Span::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tasks.spawn(
            async move {
                run_on_pool(&pools, &lp, inv, tx).await;
                drop(guard);
            }
            .instrument(span),
        );
        rx.await.map_err(|_| PoolError::ShuttingDown)?
    }

    /// Takes a container of `language` for a stream of invocations (a batch): one pool
    /// checkout for many items, each program prepared (compiled) once on it. The container
    /// is cleaned after every item as after every call; see [`Lease`].
    pub async fn lease(
        self: &Arc<Self>,
        language: Language,
        packages: &[String],
        tenant: &str,
    ) -> Result<Lease, PoolError> {
        let lp = self.select(language, packages)?;
        if self.shutdown.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let started = Instant::now();
        let obj = checkout(&lp, tenant, &self.settings).await?;
        Ok(Lease {
            obj: Some(obj),
            language,
            packages: packages.to_vec(),
            queue_wait: started.elapsed(),
            default_mb: self.settings.limits.memory_mb,
            max_uses: lp.settings.max_uses,
            prepared: None,
            cache: self.cache.clone(),
            keys: self.keys.clone(),
            tenant: tenant.into(),
            pin: None,
            lifecycle: lp.lifecycle.clone(),
        })
    }

    /// Spawns `work` on the pools' task tracker: shutdown waits for it like for an
    /// in-flight invocation. Batch workers run here, so that a caller going away never
    /// abandons a container mid-item.
    pub fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(work)
    }

    /// Session containers found running at startup, with their stored metadata. Taken
    /// once by the session manager.
    pub fn take_adopted(&self) -> Vec<(Container, serde_json::Value)> {
        std::mem::take(&mut *self.adopted.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes a warm container out of the pool for good and turns it into a session.
    /// The pool's warmer replaces it.
    /// `resources` are applied to its cgroup before it is handed out.
    pub async fn take_for_session(
        &self,
        language: Language,
        packages: &[String],
        tenant: &str,
        meta: serde_json::Value,
        resources: SessionResources,
    ) -> Result<Container, PoolError> {
        let lp = self.select(language, packages)?;
        if self.shutdown.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let obj = checkout(&lp, tenant, &self.settings).await?;
        let mut c = Object::take(obj);
        // A session lives outside the pool: its slot goes back, for the warmer to refill.
        c.slot = None;
        c.start_session(meta).await?;
        // Set either way: a pool container may still carry the last caller's lower limit.
        c.set_memory(
            resources
                .memory_mb
                .unwrap_or(self.settings.limits.memory_mb),
        )
        .await?;
        if let Some(shares) = resources.cpu_shares {
            c.set_cpu_shares(shares).await?;
        }
        Ok(c)
    }

    /// Stops warming, closes the pools and removes every container of this instance
    /// except `keep` (live sessions, left running for the next gateway to re-adopt).
    /// In-flight invocations may finish until `deadline`; then the containers go, and the
    /// removals are waited for.
    pub async fn shutdown_keeping(
        &self,
        deadline: tokio::time::Instant,
        keep: &std::collections::HashSet<String>,
    ) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("invocations still running at the end of the grace period");
        }
        for lp in self.all() {
            lp.close();
        }
        for (mut c, _) in self.take_adopted() {
            c.keep_on_drop = keep.contains(&c.id);
        }
        match docker::remove_instance_except(&self.docker, &self.settings.instance, keep).await {
            Ok(n) => tracing::info!(removed = n, "containers removed at shutdown"),
            Err(e) => tracing::warn!(error = %e, "container cleanup at shutdown failed"),
        }
        if !docker::removals_settled(REMOVAL_WAIT).await {
            tracing::warn!("some container removals had not finished at exit");
        }
    }

    /// Like [`Pools::shutdown_keeping`], keeping nothing, with `grace` from now.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.shutdown_keeping(deadline, &Default::default()).await
    }
}

/// A package name as its registry compares them: PyPI's case- and separator-insensitive
/// (PEP 503), npm's as given (npm names are lowercase).
fn package_name(language: Language, name: &str) -> String {
    let name = name.trim();
    match language {
        Language::Python => {
            let mut out = String::with_capacity(name.len());
            for c in name.chars() {
                let c = if matches!(c, '_' | '.') {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                };
                if !(c == '-' && out.ends_with('-')) {
                    out.push(c);
                }
            }
            out
        }
        _ => name.to_string(),
    }
}

/// How long shutdown waits for container removals after the grace period (Docker may be
/// slow or gone; the next start's sweep removes what is left).
const REMOVAL_WAIT: Duration = Duration::from_secs(10);

/// Takes a container from the pool, waiting in proportion to how soon one is expected to
/// be free (`queue.rs`).
async fn checkout(
    lp: &Arc<LanguagePool>,
    tenant: &str,
    settings: &PoolSettings,
) -> Result<Object<Manager>, PoolError> {
    let started = Instant::now();
    let pool = lp.tenant_pool(tenant)?;
    let expected = lp
        .wait
        .expected(lp.tenant_occupancy(&pool), pool.status().waiting);
    let exhausted = |waited| PoolError::Exhausted {
        language: lp.language,
        waited,
        retry_after: expected,
    };
    let Some(budget) = WaitEstimate::budget(
        expected,
        settings.queue_timeout(),
        settings.max_queue_wait(),
    ) else {
        return Err(exhausted(Duration::ZERO));
    };
    let timeouts = Timeouts {
        wait: Some(budget),
        create: Some(settings.create_timeout()),
        recycle: Some(Duration::from_secs(10)),
    };
    let span = tracing::info_span!("pool.checkout", pool = %lp.name, expected_ms = expected.as_millis() as u64);
    let got = CHECKOUT_DEADLINE
        .scope(started + budget, pool.timeout_get(&timeouts))
        .instrument(span)
        .await;
    drop(pool);
    match got {
        Ok(o) => Ok(o),
        Err(managed::PoolError::Timeout(managed::TimeoutType::Wait)) => {
            Err(exhausted(started.elapsed()))
        }
        Err(managed::PoolError::Timeout(_)) => {
            Err(PoolError::CreateTimeout(settings.create_timeout()))
        }
        Err(managed::PoolError::Backend(e)) => Err(e),
        Err(managed::PoolError::Closed) => Err(PoolError::ShuttingDown),
        // deadpool's remaining cases (hooks, no runtime) are not Docker's doing.
        Err(e) => Err(PoolError::Checkout(lp.language, e.to_string())),
    }
}

/// Runs `inv` and sends the result on `reply` as soon as it is known; then waits for the
/// container to be clean before it goes back to the pool.
async fn run_on_pool(
    pools: &Pools,
    lp: &Arc<LanguagePool>,
    inv: Invocation,
    reply: tokio::sync::oneshot::Sender<Result<Execution, PoolError>>,
) {
    let settings = &pools.settings;
    let started = Instant::now();
    let mut req = RunRequest {
        source: if inv.plain {
            inv.code.to_string()
        } else {
            wrap(inv.language, &inv.code)
        },
        plain: inv.plain,
        input: inv.input,
        timeout_ms: inv.timeout.as_millis() as u64,
        compile_timeout_ms: inv.compile_timeout.as_millis() as u64,
        stream_limit_bytes: inv.stream_limit_bytes,
        result_limit_bytes: inv.result_limit_bytes,
        cache_key: None,
    };
    let default_mb = settings.limits.memory_mb;
    loop {
        let mut obj = match checkout(lp, &inv.tenant, settings).await {
            Ok(o) => o,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let queue_wait = started.elapsed();
        let held = Instant::now();
        let sent_at = SystemTime::now();
        // The program's key for this tenant and this container's toolchain; pinned in the
        // shared cache while the call may run it from there.
        req.cache_key = program_key(&pools.keys, &inv.tenant, &obj, &req.source);
        let _pin = pin(&pools.cache, &obj, req.cache_key.as_deref());
        let result = async {
            // The limit this call needs. A container keeps the last one it was given (no
            // restore after the call), so a key whose cap is below the container's pays one
            // `docker update` when its calls start landing on a container, not two per call.
            obj.set_memory(inv.memory_mb.unwrap_or(default_mb)).await?;
            let t = Instant::now();
            let call = tracing::info_span!(
                "agent.run",
                container = %short(&obj.id),
                compile_ms = tracing::field::Empty,
                run_ms = tracing::field::Empty,
                cache_hit = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            let mut outcome = obj.run(&req).instrument(call.clone()).await?;
            file_artifact(
                pools.cache.clone(),
                &obj,
                req.cache_key.as_deref(),
                outcome.artifact.take(),
            )
            .await;
            // The agent measures compile and run separately; record both on the call's span.
            call.record("compile_ms", outcome.compile_ms);
            call.record(
                "run_ms",
                outcome.duration_ms.saturating_sub(outcome.compile_ms),
            );
            if let Some(hit) = outcome.cache_hit {
                call.record("cache_hit", hit);
            }
            call.record(
                "outcome",
                outcome
                    .error
                    .as_ref()
                    .map_or("success", |e| e.kind.as_str()),
            );
            Ok((outcome, t.elapsed()))
        }
        .await;
        let container_id = obj.id.clone();
        // After an OOM kill the agent is intact (user code is the OOM killer's first choice)
        // but we retire the container anyway: cheap insurance against a half-dead sandbox.
        let oom = matches!(&result, Ok((o, _)) if o.error.as_ref().is_some_and(|e| e.kind == ProgramErrorKind::MemoryLimitExceeded));
        let result = match result {
            Ok((outcome, run_time)) => Ok(Execution {
                outcome,
                container_id: container_id.clone(),
                queue_wait,
                run_time,
            }),
            Err(e) => match lost_container(&pools.docker, &container_id, sent_at, &e).await {
                // The container was dead before the program was handed over: nothing ran,
                // so the call is safe to run again on another one, within the queue timeout.
                Lost::NeverStarted if started.elapsed() < settings.queue_timeout() => {
                    pools.health.retried_calls.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(container = %short(&container_id), error = %e, "the container was gone before the call reached it; retrying on another");
                    retire(lp, obj);
                    continue;
                }
                Lost::OomKilled => Ok(oom_killed(container_id.clone(), queue_wait, held.elapsed())),
                _ => Err(e),
            },
        };
        // The caller has its answer now; the container is handed back only once its
        // agent says it is clean.
        let _ = reply.send(result);
        if !obj.broken && !oom {
            let _ = obj.settle(CLEAN_TIMEOUT).await;
        }
        lp.wait.record_hold(held.elapsed());
        if obj.broken || oom {
            retire(lp, obj);
        } else {
            obj.idle_since = Instant::now();
            retire_if_spent(lp, obj);
        }
        return;
    }
}

/// A container at its `max_uses` or `max_age` leaves now, on its way back, rather than at
/// the next checkout: that caller would otherwise wait for a replacement (a cold start,
/// hundreds of milliseconds under load). The warmer replaces it in the background.
fn retire_if_spent(lp: &LanguagePool, obj: Object<Manager>) {
    let counter = if obj.uses >= lp.settings.max_uses {
        &lp.lifecycle.retired_max_uses
    } else if obj.created.elapsed() >= Duration::from_secs(lp.settings.max_age_secs) {
        &lp.lifecycle.retired_max_age
    } else {
        return;
    };
    counter.fetch_add(1, Ordering::Relaxed);
    drop(Object::take(obj));
}

/// Takes a container out of the pool for good (it is removed), counting a failure.
fn retire(lp: &LanguagePool, obj: Object<Manager>) {
    if obj.broken {
        lp.lifecycle.retired_failure.fetch_add(1, Ordering::Relaxed);
    }
    drop(Object::take(obj));
}

/// What became of the container of a call that failed with `err`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lost {
    /// The program certainly never started: the request could not be written, or Docker
    /// says the container had stopped before we sent it. Only such a call is retried
    /// elsewhere (one that may have started may have had effects).
    NeverStarted,
    /// The container died under the call, killed by the OOM killer: under gVisor (runsc)
    /// the memory limit applies to the sandbox's kernel, not to the program's process, so
    /// a memory bomb takes the sandbox with it. That is the program's doing.
    OomKilled,
    Unknown,
}

/// Finds out, with at most one look at Docker's state of the container, what became of
/// the container of a call that failed with `err`.
pub(crate) async fn lost_container(
    docker: &bollard::Docker,
    id: &str,
    sent_at: SystemTime,
    err: &PoolError,
) -> Lost {
    use crate::error::AgentError;
    let PoolError::Agent { source, .. } = err else {
        return Lost::Unknown;
    };
    match source {
        AgentError::Io(_) => return Lost::NeverStarted,
        AgentError::Closed | AgentError::Attach(_) => {}
        _ => return Lost::Unknown,
    }
    let Ok(info) = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
    else {
        return Lost::Unknown;
    };
    let Some(state) = info.state.filter(|s| s.running != Some(true)) else {
        return Lost::Unknown;
    };
    let finished = state
        .finished_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok());
    if finished.is_some_and(|f| f <= sent_at) {
        Lost::NeverStarted
    } else if state.oom_killed == Some(true) {
        Lost::OomKilled
    } else {
        Lost::Unknown
    }
}

/// The answer to a call whose container the OOM killer took ([`Lost::OomKilled`]).
fn oom_killed(container_id: String, queue_wait: Duration, run_time: Duration) -> Execution {
    Execution {
        outcome: RunOutcome {
            error: Some(ProgramError {
                kind: ProgramErrorKind::MemoryLimitExceeded,
                message: "the program exceeded the memory limit; the sandbox was killed".into(),
            }),
            duration_ms: run_time.as_millis() as u64,
            ..RunOutcome::default()
        },
        container_id,
        queue_wait,
        run_time,
    }
}

/// A container held for a stream of invocations of one language (a batch worker's).
///
/// Each program is sent once (`prepare`: written and, for Go and C#, compiled) and each
/// input after it as one `item` line: per item there is no pool round trip, no liveness
/// ping and no re-sent source. The agent still runs every item in a fresh process and
/// cleans the container before it reads the next line, exactly as after a call.
pub struct Lease {
    obj: Option<Object<Manager>>,
    language: Language,
    packages: Vec<String>,
    /// Time the checkout took.
    pub queue_wait: Duration,
    default_mb: u64,
    max_uses: usize,
    /// The program prepared on this container: its key and, if it did not compile, the
    /// compiler's outcome (every item of it gets that outcome without running).
    prepared: Option<(ProgramKey, Option<RunOutcome>)>,
    cache: Option<Arc<SharedCache>>,
    keys: Arc<ArtifactKeys>,
    /// The batch's tenant: part of its programs' cache keys.
    tenant: Arc<str>,
    /// Keeps the prepared program's artifact in the shared cache while items may run it.
    pin: Option<Pin>,
    lifecycle: Arc<Lifecycle>,
}

/// What makes two invocations the same prepared program.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProgramKey {
    code: Arc<str>,
    plain: bool,
}

impl Lease {
    /// The language of the lease's container.
    pub fn language(&self) -> Language {
        self.language
    }

    /// Whether `inv` may run on this lease: same language and the same packages asked
    /// (hence the same image). The tenant is the lease's by construction: one batch.
    pub fn serves(&self, inv: &Invocation) -> bool {
        inv.language == self.language && inv.packages == self.packages
    }

    /// Whether the lease can take another item: the container is healthy and below its
    /// use count. Otherwise release it and take a new one.
    pub fn is_usable(&self) -> bool {
        self.obj
            .as_ref()
            .is_some_and(|o| !o.broken && !o.in_flight && o.uses < self.max_uses)
    }

    /// Runs one invocation of this lease's language: prepares its program if it is not the
    /// one already prepared, then runs its input. [`PoolError::NotStarted`] means the
    /// container was gone before the item reached it: run it again on another lease.
    pub async fn run(&mut self, inv: &Invocation) -> Result<Execution, PoolError> {
        let sent_at = SystemTime::now();
        match self.run_once(inv).await {
            Err(e) => {
                let Some((id, docker)) =
                    self.obj.as_ref().map(|o| (o.id.clone(), o.docker_handle()))
                else {
                    return Err(e);
                };
                match lost_container(&docker, &id, sent_at, &e).await {
                    Lost::NeverStarted => Err(PoolError::NotStarted {
                        container: short(&id).to_string(),
                        source: Box::new(e),
                    }),
                    Lost::OomKilled => {
                        let elapsed = sent_at.elapsed().unwrap_or_default();
                        Ok(oom_killed(id, Duration::ZERO, elapsed))
                    }
                    Lost::Unknown => Err(e),
                }
            }
            ok => ok,
        }
    }

    async fn run_once(&mut self, inv: &Invocation) -> Result<Execution, PoolError> {
        if inv.language != self.language {
            return Err(PoolError::Checkout(
                inv.language,
                format!("a {} lease cannot run {}", self.language, inv.language),
            ));
        }
        let Some(obj) = self.obj.as_mut() else {
            return Err(PoolError::ShuttingDown);
        };
        let key = ProgramKey {
            code: inv.code.clone(),
            plain: inv.plain,
        };
        let t = Instant::now();
        let mut compile = None;
        if self.prepared.as_ref().map(|(k, _)| k) != Some(&key) {
            self.prepared = None;
            let source = if key.plain {
                key.code.to_string()
            } else {
                wrap(inv.language, &key.code)
            };
            let cache_key = program_key(&self.keys, &self.tenant, obj, &source);
            // Pinned before the prepare: the artifact the agent finds (or files) now must
            // still be there for the last item.
            self.pin = pin(&self.cache, obj, cache_key.as_deref());
            let mut outcome = obj
                .prepare(PrepareRequest {
                    source,
                    compile_timeout_ms: inv.compile_timeout.as_millis() as u64,
                    plain: key.plain,
                    cache_key: cache_key.clone(),
                })
                .await?;
            file_artifact(
                self.cache.clone(),
                obj,
                cache_key.as_deref(),
                outcome.artifact.take(),
            )
            .await;
            let failed = outcome.error.is_some().then(|| outcome.clone());
            self.prepared = Some((key, failed));
            compile = Some(outcome);
        }
        if let Some((_, Some(failed))) = &self.prepared {
            return Ok(Execution {
                outcome: failed.clone(),
                container_id: obj.id.clone(),
                queue_wait: Duration::ZERO,
                run_time: t.elapsed(),
            });
        }
        obj.set_memory(inv.memory_mb.unwrap_or(self.default_mb))
            .await?;
        let mut outcome = obj
            .item(ItemRequest {
                input: inv.input.clone(),
                timeout_ms: inv.timeout.as_millis() as u64,
                stream_limit_bytes: inv.stream_limit_bytes,
                result_limit_bytes: inv.result_limit_bytes,
            })
            .await?;
        // The first item of a program carries its compile, as a call would.
        if let Some(c) = compile {
            outcome.compile_ms = c.compile_ms;
            outcome.duration_ms += c.compile_ms;
            outcome.cache_hit = c.cache_hit;
        } else if self.language.is_compiled() {
            // Later items run the binary prepared for the first one.
            outcome.cache_hit = Some(true);
        }
        if outcome
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ProgramErrorKind::MemoryLimitExceeded)
        {
            // As after a call: an OOM kill retires the container.
            obj.broken = true;
        }
        Ok(Execution {
            outcome,
            container_id: obj.id.clone(),
            queue_wait: Duration::ZERO,
            run_time: t.elapsed(),
        })
    }

    /// Gives the container back: to the pool if it is healthy (its memory limit restored),
    /// else to removal.
    pub async fn release(mut self) {
        let Some(mut obj) = self.obj.take() else {
            return;
        };
        if !obj.broken {
            let _ = obj.settle(CLEAN_TIMEOUT).await;
        }
        if obj.broken {
            self.lifecycle
                .retired_failure
                .fetch_add(1, Ordering::Relaxed);
            drop(Object::take(obj));
        } else {
            obj.idle_since = Instant::now();
        }
    }
}

/// The cache key of `source` on `container` for `tenant` (see `cache.rs`), for a compiled
/// language.
fn program_key(
    keys: &ArtifactKeys,
    tenant: &str,
    container: &Container,
    source: &str,
) -> Option<String> {
    let language = container.info.language;
    language
        .is_compiled()
        .then(|| keys.key(tenant, language, &container.info.toolchain, source))
}

/// Pins `key` in the shared cache, if there is one and the language is compiled.
fn pin(cache: &Option<Arc<SharedCache>>, container: &Container, key: Option<&str>) -> Option<Pin> {
    Some(cache.as_ref()?.pin(container.info.language, key?))
}

/// Files a freshly compiled artifact in the shared compile cache, under the key computed
/// here from the tenant and the source the container was sent (never one the container
/// names). Waited for, so that the next container to run the program finds it; a failure
/// only costs a compile elsewhere.
fn file_artifact(
    cache: Option<Arc<SharedCache>>,
    container: &Container,
    key: Option<&str>,
    artifact: Option<String>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    // Everything is taken from `container` now: the future must not borrow it.
    let job = match (cache, key, artifact) {
        (Some(cache), Some(key), Some(artifact)) => {
            Some((cache, container.info.language, key.to_string(), artifact))
        }
        _ => None,
    };
    async move {
        let Some((cache, language, key, artifact)) = job else {
            return;
        };
        let filed = tokio::task::spawn_blocking(move || {
            cache.insert(language, &key, &artifact).map(|()| key)
        })
        .await;
        match filed {
            Ok(Ok(key)) => {
                tracing::debug!(%language, key = %&key[..12], "artifact filed in the shared compile cache")
            }
            Ok(Err(e)) => {
                tracing::warn!(%language, error = %e, "artifact not filed in the shared compile cache")
            }
            Err(e) => tracing::warn!(%language, error = %e, "filing an artifact failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_compare_as_their_registry_does() {
        let py = |n| package_name(Language::Python, n);
        assert_eq!(py("Pillow"), "pillow");
        assert_eq!(py("python_dateutil"), "python-dateutil");
        assert_eq!(py("zope.interface"), "zope-interface");
        assert_eq!(py(" NumPy "), "numpy");
        assert_eq!(py("a__b"), "a-b");
        assert_eq!(package_name(Language::JavaScript, "lodash"), "lodash");
        assert_eq!(
            package_name(Language::JavaScript, "@scope/pkg"),
            "@scope/pkg"
        );
    }

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
}
