//! Keeping the pool's books equal to what Docker really has.
//!
//! Two sources, because either alone misses things:
//! - the engine's **event stream** (`die`, `destroy`), filtered by this instance's label:
//!   a container that dies, is killed or is removed behind our back is known at once and
//!   leaves the pool; the stream is reopened with backoff when it drops (an engine
//!   restart), followed by a reconcile, since events of the gap are lost;
//! - a periodic **reconcile**: list our containers, drop from the pool every idle one that
//!   is no longer running, remove every one that is dead or that the books do not know
//!   (a leak), and retry removals that failed while the engine was down.
//!
//! The warmer then refills the pool as usual, and `/readyz` (which counts idle containers)
//! only ever counts live ones.

use bollard::query_parameters::EventsOptionsBuilder;
use codebeaker_proto::Language;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::agent::short;
use crate::docker::{self, books};
use crate::isolation::LABEL_INSTANCE;
use crate::pool::Pools;

/// Counters and Docker's own view, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Health {
    pub(crate) event_reconnects: AtomicU64,
    pub(crate) reconcile_removals: AtomicU64,
    pub(crate) retried_calls: AtomicU64,
    /// Containers of this instance by (language, Docker state), as of the last reconcile.
    pub(crate) docker_states: Mutex<BTreeMap<(String, String), usize>>,
}

/// A snapshot of [`Health`].
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    pub event_reconnects: u64,
    pub reconcile_removals: u64,
    pub retried_calls: u64,
    /// (language, Docker state, count), as Docker listed them at the last reconcile.
    pub docker_states: Vec<(String, String, usize)>,
}

impl Health {
    pub(crate) fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            event_reconnects: self.event_reconnects.load(Ordering::Relaxed),
            reconcile_removals: self.reconcile_removals.load(Ordering::Relaxed),
            retried_calls: self.retried_calls.load(Ordering::Relaxed),
            docker_states: self
                .docker_states
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|((l, s), n)| (l.clone(), s.clone(), *n))
                .collect(),
        }
    }
}

impl Pools {
    /// Docker reported `id` stopped or removed: it leaves the pool now if it is idle (or in
    /// the nursery), and is never handed out again if it is busy.
    pub(crate) fn on_dead(&self, id: &str) {
        if !books().mark_dead(id) {
            return;
        }
        for lp in self.all() {
            let removed = lp.retain_idle(|c| c.id != id);
            let mut nursery = lp.nursery.lock().unwrap_or_else(|p| p.into_inner());
            let before = nursery.len();
            nursery.retain(|c| c.id != id);
            let n = removed.len() + before - nursery.len();
            if n > 0 {
                lp.lifecycle
                    .retired_failure
                    .fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(container = %short(id), pool = %lp.name, "an idle container died; replacing it");
            }
        }
    }

    /// Whether `id` is one of ours and Docker has not reported it dead or gone.
    pub fn container_alive(&self, id: &str) -> bool {
        let b = books();
        b.knows(id) && !b.is_dead(id)
    }

    /// Health counters and Docker's view of our containers.
    pub fn health(&self) -> HealthSnapshot {
        self.health.snapshot()
    }
}

/// Follows the engine's events for this instance's containers until shutdown.
pub(crate) async fn watch_events(pools: Arc<Pools>) {
    let filters = HashMap::from([
        ("type", vec!["container".to_string()]),
        (
            "label",
            vec![format!("{LABEL_INSTANCE}={}", pools.settings.instance)],
        ),
        ("event", vec!["die".to_string(), "destroy".to_string()]),
    ]);
    let mut backoff = Duration::from_millis(100);
    loop {
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        let mut events = pools.docker.events(Some(opts));
        loop {
            let next = tokio::select! {
                _ = pools.shutdown.cancelled() => return,
                e = events.next() => e,
            };
            match next {
                Some(Ok(ev)) => {
                    backoff = Duration::from_millis(100);
                    if let Some(id) = ev.actor.and_then(|a| a.id) {
                        pools.on_dead(&id);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the engine's event stream failed; reopening");
                    break;
                }
                None => {
                    tracing::warn!("the engine's event stream ended; reopening");
                    break;
                }
            }
        }
        pools
            .health
            .event_reconnects
            .fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = pools.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
        // Events of the gap are lost: look at what Docker has now.
        reconcile(&pools).await;
    }
}

/// Reconciles every `reconcile_interval_ms` until shutdown.
pub(crate) async fn reconcile_loop(pools: Arc<Pools>) {
    let every = Duration::from_millis(pools.settings.reconcile_interval_ms);
    loop {
        tokio::select! {
            _ = pools.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        reconcile(&pools).await;
    }
}

/// How old a container unknown to the books must be before it counts as a leak (one
/// being created right now is listed before its creator has registered it).
const UNKNOWN_GRACE_SECS: i64 = 30;

/// Compares Docker's list of our containers with the books and acts on the difference.
pub(crate) async fn reconcile(pools: &Pools) {
    let listed_at = Instant::now();
    let listed = match docker::list_states(&pools.docker, &pools.settings.instance).await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "reconcile: cannot list containers");
            return;
        }
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut states: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut running = HashSet::new();
    let mut to_remove = Vec::new();
    for c in &listed {
        let language = c.language.map_or("unknown", Language::name).to_string();
        *states.entry((language, c.state.clone())).or_default() += 1;
        let ours = books().knows(&c.id);
        match c.state.as_str() {
            "running" => {
                running.insert(c.id.clone());
                if !ours && now - c.created > UNKNOWN_GRACE_SECS {
                    tracing::warn!(container = %short(&c.id), "reconcile: removing a container the books do not know");
                    to_remove.push(c.id.clone());
                }
            }
            // Being started by its creator, or already on its way out.
            "created" | "removing" | "stopping" if ours => {}
            "created" if now - c.created <= UNKNOWN_GRACE_SECS => {}
            _ => {
                pools.on_dead(&c.id);
                to_remove.push(c.id.clone());
            }
        }
    }
    *pools
        .health
        .docker_states
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = states;
    // Idle containers Docker no longer lists at all (removed behind our back), unless they
    // were made after the list was taken.
    for lp in pools.all() {
        let gone: Vec<String> = {
            let nursery = lp.nursery.lock().unwrap_or_else(|p| p.into_inner());
            let mut ids: Vec<String> = nursery
                .iter()
                .filter(|c| c.created < listed_at && !running.contains(&c.id))
                .map(|c| c.id.clone())
                .collect();
            lp.retain_idle(|c| {
                if c.created < listed_at && !running.contains(&c.id) {
                    ids.push(c.id.clone());
                }
                true
            });
            ids
        };
        for id in gone {
            pools.on_dead(&id);
        }
    }
    to_remove.extend(books().failed_removals());
    to_remove.sort();
    to_remove.dedup();
    for id in to_remove {
        if docker::remove(&pools.docker, &id).await {
            pools
                .health
                .reconcile_removals
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
