//! One invocation on a pooled container, end to end:
//!
//! 1. **checkout** ([`checkout`]): take a container from the caller's tenant sub-pool,
//!    waiting in proportion to how soon one is expected to be free (`queue.rs`), until the
//!    checkout's own deadline. An idle container of the tenant comes first; else the
//!    sub-pool claims a fresh one (nursery, cold start, reclaim); when none is to be had
//!    now, the checkout waits and asks again. deadpool's errors become [`PoolError`]s here.
//! 2. **run** ([`run_on_pool`]): set the call's memory limit, send the program, file a
//!    compiled artifact, answer the caller as soon as the outcome is known;
//! 3. **after a failure**: one look at Docker's state ([`lost_container`]) says whether
//!    the program never started (then it runs again on another container, within the
//!    queue timeout) or the OOM killer took the sandbox (the program's doing: an answer,
//!    not an error);
//! 4. **give back**: wait for the agent's `clean` line, then the container goes back to
//!    its sub-pool, or is retired at once if it failed, was OOM-killed, or is spent.

use codebeaker_proto::{ProgramError, ProgramErrorKind, RunOutcome, RunRequest};
use deadpool::managed::{self, Object, Timeouts};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::Instrument;

use crate::agent::short;
use crate::artifacts::{file_artifact, pin, program_key};
use crate::cache::{ArtifactKeys, SharedCache};
use crate::config::PoolSettings;
use crate::container::CLEAN_TIMEOUT;
use crate::docker::Engine;
use crate::error::{AgentError, PoolError};
use crate::health::Health;
use crate::invocation::{Invocation, RunOutput};
use crate::language_pool::{Checked, CreateError, LanguagePool};
use crate::queue::WaitEstimate;

/// What a run needs of the gateway's pools besides the language pool it runs on.
pub(crate) struct RunContext {
    pub(crate) settings: Arc<PoolSettings>,
    /// The keys of compiled programs (the shared cache's, or this process's own).
    pub(crate) keys: Arc<ArtifactKeys>,
    /// The shared compile cache, if configured.
    pub(crate) cache: Option<Arc<SharedCache>>,
    pub(crate) health: Arc<Health>,
}

/// How often a checkout that found nothing fresh asks again.
const CLAIM_POLL: Duration = Duration::from_millis(5);

/// Takes a container from the pool, waiting in proportion to how soon one is expected to
/// be free (`queue.rs`): see the module docs.
pub(crate) async fn checkout(
    lp: &Arc<LanguagePool>,
    tenant: &str,
    settings: &PoolSettings,
) -> Result<Checked, PoolError> {
    let started = Instant::now();
    if !lp.check_image().await {
        return Err(lp.image_missing());
    }
    let pool = lp.tenant_pool(tenant)?;
    let expected = lp
        .wait()
        .expected(lp.tenant_occupancy(&pool), pool.status().waiting);
    let exhausted = |waited| PoolError::Exhausted {
        language: lp.language().clone(),
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
    let deadline = started + budget;
    let span = tracing::info_span!("pool.checkout", pool = %lp.name(), expected_ms = expected.as_millis() as u64);
    let got = async {
        loop {
            let timeouts = Timeouts {
                wait: Some(deadline.saturating_duration_since(Instant::now())),
                create: Some(settings.create_timeout()),
                recycle: Some(Duration::from_secs(10)),
            };
            match pool.timeout_get(&timeouts).await {
                // Nothing fresh now: the warmer's containers are on their way, or every
                // slot is busy. Ask again until the deadline.
                Err(managed::PoolError::Backend(CreateError::Wait)) => {
                    if Instant::now() >= deadline {
                        return Err(PoolError::Exhausted {
                            language: lp.language().clone(),
                            waited: started.elapsed(),
                            retry_after: lp.wait().expected(lp.occupancy(), 0),
                        });
                    }
                    tokio::time::sleep(CLAIM_POLL).await;
                }
                Ok(o) => return Ok(o),
                Err(managed::PoolError::Timeout(managed::TimeoutType::Wait)) => {
                    return Err(exhausted(started.elapsed()))
                }
                Err(managed::PoolError::Timeout(_)) => {
                    return Err(PoolError::CreateTimeout(settings.create_timeout()))
                }
                Err(managed::PoolError::Backend(CreateError::Pool(e))) => return Err(e),
                Err(managed::PoolError::Closed) => return Err(PoolError::ShuttingDown),
                // deadpool's remaining cases (hooks, no runtime) are not Docker's doing.
                Err(e) => {
                    return Err(PoolError::Checkout {
                        language: lp.language().clone(),
                        source: Box::new(e),
                    })
                }
            }
        }
    }
    .instrument(span)
    .await;
    drop(pool);
    got
}

/// Runs `inv` and sends the result on `reply` as soon as it is known; then waits for the
/// container to be clean before it goes back to the pool.
pub(crate) async fn run_on_pool(
    cx: &RunContext,
    lp: &Arc<LanguagePool>,
    inv: Invocation,
    reply: tokio::sync::oneshot::Sender<Result<RunOutput, PoolError>>,
) {
    let settings = &cx.settings;
    let started = Instant::now();
    let mut req = RunRequest {
        source: lp.def().wrap(&inv.code, inv.plain),
        plain: inv.plain,
        input: inv.input,
        timeout_ms: inv.timeout.as_millis() as u64,
        compile_timeout_ms: inv.compile_timeout.as_millis() as u64,
        stream_limit_bytes: inv.stream_limit_bytes,
        result_limit_bytes: inv.result_limit_bytes,
        cache_key: None,
        extras: codebeaker_proto::Extras {
            stdin: inv.stdin,
            args: inv.args.to_vec(),
            files: inv.files.to_vec(),
        },
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
        let recipe = &lp.def().recipe;
        req.cache_key = program_key(
            &cx.keys,
            &inv.tenant,
            recipe,
            &obj,
            &req.source,
            &req.extras.files,
        );
        let _pin = pin(&cx.cache, recipe, req.cache_key.as_deref());
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
                cx.cache.clone(),
                recipe,
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
            Ok((outcome, run_time)) => Ok(RunOutput {
                outcome,
                container_id: container_id.clone(),
                queue_wait,
                run_time,
            }),
            Err(e) => match lost_container(&obj.engine().clone(), &container_id, sent_at, &e).await
            {
                // The container was dead before the program was handed over: nothing ran,
                // so the call is safe to run again on another one, within the queue timeout.
                Lost::NeverStarted if started.elapsed() < settings.queue_timeout() => {
                    cx.health.count_retried_call();
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
        if !obj.is_broken() && !oom {
            let _ = obj.settle(CLEAN_TIMEOUT).await;
        }
        lp.wait().record_hold(held.elapsed());
        if obj.is_broken() || oom {
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
fn retire_if_spent(lp: &LanguagePool, obj: Checked) {
    let lc = lp.lifecycle();
    let counter = if obj.uses >= lp.settings().max_uses.get() {
        &lc.retired_max_uses
    } else if obj.created.elapsed() >= lp.settings().max_age_secs {
        &lc.retired_max_age
    } else {
        return;
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    drop(Object::take(obj));
}

/// Takes a container out of the pool for good (it is removed), counting a failure.
pub(crate) fn retire(lp: &LanguagePool, obj: Checked) {
    if obj.is_broken() {
        lp.lifecycle()
            .retired_failure
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// Finds out, with at most one look at Docker's state of `container`, what became of it
/// after a call sent at `sent_at` failed with `err`.
pub(crate) async fn lost_container(
    engine: &Engine,
    id: &str,
    sent_at: SystemTime,
    err: &PoolError,
) -> Lost {
    let PoolError::Agent { source, .. } = err else {
        return Lost::Unknown;
    };
    match source {
        AgentError::Io(_) => return Lost::NeverStarted,
        AgentError::Closed | AgentError::Attach(_) => {}
        _ => return Lost::Unknown,
    }
    let Some(stopped) = engine.stopped(id).await else {
        return Lost::Unknown;
    };
    if stopped.finished_at.is_some_and(|f| f <= sent_at) {
        Lost::NeverStarted
    } else if stopped.oom_killed {
        Lost::OomKilled
    } else {
        Lost::Unknown
    }
}

/// The answer to a call whose container the OOM killer took ([`Lost::OomKilled`]).
pub(crate) fn oom_killed(
    container_id: String,
    queue_wait: Duration,
    run_time: Duration,
) -> RunOutput {
    RunOutput {
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
