//! One language's pool (or one variant's): its `max_size` slots, the nursery of warm
//! containers no tenant has used yet, and the tenants' own deadpool sub-pools.
//!
//! **The slot invariant**, kept here and nowhere else: every pooled container holds one
//! slot (a semaphore permit) from its creation to its removal, so the pool never holds
//! more than `max_size` however its containers are split among tenants. A container
//! enters the pool only through [`LanguagePool::claim_now`] (a tenant sub-pool grows) or
//! [`LanguagePool::add_warm`] (the warmer fills the nursery), both with a slot; it leaves
//! by being dropped, which gives the slot back. (A session's container leaves the pool
//! and gives its slot back at once.)
//!
//! Each tenant's sub-pool is a deadpool pool capped at the tenant's share: a returned
//! container goes back to its tenant's sub-pool only, and a tenant at its share queues
//! there for its own. Without tenant affinity there is one sub-pool, shared by all.
//! deadpool creates objects lazily and has no notion of "minimum idle": the warmer
//! creates containers ahead of time into the nursery, and the sub-pool's `create` takes
//! from the nursery when it can. It never waits: when nothing fresh is to be had now it
//! says so ([`CreateError::Wait`]), and the checkout (`run.rs`), which knows its own
//! deadline, waits and asks again.

use codebeaker_proto::Language;
use codebeaker_recipe::{LanguageDef, Registry as Recipes};
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::agent::short;
use crate::cache::SharedCache;
use crate::config::{LanguageSettings, PoolSettings};
use crate::container::{self, Container};
use crate::docker::Engine;
use crate::error::PoolError;
use crate::lifecycle::{Lifecycle, LifecycleSnapshot};
use crate::queue::{Occupancy, WaitEstimate};
use crate::recycle::{retirement, spread, Retire};

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
    /// Whether the engine has the image (when last looked at). A pool without it is not
    /// warmed and its calls get a 503 naming the command that builds it.
    pub available: bool,
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
    /// A language whose image is missing does not hold readiness back: the others serve.
    pub fn is_warm(&self) -> bool {
        self.warmed || !self.available
    }
}

/// A tenant's sub-pool.
pub(crate) type TenantPool = managed::Pool<Manager>;
/// A container checked out of a tenant's sub-pool (it goes back when dropped).
pub(crate) type Checked = managed::Object<Manager>;

/// Why a tenant sub-pool could not grow.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    /// Nothing fresh now (the warmer's containers are on their way, or every slot is
    /// taken by busy containers): the checkout waits and asks again, until its deadline.
    #[error("no fresh container yet")]
    Wait,
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// What every pool of one gateway is made with.
pub(crate) struct Factory {
    pub(crate) settings: Arc<PoolSettings>,
    /// Every language's recipe (the enabled ones).
    pub(crate) recipes: Arc<Recipes>,
    pub(crate) engine: Engine,
    pub(crate) shutdown: CancellationToken,
    pub(crate) cache: Option<Arc<SharedCache>>,
}

impl Factory {
    /// A language's pool (`packages` None) or a variant's.
    pub(crate) fn build(
        &self,
        def: Arc<LanguageDef>,
        name: &str,
        lang: &LanguageSettings,
        packages: Option<BTreeMap<String, String>>,
        image_size: i64,
    ) -> Arc<LanguagePool> {
        Arc::new(LanguagePool {
            def,
            name: name.to_string(),
            packages,
            image_size,
            settings: lang.clone(),
            pool_settings: self.settings.clone(),
            engine: self.engine.clone(),
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
            image: Mutex::new(ImageState {
                available: true,
                checked: None,
            }),
        })
    }
}

/// One language's (or variant's) pool: see the module docs.
pub(crate) struct LanguagePool {
    /// The language's recipe and templates.
    def: Arc<LanguageDef>,
    name: String,
    /// A variant's packages (name to version), from its image's labels.
    packages: Option<BTreeMap<String, String>>,
    /// The image's size, which orders variants (the smallest that fits is chosen).
    image_size: i64,
    settings: LanguageSettings,
    pool_settings: Arc<PoolSettings>,
    engine: Engine,
    shutdown: CancellationToken,
    cache: Option<Arc<SharedCache>>,
    slots: Arc<Semaphore>,
    share: usize,
    tenants: Mutex<HashMap<Arc<str>, Arc<TenantPool>>>,
    nursery: Mutex<Vec<Container>>,
    /// Containers the warmer is creating (a claim waits for them rather than starting
    /// one more).
    warming: AtomicUsize,
    /// How soon a container is expected to be free.
    wait: WaitEstimate,
    toolchain: Mutex<Option<String>>,
    /// Shared with the leases taken from this pool.
    lifecycle: Arc<Lifecycle>,
    /// Whether the pool has had its `min_idle` containers ready at least once.
    warmed: AtomicBool,
    /// Whether the engine has the image; when not, when that was last looked at.
    image: Mutex<ImageState>,
}

/// What a pool knows of its image.
#[derive(Debug, Clone, Copy)]
struct ImageState {
    available: bool,
    checked: Option<Instant>,
}

/// How often a missing image is looked for again (by a call, or `GET /v1/languages`):
/// building it while the gateway runs makes the language available within this.
const IMAGE_RECHECK: Duration = Duration::from_secs(5);

/// Locks a mutex whose data stays valid even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LanguagePool {
    pub(crate) fn def(&self) -> &Arc<LanguageDef> {
        &self.def
    }

    /// Whether the image was there when last looked at.
    pub(crate) fn image_available(&self) -> bool {
        lock(&self.image).available
    }

    /// Looks at the engine for the image, unless it is known to be there or was looked
    /// for within [`IMAGE_RECHECK`]. The first look logs a missing image by name.
    pub(crate) async fn check_image(&self) -> bool {
        let state = *lock(&self.image);
        if state.checked.is_some()
            && (state.available || state.checked.is_some_and(|t| t.elapsed() < IMAGE_RECHECK))
        {
            return state.available;
        }
        let available = self.engine.has_image(&self.settings.image).await;
        if !available && state.checked.is_none() {
            tracing::error!(
                language = %self.language(),
                image = %self.settings.image,
                build = %format!("docker/build-images.sh {}", self.def.recipe.image()),
                "language enabled but its image is not built: its calls get 503 until it is"
            );
        } else if available && !state.available {
            tracing::info!(language = %self.language(), image = %self.settings.image, "image built while running: language now available");
        }
        *lock(&self.image) = ImageState {
            available,
            checked: Some(Instant::now()),
        };
        available
    }

    /// The error a call gets while the image is missing.
    pub(crate) fn image_missing(&self) -> PoolError {
        PoolError::ImageMissing {
            language: self.language().clone(),
            image: self.settings.image.clone(),
            recipe: self.def.recipe.image().to_string(),
        }
    }

    pub(crate) fn language(&self) -> &Language {
        self.def.language()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A variant's packages (name to version); `None` for a language's own pool.
    pub(crate) fn packages(&self) -> Option<&BTreeMap<String, String>> {
        self.packages.as_ref()
    }

    pub(crate) fn image_size(&self) -> i64 {
        self.image_size
    }

    pub(crate) fn settings(&self) -> &LanguageSettings {
        &self.settings
    }

    /// How many containers one tenant may hold at once.
    pub(crate) fn share(&self) -> usize {
        self.share
    }

    pub(crate) fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    pub(crate) fn wait(&self) -> &WaitEstimate {
        &self.wait
    }

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
    pub(crate) fn tenant_occupancy(&self, pool: &TenantPool) -> Occupancy {
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

    /// Whether `tenant` can have a container now without waiting: an idle one of its own,
    /// or room below its share (a nursery container or a free slot).
    pub(crate) fn tenant_has_room(self: &Arc<Self>, tenant: &str) -> bool {
        match self.tenant_pool(tenant) {
            Ok(pool) => {
                let occ = self.tenant_occupancy(&pool);
                occ.idle > 0 || occ.total < occ.max_size
            }
            Err(_) => false,
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
            language: self.language().clone(),
            name: self.name.clone(),
            packages: self.packages.clone(),
            image: self.settings.image.clone(),
            available: self.image_available(),
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
            lifecycle: self.lifecycle.snapshot(),
        }
    }

    /// The sub-pool of `tenant` (the one shared sub-pool without tenant affinity), made
    /// on its first call.
    pub(crate) fn tenant_pool(
        self: &Arc<Self>,
        tenant: &str,
    ) -> Result<Arc<TenantPool>, PoolError> {
        let key = if self.pool_settings.tenant_affinity {
            tenant
        } else {
            ""
        };
        let mut tenants = lock(&self.tenants);
        if let Some(p) = tenants.get(key) {
            return Ok(p.clone());
        }
        let pool = TenantPool::builder(Manager {
            lp: Arc::downgrade(self),
        })
        .max_size(self.share)
        // FIFO hands out the container that has been idle longest, which gives each
        // one the most time to have its next runner process pre-started.
        .queue_mode(managed::QueueMode::Fifo)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|source| PoolError::Build {
            language: self.language().clone(),
            source,
        })?;
        let pool = Arc::new(pool);
        tenants.insert(key.into(), pool.clone());
        Ok(pool)
    }

    /// A container no tenant has used, for a tenant sub-pool that has none idle: from the
    /// nursery, else a cold start in a free slot, else (every slot taken) after retiring
    /// the longest-idle container of another tenant. `None` when there is none to be had
    /// now: the warmer is creating some (wait for those rather than start one more for
    /// the same demand), or every slot is busy.
    async fn claim_now(&self) -> Result<Option<Container>, PoolError> {
        loop {
            if let Some(c) = lock(&self.nursery).pop() {
                return Ok(Some(c));
            }
            if self.warming.load(Ordering::Relaxed) > 0 {
                return Ok(None);
            }
            if let Ok(slot) = self.slots.clone().try_acquire_owned() {
                tracing::info!(pool = %self.name, "no warm container: cold start on the request path");
                let mut c = self.create_detached().await?;
                c.slot = Some(slot);
                return Ok(Some(c));
            }
            if !self.reclaim_idle(Duration::ZERO) {
                return Ok(None);
            }
        }
    }

    /// Creates a container in its own task: if the caller stops waiting, the creation
    /// still finishes and the container is removed by its `Drop`, never leaked. The
    /// caller gives it its slot.
    pub(crate) async fn create_detached(&self) -> Result<Container, PoolError> {
        let (engine, settings, language, lang, shutdown) = (
            self.engine.clone(),
            self.pool_settings.clone(),
            self.language().clone(),
            self.settings.clone(),
            self.shutdown.clone(),
        );
        let cache_dir = self.cache.as_ref().map(|c| c.dir().to_path_buf());
        let started = Instant::now();
        let c = tokio::spawn(async move {
            let mut c =
                container::create(&engine, &settings, language, &lang, cache_dir.as_deref())
                    .await?;
            // Finished after shutdown began: the shutdown sweep may already have run, so
            // remove it here, before anyone can lose track of it.
            if shutdown.is_cancelled() {
                engine.remove(&c.id).await;
                c.leave_running();
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

    /// Slots not held by any container: room for the warmer to start one.
    pub(crate) fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Takes a free slot for a container the warmer is about to create, counting it as
    /// warming until [`LanguagePool::warmed_one`].
    pub(crate) fn begin_warming(&self) -> Option<OwnedSemaphorePermit> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        self.warming.fetch_add(1, Ordering::Relaxed);
        Some(slot)
    }

    /// The warmer's creation under `slot` ended: the container, if there is one, joins
    /// the nursery with its slot.
    pub(crate) fn warmed_one(&self, created: Option<Container>, slot: OwnedSemaphorePermit) {
        if let Some(mut c) = created {
            c.slot = Some(slot);
            lock(&self.nursery).push(c);
        }
        self.warming.fetch_sub(1, Ordering::Relaxed);
    }

    /// Ids of the nursery's containers (none of them checked out yet) made before `t`.
    pub(crate) fn nursery_ids_before(&self, t: Instant) -> Vec<String> {
        lock(&self.nursery)
            .iter()
            .filter(|c| c.created < t)
            .map(|c| c.id.clone())
            .collect()
    }

    /// Removes idle containers of every tenant sub-pool for which `keep` is false, and
    /// returns them (dropping them removes them).
    pub(crate) fn retain_idle(&self, mut keep: impl FnMut(&Container) -> bool) -> Vec<Container> {
        let pools: Vec<Arc<TenantPool>> = lock(&self.tenants).values().cloned().collect();
        pools
            .iter()
            .flat_map(|p| p.retain(|c, _| keep(c)).removed)
            .collect()
    }

    /// Takes `id` out of the pool if it is idle or in the nursery (Docker reported it
    /// dead); returns how many containers went (0 or 1), counted as failures.
    pub(crate) fn drop_dead(&self, id: &str) -> usize {
        let removed = self.retain_idle(|c| c.id != id);
        let mut nursery = lock(&self.nursery);
        let before = nursery.len();
        nursery.retain(|c| c.id != id);
        let n = removed.len() + before - nursery.len();
        self.lifecycle
            .retired_failure
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Retires idle containers unused for `after`, at most `excess` of them (the warmer's
    /// shrink); returns how many went.
    pub(crate) fn retire_idle_for(&self, after: Duration, mut excess: usize) -> usize {
        let removed = self.retain_idle(|c| {
            if excess > 0 && c.idle_since.elapsed() >= after {
                excess -= 1;
                false
            } else {
                true
            }
        });
        self.lifecycle
            .retired_idle
            .fetch_add(removed.len() as u64, Ordering::Relaxed);
        removed.len()
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
    pub(crate) fn close(&self) {
        for p in lock(&self.tenants).values() {
            p.close();
        }
        lock(&self.nursery).clear();
    }
}

/// deadpool's side of a tenant's sub-pool: creating containers (claimed from the
/// language's warm nursery when it can) and deciding, when one is returned, whether it
/// may serve again (`recycle.rs`).
pub(crate) struct Manager {
    /// The language pool this tenant pool is carved from (it owns the tenant pools).
    lp: Weak<LanguagePool>,
}

impl managed::Manager for Manager {
    type Type = Container;
    type Error = CreateError;

    async fn create(&self) -> Result<Container, CreateError> {
        // A tenant's pool grows only by claiming a fresh container from the language's
        // shared idle set (or a cold start in a free slot): never one another tenant used.
        let lp = self.lp.upgrade().ok_or(PoolError::ShuttingDown)?;
        lp.claim_now().await?.ok_or(CreateError::Wait)
    }

    async fn recycle(&self, c: &mut Container, _: &Metrics) -> RecycleResult<CreateError> {
        let Some(lp) = self.lp.upgrade() else {
            return Err(RecycleError::message("pool closed"));
        };
        let id = short(&c.id).to_string();
        let retire = |counter: &std::sync::atomic::AtomicU64, why: &'static str| {
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(container = %id, reason = why, "retiring container");
            Err(RecycleError::message(why))
        };
        let dead = lp.engine.is_dead(&c.id);
        let lc = &lp.lifecycle;
        match retirement(
            c.is_broken() || dead,
            c.is_abandoned(),
            c.uses,
            c.created.elapsed(),
            &lp.settings,
            spread(&c.id),
        ) {
            Some(Retire::Failure) => return retire(&lc.retired_failure, "failure"),
            Some(Retire::MaxUses) => return retire(&lc.retired_max_uses, "max_uses"),
            Some(Retire::MaxAge) => return retire(&lc.retired_max_age, "max_age"),
            None => {}
        }
        // No ping: an idle container is clean (it went back to the pool only after its
        // `clean` line) and alive as far as Docker's events say; one that died since is
        // caught by the call, which then runs elsewhere (`run::lost_container`).
        lc.recycled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
