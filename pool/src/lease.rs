//! The batch [`Lease`]: one container held for a stream of invocations of one language,
//! each program prepared (compiled) once on it and each input sent as one `item` line.
//! Taken by `Pools::lease`; the checkout is `run.rs`'s, the artifact helpers
//! `artifacts.rs`'s.

use codebeaker_proto::{ItemRequest, Language, PrepareRequest, ProgramErrorKind, RunOutcome};
use codebeaker_recipe::LanguageDef;
use deadpool::managed::Object;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::agent::short;
use crate::artifacts::{file_artifact, pin, program_key};
use crate::cache::{ArtifactKeys, Pin, SharedCache};
use crate::container::CLEAN_TIMEOUT;
use crate::error::PoolError;
use crate::invocation::{Invocation, RunOutput};
use crate::language_pool::{Checked, LanguagePool};
use crate::lifecycle::Lifecycle;
use crate::run::{lost_container, oom_killed, Lost, RunContext};

/// A container held for a stream of invocations of one language (a batch worker's).
///
/// Each program is sent once (`prepare`: written and, for Go and C#, compiled) and each
/// input after it as one `item` line: per item there is no pool round trip, no liveness
/// ping and no re-sent source. The agent still runs every item in a fresh process and
/// cleans the container before it reads the next line, exactly as after a call.
pub struct Lease {
    obj: Option<Checked>,
    /// The language's recipe and templates.
    def: Arc<LanguageDef>,
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
    /// The items' arguments and files (their stdin is each item's own); a batch's items
    /// share them, so comparing is mostly `Arc::ptr_eq`.
    args: Arc<[String]>,
    files: Arc<[codebeaker_proto::ProgramFile]>,
}

impl Lease {
    /// A lease of `obj`, checked out of `lp` for `tenant` after `queue_wait`.
    pub(crate) fn new(
        obj: Checked,
        lp: &LanguagePool,
        cx: &RunContext,
        tenant: &str,
        packages: &[String],
        queue_wait: Duration,
    ) -> Lease {
        Lease {
            obj: Some(obj),
            def: lp.def().clone(),
            packages: packages.to_vec(),
            queue_wait,
            default_mb: cx.settings.limits.memory_mb,
            max_uses: lp.settings().max_uses.get(),
            prepared: None,
            cache: cx.cache.clone(),
            keys: cx.keys.clone(),
            tenant: tenant.into(),
            pin: None,
            lifecycle: lp.lifecycle().clone(),
        }
    }

    /// The language of the lease's container.
    pub fn language(&self) -> &Language {
        self.def.language()
    }

    /// Whether `inv` may run on this lease: same language and the same packages asked
    /// (hence the same image). The tenant is the lease's by construction: one batch.
    pub fn serves(&self, inv: &Invocation) -> bool {
        &inv.language == self.language() && inv.packages == self.packages
    }

    /// Whether the lease can take another item: the container is healthy and below its
    /// use count. Otherwise release it and take a new one.
    pub fn is_usable(&self) -> bool {
        self.obj
            .as_ref()
            .is_some_and(|o| o.can_serve() && o.uses < self.max_uses)
    }

    /// Runs one invocation of this lease's language: prepares its program if it is not the
    /// one already prepared, then runs its input. [`PoolError::NotStarted`] means the
    /// container was gone before the item reached it: run it again on another lease.
    pub async fn run(&mut self, inv: &Invocation) -> Result<RunOutput, PoolError> {
        let sent_at = SystemTime::now();
        match self.run_once(inv).await {
            Err(e) => {
                let Some((id, engine)) = self
                    .obj
                    .as_ref()
                    .map(|o| (o.id.clone(), o.engine().clone()))
                else {
                    return Err(e);
                };
                match lost_container(&engine, &id, sent_at, &e).await {
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

    async fn run_once(&mut self, inv: &Invocation) -> Result<RunOutput, PoolError> {
        if &inv.language != self.language() {
            return Err(PoolError::WrongLease {
                lease: self.language().clone(),
                asked: inv.language.clone(),
            });
        }
        let Some(obj) = self.obj.as_mut() else {
            return Err(PoolError::ShuttingDown);
        };
        let key = ProgramKey {
            code: inv.code.clone(),
            plain: inv.plain,
            args: inv.args.clone(),
            files: inv.files.clone(),
        };
        let t = Instant::now();
        let mut compile = None;
        if self.prepared.as_ref().map(|(k, _)| k) != Some(&key) {
            self.prepared = None;
            let source = self.def.wrap(&key.code, key.plain);
            let cache_key = program_key(
                &self.keys,
                &self.tenant,
                &self.def.recipe,
                obj,
                &source,
                &key.files,
            );
            // Pinned before the prepare: the artifact the agent finds (or files) now must
            // still be there for the last item.
            self.pin = pin(&self.cache, &self.def.recipe, cache_key.as_deref());
            let mut outcome = obj
                .prepare(PrepareRequest {
                    source,
                    compile_timeout_ms: inv.compile_timeout.as_millis() as u64,
                    plain: key.plain,
                    cache_key: cache_key.clone(),
                    extras: codebeaker_proto::Extras {
                        stdin: String::new(),
                        args: key.args.to_vec(),
                        files: key.files.to_vec(),
                    },
                })
                .await?;
            file_artifact(
                self.cache.clone(),
                &self.def.recipe,
                cache_key.as_deref(),
                outcome.artifact.take(),
            )
            .await;
            let failed = outcome.error.is_some().then(|| outcome.clone());
            self.prepared = Some((key, failed));
            compile = Some(outcome);
        }
        if let Some((_, Some(failed))) = &self.prepared {
            return Ok(RunOutput {
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
                stdin: inv.stdin.clone(),
            })
            .await?;
        // The first item of a program carries its compile, as a call would.
        if let Some(c) = compile {
            outcome.compile_ms = c.compile_ms;
            outcome.duration_ms += c.compile_ms;
            outcome.cache_hit = c.cache_hit;
        } else if self.def.recipe.is_compiled() {
            // Later items run the binary prepared for the first one.
            outcome.cache_hit = Some(true);
        }
        if outcome
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ProgramErrorKind::MemoryLimitExceeded)
        {
            // As after a call: an OOM kill retires the container.
            obj.mark_broken();
        }
        Ok(RunOutput {
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
        if !obj.is_broken() {
            let _ = obj.settle(CLEAN_TIMEOUT).await;
        }
        if obj.is_broken() {
            self.lifecycle
                .retired_failure
                .fetch_add(1, Ordering::Relaxed);
            drop(Object::take(obj));
        } else {
            obj.idle_since = Instant::now();
        }
    }
}
