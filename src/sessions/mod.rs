//! Stateful sessions: a container dedicated to one caller for many commands.
//!
//! A session takes a warm container out of its language's pool (milliseconds) and keeps
//! it until the caller closes it, it idles past its idle timeout, or it reaches its
//! maximum lifetime. Its `/workspace` persists between commands. One command runs at a
//! time; a second waits up to `sessions.busy_wait_ms`, then gets "session busy". Sessions
//! belong to a tenant: another tenant gets "not found", never "forbidden", so ids do not
//! leak. On shutdown, session containers are left running and the next gateway process
//! re-adopts them by label, with their ids, files and timeouts.

pub mod commands;

use chrono::{DateTime, Utc};
use codebeaker_pool::{Container, PoolError, Pools, SessionResources};
use codebeaker_proto::Language;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// What is stored in the agent so a restarted gateway can re-adopt the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    session_id: String,
    tenant: String,
    language: Language,
    created_at: DateTime<Utc>,
    idle_timeout_minutes: f64,
    max_lifetime_minutes: f64,
    /// Absent in sessions created before these fields existed.
    #[serde(default = "default_runtime")]
    runtime: String,
    #[serde(default)]
    cpu_shares: Option<u64>,
    #[serde(default)]
    memory_limit_mb: Option<u64>,
}

fn default_runtime() -> String {
    "docker".into()
}

/// Minutes as a JSON number: an integer when whole (what .NET clients with `int` fields
/// can read), a fraction otherwise.
fn minutes_json(m: f64) -> Value {
    if m.fract() == 0.0 && m.abs() < 1e15 {
        json!(m as i64)
    } else {
        json!(m)
    }
}

pub struct Session {
    meta: Meta,
    container_id: String,
    /// The container, locked for the duration of one command.
    container: tokio::sync::Mutex<Container>,
    created: Instant,
    last_activity: Mutex<(Instant, DateTime<Utc>)>,
    executions: AtomicU64,
}

impl Session {
    pub fn id(&self) -> &str {
        &self.meta.session_id
    }

    pub fn language(&self) -> Language {
        self.meta.language
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.meta.idle_timeout_minutes * 60.0)
    }

    fn max_lifetime(&self) -> Duration {
        Duration::from_secs_f64(self.meta.max_lifetime_minutes * 60.0)
    }

    fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) =
            (Instant::now(), Utc::now());
    }

    fn idle_at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(
            self.last_activity
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0,
        )
    }

    fn idle(&self) -> Duration {
        self.idle_at(Instant::now())
    }

    /// Past its idle timeout or its lifetime at `now`.
    fn expired_at(&self, now: Instant) -> bool {
        expired(
            self.idle_at(now),
            now.saturating_duration_since(self.created),
            self.idle_timeout(),
            self.max_lifetime(),
        )
    }

    fn short_container_id(&self) -> &str {
        &self.container_id[..self.container_id.len().min(12)]
    }

    fn config_view(&self) -> Value {
        json!({
            "idleTimeoutMinutes": minutes_json(self.meta.idle_timeout_minutes),
            "maxLifetimeMinutes": minutes_json(self.meta.max_lifetime_minutes),
            "memoryLimitMB": self.meta.memory_limit_mb,
            "cpuShares": self.meta.cpu_shares,
        })
    }

    /// The `session.create` result shape (what the Loopai client's `SessionCreateResult`
    /// reads; `environmentId` is the newer client's fallback for `containerId`).
    pub fn created_view(&self) -> Value {
        json!({
            "sessionId": self.meta.session_id,
            "containerId": self.short_container_id(),
            "environmentId": self.short_container_id(),
            "language": self.meta.language,
            "runtime": self.meta.runtime,
            "createdAt": self.meta.created_at,
            "state": "Active",
            "config": self.config_view(),
        })
    }

    /// The `session.list` entry shape.
    pub fn list_view(&self) -> Value {
        let (_, last) = *self.last_activity.lock().unwrap_or_else(|p| p.into_inner());
        let busy = self.container.try_lock().is_err();
        json!({
            "sessionId": self.meta.session_id,
            "containerId": self.short_container_id(),
            "environmentId": self.short_container_id(),
            "language": self.meta.language,
            "runtime": self.meta.runtime,
            "createdAt": self.meta.created_at,
            "lastActivity": last,
            "state": if busy { "Active" } else { "Idle" },
            "executionCount": self.executions.load(Ordering::Relaxed),
            "idleMinutes": round2(self.idle().as_secs_f64() / 60.0),
            "lifetimeMinutes": round2(self.created.elapsed().as_secs_f64() / 60.0),
            "config": self.config_view(),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// All live sessions of this gateway.
pub struct Sessions {
    pools: Arc<Pools>,
    settings: SessionSettings,
    map: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// Builds the manager and re-adopts the session containers the pools found at startup.
    pub fn new(pools: Arc<Pools>, settings: SessionSettings) -> Arc<Sessions> {
        let mut map = HashMap::new();
        for (container, raw) in pools.take_adopted() {
            match serde_json::from_value::<Meta>(raw) {
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
        })
    }

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

    pub async fn create(
        &self,
        caller: &Principal,
        p: CreateSession,
    ) -> Result<Arc<Session>, SessionError> {
        let language = Language::parse(&p.language).ok_or_else(|| {
            SessionError::InvalidParams(format!(
                "unsupported language {:?}; supported: python, javascript, go, csharp",
                p.language
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
            .allow_language(language)
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
        let meta = Meta {
            session_id: uuid::Uuid::new_v4().simple().to_string(),
            tenant: caller.tenant.clone(),
            language,
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
            .take_for_session(language, raw, resources)
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
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|s| s.meta.tenant == caller.tenant)
            .cloned()
            .ok_or(SessionError::NotFound)
    }

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
        let wait = Duration::from_millis(self.settings.busy_wait_ms);
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
        session.touch();
        let out = f(&mut guard).await;
        session.executions.fetch_add(1, Ordering::Relaxed);
        session.touch();
        if guard.broken {
            // The container died under the command: the session cannot continue.
            self.map
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(session.id());
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
                Ok(mut c) if !c.in_flight && !c.broken => {
                    c.keep_on_drop = true;
                    ids.insert(c.id.clone());
                }
                _ => tracing::warn!(session = %s.id(), "session still busy at shutdown; not kept"),
            }
        }
        ids
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A session is over when it idled for its idle timeout or lived its lifetime.
fn expired(idle: Duration, age: Duration, idle_timeout: Duration, max_lifetime: Duration) -> bool {
    idle >= idle_timeout || age >= max_lifetime
}

/// Closes expired sessions every `janitor_interval_ms` until shutdown.
pub async fn janitor(sessions: Arc<Sessions>, shutdown: CancellationToken) {
    let every = Duration::from_millis(sessions.settings.janitor_interval_ms);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {
                sessions.expire_at(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_expires_at_its_idle_timeout_or_its_lifetime() {
        let m = |n: u64| Duration::from_secs(60 * n);
        assert!(!expired(m(29), m(100), m(30), m(120)));
        assert!(
            expired(m(30), m(100), m(30), m(120)),
            "idle timeout reached"
        );
        assert!(
            expired(m(0), m(120), m(30), m(120)),
            "lifetime reached while busy"
        );
        assert!(!expired(Duration::ZERO, Duration::ZERO, m(30), m(120)));
    }

    #[test]
    fn minutes_are_integers_when_whole() {
        assert_eq!(minutes_json(30.0), json!(30));
        assert!(minutes_json(30.0).is_i64());
        assert_eq!(minutes_json(0.5), json!(0.5));
    }
}
