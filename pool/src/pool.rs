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
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use bollard::Docker;

use crate::agent::short;
use crate::cache::SharedCache;
use crate::config::{LanguageSettings, PoolSettings};
use crate::container::{self, Container, CLEAN_TIMEOUT};
use crate::docker;
use crate::error::PoolError;
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
    pub image: String,
    /// Toolchain version reported by the first agent that started, if any did yet.
    pub toolchain: Option<String>,
    pub idle: usize,
    pub busy: usize,
    pub warming: usize,
    pub total: usize,
    pub min_idle: usize,
    pub max_size: usize,
    pub lifecycle: LifecycleSnapshot,
}

type Pool = managed::Pool<Manager>;

/// One language's pool plus its nursery of warm containers.
pub(crate) struct LanguagePool {
    pub(crate) language: Language,
    pub(crate) settings: LanguageSettings,
    pub(crate) pool: Pool,
    pub(crate) nursery: Arc<Mutex<Vec<Container>>>,
    /// Containers the warmer is creating (shared with the manager, which waits for them
    /// rather than starting one more).
    pub(crate) warming: Arc<AtomicUsize>,
    /// How soon a container is expected to be free (shared with the manager, which
    /// records creation times).
    pub(crate) wait: Arc<WaitEstimate>,
    pub(crate) toolchain: Arc<Mutex<Option<String>>>,
    pub(crate) lifecycle: Arc<Lifecycle>,
}

impl LanguagePool {
    /// The container counts alone (what a checkout needs, without the status's copies).
    pub(crate) fn occupancy(&self) -> Occupancy {
        let st = self.pool.status();
        let nursery = self.nursery.lock().unwrap_or_else(|p| p.into_inner()).len();
        let warming = self.warming.load(Ordering::Relaxed);
        Occupancy {
            idle: st.available + nursery,
            busy: st.size - st.available,
            warming,
            total: st.size + nursery + warming,
            max_size: self.settings.max_size,
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let occ = self.occupancy();
        PoolStatus {
            language: self.language,
            image: self.settings.image.clone(),
            toolchain: self
                .toolchain
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            idle: occ.idle,
            busy: occ.busy,
            warming: occ.warming,
            total: occ.total,
            min_idle: self.settings.min_idle,
            max_size: occ.max_size,
            lifecycle: LifecycleSnapshot {
                created: self.lifecycle.created.load(Ordering::Relaxed),
                recycled: self.lifecycle.recycled.load(Ordering::Relaxed),
                retired_max_uses: self.lifecycle.retired_max_uses.load(Ordering::Relaxed),
                retired_max_age: self.lifecycle.retired_max_age.load(Ordering::Relaxed),
                retired_idle: self.lifecycle.retired_idle.load(Ordering::Relaxed),
                retired_failure: self.lifecycle.retired_failure.load(Ordering::Relaxed),
            },
        }
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

/// All language pools of one gateway.
pub struct Pools {
    pub(crate) docker: Docker,
    pub(crate) settings: Arc<PoolSettings>,
    pub(crate) pools: BTreeMap<Language, Arc<LanguagePool>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) adopted: Mutex<Vec<(Container, serde_json::Value)>>,
    /// The shared compile cache, if configured.
    pub(crate) cache: Option<Arc<SharedCache>>,
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
            Some(Arc::new(cache))
        };
        let settings = Arc::new(settings);
        let mut pools = BTreeMap::new();
        for (&language, lang) in settings.languages.iter().filter(|(_, s)| s.enabled) {
            let nursery = Arc::new(Mutex::new(Vec::new()));
            let toolchain = Arc::new(Mutex::new(None));
            let lifecycle = Arc::new(Lifecycle::default());
            let warming = Arc::new(AtomicUsize::new(0));
            let wait = Arc::new(WaitEstimate::default());
            let manager = Manager {
                warming: warming.clone(),
                wait: wait.clone(),
                docker: docker.clone(),
                settings: settings.clone(),
                language,
                nursery: nursery.clone(),
                lifecycle: lifecycle.clone(),
                toolchain: toolchain.clone(),
                shutdown: shutdown.clone(),
                cache: cache.clone(),
            };
            let pool = Pool::builder(manager)
                .max_size(lang.max_size)
                // FIFO hands out the container that has been idle longest, which gives each
                // one the most time to have its next runner process pre-started.
                .queue_mode(managed::QueueMode::Fifo)
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map_err(|e| PoolError::Build(language, e.to_string()))?;
            pools.insert(
                language,
                Arc::new(LanguagePool {
                    language,
                    settings: lang.clone(),
                    pool,
                    nursery,
                    warming,
                    wait,
                    toolchain,
                    lifecycle,
                }),
            );
        }
        let this = Arc::new(Pools {
            docker,
            settings,
            pools,
            shutdown,
            tasks: TaskTracker::new(),
            adopted: Mutex::new(adopted),
            cache,
            health: Health::default(),
        });
        for lp in this.pools.values() {
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

    /// A snapshot of every language pool (for `/readyz`, `/v1/languages` and metrics).
    pub fn status(&self) -> Vec<PoolStatus> {
        self.pools.values().map(|lp| lp.status()).collect()
    }

    /// True when every enabled pool has at least `min_idle` idle containers.
    pub fn is_warm(&self) -> bool {
        self.status().iter().all(|s| s.idle >= s.min_idle)
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
        let lp = self
            .pools
            .get(&inv.language)
            .ok_or(PoolError::Disabled(inv.language))?
            .clone();
        if self.shutdown.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let pools = self.clone();
        // The task keeps the caller's span as parent, so traces show the pool work.
        let span = tracing::Span::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tasks
            .spawn(async move { run_on_pool(&pools, &lp, inv, tx).await }.instrument(span));
        rx.await.map_err(|_| PoolError::ShuttingDown)?
    }

    /// Takes a container of `language` for a stream of invocations (a batch): one pool
    /// checkout for many items, each program prepared (compiled) once on it. The container
    /// is cleaned after every item as after every call; see [`Lease`].
    pub async fn lease(self: &Arc<Self>, language: Language) -> Result<Lease, PoolError> {
        let lp = self
            .pools
            .get(&language)
            .ok_or(PoolError::Disabled(language))?
            .clone();
        if self.shutdown.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let started = Instant::now();
        let obj = checkout(&lp, &self.settings).await?;
        Ok(Lease {
            obj: Some(obj),
            language,
            queue_wait: started.elapsed(),
            default_mb: self.settings.limits.memory_mb,
            max_uses: lp.settings.max_uses,
            prepared: None,
            cache: self.cache.clone(),
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
        meta: serde_json::Value,
        resources: SessionResources,
    ) -> Result<Container, PoolError> {
        let lp = self
            .pools
            .get(&language)
            .ok_or(PoolError::Disabled(language))?;
        if self.shutdown.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let obj = checkout(lp, &self.settings).await?;
        let mut c = Object::take(obj);
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
        for lp in self.pools.values() {
            lp.pool.close();
            lp.nursery.lock().unwrap_or_else(|p| p.into_inner()).clear();
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

/// How long shutdown waits for container removals after the grace period (Docker may be
/// slow or gone; the next start's sweep removes what is left).
const REMOVAL_WAIT: Duration = Duration::from_secs(10);

/// Takes a container from the pool, waiting in proportion to how soon one is expected to
/// be free (`queue.rs`).
async fn checkout(
    lp: &LanguagePool,
    settings: &PoolSettings,
) -> Result<Object<Manager>, PoolError> {
    let started = Instant::now();
    let waiting = lp.wait.enter();
    let expected = lp.wait.expected(lp.occupancy(), waiting.ahead);
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
    let span = tracing::info_span!("pool.checkout", language = %lp.language, expected_ms = expected.as_millis() as u64);
    match lp.pool.timeout_get(&timeouts).instrument(span).await {
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
    lp: &LanguagePool,
    inv: Invocation,
    reply: tokio::sync::oneshot::Sender<Result<Execution, PoolError>>,
) {
    let settings = &pools.settings;
    let started = Instant::now();
    let req = RunRequest {
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
    };
    let default_mb = settings.limits.memory_mb;
    loop {
        let mut obj = match checkout(lp, settings).await {
            Ok(o) => o,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let queue_wait = started.elapsed();
        let held = Instant::now();
        let sent_at = SystemTime::now();
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
                &req.source,
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
    /// Time the checkout took.
    pub queue_wait: Duration,
    default_mb: u64,
    max_uses: usize,
    /// The program prepared on this container: its key and, if it did not compile, the
    /// compiler's outcome (every item of it gets that outcome without running).
    prepared: Option<(ProgramKey, Option<RunOutcome>)>,
    cache: Option<Arc<SharedCache>>,
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
            let mut outcome = obj
                .prepare(PrepareRequest {
                    source: source.clone(),
                    compile_timeout_ms: inv.compile_timeout.as_millis() as u64,
                    plain: key.plain,
                })
                .await?;
            file_artifact(self.cache.clone(), obj, &source, outcome.artifact.take()).await;
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
        }
    }
}

/// Files a freshly compiled artifact in the shared compile cache, under the key computed
/// here from the source the container was sent (never one the container names). Waited
/// for, so that the next container to run the program finds it; a failure only costs a
/// compile elsewhere.
fn file_artifact(
    cache: Option<Arc<SharedCache>>,
    container: &Container,
    source: &str,
    artifact: Option<String>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    // Everything is taken from `container` now: the future must not borrow it.
    let job = match (cache, artifact) {
        (Some(cache), Some(artifact)) => Some((
            cache,
            container.info.language,
            container.info.toolchain.clone(),
            source.to_string(),
            artifact,
        )),
        _ => None,
    };
    async move {
        let Some((cache, language, toolchain, source, artifact)) = job else {
            return;
        };
        let filed = tokio::task::spawn_blocking(move || {
            cache.insert(language, &toolchain, &source, &artifact)
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
