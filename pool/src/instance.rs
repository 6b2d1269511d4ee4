//! Resident program instances (`"isolation": "program"`): a container whose agent loaded
//! one program once and runs it per input in a runner that stays up (the container side
//! is `agent/src/instance.rs`).
//!
//! Invariants:
//! - An instance belongs to exactly one [`InstanceKey`]: tenant, language, packages (the
//!   image), program and memory limit. It is taken only by a call with the same key, so
//!   it is never shared across tenants or programs.
//! - Its container comes from the tenant's own sub-pool (`run::checkout`, with its queue
//!   and share) and stays checked out while the instance lives: the tenant's share counts
//!   it, and no other tenant can reach it.
//! - A container goes back to the pool only after `end_instance` (the agent kills the
//!   runner and cleans the container). An [`Instance`] dropped without that retires its
//!   container (it is removed), so no instance ever leaks into another call's container.
//! - The agent replaces the runner inside the container after a call that timed out, ran
//!   out of memory, crashed, exited or left a process behind, and after
//!   `instances.max_calls` calls or `instances.max_age_secs`. The gateway retires idle
//!   instances after `instances.idle_secs`, or sooner when their tenant needs the
//!   container for something else.
//!
//! Calls are pipelined: a batch worker sends up to `instances.pipeline_depth` calls ahead
//! and reads their replies in order, so the round trip through the engine's attach stream
//! is not paid per item.

use codebeaker_proto::{InstanceRequest, ItemRequest, Language, ProgramErrorKind, RunOutcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::artifacts::{file_artifact, pin, program_key};
use crate::cache::Pin;
use crate::config::InstanceSettings;
use crate::error::PoolError;
use crate::invocation::{Invocation, RunOutput};
use crate::language_pool::{Checked, LanguagePool};
use crate::run::RunContext;

/// How long a replaced runner may take to load before the next call's reply is due
/// (the agent's own bound on a runner's start, plus slack).
const RELOAD_SLACK: Duration = Duration::from_secs(40);

/// What an instance is for; it serves nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InstanceKey {
    tenant: Arc<str>,
    pool: String,
    language: Language,
    program: [u8; 32],
    plain: bool,
    memory_mb: u64,
}

impl InstanceKey {
    fn of(inv: &Invocation, pool: &str, default_mb: u64) -> InstanceKey {
        use sha2::{Digest, Sha256};
        InstanceKey {
            tenant: inv.tenant.clone(),
            pool: pool.to_string(),
            language: inv.language.clone(),
            program: Sha256::digest(inv.code.as_bytes()).into(),
            plain: inv.plain,
            memory_mb: inv.memory_mb.unwrap_or(default_mb),
        }
    }
}

/// A container holding a resident instance of one program, checked out for its caller.
/// Give it back with [`crate::Pools::release_instance`].
pub struct Instance {
    obj: Option<Checked>,
    key: InstanceKey,
    started: Instant,
    last_used: Instant,
    /// The program did not compile: every call gets this outcome, nothing runs.
    failed: Option<RunOutcome>,
    /// The compile, carried by the first call's outcome (as a call would carry it).
    compile: Option<RunOutcome>,
    /// Keeps a compiled program's artifact in the shared cache while the instance lives.
    _pin: Option<Pin>,
    /// The memory limit of a call that names none.
    default_mb: u64,
    /// Whether the language compiles (a call after the first was a cache hit).
    compiled: bool,
    /// Time the checkout (and the instance's start) took: the first call's queue wait.
    queue_wait: Duration,
}

impl Instance {
    /// Whether `inv` may run on this instance: the same key (a batch's items all name
    /// the same packages, hence the same pool).
    pub fn serves(&self, inv: &Invocation) -> bool {
        self.key == InstanceKey::of(inv, &self.key.pool, self.default_mb)
    }

    /// Whether the container may take more calls (calls in flight do not stop it).
    pub fn is_usable(&self) -> bool {
        self.obj.as_ref().is_some_and(|o| o.takes_calls())
    }

    /// Sends `inv`'s input (written at the next [`Instance::flush`]).
    pub fn send(&mut self, inv: &Invocation) -> Result<(), PoolError> {
        if self.failed.is_some() {
            // Nothing runs: `recv` answers with the compiler's outcome.
            return Ok(());
        }
        let Some(obj) = self.obj.as_mut() else {
            return Err(PoolError::ShuttingDown);
        };
        obj.queue_call(ItemRequest {
            input: inv.input.clone(),
            timeout_ms: inv.timeout.as_millis() as u64,
            stream_limit_bytes: inv.stream_limit_bytes,
            result_limit_bytes: inv.result_limit_bytes,
            stdin: String::new(),
        })
    }

    /// Writes the calls sent since the last flush.
    pub async fn flush(&mut self) -> Result<(), PoolError> {
        match self.obj.as_mut() {
            Some(obj) => obj.flush().await,
            None => Ok(()),
        }
    }

    /// The result of the oldest call sent (`inv` is that call).
    pub async fn recv(&mut self, inv: &Invocation) -> Result<RunOutput, PoolError> {
        let t = Instant::now();
        let queue_wait = std::mem::take(&mut self.queue_wait);
        self.last_used = Instant::now();
        let Some(obj) = self.obj.as_mut() else {
            return Err(PoolError::ShuttingDown);
        };
        if let Some(failed) = &self.failed {
            return Ok(RunOutput {
                outcome: failed.clone(),
                container_id: obj.id.clone(),
                queue_wait,
                run_time: t.elapsed(),
            });
        }
        let mut outcome = obj.next_ran(inv.timeout + RELOAD_SLACK).await?;
        if let Some(c) = self.compile.take() {
            outcome.compile_ms = c.compile_ms;
            outcome.duration_ms += c.compile_ms;
            outcome.cache_hit = c.cache_hit;
        } else if self.compiled {
            outcome.cache_hit = Some(true);
        }
        if outcome
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ProgramErrorKind::MemoryLimitExceeded)
        {
            // The runner was replaced in the container; the container itself is sound.
            tracing::debug!(container = %obj.id, "a resident call ran out of memory");
        }
        Ok(RunOutput {
            outcome,
            container_id: obj.id.clone(),
            queue_wait,
            run_time: t.elapsed(),
        })
    }

    /// Ends the instance and gives its container back to its tenant's sub-pool (clean), or
    /// retires the container if the agent cannot end it.
    pub(crate) async fn end(mut self) {
        let Some(mut obj) = self.obj.take() else {
            return;
        };
        if obj.can_serve() && obj.end_instance().await.is_ok() {
            obj.idle_since = Instant::now();
            return; // dropping the object returns it to deadpool
        }
        obj.mark_broken();
    }
}

impl Drop for Instance {
    /// An instance not ended by [`Instance::end`] (a caller gone mid-call, a panic) takes
    /// its container with it: it still holds a runner with a tenant's program loaded.
    fn drop(&mut self) {
        if let Some(obj) = self.obj.as_mut() {
            obj.mark_broken();
        }
    }
}

/// The idle instances of one gateway, by key.
#[derive(Default)]
pub(crate) struct Instances {
    idle: Mutex<HashMap<InstanceKey, Vec<Instance>>>,
    /// Instances started since the gateway started (a metric).
    started: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Instances {
    /// The most recently used idle instance of `key` (so that a burst's extra instances
    /// age out while the busiest stay warm).
    fn take(&self, key: &InstanceKey) -> Option<Instance> {
        let mut idle = lock(&self.idle);
        let list = idle.get_mut(key)?;
        let inst = list.pop();
        if list.is_empty() {
            idle.remove(key);
        }
        inst
    }

    fn put(&self, inst: Instance) {
        lock(&self.idle)
            .entry(inst.key.clone())
            .or_default()
            .push(inst);
    }

    /// The longest-idle instance on pool `pool`: `tenant`'s own first (of any program),
    /// else another tenant's (its container then goes back to that tenant's sub-pool,
    /// idle, where the pool's claim can retire it to free a slot).
    fn evict(&self, tenant: &str, pool: &str) -> Option<Instance> {
        let mut idle = lock(&self.idle);
        let key = idle
            .iter()
            .filter(|(k, _)| k.pool == pool)
            .filter_map(|(k, list)| list.first().map(|i| (k.clone(), i.last_used)))
            .min_by_key(|(k, used)| (&*k.tenant != tenant, *used))
            .map(|(k, _)| k)?;
        let list = idle.get_mut(&key)?;
        let inst = list.remove(0);
        if list.is_empty() {
            idle.remove(&key);
        }
        Some(inst)
    }

    /// Idle instances past `idle` unused or `max_age` old, taken out.
    fn expired(&self, idle_for: Duration, max_age: Duration) -> Vec<Instance> {
        let mut idle = lock(&self.idle);
        let mut out = Vec::new();
        for list in idle.values_mut() {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|i| i.last_used.elapsed() >= idle_for || i.started.elapsed() >= max_age);
            *list = kept;
            out.extend(gone);
        }
        idle.retain(|_, l| !l.is_empty());
        out
    }

    /// Every idle instance, taken out (shutdown).
    pub(crate) fn drain(&self) -> Vec<Instance> {
        lock(&self.idle).drain().flat_map(|(_, l)| l).collect()
    }

    /// How many instances were started.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many idle instances are kept.
    pub(crate) fn idle_count(&self) -> usize {
        lock(&self.idle).values().map(Vec::len).sum()
    }
}

/// Takes an idle instance for `inv`, or starts one in a container of the tenant's
/// sub-pool (evicting the tenant's longest-idle instance of another program first when
/// the tenant has no container to spare).
pub(crate) async fn acquire(
    cx: &RunContext,
    instances: &Instances,
    lp: &Arc<LanguagePool>,
    settings: &InstanceSettings,
    inv: &Invocation,
) -> Result<Instance, PoolError> {
    let default_mb = cx.settings.limits.memory_mb;
    let key = InstanceKey::of(inv, lp.name(), default_mb);
    if let Some(inst) = instances.take(&key) {
        if inst.is_usable() {
            return Ok(inst);
        }
    }
    let source = lp
        .def()
        .wrap_instance(&inv.code, inv.plain)
        .ok_or_else(|| PoolError::NoResidentForm {
            language: inv.language.clone(),
            plain: inv.plain,
        })?;
    let started = Instant::now();
    make_room(instances, lp, &inv.tenant).await;
    let mut obj = crate::run::checkout(lp, &inv.tenant, &cx.settings).await?;
    // A container straight from the pool may still owe its last `clean` line.
    obj.settle(crate::container::CLEAN_TIMEOUT).await?;
    obj.set_memory(key.memory_mb).await?;
    let recipe = &lp.def().recipe;
    let cache_key = program_key(&cx.keys, &inv.tenant, recipe, &obj, &source, &[]);
    let pinned = pin(&cx.cache, recipe, cache_key.as_deref());
    let mut outcome = obj
        .start_instance(InstanceRequest {
            source,
            compile_timeout_ms: inv.compile_timeout.as_millis() as u64,
            plain: inv.plain,
            cache_key: cache_key.clone(),
            max_calls: settings.max_calls.get(),
            max_age_ms: settings.max_age_secs.as_millis() as u64,
        })
        .await?;
    file_artifact(
        cx.cache.clone(),
        recipe,
        cache_key.as_deref(),
        outcome.artifact.take(),
    )
    .await;
    let failed = outcome.error.is_some().then(|| outcome.clone());
    instances
        .started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Instance {
        obj: Some(obj),
        key,
        started: Instant::now(),
        last_used: Instant::now(),
        failed,
        compile: Some(outcome),
        _pin: pinned,
        default_mb,
        compiled: recipe.is_compiled(),
        queue_wait: started.elapsed(),
    })
}

/// When `tenant` has no container to spare on `lp`, ends the longest-idle instance there
/// (see [`Instances::evict`]): idle instances never make a call queue.
pub(crate) async fn make_room(instances: &Instances, lp: &Arc<LanguagePool>, tenant: &str) {
    if instances.idle_count() == 0 || lp.tenant_has_room(tenant) {
        return;
    }
    if let Some(victim) = instances.evict(tenant, lp.name()) {
        victim.end().await;
    }
}

/// Keeps a healthy instance for its next caller; ends the others (their container goes
/// back to the pool clean, or is retired).
pub(crate) fn release(
    instances: &Instances,
    tasks: &tokio_util::task::TaskTracker,
    inst: Instance,
) {
    let healthy = inst
        .obj
        .as_ref()
        .is_some_and(|o| o.can_serve() && !o.has_pending());
    if healthy && inst.failed.is_none() {
        instances.put(inst);
    } else if inst
        .obj
        .as_ref()
        .is_some_and(|o| o.can_serve() && !o.has_pending())
    {
        tasks.spawn(inst.end());
    }
    // Otherwise dropped: its container is retired (see `Drop`).
}

/// Retires idle instances past `idle_secs` or `max_age_secs`, until shutdown.
pub(crate) async fn reap_loop(
    instances: Arc<Instances>,
    settings: InstanceSettings,
    tasks: tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
) {
    let every = (settings.idle_secs / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for inst in instances.expired(settings.idle_secs, settings.max_age_secs) {
            tasks.spawn(inst.end());
        }
    }
}
