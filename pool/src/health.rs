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
//!
//! The loops ([`watch_events`], [`reconcile_loop`]) are written against [`Watch`], so that
//! their timing (backoff, reopen, reconcile after a gap) is tested without an engine;
//! [`Healer`] is the real one. What a listing means ([`sort_listed`]) is a pure function.

use codebeaker_proto::Language;
use futures_util::{Stream, StreamExt};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

use crate::agent::short;
use crate::docker::{Engine, Listed};
use crate::select::Registry;

/// Counters and Docker's own view, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Health {
    event_reconnects: AtomicU64,
    reconcile_removals: AtomicU64,
    retried_calls: AtomicU64,
    /// Containers of this instance by (language, Docker state), as of the last reconcile.
    docker_states: Mutex<BTreeMap<(String, String), usize>>,
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

    /// A call whose container was gone before it reached it ran again on another.
    pub(crate) fn count_retried_call(&self) {
        self.retried_calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the health loops act on: the engine's death reports, and what to do with them.
pub(crate) trait Watch: Send + Sync {
    /// Ids of our containers as they die or are destroyed, until the stream fails or ends.
    fn deaths(&self) -> impl Stream<Item = Result<Option<String>, String>> + Send;
    /// Docker reported `id` stopped or removed.
    fn on_dead(&self, id: &str);
    /// The event stream was reopened.
    fn reopened(&self);
    /// Compares Docker's list of our containers with the books and acts on it.
    fn reconcile(&self) -> impl Future<Output = ()> + Send;
}

/// The real [`Watch`]: the engine's books, and the pools whose idle containers leave
/// when Docker says they died.
pub(crate) struct Healer {
    pub(crate) engine: Engine,
    pub(crate) registry: Arc<Registry>,
    pub(crate) health: Arc<Health>,
    pub(crate) instance: String,
}

impl Watch for Healer {
    fn deaths(&self) -> impl Stream<Item = Result<Option<String>, String>> + Send {
        self.engine.deaths(&self.instance)
    }

    /// Docker reported `id` stopped or removed: it leaves the pool now if it is idle (or
    /// in the nursery), and is never handed out again if it is busy.
    fn on_dead(&self, id: &str) {
        if !self.engine.mark_dead(id) {
            return;
        }
        for lp in self.registry.all() {
            if lp.drop_dead(id) > 0 {
                tracing::warn!(container = %short(id), pool = %lp.name(), "an idle container died; replacing it");
            }
        }
    }

    fn reopened(&self) {
        self.health.event_reconnects.fetch_add(1, Ordering::Relaxed);
    }

    async fn reconcile(&self) {
        let listed_at = Instant::now();
        let listed = match self.engine.list_states(&self.instance).await {
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
        let sorted = sort_listed(&listed, |id| self.engine.knows(id), now);
        for id in &sorted.unknown {
            tracing::warn!(container = %short(id), "reconcile: removing a container the books do not know");
        }
        for id in &sorted.dead {
            self.on_dead(id);
        }
        *self
            .health
            .docker_states
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = sorted.states;
        // Idle containers Docker no longer lists at all (removed behind our back), unless
        // they were made after the list was taken.
        for lp in self.registry.all() {
            let mut gone: Vec<String> = lp
                .nursery_ids_before(listed_at)
                .into_iter()
                .filter(|id| !sorted.running.contains(id))
                .collect();
            lp.retain_idle(|c| {
                if c.created < listed_at && !sorted.running.contains(&c.id) {
                    gone.push(c.id.clone());
                }
                true
            });
            for id in gone {
                self.on_dead(&id);
            }
        }
        let mut to_remove: Vec<String> = sorted.unknown.into_iter().chain(sorted.dead).collect();
        to_remove.extend(self.engine.failed_removals());
        to_remove.sort();
        to_remove.dedup();
        for id in to_remove {
            if self.engine.remove(&id).await {
                self.health
                    .reconcile_removals
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The event stream's reopen backoff: from this, doubled per failure, up to
/// [`REOPEN_MAX`]; back to this after an event.
const REOPEN_MIN: Duration = Duration::from_millis(100);
const REOPEN_MAX: Duration = Duration::from_secs(5);

/// Follows the engine's events for this instance's containers until shutdown.
pub(crate) async fn watch_events<W: Watch>(w: &W, shutdown: CancellationToken) {
    let mut backoff = REOPEN_MIN;
    loop {
        let events = w.deaths();
        let mut events = std::pin::pin!(events);
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.next() => e,
            };
            match next {
                Some(Ok(id)) => {
                    backoff = REOPEN_MIN;
                    if let Some(id) = id {
                        w.on_dead(&id);
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
        w.reopened();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(REOPEN_MAX);
        // Events of the gap are lost: look at what Docker has now.
        w.reconcile().await;
    }
}

/// Reconciles every `every` until shutdown.
pub(crate) async fn reconcile_loop<W: Watch>(w: &W, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        w.reconcile().await;
    }
}

/// How old a container unknown to the books must be before it counts as a leak (one
/// being created right now is listed before its creator has registered it).
const UNKNOWN_GRACE_SECS: i64 = 30;

/// What one listing of our containers says.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Sorted {
    /// Containers by (language, Docker state).
    pub(crate) states: BTreeMap<(String, String), usize>,
    pub(crate) running: HashSet<String>,
    /// Running, older than the grace period, and not in the books: a leak, removed.
    pub(crate) unknown: Vec<String>,
    /// Stopped or dead (or created long ago by no one): out of the pool, and removed.
    pub(crate) dead: Vec<String>,
}

/// Sorts Docker's listing at unix time `now`; `ours` says whether the books know an id.
pub(crate) fn sort_listed(listed: &[Listed], ours: impl Fn(&str) -> bool, now: i64) -> Sorted {
    let mut out = Sorted::default();
    for c in listed {
        let language = c
            .language
            .as_ref()
            .map_or("unknown", Language::name)
            .to_string();
        *out.states.entry((language, c.state.clone())).or_default() += 1;
        let ours = ours(&c.id);
        match c.state.as_str() {
            "running" => {
                out.running.insert(c.id.clone());
                if !ours && now - c.created > UNKNOWN_GRACE_SECS {
                    out.unknown.push(c.id.clone());
                }
            }
            // Being started by its creator, or already on its way out.
            "created" | "removing" | "stopping" if ours => {}
            "created" if now - c.created <= UNKNOWN_GRACE_SECS => {}
            _ => out.dead.push(c.id.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A fake engine whose event stream yields `events` once, then fails every time.
    #[derive(Default)]
    struct Fake {
        opened: AtomicUsize,
        events: Mutex<Vec<Result<Option<String>, String>>>,
        dead: Mutex<Vec<String>>,
        reconciles: Mutex<Vec<tokio::time::Instant>>,
    }

    impl Watch for Fake {
        fn deaths(&self) -> impl Stream<Item = Result<Option<String>, String>> + Send {
            self.opened.fetch_add(1, Ordering::Relaxed);
            let batch = std::mem::take(&mut *self.events.lock().unwrap());
            futures_util::stream::iter(batch).chain(futures_util::stream::once(async {
                Err("engine restarting".to_string())
            }))
        }
        fn on_dead(&self, id: &str) {
            self.dead.lock().unwrap().push(id.to_string());
        }
        fn reopened(&self) {}
        async fn reconcile(&self) {
            self.reconciles
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
        }
    }

    fn offsets(start: tokio::time::Instant, at: &[tokio::time::Instant]) -> Vec<u64> {
        at.iter()
            .map(|t| t.duration_since(start).as_millis() as u64)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_event_stream_is_reopened_with_doubling_backoff_and_a_reconcile_each_time() {
        let fake = Arc::new(Fake::default());
        let shutdown = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let task = tokio::spawn({
            let (fake, shutdown) = (fake.clone(), shutdown.clone());
            async move { watch_events(&*fake, shutdown).await }
        });
        tokio::time::sleep(Duration::from_secs(20)).await;
        shutdown.cancel();
        task.await.unwrap();
        let at = offsets(start, &fake.reconciles.lock().unwrap());
        // 100, 200, 400, ... ms between reopenings, capped at 5 s.
        assert_eq!(
            at,
            [100, 300, 700, 1_500, 3_100, 6_300, 11_300, 16_300],
            "reconciles after each gap"
        );
        assert_eq!(fake.opened.load(Ordering::Relaxed), at.len() + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_resets_the_backoff_and_names_the_dead_container() {
        let fake = Arc::new(Fake::default());
        let shutdown = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let task = tokio::spawn({
            let (fake, shutdown) = (fake.clone(), shutdown.clone());
            async move { watch_events(&*fake, shutdown).await }
        });
        // Three failures (backoff now 800 ms), then one stream with events in it.
        tokio::time::sleep(Duration::from_millis(750)).await;
        *fake.events.lock().unwrap() = vec![Ok(Some("abc".into())), Ok(None)];
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(*fake.dead.lock().unwrap(), ["abc"]);
        let at = offsets(start, &fake.reconciles.lock().unwrap());
        // Opened at 700 (before the events were queued) and failed: 800 ms later, at
        // 1500, the stream with events; after them the backoff is back to 100 ms.
        assert_eq!(at, [100, 300, 700, 1_500, 1_600, 1_800], "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_reconcile_loop_runs_every_interval_until_shutdown() {
        let fake = Arc::new(Fake::default());
        let shutdown = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let task = tokio::spawn({
            let (fake, shutdown) = (fake.clone(), shutdown.clone());
            async move { reconcile_loop(&*fake, Duration::from_secs(5), shutdown).await }
        });
        tokio::time::sleep(Duration::from_millis(16_000)).await;
        shutdown.cancel();
        task.await.unwrap();
        let at = offsets(start, &fake.reconciles.lock().unwrap());
        assert_eq!(at, [5_000, 10_000, 15_000]);
    }

    #[test]
    fn a_listing_sorts_into_running_leaked_and_dead() {
        let c = |id: &str, state: &str, created: i64| Listed {
            id: id.into(),
            language: Some(Language::Python),
            state: state.into(),
            created,
        };
        let now = 1_000;
        let listed = [
            c("ours-running", "running", 0),
            c("leak", "running", 900),
            c("new-unknown", "running", 990),
            c("ours-starting", "created", 0),
            c("stale-created", "created", 900),
            c("fresh-created", "created", 990),
            c("exited", "exited", 0),
        ];
        let ours = |id: &str| id.starts_with("ours");
        let s = sort_listed(&listed, ours, now);
        assert_eq!(s.unknown, ["leak"]);
        assert_eq!(s.dead, ["stale-created", "exited"]);
        assert_eq!(s.running.len(), 3);
        assert_eq!(s.states[&("python".into(), "running".into())], 3);
    }
}
