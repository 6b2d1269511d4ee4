//! One stateless invocation, shared by both transports: validation, admission (global
//! shedding), the caller's concurrency cap, the pool, and the invocation metrics.
//!
//! # How it works: one invocation, step by step
//!
//! The path of `POST /v1/execute` through the gateway, the pool and the agent, in the
//! order it happens (file names are those of ARCHITECTURE.md's code map).
//!
//! 1. The request gets a request id and passes the `authenticate` layer
//!    (`routes/auth.rs`: credential → `Principal`, then the caller's rate limit: 401/429).
//!    The handler (`routes/execute.rs`) checks the `execute` scope (403) and reads the body
//!    under the body limit (413 before parsing; `routes/strict.rs` refuses members the
//!    route does not know). [`Invoker::execute`] then turns it into an `Invocation`
//!    (`requests::invocation`: strings into a `Language`, sizes and the server's and the
//!    caller's limits, 413/403) and checks that some pool has the asked `packages`
//!    (`requests::packages_ready`: else 422 `unknown_packages`, after looking once more,
//!    at most every 2 s, for variant images built since the start, `Pools::refresh_variants`).
//!    Past this point nothing handles raw request data. Then admission (503 at once when
//!    the gateway is full) and the caller's concurrency cap (429). JSON-RPC's
//!    `execution.run` and the compatibility route `/api/execute` take the same
//!    [`Invoker::execute`].
//! 2. `Pools::execute_holding` runs the rest as a task on the one task tracker, holding
//!    the admission place and the concurrency permit until the container's work is over:
//!    if the caller disconnects, the invocation still completes, its places stay taken
//!    until then, and the container returns clean instead of being abandoned mid-reply.
//!    (With `"isolation": "program"` the call goes to a resident instance of its program
//!    instead, `pool/src/instance.rs`; the rest of this list is the per-call path.)
//! 3. The pool registry (`pool/src/select.rs`) picks the pool: the language's, or with
//!    `packages` the smallest built variant that has them all. If the caller's tenant has
//!    no container to spare there, the longest-idle resident instance is ended first
//!    (`instance::make_room`): idle instances never make a call queue. The checkout
//!    (`run::checkout`, `pool/src/run.rs`) asks the tenant's sub-pool (a deadpool pool,
//!    `pool/src/language_pool.rs`; see the pool crate's docs) for the idle container that
//!    has waited longest (FIFO). On checkout, its recycle rules (`recycle.rs`) retire it if
//!    it is broken, reported dead by Docker, was abandoned mid-call, or is past `max_uses`
//!    or `max_age_secs` (each less the container's own spread); there is no ping: an idle
//!    container is clean (it came back only after its agent's `clean` line) and alive as
//!    far as the engine's events say. With no idle container of its tenant, the sub-pool
//!    grows (`LanguagePool::claim_now`): a container from the warm nursery; none while the
//!    warmer is creating some (wait for those rather than start one more); else a cold
//!    start in a free slot; else one freed by retiring another tenant's longest-idle
//!    container. The claim never waits itself: the checkout asks again every 5 ms until
//!    its deadline. That deadline is in proportion to how soon one of the tenant's
//!    containers will be free (`pool/src/queue.rs`): moving averages of how long a call
//!    holds a container and how long a start takes, the callers ahead in the tenant's
//!    sub-pool and its busy containers give an expected wait; the request waits twice
//!    that, at least `queue_timeout_ms` and at most `max_queue_wait_ms`, and is refused at
//!    once (503, `Retry-After` = the expected wait) when the expected wait exceeds
//!    `max_queue_wait_ms`.
//! 4. The container's cgroup memory limit is set to what this call needs
//!    (`memoryLimitMb`, a key's cap, or the container's default) if it differs from the one
//!    it carries; it is not restored afterwards, so a run of calls from a capped key pays
//!    one `docker update`, not two per call, and the next call with another need sets its
//!    own.
//! 5. The gateway writes one JSON line (`{"run":{…}}`: source, input, limits, the
//!    program's cache key) to the container's stdin and reads one JSON line back from its
//!    stdout. If the container turns out dead before the program was handed over (the
//!    write fails, or Docker's `FinishedAt` precedes the send), the call runs again on
//!    another container within the queue timeout; a call whose program may have started
//!    is never retried. If Docker says the OOM killer took the container during the call
//!    (gVisor: the memory limit covers the whole sandbox), the answer is
//!    `memory_limit_exceeded`. One look at the container's state decides both
//!    (`run::lost_container`), for single calls and batch items alike.
//! 6. The agent, with the sandbox user's effective uid (1000; see the isolation table in
//!    ARCHITECTURE.md), writes `input.json` and `program.<ext>`. For Go and C# the gateway
//!    sends the program's cache key with it (`pool/src/artifacts.rs`): an HMAC, under a
//!    secret only the gateway holds (`<compile_cache_dir>/secret`), of the tenant,
//!    language, toolchain, translator and source (`ArtifactKeys`, `pool/src/cache.rs`). A
//!    tenant's program is reused within the tenant only, and no tenant can compute, list or
//!    probe another's key: `cacheHit`, `compileMs` or a `stat` in `/shared-cache` tell
//!    nothing about what other tenants compiled. The agent (`agent/src/compile.rs`) looks
//!    the key up in the shared compile cache mounted read-only at `/shared-cache` (mode
//!    0711: open by key, no listing), then in its own `/cache/artifacts` (root only,
//!    0700); on a miss it compiles as the sandbox user under the compile timeout, installs
//!    the artifact into `/cache/artifacts` (bounded by 64 MiB or half the tmpfs, oldest
//!    evicted first) and sends its bytes back once on the reply. An artifact from
//!    `/cache/artifacts` is copied to `/tmp/.cb-run` for its run, so user code (a
//!    session's shell included) never lists or reads another program's binary. The
//!    gateway files the bytes in the shared cache under the key *it* computed, so no
//!    container can place a binary under another program's key; from then on every
//!    container of the language finds it for that tenant. A call, and a batch lease for as
//!    long as a program is prepared on it, pins the key: eviction (oldest first) skips
//!    pinned artifacts, and a cache full of pinned ones files nothing new. C# is first
//!    translated from top-level statements (the Loopai wrapper's shape) into a `Main`
//!    (`agent/src/csharp.rs`) and compiled against the image's `System.Text.Json` subset
//!    (built from `languages/csharp/image/json`).
//! 7. It starts the program. Python: a zygote (`languages/python/zygote.py`,
//!    started once per container, `json` preloaded) receives the program path and the
//!    program's stdin/stdout/stderr over SCM_RIGHTS (`agent/src/zygote.rs`), forks, drops
//!    the child to the sandbox uid, reseeds from `os.urandom` every random generator it
//!    inherited (the global ones of `random`, numpy and torch if loaded, and every
//!    generator object a preloaded module holds, found once at start), `exec`s the program
//!    (a traceback shows only the program's frames, as `python3 program.py` prints it) and
//!    leaves with `os._exit`; a fork costs ~1 ms where an interpreter start costs ~30 ms of
//!    CPU. The zygote runs as root but never runs user code, and the cleanup kills every
//!    process except it. For the others the agent writes the program path to the runner it
//!    pre-started and closes its stdin. JavaScript: `bun languages/javascript/runner.js`, which
//!    `require`s it (Bun starts in ~9 ms of CPU, official Node 26 in ~24 ms, Debian's Node
//!    18 in ~70 ms; the launcher also runs under Node, and reports uncaught errors the same
//!    way under both). C#: `mono` on the launcher (`languages/csharp/Launcher.cs`, compiled
//!    and AOT-compiled at container start), which loads the assembly and calls `Main`; the
//!    image's framework assemblies and JSON library are AOT-compiled at build time
//!    (`X.dll.so`, `docker/build-images.sh`), which cuts a Mono start from ~57 to ~23 ms of
//!    CPU. Every call still gets a fresh runner process, started after the previous call's
//!    cleanup, so nothing the previous program did can reach it. Go: the cached static
//!    binary is executed directly (~1 ms).
//! 8. The agent (`agent/src/exec.rs`) polls stdout, stderr (each kept up to its cap, the
//!    rest discarded and `truncated` set) and a SIGCHLD signalfd until the program exits or
//!    the deadline passes (then SIGKILL). Every 25 ms it also looks at the container's
//!    pids cgroup: a program within 8 of the process limit is a fork bomb, and everything
//!    but PID 1 is killed at once (`process_limit_exceeded`; the zygote is replaced). Left
//!    running for its timeout, a bomb made every fork on the host wait (neighbours'
//!    trivial calls stalled 0.6–2.8 s). It compares the cgroup's `oom_kill` counter to tell
//!    an OOM kill from other deaths, reads `output.json` (regular file only, no symlinks,
//!    size-capped) and classifies the outcome: timeout, memory limit, runtime error
//!    (non-zero exit), missing result, output too large, invalid output, or success.
//! 9. It replies, then cleans (`agent/src/clean.rs`): leftovers are killed (one by one
//!    sparing the zygote when they are few; `kill(-1, SIGKILL)` repeated until no process
//!    is left when they are many, the zygote included, which is then restarted; PID 1 is
//!    exempt and reaps everything re-parented to it), empties `/workspace`, `/tmp`,
//!    `/dev/shm`, `/dev/mqueue`, removes SysV IPC objects of the sandbox uid, pre-starts the
//!    next runner, and writes `"clean"`.
//! 10. The gateway answers 200 with the outcome as soon as the reply is read; the pool
//!     task then waits for `clean` and only then returns the container to its sub-pool (or
//!     retires it after an agent failure, an OOM kill, or no `clean` within 30 s; one that
//!     reached `max_uses` or `max_age_secs` is retired on its way back, so that no caller
//!     waits for its replacement).

use codebeaker_pool::{ErrorClass, Invocation, PoolError, Pools, RunOutput};
use codebeaker_proto::{Language, RawJson};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::domain::Principal;
use crate::failure::{Class, Failure};
use crate::limits::{Admission, Concurrency};
use crate::requests::{self, ExecuteRequest, RequestError};

/// Why an invocation did not run (the program's own failure is never one of these).
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("the gateway is at capacity; retry shortly")]
    Shed,
    #[error("this credential already has {0} invocations in flight")]
    ConcurrencyLimited(u32),
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The shared state (Redis) that counts the caller's invocations did not answer.
    #[error(transparent)]
    Shared(#[from] crate::shared::SharedError),
}

impl Failure for ExecuteError {
    fn kind(&self) -> &'static str {
        match self {
            ExecuteError::Request(e) => e.kind(),
            ExecuteError::Shed => "overloaded",
            ExecuteError::ConcurrencyLimited(_) => "concurrency_limit",
            ExecuteError::Pool(e) => e.kind(),
            ExecuteError::Shared(e) => e.kind(),
        }
    }
    fn class(&self) -> Class {
        match self {
            ExecuteError::Request(e) => e.class(),
            ExecuteError::Shed => crate::failure::BUSY,
            ExecuteError::ConcurrencyLimited(_) => crate::failure::OVER_QUOTA,
            ExecuteError::Pool(e) => Failure::class(e),
            ExecuteError::Shared(e) => e.class(),
        }
    }
}

/// The pool's errors, in the gateway's terms: the pool says whose fault it is
/// (`PoolError::class`), this names the kind and maps the class.
impl Failure for PoolError {
    fn kind(&self) -> &'static str {
        match self {
            PoolError::Exhausted { .. } => "pool_exhausted",
            PoolError::ShuttingDown => "shutting_down",
            PoolError::Disabled(_) => "language_disabled",
            PoolError::ImageMissing { .. } => "language_unavailable",
            PoolError::UnknownPackages(_) => "unknown_packages",
            PoolError::NoResidentForm { .. } => "invalid_request",
            p if p.is_engine_unavailable() => "engine_unavailable",
            _ => "sandbox_failure",
        }
    }
    fn class(&self) -> Class {
        match PoolError::class(self) {
            ErrorClass::Caller => Class::Caller,
            ErrorClass::Overload { retry_after } => Class::Overload {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
                quota: false,
            },
            ErrorClass::EngineUnavailable => Class::Internal { transient: true },
            ErrorClass::Unavailable => Class::Unavailable,
            ErrorClass::Internal => Class::Internal { transient: false },
        }
    }
}
/// The result of an invocation that ran, whatever the program did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResponse {
    pub execution_id: String,
    /// The request's `X-Request-ID` (echoed, or generated by the gateway).
    pub request_id: Option<String>,
    #[schema(value_type = String)]
    pub language: Language,
    pub success: bool,
    /// The JSON value of `/workspace/output.json`, or null.
    #[schema(value_type = Object)]
    pub output: RawJson,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// Time inside the container (compile included).
    pub duration_ms: u64,
    /// Compile time (0 on a cache hit or for interpreted languages).
    pub compile_ms: u64,
    /// For Go and C#: whether the compiled program came from the container's cache.
    pub cache_hit: Option<bool>,
    /// Time spent waiting for a container.
    pub queue_ms: u64,
    /// True when stdout or stderr was cut at the server's cap.
    pub truncated: bool,
    /// The container that ran the call (Docker's short id), for diagnostics: with tenant
    /// affinity, two tenants never see the same one.
    pub container_id: String,
    pub error: Option<ProgramErrorBody>,
}

/// Why a program that ran did not succeed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProgramErrorBody {
    /// compile_error, runtime_error, timeout, memory_limit_exceeded,
    /// process_limit_exceeded, missing_result,
    /// invalid_output or output_too_large.
    pub kind: &'static str,
    pub message: String,
}

/// What an invocation needs from the gateway.
pub struct Invoker {
    pub settings: Arc<Settings>,
    pub pools: Arc<Pools>,
    pub admission: Arc<Admission>,
    pub concurrency: Concurrency,
}

impl Invoker {
    /// Validates `req`, admits it, and runs it on a warm container.
    pub async fn execute(
        &self,
        caller: &Principal,
        req: ExecuteRequest,
        request_id: Option<String>,
    ) -> Result<ExecuteResponse, ExecuteError> {
        let started = Instant::now();
        let inv = requests::invocation(req, &self.settings, self.pools.recipes(), caller)?;
        requests::packages_ready(&self.pools, &inv).await?;
        let admitted = tracing::info_span!("admission").in_scope(|| {
            self.admission
                .clone()
                .try_admit_owned()
                .ok_or(ExecuteError::Shed)
        })?;
        let max = caller.quota.max_concurrent;
        let permit = self
            .concurrency
            .acquire(&caller.subject, max)
            .await?
            .ok_or(ExecuteError::ConcurrencyLimited(max))?;
        // Both go with the work, not with this request: they are given back when the
        // container is done, even if the caller has gone away.
        let language = inv.language.clone();
        let tenant = inv.tenant.clone();
        let ex = self.pools.execute_holding(inv, (admitted, permit)).await?;
        let resp = respond(language, &tenant, ex, request_id, started);
        tracing::info!(
            execution_id = %resp.execution_id, language = %resp.language,
            subject = %caller.subject, success = resp.success, duration_ms = resp.duration_ms,
            queue_ms = resp.queue_ms, "invocation finished"
        );
        Ok(resp)
    }

    /// Runs an admitted, validated invocation and records it (`started` is when the
    /// request arrived, for the end-to-end duration metric).
    pub async fn run(
        &self,
        inv: Invocation,
        request_id: Option<String>,
        started: Instant,
    ) -> Result<ExecuteResponse, PoolError> {
        let language = inv.language.clone();
        let tenant = inv.tenant.clone();
        let ex = self.pools.execute(inv).await?;
        Ok(respond(language, &tenant, ex, request_id, started))
    }
}

/// Records an invocation that ran: its metrics (`started` is when the request arrived).
/// Batch items are recorded here too.
pub fn record(language: &Language, tenant: &str, ex: &RunOutput, started: Instant) {
    let o = &ex.outcome;
    let outcome = o.error.as_ref().map_or("success", |e| e.kind.as_str());
    crate::metrics::tenant_invocation(tenant, outcome);
    crate::metrics::invocation(
        language.name().to_string(),
        outcome,
        ex.queue_wait,
        ex.run_time,
        started.elapsed(),
        o.cache_hit,
    );
}

/// Records an invocation that ran (metrics, debug log) and turns it into the response
/// (`started` is when the request arrived).
pub fn respond(
    language: Language,
    tenant: &str,
    ex: RunOutput,
    request_id: Option<String>,
    started: Instant,
) -> ExecuteResponse {
    record(&language, tenant, &ex, started);
    let o = ex.outcome;
    let execution_id = uuid::Uuid::new_v4().to_string();
    tracing::debug!(
        %execution_id, %language,
        outcome = o.error.as_ref().map_or("success", |e| e.kind.as_str()),
        duration_ms = o.duration_ms, queue_ms = ex.queue_wait.as_millis() as u64,
        "invocation ran"
    );
    ExecuteResponse {
        execution_id,
        request_id,
        language,
        success: o.error.is_none(),
        output: o.output.unwrap_or_default(),
        stdout: o.stdout,
        stderr: o.stderr,
        exit_code: o.exit_code,
        duration_ms: o.duration_ms,
        compile_ms: o.compile_ms,
        cache_hit: o.cache_hit,
        queue_ms: ex.queue_wait.as_millis() as u64,
        truncated: o.truncated,
        container_id: ex.container_id.chars().take(12).collect(),
        error: o.error.map(|e| ProgramErrorBody {
            kind: e.kind.as_str(),
            message: e.message,
        }),
    }
}
