//! One sandbox container: how it is created, what isolation it gets, and how it dies.
//!
//! A container's handle follows one state machine ([`State`]): `Ready` → a request is
//! sent (`InFlight`) → its reply is read (`Ready` again, or `Cleaning` for a pool request
//! until the agent's `clean` line is read by [`Container::settle`]). Any agent or Docker
//! failure makes it `Broken` (it is retired, never served again). `Detached` is a handle
//! that no longer owns its container: dropping it leaves the container alone (a session
//! kept for the next gateway, or a container already removed). Any other handle removes
//! its container when dropped.

use bollard::models::{ContainerCreateBody, ContainerUpdateBody};
use codebeaker_proto::{
    AgentInfo, CommandErrorKind, FileCommand, InstanceRequest, ItemRequest, Language,
    PrepareRequest, Reply, Request, RunOutcome, RunRequest, ShellRequest, ShellResult,
};
use std::time::{Duration, Instant};

use crate::agent::{short, AgentConn};
use crate::config::{LanguageSettings, PoolSettings};
use crate::error::{AgentError, PoolError};

use crate::docker::Engine;
use crate::isolation::{self, BUNDLE_MOUNT};

/// How long a cleanup may take before the container counts as broken (a fork bomb's, on
/// a loaded machine, takes a few seconds).
pub const CLEAN_TIMEOUT: Duration = Duration::from_secs(30);

/// A started container whose agent said `ready`.
pub struct Container {
    pub id: String,
    pub info: AgentInfo,
    pub created: Instant,
    /// When it last went back to its pool (or was created): what "idle for" counts from.
    /// deadpool's own metric counts from the last checkout, which would make a container
    /// just back from a long batch look long idle.
    pub(crate) idle_since: Instant,
    pub uses: usize,
    /// Memory limit currently applied, in MB. Every call sets the limit it needs before
    /// it runs (a key may cap it below the container's), and the container keeps it.
    pub memory_mb: u64,
    state: State,
    /// What the agent was told the container is: a session's agent never cleans (and
    /// never says `clean`).
    role: Role,
    /// One of its pool's `max_size` slots, held for as long as the container counts
    /// against the pool (a session container gives it back).
    pub(crate) slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Resident-instance calls sent whose replies are not read yet (pipelined).
    pending: usize,
    conn: AgentConn,
    engine: Engine,
}

/// Where a container's handle is in its request cycle (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// May take a request.
    Ready,
    /// A request was sent and its reply not read yet. A container returned in this state
    /// was abandoned mid-call (its reply may still arrive) and must never serve again.
    InFlight,
    /// The agent answered a pool request and is cleaning up; its `clean` line is still to
    /// be read before the container may serve again.
    Cleaning,
    /// An agent or Docker failure: the container is retired.
    Broken,
    /// The handle no longer owns the container: dropping it leaves the container running.
    Detached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Pool,
    Session,
}

/// Creates, starts and handshakes one container for `language`, from the image and
/// runtime `lang` names (the language's own, or one of its variants').
pub async fn create(
    engine: &Engine,
    settings: &PoolSettings,
    language: Language,
    lang: &LanguageSettings,
    shared_cache: Option<&std::path::Path>,
) -> Result<Container, PoolError> {
    let limits = &settings.limits;
    let name = format!(
        "cb-{}-{}-{}",
        settings.instance,
        language.name(),
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let labels = isolation::labels(settings, &language);
    let uid = limits.sandbox_uid;
    let host_config = isolation::host_config(&lang.runtime, settings, shared_cache)?;
    let body = ContainerCreateBody {
        image: Some(lang.image.clone()),
        entrypoint: Some(vec![format!("{BUNDLE_MOUNT}/codebeaker-agent")]),
        cmd: Some(vec![
            "--language".into(),
            language.name().into(),
            "--uid".into(),
            uid.to_string(),
            "--gid".into(),
            uid.to_string(),
        ]),
        user: Some("0:0".into()),
        working_dir: Some("/workspace".into()),
        // No environment from the host: nothing secret can leak into a sandbox.
        env: Some(vec![]),
        labels: Some(labels),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(false),
        tty: Some(false),
        network_disabled: Some(true),
        host_config: Some(host_config),
        ..Default::default()
    };
    let id = engine.create(&name, language.clone(), body).await?;
    // From here on, a failure must not leave the container behind.
    let result = async {
        // Attach before start, so not a byte of the agent's output is missed.
        let mut conn = engine.attach(&id).await?;
        engine.start(&id).await?;
        let reply = tokio::time::timeout(settings.create_timeout(), conn.read_reply())
            .await
            .map_err(|_| PoolError::CreateTimeout(settings.create_timeout()))?
            .map_err(|source| PoolError::Agent {
                container: short(&id).to_string(),
                source,
            })?;
        match reply {
            Reply::Ready(info) => Ok((conn, info)),
            other => Err(PoolError::Agent {
                container: short(&id).to_string(),
                source: AgentError::Protocol(format!("expected ready, got {other:?}")),
            }),
        }
    }
    .await;
    match result {
        Ok((conn, info)) => {
            tracing::debug!(container = %short(&id), %language, toolchain = %info.toolchain, "container ready");
            Ok(Container {
                id,
                info,
                created: Instant::now(),
                idle_since: Instant::now(),
                uses: 0,
                memory_mb: limits.memory_mb,
                state: State::Ready,
                role: Role::Pool,
                slot: None,
                pending: 0,
                conn,
                engine: engine.clone(),
            })
        }
        Err(e) => {
            engine.remove(&id).await;
            Err(e)
        }
    }
}

impl Container {
    /// Runs one invocation. Marks the container broken on any agent failure.
    pub async fn run(&mut self, req: &RunRequest) -> Result<RunOutcome, PoolError> {
        // Generous: the agent enforces the real limits; this only catches a dead agent.
        let limit = Duration::from_millis(req.timeout_ms + req.compile_timeout_ms)
            + Duration::from_secs(10);
        self.uses += 1;
        match self.call(&Request::Run(req.clone()), limit).await? {
            Reply::Ran(outcome) => {
                if self.role == Role::Pool {
                    self.state = State::Cleaning;
                }
                Ok(outcome)
            }
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!("expected ran, got {other:?}")))),
        }
    }

    /// Prepares a program for [`Container::item`]s (compiling it once). The outcome holds
    /// the compile time, the cache hit and the compiler's error, if any.
    pub async fn prepare(&mut self, req: PrepareRequest) -> Result<RunOutcome, PoolError> {
        let limit = Duration::from_millis(req.compile_timeout_ms) + Duration::from_secs(10);
        match self.call(&Request::Prepare(req), limit).await? {
            Reply::Prepared {
                compile_ms,
                cache_hit,
                error,
                artifact,
            } => {
                self.state = State::Cleaning;
                Ok(RunOutcome {
                    compile_ms,
                    duration_ms: compile_ms,
                    cache_hit,
                    error,
                    artifact,
                    ..RunOutcome::default()
                })
            }
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!(
                "expected prepared, got {other:?}"
            )))),
        }
    }

    /// Runs the prepared program on one input (a fresh process, then a clean container).
    pub async fn item(&mut self, req: ItemRequest) -> Result<RunOutcome, PoolError> {
        let limit = Duration::from_millis(req.timeout_ms) + Duration::from_secs(10);
        self.uses += 1;
        match self.call(&Request::Item(req), limit).await? {
            Reply::Ran(outcome) => {
                self.state = State::Cleaning;
                Ok(outcome)
            }
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!("expected ran, got {other:?}")))),
        }
    }

    /// Starts a resident instance of a program (see `instance.rs`): the agent keeps its
    /// state between calls, with no cleanup until [`Container::end_instance`].
    pub(crate) async fn start_instance(
        &mut self,
        req: InstanceRequest,
    ) -> Result<RunOutcome, PoolError> {
        let limit = Duration::from_millis(req.compile_timeout_ms) + Duration::from_secs(10);
        match self.call(&Request::Instance(req), limit).await? {
            Reply::Prepared {
                compile_ms,
                cache_hit,
                error,
                artifact,
            } => Ok(RunOutcome {
                compile_ms,
                duration_ms: compile_ms,
                cache_hit,
                error,
                artifact,
                ..RunOutcome::default()
            }),
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!(
                "expected prepared, got {other:?}"
            )))),
        }
    }

    /// Queues a call of the resident instance, written at the next [`Container::flush`]:
    /// calls are pipelined, and their replies come back in order ([`Container::next_ran`]).
    pub(crate) fn queue_call(&mut self, req: ItemRequest) -> Result<(), PoolError> {
        self.uses += 1;
        self.pending += 1;
        self.state = State::InFlight;
        self.conn
            .queue(&Request::Call(req))
            .map_err(|e| self.fail(e))
    }

    /// Whether the container may take more resident calls: it can serve, or only resident
    /// calls are in flight (they are pipelined; a broken container takes nothing).
    pub(crate) fn takes_calls(&self) -> bool {
        self.can_serve() || (self.state == State::InFlight && self.pending > 0)
    }

    /// Whether resident calls were sent whose replies are not read yet.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// Writes the queued calls.
    pub(crate) async fn flush(&mut self) -> Result<(), PoolError> {
        match self.conn.flush().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The reply to the oldest call in flight, within `timeout`.
    pub(crate) async fn next_ran(&mut self, timeout: Duration) -> Result<RunOutcome, PoolError> {
        let reply = match tokio::time::timeout(timeout, self.conn.read_reply()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.fail(e)),
            Err(_) => return Err(self.fail(AgentError::Timeout(timeout))),
        };
        match reply {
            Reply::Ran(outcome) => {
                self.pending = self.pending.saturating_sub(1);
                if self.pending == 0 {
                    self.state = State::Ready;
                }
                Ok(outcome)
            }
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!("expected ran, got {other:?}")))),
        }
    }

    /// Ends the resident instance: the agent kills it and cleans the container, which may
    /// then serve anyone of its tenant again.
    pub(crate) async fn end_instance(&mut self) -> Result<(), PoolError> {
        match self.call(&Request::EndInstance, CLEAN_TIMEOUT).await? {
            Reply::Clean => Ok(()),
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!(
                "expected clean, got {other:?}"
            )))),
        }
    }

    /// The engine this container was made with.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the container may serve another request: nothing failed, and no request
    /// is left without its reply (a pending `clean` line is fine: the next call reads it).
    pub fn can_serve(&self) -> bool {
        matches!(self.state, State::Ready | State::Cleaning)
    }

    /// Whether a request was sent and its reply never read: a container returned like
    /// this was abandoned mid-call (its reply may still arrive) and must not serve again.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.state == State::InFlight
    }

    /// Whether an agent or Docker failure has retired the container.
    pub fn is_broken(&self) -> bool {
        self.state == State::Broken
    }

    /// Retires the container (it is removed once its handle is dropped).
    pub(crate) fn mark_broken(&mut self) {
        if self.state != State::Detached {
            self.state = State::Broken;
        }
    }

    /// Leaves the container running when this handle is dropped: a session kept for the
    /// next gateway process to re-adopt, or a container already removed.
    pub fn leave_running(&mut self) {
        self.state = State::Detached;
    }

    /// Marks this container as a session, storing the gateway's metadata in the agent.
    pub async fn start_session(&mut self, meta: serde_json::Value) -> Result<(), PoolError> {
        match self
            .call(&Request::Session { meta }, Duration::from_secs(5))
            .await?
        {
            Reply::SessionStarted => {
                self.role = Role::Session;
                Ok(())
            }
            other => Err(self.fail(AgentError::Protocol(format!(
                "expected session_started, got {other:?}"
            )))),
        }
    }

    /// The session metadata stored in the agent, or `None` for a pool container.
    pub async fn session_info(&mut self) -> Result<Option<serde_json::Value>, PoolError> {
        match self
            .call(&Request::SessionInfo, Duration::from_secs(3))
            .await?
        {
            Reply::SessionInfo { meta } => Ok(meta),
            other => Err(self.fail(AgentError::Protocol(format!(
                "expected session_info, got {other:?}"
            )))),
        }
    }

    /// A file command. `Ok(Err(..))` is the caller's failure (bad path, missing file).
    pub async fn file(
        &mut self,
        cmd: FileCommand,
    ) -> Result<Result<serde_json::Value, (CommandErrorKind, String)>, PoolError> {
        match self
            .call(&Request::File(cmd), Duration::from_secs(30))
            .await?
        {
            Reply::FileDone { result } => Ok(Ok(result)),
            Reply::CommandFailed { kind, message } => Ok(Err((kind, message))),
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!(
                "expected file_done, got {other:?}"
            )))),
        }
    }

    /// Runs an argv; `on_output` receives streamed chunks (stream name, data) when
    /// `req.stream` is set.
    pub async fn shell(
        &mut self,
        req: ShellRequest,
        on_output: &mut (dyn FnMut(&str, String) + Send),
    ) -> Result<Result<ShellResult, (CommandErrorKind, String)>, PoolError> {
        let limit = Duration::from_millis(req.timeout_ms) + Duration::from_secs(10);
        let line = Request::Shell(req);
        self.state = State::InFlight;
        if let Err(e) = self.conn.send(&line).await {
            return Err(self.fail(e));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let reply = match tokio::time::timeout_at(deadline, self.conn.read_reply()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(self.fail(e)),
                Err(_) => return Err(self.fail(AgentError::Timeout(limit))),
            };
            match reply {
                Reply::Output { stream, data } => on_output(&stream, data),
                Reply::Shell(r) => {
                    self.state = State::Ready;
                    return Ok(Ok(r));
                }
                Reply::CommandFailed { kind, message } => {
                    self.state = State::Ready;
                    return Ok(Err((kind, message)));
                }
                Reply::Failed { message } => return Err(self.fail(AgentError::Failed(message))),
                other => {
                    return Err(self.fail(AgentError::Protocol(format!(
                        "expected shell, got {other:?}"
                    ))))
                }
            }
        }
    }

    /// Waits (up to `timeout`) for the agent's `clean` line after a pool request. A
    /// container that does not get clean in time is broken (retired).
    pub async fn settle(&mut self, timeout: Duration) -> Result<(), PoolError> {
        if self.state != State::Cleaning {
            return Ok(());
        }
        match tokio::time::timeout(timeout, self.conn.read_reply()).await {
            Ok(Ok(Reply::Clean)) => {
                self.state = State::Ready;
                Ok(())
            }
            Ok(Ok(other)) => Err(self.fail(AgentError::Protocol(format!(
                "expected clean, got {other:?}"
            )))),
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => Err(self.fail(AgentError::Timeout(timeout))),
        }
    }

    async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Reply, PoolError> {
        // The previous request's cleanup comes first (a lease sends items back to back).
        self.settle(CLEAN_TIMEOUT).await?;
        self.state = State::InFlight;
        match self.conn.call(req, timeout).await {
            Ok(r) => {
                self.state = State::Ready;
                Ok(r)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, source: AgentError) -> PoolError {
        self.mark_broken();
        PoolError::Agent {
            container: short(&self.id).to_string(),
            source,
        }
    }

    /// Applies a memory limit to the running container (memory and swap together).
    pub async fn set_memory(&mut self, mb: u64) -> Result<(), PoolError> {
        if mb == self.memory_mb {
            return Ok(());
        }
        let bytes = (mb * 1024 * 1024) as i64;
        // Lowering memory below memory_swap is accepted; raising it above memory_swap is
        // not, so order the two values the way Docker validates them.
        let body = ContainerUpdateBody {
            memory: Some(bytes),
            memory_swap: Some(bytes),
            ..Default::default()
        };
        match self.engine.update(&self.id, body).await {
            Ok(()) => {
                self.memory_mb = mb;
                Ok(())
            }
            Err(e) => {
                self.mark_broken();
                Err(e)
            }
        }
    }
}

impl Container {
    /// Sets the container's relative CPU weight (a session's `cpuShares`).
    pub async fn set_cpu_shares(&mut self, shares: u64) -> Result<(), PoolError> {
        let body = ContainerUpdateBody {
            cpu_shares: Some(shares as i64),
            ..Default::default()
        };
        let updated = self.engine.update(&self.id, body).await;
        if updated.is_err() {
            self.mark_broken();
        }
        updated
    }
}

impl Drop for Container {
    /// A container leaves the pool only to die: remove it in the background, tracked so
    /// that shutdown can wait for the removal (`Engine::removals_settled`).
    fn drop(&mut self) {
        if self.state == State::Detached {
            return;
        }
        self.engine
            .remove_in_background(std::mem::take(&mut self.id));
    }
}

/// Re-attaches to a running container of ours (after a gateway restart) and asks its agent
/// whether it is a session. Returns the handle and the session metadata, if any.
pub async fn reattach(
    engine: &Engine,
    id: &str,
    language: Language,
    memory_mb: u64,
) -> Result<(Container, Option<serde_json::Value>), PoolError> {
    let conn = engine.attach(id).await?;
    engine.register(id, language.clone());
    let mut c = Container {
        id: id.to_string(),
        info: AgentInfo {
            language,
            toolchain: String::new(),
            agent_version: String::new(),
        },
        created: Instant::now(),
        idle_since: Instant::now(),
        uses: 0,
        memory_mb,
        // Until we know it is a session we own, do not let a failure here remove it twice.
        state: State::Detached,
        role: Role::Pool,
        slot: None,
        pending: 0,
        conn,
        engine: engine.clone(),
    };
    // The previous gateway may have died with a command in flight: its reply (or streamed
    // output) can still be in the pipe ahead of ours. Skip anything that is not the
    // answer to our question.
    c.conn
        .send(&Request::SessionInfo)
        .await
        .map_err(|e| c.fail(e))?;
    let meta = loop {
        match tokio::time::timeout(Duration::from_secs(3), c.conn.read_reply()).await {
            Ok(Ok(Reply::SessionInfo { meta })) => break meta,
            Ok(Ok(_stale)) => continue,
            Ok(Err(e)) => return Err(c.fail(e)),
            Err(_) => return Err(c.fail(AgentError::Timeout(Duration::from_secs(3)))),
        }
    };
    c.state = State::Ready;
    if meta.is_some() {
        c.role = Role::Session;
    }
    Ok((c, meta))
}
