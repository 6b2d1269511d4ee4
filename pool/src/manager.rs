//! deadpool's side of a language pool: creating containers (from the warm nursery when it
//! can) and deciding, when one is returned, whether it may serve again.

use codebeaker_proto::Language;
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use bollard::Docker;

use crate::agent::short;
use crate::cache::SharedCache;
use crate::config::{LanguageSettings, PoolSettings};
use crate::container::{self, Container};
use crate::docker;
use crate::error::PoolError;
use crate::queue::WaitEstimate;

/// Container lifecycle counts of one language since startup.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSnapshot {
    pub created: u64,
    pub recycled: u64,
    pub retired_max_uses: u64,
    pub retired_max_age: u64,
    /// Idle beyond `min_idle` for `pool.idle_shrink_secs`.
    pub retired_idle: u64,
    pub retired_failure: u64,
}

/// Container lifecycle counters of one language (exposed as metrics by the gateway).
#[derive(Debug, Default)]
pub struct Lifecycle {
    pub created: AtomicU64,
    pub recycled: AtomicU64,
    pub retired_max_uses: AtomicU64,
    pub retired_max_age: AtomicU64,
    pub retired_idle: AtomicU64,
    pub retired_failure: AtomicU64,
}

/// Creates and recycles one language's containers for deadpool.
pub struct Manager {
    pub(crate) docker: Docker,
    pub(crate) settings: Arc<PoolSettings>,
    pub(crate) language: Language,
    pub(crate) nursery: Arc<Mutex<Vec<Container>>>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) toolchain: Arc<Mutex<Option<String>>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) cache: Option<Arc<SharedCache>>,
    pub(crate) warming: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) wait: Arc<WaitEstimate>,
}

impl Manager {
    fn lang(&self) -> &LanguageSettings {
        &self.settings.languages[&self.language]
    }

    /// Creates a container in its own task: if the caller stops waiting, the creation
    /// still finishes and the container is removed by its `Drop`, never leaked.
    pub(crate) async fn create_detached(&self) -> Result<Container, PoolError> {
        let (docker, settings, language, shutdown) = (
            self.docker.clone(),
            self.settings.clone(),
            self.language,
            self.shutdown.clone(),
        );
        let cache_dir = self.cache.as_ref().map(|c| c.dir().to_path_buf());
        let started = std::time::Instant::now();
        let c = tokio::spawn(async move {
            let mut c =
                container::create(&docker, &settings, language, cache_dir.as_deref()).await?;
            // Finished after shutdown began: the shutdown sweep may already have run, so
            // remove it here, before anyone can lose track of it.
            if shutdown.is_cancelled() {
                docker::remove(&docker, &c.id).await;
                c.keep_on_drop = true;
                return Err(PoolError::ShuttingDown);
            }
            Ok(c)
        })
        .await
        .map_err(|_| PoolError::ShuttingDown)??;
        self.lifecycle.created.fetch_add(1, Ordering::Relaxed);
        self.wait.record_create(started.elapsed());
        self.toolchain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| c.info.toolchain.clone());
        Ok(c)
    }
}

impl managed::Manager for Manager {
    type Type = Container;
    type Error = PoolError;

    async fn create(&self) -> Result<Container, PoolError> {
        // While the warmer is creating containers, wait for one of them instead of starting
        // another: two creations for one slot would take the language past max_size.
        let waited = std::time::Instant::now();
        loop {
            let warm = self.nursery.lock().unwrap_or_else(|p| p.into_inner()).pop();
            if let Some(c) = warm {
                return Ok(c);
            }
            if self.warming.load(Ordering::Relaxed) == 0
                || waited.elapsed() >= self.settings.create_timeout()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::info!(language = %self.language, "no warm container: cold start on the request path");
        self.create_detached().await
    }

    async fn recycle(&self, c: &mut Container, _: &Metrics) -> RecycleResult<PoolError> {
        let lang = self.lang();
        let id = short(&c.id).to_string();
        let retire = |counter: &AtomicU64, why: &'static str| {
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(container = %id, reason = why, "retiring container");
            Err(RecycleError::message(why))
        };
        let dead = docker::books().is_dead(&c.id);
        match retirement(
            c.broken || dead,
            c.in_flight,
            c.uses,
            c.created.elapsed(),
            lang,
        ) {
            Some(Retire::Failure) => return retire(&self.lifecycle.retired_failure, "failure"),
            Some(Retire::MaxUses) => return retire(&self.lifecycle.retired_max_uses, "max_uses"),
            Some(Retire::MaxAge) => return retire(&self.lifecycle.retired_max_age, "max_age"),
            None => {}
        }
        // No ping: an idle container is clean (it went back to the pool only after its
        // `clean` line) and alive as far as Docker's events say; one that died since is
        // caught by the call, which then runs elsewhere (`lost_container`).
        self.lifecycle.recycled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Why a returned container must not serve again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    Failure,
    MaxUses,
    MaxAge,
}

/// The recycle rules, before the liveness ping: a broken container or one abandoned
/// mid-call (its reply may still arrive) is retired first, then one past its use count,
/// then one past its age.
fn retirement(
    broken: bool,
    in_flight: bool,
    uses: usize,
    age: Duration,
    lang: &LanguageSettings,
) -> Option<Retire> {
    if broken || in_flight {
        Some(Retire::Failure)
    } else if uses >= lang.max_uses {
        Some(Retire::MaxUses)
    } else if age >= Duration::from_secs(lang.max_age_secs) {
        Some(Retire::MaxAge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_rules_retire_failures_then_uses_then_age() {
        let lang = LanguageSettings {
            max_uses: 3,
            max_age_secs: 60,
            ..LanguageSettings::default()
        };
        let fresh = Duration::from_secs(1);
        assert_eq!(retirement(false, false, 0, fresh, &lang), None);
        assert_eq!(
            retirement(false, false, 2, Duration::from_secs(59), &lang),
            None
        );
        assert_eq!(
            retirement(true, false, 0, fresh, &lang),
            Some(Retire::Failure)
        );
        assert_eq!(
            retirement(false, true, 0, fresh, &lang),
            Some(Retire::Failure),
            "abandoned mid-call"
        );
        assert_eq!(
            retirement(false, false, 3, fresh, &lang),
            Some(Retire::MaxUses)
        );
        assert_eq!(
            retirement(false, false, 0, Duration::from_secs(60), &lang),
            Some(Retire::MaxAge)
        );
        assert_eq!(
            retirement(true, false, 9, Duration::from_secs(600), &lang),
            Some(Retire::Failure),
            "a failure is counted as a failure whatever else is true"
        );
    }
}
