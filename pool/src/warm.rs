//! The warmer: keeps each pool's `min_idle` containers ready ahead of demand, and gives
//! back what demand no longer needs.
//!
//! Each round (every `warm_interval_ms`):
//! 1. **shrink**: with tenant affinity, every tenant's container unused for
//!    `tenant_idle_secs` goes; without, those a burst left idle for `idle_shrink_secs`,
//!    beyond `min_idle`;
//! 2. **deficit**: `min_idle` less the containers any tenant may still get and those being
//!    created; with every slot held by tenants, the longest-idle tenant container (idle at
//!    least [`RECLAIM_AFTER`]) makes room, so a tenant's first call still finds a warm one;
//! 3. **start** at most two creations at a time per pool (container start is CPU-heavy),
//!    and one at a time across every pool (the warming gate);
//! 4. **back off** while creations keep failing (a missing image, say): the wait doubles
//!    up to 10 s while the pool has no container at all, so a broken setup logs once a few
//!    seconds instead of spinning.
//!
//! The loop is written against [`Target`], so its decisions are tested without an engine.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::PoolSettings;
use crate::error::PoolError;
use crate::language_pool::LanguagePool;

/// The warmer only reclaims a tenant's container idle at least this long: one idle for
/// less is in use between calls, and taking it would trade one cold start for another.
const RECLAIM_AFTER: Duration = Duration::from_secs(1);

/// The most creations one pool's warmer has under way at once.
const MAX_WARMING: usize = 2;

/// The longest wait between rounds while creations keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What every pool's warmer shares.
#[derive(Clone)]
pub(crate) struct Warmer {
    pub(crate) settings: Arc<PoolSettings>,
    /// Creations run here: shutdown waits for them.
    pub(crate) tasks: TaskTracker,
    /// One warming start at a time across every pool.
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) shutdown: CancellationToken,
}

/// The counts one round decides on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) min_idle: usize,
    /// Containers any tenant may still get.
    pub(crate) shared_idle: usize,
    pub(crate) warming: usize,
    pub(crate) idle: usize,
    pub(crate) total: usize,
}

/// A pool as the warmer sees it.
pub(crate) trait Target: Send + Sync + 'static {
    fn counts(&self) -> Counts;
    fn free_slots(&self) -> usize;
    /// Retires the longest-idle tenant container idle at least `after`; false if none.
    fn reclaim_idle(&self, after: Duration) -> bool;
    /// Retires at most `excess` idle containers unused for `after`; returns how many.
    fn retire_idle_for(&self, after: Duration, excess: usize) -> usize;
    fn forget_empty_tenants(&self);
    /// Takes a free slot and starts one creation into the nursery on `w`; false when no
    /// slot is free.
    fn start_one(self: &Arc<Self>, w: &Warmer) -> bool;
    fn name(&self) -> &str;
}

impl Target for LanguagePool {
    fn counts(&self) -> Counts {
        // `status`, not the bare occupancy: it also marks the pool warmed.
        let st = self.status();
        Counts {
            min_idle: st.min_idle,
            shared_idle: st.shared_idle,
            warming: st.warming,
            idle: st.idle,
            total: st.total,
        }
    }

    fn free_slots(&self) -> usize {
        LanguagePool::free_slots(self)
    }

    fn reclaim_idle(&self, after: Duration) -> bool {
        LanguagePool::reclaim_idle(self, after)
    }

    fn retire_idle_for(&self, after: Duration, excess: usize) -> usize {
        LanguagePool::retire_idle_for(self, after, excess)
    }

    fn forget_empty_tenants(&self) {
        LanguagePool::forget_empty_tenants(self)
    }

    fn start_one(self: &Arc<Self>, w: &Warmer) -> bool {
        // No image, nothing to warm: calls say so (503) and look for it again.
        if !self.image_available() {
            return false;
        }
        let Some(slot) = self.begin_warming() else {
            return false;
        };
        let (pool, w) = (self.clone(), w.clone());
        w.tasks.clone().spawn(async move {
            // Not cancelled by shutdown: a creation in progress finishes (bounded by the
            // create timeout) and removes itself, so shutdown can wait for it.
            // One warming start at a time across all pools: starts are CPU-heavy
            // (runc, mounts, the agent's preload) and share the cores with the calls
            // running now; a caller that needs a container at once starts its own
            // (the sub-pool's `create`) without waiting here.
            let gate = w.gate.clone().acquire_owned().await;
            let res = pool.create_detached().await;
            drop(gate);
            let created = match res {
                Ok(c) if !w.shutdown.is_cancelled() => Some(c),
                Ok(_) | Err(PoolError::ShuttingDown) => None,
                Err(e) => {
                    tracing::error!(pool = %pool.name(), error = %e, "warming a container failed");
                    None
                }
            };
            pool.warmed_one(created, slot);
        });
        true
    }

    fn name(&self) -> &str {
        LanguagePool::name(self)
    }
}

/// Keeps `min_idle` warm containers available for one pool until shutdown: containers no
/// tenant has used yet (with tenant affinity, a tenant's idle containers serve only it).
pub(crate) async fn warm_loop<T: Target>(w: Warmer, lp: Arc<T>) {
    let interval = w.settings.warm_interval_ms;
    let mut backoff = interval;
    loop {
        shrink(&w.settings, &*lp);
        let c = lp.counts();
        let deficit = c.min_idle.saturating_sub(c.shared_idle + c.warming);
        // Every slot held by tenants: the longest-idle tenant container makes room, so
        // that a tenant's first call still finds a warm container.
        if deficit > 0 && lp.free_slots() == 0 && w.settings.tenant_affinity {
            lp.reclaim_idle(RECLAIM_AFTER);
        }
        // At most two at a time: container start is CPU-heavy and we have few cores.
        let mut n = 0;
        while n < deficit && c.warming + n < MAX_WARMING {
            if !lp.start_one(&w) {
                break;
            }
            n += 1;
        }
        backoff = next_wait(backoff, interval, lp.counts().total, n);
        tokio::select! {
            _ = w.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

/// The wait before the next round: doubled (up to [`MAX_BACKOFF`]) while the pool has no
/// container at all although this round started some (they keep failing), else the
/// interval.
fn next_wait(backoff: Duration, interval: Duration, total: usize, started: usize) -> Duration {
    if total == 0 && started > 0 {
        (backoff * 2).min(MAX_BACKOFF)
    } else {
        interval
    }
}

/// What a shrink gives back: containers idle for the returned duration, at most the
/// returned count; `None` when nothing is to be given back.
fn shrink_plan(s: &PoolSettings, c: Counts) -> Option<(Duration, usize)> {
    let (after, excess) = if s.tenant_affinity {
        (s.tenant_idle_secs, usize::MAX)
    } else {
        (s.idle_shrink_secs, c.idle.saturating_sub(c.min_idle))
    };
    (!after.is_zero() && excess > 0).then_some((after, excess))
}

/// Gives back idle containers demand no longer needs (see the module docs); the nursery
/// counts as idle and is kept first.
fn shrink<T: Target + ?Sized>(s: &PoolSettings, lp: &T) {
    let counts = if s.tenant_affinity {
        Counts::default()
    } else {
        lp.counts()
    };
    if let Some((after, excess)) = shrink_plan(s, counts) {
        let n = lp.retire_idle_for(after, excess);
        if n > 0 {
            tracing::debug!(pool = %lp.name(), n, "idle containers given back");
        }
    }
    lp.forget_empty_tenants();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A pool whose creations all fail at once, or (`creates`) succeed.
    struct Fake {
        min_idle: usize,
        free_slots: AtomicUsize,
        creates: bool,
        idle: AtomicUsize,
        starts: Mutex<Vec<tokio::time::Instant>>,
        reclaims: AtomicUsize,
    }

    impl Fake {
        fn new(min_idle: usize, free_slots: usize, creates: bool) -> Arc<Fake> {
            Arc::new(Fake {
                min_idle,
                free_slots: AtomicUsize::new(free_slots),
                creates,
                idle: AtomicUsize::new(0),
                starts: Mutex::new(Vec::new()),
                reclaims: AtomicUsize::new(0),
            })
        }
    }

    impl Target for Fake {
        fn counts(&self) -> Counts {
            let idle = self.idle.load(Ordering::Relaxed);
            Counts {
                min_idle: self.min_idle,
                shared_idle: idle,
                warming: 0,
                idle,
                total: idle,
            }
        }
        fn free_slots(&self) -> usize {
            self.free_slots.load(Ordering::Relaxed)
        }
        fn reclaim_idle(&self, after: Duration) -> bool {
            assert_eq!(after, RECLAIM_AFTER);
            self.reclaims.fetch_add(1, Ordering::Relaxed);
            false
        }
        fn retire_idle_for(&self, _: Duration, _: usize) -> usize {
            0
        }
        fn forget_empty_tenants(&self) {}
        fn start_one(self: &Arc<Self>, _: &Warmer) -> bool {
            if self.free_slots() == 0 {
                return false;
            }
            self.starts
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
            if self.creates {
                self.idle.fetch_add(1, Ordering::Relaxed);
            }
            true
        }
        fn name(&self) -> &str {
            "fake"
        }
    }

    fn warmer(settings: PoolSettings) -> Warmer {
        Warmer {
            settings: Arc::new(settings),
            tasks: TaskTracker::new(),
            gate: Arc::new(Semaphore::new(1)),
            shutdown: CancellationToken::new(),
        }
    }

    /// Runs the warm loop on `lp` for `ms` of paused time; returns the start offsets (ms).
    async fn run_for(w: &Warmer, lp: &Arc<Fake>, ms: u64) -> Vec<u64> {
        let start = tokio::time::Instant::now();
        let task = tokio::spawn(warm_loop(w.clone(), lp.clone()));
        tokio::time::sleep(Duration::from_millis(ms)).await;
        w.shutdown.cancel();
        task.await.unwrap();
        let starts = lp.starts.lock().unwrap();
        starts
            .iter()
            .map(|t| t.duration_since(start).as_millis() as u64)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failing_creations_back_off_doubling_up_to_ten_seconds() {
        let w = warmer(PoolSettings::default());
        let lp = Fake::new(1, 8, false);
        let starts = run_for(&w, &lp, 30_000).await;
        // The interval is 250 ms: 500, 1000, 2000, ... between rounds, at most 10 s.
        assert_eq!(starts, [0, 500, 1_500, 3_500, 7_500, 15_500, 25_500]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deficit_starts_at_most_two_at_a_time_then_rests_at_the_interval() {
        let w = warmer(PoolSettings::default());
        let lp = Fake::new(3, 8, true);
        let starts = run_for(&w, &lp, 1_100).await;
        // Two in the first round, the third one interval later; then the pool is full.
        assert_eq!(starts, [0, 0, 250]);
        assert_eq!(lp.reclaims.load(Ordering::Relaxed), 0, "slots were free");
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_slot_held_by_tenants_the_warmer_reclaims_an_idle_one() {
        let w = warmer(PoolSettings::default());
        let lp = Fake::new(1, 0, true);
        let starts = run_for(&w, &lp, 1_100).await;
        assert!(starts.is_empty(), "no slot, no start");
        // Every round (0, 250, 500, 750, 1000 ms) tries to make room.
        assert_eq!(lp.reclaims.load(Ordering::Relaxed), 5);
        // Without tenant affinity there is no tenant to take a container from.
        let w = warmer(PoolSettings {
            tenant_affinity: false,
            ..PoolSettings::default()
        });
        let lp = Fake::new(1, 0, true);
        run_for(&w, &lp, 1_100).await;
        assert_eq!(lp.reclaims.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn shrink_gives_back_per_tenant_with_affinity_and_the_excess_over_min_idle_without() {
        let mut s = PoolSettings::default();
        let c = Counts {
            min_idle: 2,
            idle: 5,
            ..Counts::default()
        };
        assert_eq!(shrink_plan(&s, c), Some((s.tenant_idle_secs, usize::MAX)));
        s.tenant_affinity = false;
        assert_eq!(shrink_plan(&s, c), Some((s.idle_shrink_secs, 3)));
        let at_min = Counts { idle: 2, ..c };
        assert_eq!(shrink_plan(&s, at_min), None, "nothing beyond min_idle");
        s.idle_shrink_secs = Duration::ZERO;
        assert_eq!(shrink_plan(&s, c), None, "0: never");
    }
}
