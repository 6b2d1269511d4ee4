//! One sandbox container: how it is created, what isolation it gets, and how it dies.

use bollard::models::{ContainerCreateBody, ContainerUpdateBody};
use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use bollard::Docker;
use codebeaker_proto::{
    AgentInfo, CommandErrorKind, FileCommand, ItemRequest, Language, PrepareRequest, Reply,
    Request, RunOutcome, RunRequest, ShellRequest, ShellResult,
};
use std::time::{Duration, Instant};

use crate::agent::{short, AgentConn};
use crate::config::{LanguageSettings, PoolSettings};
use crate::error::{AgentError, PoolError};

use crate::docker::{remove, REMOVALS};
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
    /// Set while a request is in flight and cleared when its reply has been read. A
    /// container that is returned with this still set was abandoned mid-call (its reply
    /// may still arrive) and must never serve again.
    pub in_flight: bool,
    /// Set on any agent or Docker failure: the container is retired.
    pub broken: bool,
    /// The agent answered a pool request and is cleaning up; its `clean` line is still to
    /// be read ([`Container::settle`]) before the container may serve again.
    pub pending_clean: bool,
    /// A session container: the agent never cleans (and never says `clean`).
    pub session: bool,
    /// When set, dropping this handle leaves the container running (a session kept for
    /// re-adoption by the next gateway process).
    pub keep_on_drop: bool,
    /// One of its pool's `max_size` slots, held for as long as the container counts
    /// against the pool (a session container gives it back).
    pub(crate) slot: Option<tokio::sync::OwnedSemaphorePermit>,
    conn: AgentConn,
    docker: Docker,
}

/// Creates, starts and handshakes one container for `language`, from the image and
/// runtime `lang` names (the language's own, or one of its variants').
pub async fn create(
    docker: &Docker,
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
    let labels = isolation::labels(settings, language);
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
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .map_err(PoolError::CreateContainer)?;
    let id = created.id;
    crate::docker::books().register(&id, language);
    // From here on, a failure must not leave the container behind.
    let result = async {
        // Attach before start, so not a byte of the agent's output is missed.
        let mut conn = attach(docker, &id).await?;
        docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(PoolError::StartContainer)?;
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
                in_flight: false,
                broken: false,
                pending_clean: false,
                session: false,
                keep_on_drop: false,
                slot: None,
                conn,
                docker: docker.clone(),
            })
        }
        Err(e) => {
            remove(docker, &id).await;
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
                self.pending_clean = !self.session;
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
                self.pending_clean = true;
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
                self.pending_clean = true;
                Ok(outcome)
            }
            Reply::Failed { message } => Err(self.fail(AgentError::Failed(message))),
            other => Err(self.fail(AgentError::Protocol(format!("expected ran, got {other:?}")))),
        }
    }

    /// The engine handle this container was made with.
    pub(crate) fn docker_handle(&self) -> Docker {
        self.docker.clone()
    }

    /// Marks this container as a session, storing the gateway's metadata in the agent.
    pub async fn start_session(&mut self, meta: serde_json::Value) -> Result<(), PoolError> {
        match self
            .call(&Request::Session { meta }, Duration::from_secs(5))
            .await?
        {
            Reply::SessionStarted => {
                self.session = true;
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
        self.in_flight = true;
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
                    self.in_flight = false;
                    return Ok(Ok(r));
                }
                Reply::CommandFailed { kind, message } => {
                    self.in_flight = false;
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
        if !self.pending_clean {
            return Ok(());
        }
        match tokio::time::timeout(timeout, self.conn.read_reply()).await {
            Ok(Ok(Reply::Clean)) => {
                self.pending_clean = false;
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
        self.in_flight = true;
        match self.conn.call(req, timeout).await {
            Ok(r) => {
                self.in_flight = false;
                Ok(r)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, source: AgentError) -> PoolError {
        self.broken = true;
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
        match self.docker.update_container(&self.id, body).await {
            Ok(()) => {
                self.memory_mb = mb;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(PoolError::UpdateContainer(e))
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
        self.docker
            .update_container(&self.id, body)
            .await
            .map_err(|e| {
                self.broken = true;
                PoolError::UpdateContainer(e)
            })
    }
}

impl Drop for Container {
    /// A container leaves the pool only to die: remove it in the background, tracked so
    /// that shutdown can wait for the removal ([`removals_settled`]).
    fn drop(&mut self) {
        if self.keep_on_drop {
            return;
        }
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let _guard = rt.enter();
            REMOVALS.spawn(async move { remove(&docker, &id).await });
        }
    }
}

/// Opens the agent's channel: the container's stdin, stdout and stderr as a live stream
/// (no replay of earlier output).
async fn attach(docker: &Docker, id: &str) -> Result<AgentConn, PoolError> {
    let opts = AttachContainerOptionsBuilder::default()
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .logs(false)
        .build();
    let streams = docker
        .attach_container(id, Some(opts))
        .await
        .map_err(PoolError::AttachContainer)?;
    Ok(AgentConn::new(id.to_string(), streams))
}

/// Re-attaches to a running container of ours (after a gateway restart) and asks its agent
/// whether it is a session. Returns the handle and the session metadata, if any.
pub async fn reattach(
    docker: &Docker,
    id: &str,
    language: Language,
    memory_mb: u64,
) -> Result<(Container, Option<serde_json::Value>), PoolError> {
    let conn = attach(docker, id).await?;
    crate::docker::books().register(id, language);
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
        in_flight: false,
        broken: false,
        pending_clean: false,
        session: false,
        // Until we know it is a session we own, do not let a failure here remove it twice.
        keep_on_drop: true,
        slot: None,
        conn,
        docker: docker.clone(),
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
    c.keep_on_drop = false;
    c.session = meta.is_some();
    Ok((c, meta))
}
