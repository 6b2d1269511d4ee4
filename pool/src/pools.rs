//! [`Pools`]: the facade the gateway holds. It owns the engine handle (with the books and
//! the removals in flight), the registry of language and variant pools, the shared
//! compile cache, the task tracker every pool task runs on, and the shutdown token; the
//! work itself is done by the rooms it delegates to:
//!
//! | room | job |
//! |---|---|
//! | `adopt.rs` | the start-up sweep of an earlier run's containers |
//! | `select.rs` | which pool an invocation runs on (variants, package names) |
//! | `language_pool.rs` | one pool's slots, nursery and tenant sub-pools |
//! | `run.rs` | checkout, one run, retry and OOM policy, retirement |
//! | `lease.rs` | a batch's lease |
//! | `warm.rs`, `health.rs` | the warmer and the health loops, started here |
//!
//! Shutdown ([`Pools::shutdown_keeping`]): stop taking work, let in-flight invocations
//! finish until the deadline, close the pools, remove every container of this instance
//! but the kept sessions, and wait for the removals dropped handles started.

use codebeaker_proto::Language;
use codebeaker_recipe::Registry as Recipes;
use deadpool::managed::Object;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::adopt;
use crate::cache::{ArtifactKeys, SharedCache};
use crate::config::{InstanceSettings, PoolSettings};
use crate::container::Container;
use crate::docker::Engine;
use crate::error::{PoolError, StartError};
use crate::health::{self, Healer, Health, HealthSnapshot};
use crate::instance::{self, Instance, Instances};
use crate::invocation::{Invocation, Isolation, RunOutput, SessionResources};
use crate::language_pool::{Factory, LanguagePool, PoolStatus};
use crate::lease::Lease;
use crate::run::{self, RunContext};
use crate::select::Registry;
use crate::warm::{self, Warmer};

/// How long shutdown waits for container removals after the grace period (Docker may be
/// slow or gone; the next start's sweep removes what is left).
const REMOVAL_WAIT: Duration = Duration::from_secs(10);

/// All language pools of one gateway.
pub struct Pools {
    engine: Engine,
    settings: Arc<PoolSettings>,
    registry: Arc<Registry>,
    /// What a new pool is made of.
    factory: Factory,
    /// What every run needs besides its pool.
    run: Arc<RunContext>,
    warmer: Warmer,
    healer: Arc<Healer>,
    /// Cancelled by `shutdown_keeping`: from then on no work is taken.
    closed: CancellationToken,
    /// The warmers' and health loops' signal (the process's shutdown signal).
    background: CancellationToken,
    tasks: TaskTracker,
    adopted: Mutex<Vec<(Container, serde_json::Value)>>,
    /// Idle resident instances (`instance.rs`).
    instances: Arc<Instances>,
    instance_settings: InstanceSettings,
}

impl Pools {
    /// Removes leftovers of an earlier run, builds the pools and starts warming them.
    /// Returns at once; use [`Pools::wait_warm`] to wait for the warm-up.
    ///
    /// Every task the pools start (warmers, health loops, invocations, batch workers,
    /// container removals) runs on `tasks`, the owner's one tracker. `background` stops
    /// the warmers and health loops; the pools keep taking work until
    /// [`Pools::shutdown_keeping`], so that requests draining after the signal still run.
    pub async fn start(
        mut engine: Engine,
        settings: PoolSettings,
        recipes: Arc<Recipes>,
        instance_settings: InstanceSettings,
        background: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Arc<Pools>, StartError> {
        engine.track_on(tasks.clone());
        let closed = CancellationToken::new();
        let adopted = adopt::sweep(&engine, &settings).await?;
        let cache = open_cache(&settings)?;
        let keys = match &cache {
            Some(c) => c.keys(),
            None => {
                Arc::new(
                    ArtifactKeys::random().map_err(|source| StartError::CompileCache {
                        path: "/dev/urandom".into(),
                        source,
                    })?,
                )
            }
        };
        let settings = Arc::new(settings);
        let factory = Factory {
            settings: settings.clone(),
            recipes,
            engine: engine.clone(),
            shutdown: closed.clone(),
            cache: cache.clone(),
        };
        let registry = Arc::new(Registry::build(&factory, &engine).await);
        let health = Arc::new(Health::default());
        let this = Arc::new(Pools {
            run: Arc::new(RunContext {
                settings: settings.clone(),
                keys,
                cache,
                health: health.clone(),
            }),
            warmer: Warmer {
                settings: settings.clone(),
                tasks: tasks.clone(),
                gate: Arc::new(Semaphore::new(1)),
                shutdown: background.clone(),
            },
            healer: Arc::new(Healer {
                engine: engine.clone(),
                registry: registry.clone(),
                health,
                instance: settings.instance.clone(),
            }),
            engine,
            settings,
            registry,
            factory,
            closed,
            background,
            tasks,
            adopted: Mutex::new(adopted),
            instances: Arc::default(),
            instance_settings,
        });
        this.tasks.spawn(instance::reap_loop(
            this.instances.clone(),
            this.instance_settings.clone(),
            this.tasks.clone(),
            this.background.clone(),
        ));
        for lp in this.registry.all() {
            this.start_warming(lp);
        }
        let (healer, shutdown) = (this.healer.clone(), this.background.clone());
        this.tasks
            .spawn(async move { health::watch_events(&*healer, shutdown).await });
        let (healer, shutdown) = (this.healer.clone(), this.background.clone());
        let every = this.settings.reconcile_interval_ms;
        this.tasks
            .spawn(async move { health::reconcile_loop(&*healer, every, shutdown).await });
        Ok(this)
    }

    fn start_warming(&self, lp: Arc<LanguagePool>) {
        self.tasks.spawn(warm::warm_loop(self.warmer.clone(), lp));
    }

    /// The enabled languages' recipes, the one table of what each language is.
    pub fn recipes(&self) -> &Arc<Recipes> {
        &self.factory.recipes
    }

    /// The enabled languages.
    pub fn languages(&self) -> impl Iterator<Item = &Language> + '_ {
        self.registry.languages()
    }

    /// The settings the pools were started with.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// A snapshot of every pool, variants included (for `/readyz`, `/v1/languages` and
    /// metrics).
    pub fn status(&self) -> Vec<PoolStatus> {
        self.registry.all().iter().map(|lp| lp.status()).collect()
    }

    /// Configured variants whose image is not built: (name, language, image).
    pub fn unbuilt_variants(&self) -> Vec<(String, Language, String)> {
        self.registry
            .unbuilt()
            .into_iter()
            .map(|u| (u.name, u.language, u.image))
            .collect()
    }

    /// Looks again for the images of configured variants that were not built (a variant
    /// built while the gateway runs is served without a restart), at most every 2 s.
    /// Returns whether a variant became available. Called on a miss.
    pub async fn refresh_variants(self: &Arc<Self>) -> bool {
        let found = self.registry.refresh(&self.factory, &self.engine).await;
        let any = !found.is_empty();
        for lp in found {
            self.start_warming(lp);
        }
        any
    }

    /// Looks again (at most every few seconds each) for the images of languages whose
    /// image was missing, so that `/v1/languages` tells the truth once one is built.
    pub async fn refresh_images(&self) {
        for lp in self.registry.all() {
            if !lp.image_available() {
                lp.check_image().await;
            }
        }
    }

    /// True when every enabled pool has at least `min_idle` containers ready for any
    /// tenant.
    pub fn is_warm(&self) -> bool {
        self.status().iter().all(|s| s.is_warm())
    }

    /// How many containers of the pool that `language` with `packages` runs on one tenant
    /// may hold at once (None: no such pool).
    pub fn tenant_share(&self, language: &Language, packages: &[String]) -> Option<usize> {
        self.registry
            .select(language, packages)
            .ok()
            .map(|lp| lp.share())
    }

    /// Refuses, before any work is queued, an invocation whose packages no variant has.
    pub fn check_packages(
        &self,
        language: &Language,
        packages: &[String],
    ) -> Result<(), PoolError> {
        self.registry.select(language, packages).map(|_| ())
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
        self.run.cache.as_ref().map(|c| c.size())
    }

    /// Whether the Docker engine answers.
    pub async fn docker_alive(&self) -> bool {
        self.engine.alive().await
    }

    /// Whether `id` is one of ours and Docker has not reported it dead or gone.
    pub fn container_alive(&self, id: &str) -> bool {
        self.engine.is_alive(id)
    }

    /// Health counters and Docker's view of our containers.
    pub fn health(&self) -> HealthSnapshot {
        self.healer.health.snapshot()
    }

    /// Runs one invocation on a pooled container.
    ///
    /// The work runs in its own task: if the HTTP caller goes away, the invocation still
    /// completes and the container goes back to the pool clean, instead of being abandoned
    /// with a reply in flight.
    pub async fn execute(self: &Arc<Self>, inv: Invocation) -> Result<RunOutput, PoolError> {
        self.execute_holding(inv, ()).await
    }

    /// [`Pools::execute`], holding `guard` (the caller's admission place and concurrency
    /// permit) until the container's work is over, not until the caller stops waiting: a
    /// caller that disconnects must not free its place while its program still runs.
    pub async fn execute_holding<G: Send + 'static>(
        self: &Arc<Self>,
        inv: Invocation,
        guard: G,
    ) -> Result<RunOutput, PoolError> {
        if inv.isolation == Isolation::Program {
            return self.execute_resident(inv, guard).await;
        }
        let lp = self.registry.select(&inv.language, &inv.packages)?;
        if self.closed.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        instance::make_room(&self.instances, &lp, &inv.tenant).await;
        let cx = self.run.clone();
        // The task keeps the caller's span as parent, so traces show the pool work.
        let span = tracing::Span::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tasks.spawn(
            async move {
                run::run_on_pool(&cx, &lp, inv, tx).await;
                drop(guard);
            }
            .instrument(span),
        );
        rx.await.map_err(|_| PoolError::ShuttingDown)?
    }

    /// Runs `inv` on a resident instance of its program (`"isolation": "program"`), taken
    /// idle or started for it, then kept for the next call. Like
    /// [`Pools::execute_holding`], the work runs as its own task: a caller going away never
    /// abandons an instance mid-call.
    pub async fn execute_resident<G: Send + 'static>(
        self: &Arc<Self>,
        inv: Invocation,
        guard: G,
    ) -> Result<RunOutput, PoolError> {
        let this = self.clone();
        let span = tracing::Span::current();
        self.tasks
            .spawn(
                async move {
                    let mut inst = this.instance(&inv).await?;
                    inst.send(&inv)?;
                    inst.flush().await?;
                    let out = inst.recv(&inv).await;
                    this.release_instance(inst);
                    drop(guard);
                    out
                }
                .instrument(span),
            )
            .await
            .map_err(|_| PoolError::ShuttingDown)?
    }

    /// A resident instance for `inv`'s program (see `instance.rs`): an idle one of the
    /// same key, or a new one in a container of the tenant's sub-pool. Give it back with
    /// [`Pools::release_instance`].
    pub async fn instance(self: &Arc<Self>, inv: &Invocation) -> Result<Instance, PoolError> {
        let lp = self.registry.select(&inv.language, &inv.packages)?;
        if self.closed.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        instance::acquire(
            &self.run,
            &self.instances,
            &lp,
            &self.instance_settings,
            inv,
        )
        .await
    }

    /// Keeps a healthy instance for the next call of its program; ends or retires the
    /// others.
    pub fn release_instance(&self, inst: Instance) {
        if self.closed.is_cancelled() {
            return; // dropped: its container is removed with the others
        }
        instance::release(&self.instances, &self.tasks, inst);
    }

    /// Calls a batch worker keeps in flight on one instance.
    pub fn pipeline_depth(&self) -> usize {
        self.instance_settings.pipeline_depth.get()
    }

    /// Idle resident instances kept.
    pub fn idle_instances(&self) -> usize {
        self.instances.idle_count()
    }

    /// Resident instances started since the pools started.
    pub fn instances_started(&self) -> u64 {
        self.instances.started()
    }

    /// Takes a container of `language` for a stream of invocations (a batch): one pool
    /// checkout for many items, each program prepared (compiled) once on it. The container
    /// is cleaned after every item as after every call; see [`Lease`].
    pub async fn lease(
        self: &Arc<Self>,
        language: &Language,
        packages: &[String],
        tenant: &str,
    ) -> Result<Lease, PoolError> {
        let lp = self.registry.select(language, packages)?;
        if self.closed.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let started = Instant::now();
        instance::make_room(&self.instances, &lp, tenant).await;
        let obj = run::checkout(&lp, tenant, &self.settings).await?;
        Ok(Lease::new(
            obj,
            &lp,
            &self.run,
            tenant,
            packages,
            started.elapsed(),
        ))
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
        language: &Language,
        packages: &[String],
        tenant: &str,
        meta: serde_json::Value,
        resources: SessionResources,
    ) -> Result<Container, PoolError> {
        let lp = self.registry.select(language, packages)?;
        if self.closed.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let obj = run::checkout(&lp, tenant, &self.settings).await?;
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
    pub async fn shutdown_keeping(&self, deadline: tokio::time::Instant, keep: &HashSet<String>) {
        self.closed.cancel();
        self.background.cancel();
        // Their containers are removed with the rest below.
        drop(self.instances.drain());
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("invocations still running at the end of the grace period");
        }
        for lp in self.registry.all() {
            lp.close();
        }
        for (mut c, _) in self.take_adopted() {
            if keep.contains(&c.id) {
                c.leave_running();
            }
        }
        match self
            .engine
            .remove_instance_except(&self.settings.instance, keep)
            .await
        {
            Ok(n) => tracing::info!(removed = n, "containers removed at shutdown"),
            Err(e) => tracing::warn!(error = %e, "container cleanup at shutdown failed"),
        }
        if !self.engine.removals_settled(REMOVAL_WAIT).await {
            tracing::warn!("some container removals had not finished at exit");
        }
    }

    /// Like [`Pools::shutdown_keeping`], keeping nothing, with `grace` from now.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.shutdown_keeping(deadline, &Default::default()).await
    }
}

/// Opens the shared compile cache, if one is configured.
fn open_cache(settings: &PoolSettings) -> Result<Option<Arc<SharedCache>>, StartError> {
    if settings.compile_cache_dir.as_os_str().is_empty() {
        return Ok(None);
    }
    let dir = &settings.compile_cache_dir;
    let cache =
        SharedCache::open(dir, settings.compile_cache_mb * 1024 * 1024).map_err(|source| {
            StartError::CompileCache {
                path: dir.clone(),
                source,
            }
        })?;
    // The sandbox uid owning the mounted directory could list it (0711 binds others
    // only): the gateway must run as another user.
    let owner = std::fs::metadata(cache.dir()).map(|m| m.uid()).ok();
    if owner == Some(settings.limits.sandbox_uid) {
        tracing::warn!(path = %cache.dir().display(), uid = settings.limits.sandbox_uid, "the shared compile cache is owned by the sandbox uid: programs can list it; run the gateway as another user");
    }
    Ok(Some(Arc::new(cache)))
}
