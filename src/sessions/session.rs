//! One session: its record (kept in the agent too, for re-adoption), its container behind
//! a one-command-at-a-time lock, its clocks, and the shapes it is shown in.

use chrono::{DateTime, Utc};
use codebeaker_pool::Container;
use codebeaker_proto::Language;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What is stored in the agent so a restarted gateway can re-adopt the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionRecord {
    pub(super) session_id: String,
    pub(super) tenant: String,
    pub(super) language: Language,
    pub(super) created_at: DateTime<Utc>,
    pub(super) idle_timeout_minutes: f64,
    pub(super) max_lifetime_minutes: f64,
    /// Absent in sessions created before these fields existed.
    #[serde(default = "default_runtime")]
    pub(super) runtime: String,
    #[serde(default)]
    pub(super) cpu_shares: Option<u64>,
    #[serde(default)]
    pub(super) memory_limit_mb: Option<u64>,
}

pub(super) fn default_runtime() -> String {
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

/// A live session: its record, its container (one command at a time) and its clocks.
pub struct Session {
    pub(super) meta: SessionRecord,
    pub(super) container_id: String,
    /// The container, locked for the duration of one command.
    pub(super) container: tokio::sync::Mutex<Container>,
    pub(super) created: Instant,
    pub(super) last_activity: Mutex<(Instant, DateTime<Utc>)>,
    pub(super) executions: AtomicU64,
}

impl Session {
    /// The session id callers use.
    pub fn id(&self) -> &str {
        &self.meta.session_id
    }

    /// The language of the session's container.
    pub fn language(&self) -> &Language {
        &self.meta.language
    }

    pub(super) fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.meta.idle_timeout_minutes * 60.0)
    }

    pub(super) fn max_lifetime(&self) -> Duration {
        Duration::from_secs_f64(self.meta.max_lifetime_minutes * 60.0)
    }

    pub(super) fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) =
            (Instant::now(), Utc::now());
    }

    pub(super) fn idle_at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(
            self.last_activity
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0,
        )
    }

    pub(super) fn idle(&self) -> Duration {
        self.idle_at(Instant::now())
    }

    /// Past its idle timeout or its lifetime at `now`.
    pub(super) fn expired_at(&self, now: Instant) -> bool {
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

/// A session is over when it idled for its idle timeout or lived its lifetime.
pub(super) fn expired(
    idle: Duration,
    age: Duration,
    idle_timeout: Duration,
    max_lifetime: Duration,
) -> bool {
    idle >= idle_timeout || age >= max_lifetime
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
