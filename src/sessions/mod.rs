//! Stateful sessions: a container dedicated to one caller for many commands.
//!
//! A session takes a warm container out of its language's pool (milliseconds) and keeps
//! it until the caller closes it, it idles past its idle timeout, or it reaches its
//! maximum lifetime. Its `/workspace` persists between commands. One command runs at a
//! time; a second waits up to `sessions.busy_wait_ms`, then gets "session busy". Sessions
//! belong to a tenant: another tenant gets "not found", never "forbidden", so ids do not
//! leak. On shutdown, session containers are left running and the next gateway process
//! re-adopts them by label, with their ids, files and timeouts.
//!
//! # How it works
//!
//! A session is a pool container taken out for good (`Pools::take_for_session`:
//! `Object::take`, its slot given back, and the warmer replaces it). The gateway sends the
//! agent `{"session":{"meta":…}}`: from then on the agent no longer wipes anything between
//! requests, and it keeps `meta` (id, tenant, language, creation time, timeouts). File
//! commands run in the agent with the sandbox uid and `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` against a descriptor of `/workspace` (under gVisor, which has
//! no `openat2`, a walk of `O_NOFOLLOW` opens; `agent/src/workspace.rs`); `execute_shell`
//! runs an argv as the sandbox user and, when streaming, the agent emits `output` lines
//! before the final reply, which the gateway forwards as `session.output` notifications.
//! One command at a time: each session's container sits behind a `tokio::sync::Mutex`,
//! taken with the busy timeout ([`Sessions::with_container`]). A command runs to
//! completion even if its caller disconnects (WebSocket messages and REST commands run as
//! their own tasks, which shutdown waits for); a container that an agent or Docker
//! failure broke during a command, or that Docker reported dead, ends its session
//! (`session_lost`) rather than serve another command. The agent reaps every exited child
//! after each command, so background processes cannot pile up as zombies in a session.
//!
//! On a WebSocket (`jsonrpc.rs`), the upgrade's credential is checked again for every
//! message (revocation and token expiry take effect on open sockets) and every request
//! counts against the caller's rate limit. The upgrade alone may carry its credential in
//! the URL (`?api_key=`, `?access_token=`), because the Loopai client's `ClientWebSocket`
//! cannot send headers; `routes::auth::credential` is the one place that reads it, and it
//! refuses one on every other route. No query string is logged or traced: the request span
//! (`telemetry::request_span`) records the path only.
//!
//! A command's result is `{success, result, error, errorCode, errorKind, durationMs}` with
//! `error` one readable string (what the Loopai client's `CommandResult.Error: string?`
//! reads) and the machine-readable code and kind beside it (`commands.rs`).
//!
//! **Restart:** at shutdown the session containers are left running
//! ([`Sessions::detach_all`]: a session busy with a command gets until the shutdown
//! deadline to finish it, else it is not kept) and only the other containers are removed.
//! At startup the pools' sweep (`pool/src/adopt.rs`) lists this instance's containers,
//! re-attaches to each running one and asks its agent for its session metadata
//! (`session_info`); sessions are handed to the session manager ([`Sessions::new`]) with
//! their ids and timeouts, everything else is removed. The gateway holds no session state
//! that is not also in the agent, so nothing is lost when the gateway dies.

pub mod commands;
mod session;

pub use session::Session;
use session::{default_runtime, SessionRecord};

use chrono::Utc;
use codebeaker_pool::{Container, PoolError, Pools, SessionResources};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::config::SessionSettings;
use crate::domain::Principal;
use crate::requests::{CreateSession, RequestError};

/// Why a session operation failed (mapped to JSON-RPC codes and HTTP statuses).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("session is busy with another command")]
    Busy,
    #[error("session limit reached: this tenant already has {0} open sessions")]
    LimitReached(u32),
    #[error("{0}")]
    InvalidParams(String),
    #[error("the session's container died (killed, or the engine restarted); the session is closed, create a new one")]
    Lost,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl crate::failure::Failure for SessionError {
    fn kind(&self) -> &'static str {
        match self {
            SessionError::NotFound => "session_not_found",
            SessionError::Busy => "session_busy",
            SessionError::LimitReached(_) => "session_limit_reached",
            SessionError::InvalidParams(_) => "invalid_request",
            SessionError::Lost => "session_lost",
            SessionError::Request(e) => e.kind(),
            SessionError::Pool(e) => e.kind(),
        }
    }
    fn class(&self) -> crate::failure::Class {
        match self {
            SessionError::Request(e) => e.class(),
            SessionError::Pool(e) => crate::failure::Failure::class(e),
            _ => crate::failure::Class::Caller,
        }
    }
}

/// All live sessions of this gateway.
pub struct Sessions {
    pools: Arc<Pools>,
    settings: SessionSettings,
    map: RwLock<HashMap<String, Arc<Session>>>,
    /// Sessions closed because their container died, by id: (tenant, when). The next
    /// command on one gets "session lost" rather than "not found"; kept for
    /// [`LOST_MEMORY`].
    lost: Mutex<HashMap<String, (String, Instant)>>,
    /// With replicas: this replica's instance label, which starts every session id it
    /// creates (`<instance>.<uuid>`), so that any replica knows where a session lives.
    owner: Option<String>,
}

/// How long a lost session is remembered (for the clearer error).
const LOST_MEMORY: Duration = Duration::from_secs(600);

impl Sessions {
    /// The served languages' recipes (a session's `run_code` wraps its code with them).
    pub fn recipes(&self) -> &codebeaker_recipe::Registry {
        self.pools.recipes()
    }

    /// Builds the manager and re-adopts the session containers the pools found at startup.
    pub fn new(
        pools: Arc<Pools>,
        settings: SessionSettings,
        owner: Option<String>,
    ) -> Arc<Sessions> {
        let mut map = HashMap::new();
        for (container, raw) in pools.take_adopted() {
            match serde_json::from_value::<SessionRecord>(raw) {
                Ok(meta) => {
                    let age = (Utc::now() - meta.created_at).to_std().unwrap_or_default();
                    let s = Session {
                        container_id: container.id.clone(),
                        container: tokio::sync::Mutex::new(container),
                        created: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                        last_activity: Mutex::new((Instant::now(), Utc::now())),
                        executions: AtomicU64::new(0),
                        meta,
                    };
                    tracing::info!(session = %s.meta.session_id, tenant = %s.meta.tenant, "session re-adopted");
                    map.insert(s.meta.session_id.clone(), Arc::new(s));
                }
                // A container whose metadata we cannot read is dropped (and so removed).
                Err(e) => tracing::warn!(error = %e, "cannot re-adopt a session: bad metadata"),
            }
        }
        Arc::new(Sessions {
            pools,
            settings,
            map: RwLock::new(map),
            lost: Mutex::new(HashMap::new()),
            owner,
        })
    }

    /// The session settings in force.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    fn minutes(
        &self,
        asked: Option<f64>,
        default: f64,
        max: f64,
        what: &str,
    ) -> Result<f64, SessionError> {
        let m = asked.unwrap_or(default);
        // Written so that NaN is refused too.
        if m.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(SessionError::InvalidParams(format!(
                "{what} must be positive"
            )));
        }
        Ok(m.min(max))
    }

    /// Takes a warm container for `caller` as a new session (its tenant's cap, language and limits checked).
    pub async fn create(
        &self,
        caller: &Principal,
        p: CreateSession,
    ) -> Result<Arc<Session>, SessionError> {
        let recipes = self.pools.recipes();
        let language = recipes
            .resolve(&p.language)
            .map(|d| d.language().clone())
            .ok_or_else(|| {
                let served: Vec<&str> = recipes.languages().map(|l| l.name()).collect();
                SessionError::InvalidParams(format!(
                    "unsupported language {:?}; supported: {}",
                    p.language,
                    served.join(", ")
                ))
            })?;
        let idle = self.minutes(
            p.idle_timeout_minutes,
            self.settings.default_idle_minutes,
            self.settings.max_idle_minutes,
            "idleTimeoutMinutes",
        )?;
        let life = self.minutes(
            p.max_lifetime_minutes,
            self.settings.default_lifetime_minutes,
            self.settings.max_lifetime_minutes,
            "maxLifetimeMinutes",
        )?;
        caller
            .allow_language(&language)
            .map_err(RequestError::from)?;
        let container_mb = self.pools.settings().limits.memory_mb;
        let max_mb = caller.memory_cap(container_mb);
        if let Some(mb) = p.memory_limit_mb {
            if !(32..=max_mb).contains(&mb) {
                return Err(SessionError::InvalidParams(format!(
                    "memoryLimitMB must be 32..={max_mb}"
                )));
            }
        }
        // Docker's minimum weight is 2; above the server's cap the request is lowered.
        let cpu_shares = match p.cpu_shares {
            None => None,
            Some(n) if n < 2 => return Err(SessionError::InvalidParams(
                "cpuShares must be at least 2 (Docker's relative CPU weight; 1024 is the default)"
                    .into(),
            )),
            Some(n) => Some((n as u64).min(self.settings.max_cpu_shares)),
        };
        let open = self.count_for(&caller.tenant);
        if open >= caller.quota.max_sessions as usize {
            return Err(SessionError::LimitReached(caller.quota.max_sessions));
        }
        // A key that caps memory below the container's gets that cap applied.
        let memory_limit_mb = caller.memory_limit(p.memory_limit_mb, container_mb);
        let meta = SessionRecord {
            session_id: match &self.owner {
                Some(owner) => format!("{owner}.{}", uuid::Uuid::new_v4().simple()),
                None => uuid::Uuid::new_v4().simple().to_string(),
            },
            tenant: caller.tenant.clone(),
            language: language.clone(),
            created_at: Utc::now(),
            idle_timeout_minutes: idle,
            max_lifetime_minutes: life,
            runtime: p.runtime.unwrap_or_else(default_runtime),
            cpu_shares,
            memory_limit_mb,
        };
        let raw =
            serde_json::to_value(&meta).map_err(|e| SessionError::InvalidParams(e.to_string()))?;
        let resources = SessionResources {
            memory_mb: memory_limit_mb,
            cpu_shares,
        };
        let container = self
            .pools
            .take_for_session(&language, &p.packages, &caller.tenant, raw, resources)
            .await?;
        let s = Arc::new(Session {
            container_id: container.id.clone(),
            container: tokio::sync::Mutex::new(container),
            created: Instant::now(),
            last_activity: Mutex::new((Instant::now(), Utc::now())),
            executions: AtomicU64::new(0),
            meta,
        });
        // Re-check under the write lock: two concurrent creates must not both pass the cap.
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let open = map
            .values()
            .filter(|x| x.meta.tenant == caller.tenant)
            .count();
        if open >= caller.quota.max_sessions as usize {
            return Err(SessionError::LimitReached(caller.quota.max_sessions));
        }
        map.insert(s.meta.session_id.clone(), s.clone());
        tracing::info!(session = %s.meta.session_id, tenant = %caller.tenant, %language, "session created");
        Ok(s)
    }

    fn count_for(&self, tenant: &str) -> usize {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|s| s.meta.tenant == tenant)
            .count()
    }

    /// The caller's session, or "not found" (also for another tenant's session).
    pub fn get(&self, caller: &Principal, id: &str) -> Result<Arc<Session>, SessionError> {
        let found = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|s| s.meta.tenant == caller.tenant)
            .cloned();
        found.ok_or_else(|| {
            let lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
            match lost.get(id) {
                Some((tenant, _)) if *tenant == caller.tenant => SessionError::Lost,
                _ => SessionError::NotFound,
            }
        })
    }

    /// Closes a session whose container died, remembering it for a clearer error.
    fn mark_lost(&self, map: &mut HashMap<String, Arc<Session>>, id: &str) {
        if let Some(s) = map.remove(id) {
            tracing::warn!(session = %id, "the session's container died; session closed");
            let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
            lost.retain(|_, (_, at)| at.elapsed() < LOST_MEMORY);
            lost.insert(id.to_string(), (s.meta.tenant.clone(), Instant::now()));
        }
    }

    /// The caller's tenant's sessions, oldest first.
    pub fn list(&self, caller: &Principal) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|s| s.meta.tenant == caller.tenant)
            .cloned()
            .collect();
        v.sort_by_key(|s| s.meta.created_at);
        v
    }

    /// Closes a session; its container is removed.
    pub fn close(&self, caller: &Principal, id: &str) -> Result<(), SessionError> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(s) if s.meta.tenant == caller.tenant => {
                map.remove(id);
                tracing::info!(session = %id, "session closed");
                Ok(())
            }
            _ => Err(SessionError::NotFound),
        }
    }

    /// Runs `f` with the session's container, one command at a time.
    pub async fn with_container<T>(
        &self,
        session: &Session,
        f: impl AsyncFnOnce(&mut Container) -> T,
    ) -> Result<T, SessionError> {
        let wait = self.settings.busy_wait_ms;
        let mut guard = tokio::time::timeout(wait, session.container.lock())
            .await
            .map_err(|_| SessionError::Busy)?;
        // The session may have been closed or expired while we waited.
        if !self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(session.id())
        {
            return Err(SessionError::NotFound);
        }
        // Past its lifetime: closed here, not only by the janitor, which leaves busy
        // sessions alone (back-to-back commands would otherwise keep one for ever).
        let now = Instant::now();
        if now.saturating_duration_since(session.created) >= session.max_lifetime() {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            map.remove(session.id());
            tracing::info!(session = %session.id(), "session reached its maximum lifetime");
            return Err(SessionError::NotFound);
        }
        // Docker reported its container dead: say so once, and close the session.
        if !self.pools.container_alive(&session.container_id) {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            self.mark_lost(&mut map, session.id());
            return Err(SessionError::Lost);
        }
        session.touch();
        let out = f(&mut guard).await;
        session.executions.fetch_add(1, Ordering::Relaxed);
        session.touch();
        if guard.is_broken() {
            // The container died under the command: the session cannot continue.
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            self.mark_lost(&mut map, session.id());
        }
        Ok(out)
    }

    /// Closes sessions past their idle timeout or lifetime at `now` (the janitor passes the
    /// current time; tests pass a later one instead of sleeping). Busy sessions are left
    /// alone until their command ends.
    pub fn expire_at(&self, now: Instant) -> usize {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let expired: Vec<String> = map
            .values()
            .filter(|s| s.container.try_lock().is_ok())
            .filter(|s| s.expired_at(now))
            .map(|s| s.meta.session_id.clone())
            .collect();
        for id in &expired {
            map.remove(id);
            tracing::info!(session = %id, "session expired");
        }
        // Sessions whose container Docker reported dead leave the listings (a command in
        // flight on one fails on its own).
        let lost: Vec<String> = map
            .values()
            .filter(|s| !self.pools.container_alive(&s.container_id))
            .map(|s| s.meta.session_id.clone())
            .collect();
        for id in &lost {
            self.mark_lost(&mut map, id);
        }
        expired.len()
    }

    /// Leaves every session container running for the next gateway process and returns
    /// their ids (so the pool's shutdown sweep spares them). A session busy with a command
    /// gets until `deadline` to finish it first.
    pub async fn detach_all(&self, deadline: tokio::time::Instant) -> HashSet<String> {
        let sessions: Vec<Arc<Session>> = {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            map.drain().map(|(_, s)| s).collect()
        };
        let mut ids = HashSet::new();
        for s in sessions {
            match tokio::time::timeout_at(deadline, s.container.lock()).await {
                Ok(mut c) if c.can_serve() => {
                    c.leave_running();
                    ids.insert(c.id.clone());
                }
                _ => tracing::warn!(session = %s.id(), "session still busy at shutdown; not kept"),
            }
        }
        ids
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Closes expired sessions every `janitor_interval_ms` until shutdown.
pub async fn janitor(sessions: Arc<Sessions>, shutdown: CancellationToken) {
    let every = sessions.settings.janitor_interval_ms;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {
                sessions.expire_at(Instant::now());
            }
        }
    }
}
