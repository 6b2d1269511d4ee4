//! How long a request should wait for a container: proportional to how soon one will be
//! free, judged from the language's recent history, instead of one fixed timeout.
//!
//! A burst that finds every container busy waits about as long as the calls ahead of it
//! take; a burst that finds the pool growing waits about as long as a container takes to
//! start. Either way it waits at least `pool.queue_timeout_ms`, and it is refused at once
//! (503 with `Retry-After`) when the expected wait exceeds `pool.max_queue_wait_ms`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Moving averages of a pool's container hold time (checkout to clean return of a
/// stateless call) and creation time. The callers ahead of one are its tenant sub-pool's
/// waiters (deadpool counts them).
#[derive(Debug)]
pub(crate) struct WaitEstimate {
    hold_us: AtomicU64,
    create_us: AtomicU64,
}

/// Until a language has history: a call holds its container ~50 ms, a start takes ~1 s.
const INITIAL_HOLD: Duration = Duration::from_millis(50);
const INITIAL_CREATE: Duration = Duration::from_secs(1);

impl Default for WaitEstimate {
    fn default() -> Self {
        // 0: no history yet.
        WaitEstimate {
            hold_us: AtomicU64::new(0),
            create_us: AtomicU64::new(0),
        }
    }
}

/// An exponentially weighted moving average (weight 1/8 for the new sample); the first
/// sample replaces the initial guess. Racing updates may lose a sample, which an average
/// can afford.
fn update(cell: &AtomicU64, sample: Duration) {
    let new = (sample.as_micros().min(u64::MAX as u128) as u64).max(1);
    let old = cell.load(Ordering::Relaxed);
    let avg = if old == 0 {
        new
    } else {
        old - old / 8 + new / 8
    };
    cell.store(avg, Ordering::Relaxed);
}

fn average(cell: &AtomicU64, initial: Duration) -> Duration {
    match cell.load(Ordering::Relaxed) {
        0 => initial,
        us => Duration::from_micros(us),
    }
}

/// What the pool looks like to a request about to wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Occupancy {
    pub idle: usize,
    pub busy: usize,
    pub warming: usize,
    pub total: usize,
    pub max_size: usize,
}

impl WaitEstimate {
    pub fn record_hold(&self, d: Duration) {
        update(&self.hold_us, d);
    }

    pub fn record_create(&self, d: Duration) {
        update(&self.create_us, d);
    }

    /// The expected wait of a caller with `ahead` callers before it.
    pub fn expected(&self, occ: Occupancy, ahead: usize) -> Duration {
        if occ.idle > ahead {
            return Duration::ZERO;
        }
        let hold = average(&self.hold_us, INITIAL_HOLD);
        let create = average(&self.create_us, INITIAL_CREATE);
        // Callers beyond the idle ones queue for busy containers: every `busy` returns
        // free one container each per hold time, on average half a hold away.
        let queued = (ahead - occ.idle) as u32;
        let busy = occ.busy.max(1) as u32;
        let from_busy = hold / 2 + hold * queued / busy;
        if occ.total < occ.max_size {
            // The pool may grow: the wait is whichever comes first.
            from_busy.min(create)
        } else {
            from_busy
        }
    }

    /// How long a caller waits before it gets 503: twice the expected wait, at least
    /// `floor`; `None` when the expected wait already exceeds `ceiling` (refuse at once).
    pub fn budget(expected: Duration, floor: Duration, ceiling: Duration) -> Option<Duration> {
        if expected > ceiling {
            return None;
        }
        Some((expected * 2).clamp(floor, ceiling.max(floor)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(idle: usize, busy: usize, max_size: usize) -> Occupancy {
        Occupancy {
            idle,
            busy,
            warming: 0,
            total: idle + busy,
            max_size,
        }
    }

    #[test]
    fn an_idle_container_means_no_wait() {
        let e = WaitEstimate::default();
        assert_eq!(e.expected(occ(2, 6, 8), 1), Duration::ZERO);
    }

    #[test]
    fn a_full_pool_waits_in_proportion_to_the_queue() {
        let e = WaitEstimate::default();
        for _ in 0..100 {
            e.record_hold(Duration::from_millis(100));
        }
        let one = e.expected(occ(0, 8, 8), 0);
        let deep = e.expected(occ(0, 8, 8), 80);
        assert!(one < Duration::from_millis(100), "{one:?}");
        // 80 ahead, 8 containers, ~100 ms each: about a second.
        assert!(
            deep > Duration::from_millis(900) && deep < Duration::from_millis(1200),
            "{deep:?}"
        );
    }

    #[test]
    fn a_pool_that_can_grow_waits_no_longer_than_a_start() {
        let e = WaitEstimate::default();
        for _ in 0..100 {
            e.record_hold(Duration::from_secs(5));
            e.record_create(Duration::from_millis(800));
        }
        let w = e.expected(occ(0, 2, 8), 3);
        assert!(w <= Duration::from_millis(800), "{w:?}");
    }

    #[test]
    fn the_budget_is_bounded_both_ways() {
        let floor = Duration::from_secs(2);
        let ceiling = Duration::from_secs(30);
        let b = |ms| WaitEstimate::budget(Duration::from_millis(ms), floor, ceiling);
        assert_eq!(b(10), Some(floor));
        assert_eq!(b(5_000), Some(Duration::from_secs(10)));
        assert_eq!(b(20_000), Some(ceiling));
        assert_eq!(b(31_000), None);
    }
}
