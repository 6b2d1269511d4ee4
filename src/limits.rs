//! Per-caller rate limits and concurrency caps, and global load shedding.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::Quota;
use crate::shared::{Shared, SharedError, SharedPermit};

/// One limiter per (rate, burst).
type ByQuota<C> = HashMap<(u32, u32), Arc<Keyed<C>>>;
type Keyed<C> = RateLimiter<String, DefaultKeyedStateStore<String>, C, StateInformationMiddleware>;

/// Keyed GCRA limiters from governor, one per distinct (rate, burst) quota, keyed by the
/// caller's subject. Keys with the same quota share a limiter; each key has its own state.
/// The clock is a parameter so that tests can move time instead of sleeping.
///
/// With `[shared]` configured the decision is Redis's instead (one GCRA script), so that a
/// key limited to R/s gets R/s across all replicas, not R/s from each.
pub struct RateLimits<C: Clock = DefaultClock> {
    by_quota: Mutex<ByQuota<C>>,
    clock: C,
    shared: Option<Arc<Shared>>,
}

/// Why a request was not let through by the rate limit.
#[derive(Debug)]
pub enum RateError {
    Limited(RateLimited),
    /// The shared limiter (Redis) did not answer.
    Unavailable(SharedError),
}

/// What the `RateLimit-*` headers report.
#[derive(Debug, Clone)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// A refused request: when to retry, and the headers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate limit exceeded; retry after {:.1} s", .retry_after.as_secs_f64())]
pub struct RateLimited {
    pub info: RateInfo,
    pub retry_after: Duration,
}

impl crate::failure::Failure for RateLimited {
    fn kind(&self) -> &'static str {
        "rate_limited"
    }
    fn class(&self) -> crate::failure::Class {
        crate::failure::Class::Overload {
            retry_after: self.retry_after,
            quota: true,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::with_clock(DefaultClock::default())
    }
}

impl RateLimits {
    /// Rate limits decided by the shared Redis.
    pub fn shared(shared: Arc<Shared>) -> Self {
        RateLimits {
            shared: Some(shared),
            ..RateLimits::default()
        }
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Rate limits measured on `clock` (tests pass a clock they move).
    pub fn with_clock(clock: C) -> Self {
        RateLimits {
            by_quota: Mutex::new(HashMap::new()),
            clock,
            shared: None,
        }
    }

    /// `Ok(None)` when the caller has no rate limit. Local, or shared when configured.
    pub async fn check(
        &self,
        subject: &str,
        limits: &Quota,
    ) -> Result<Option<RateInfo>, RateError> {
        let Some(shared) = &self.shared else {
            return self
                .check_local(subject, limits)
                .map_err(RateError::Limited);
        };
        let (Some(rate), burst) = (NonZeroU32::new(limits.rate_per_second), limits.burst) else {
            return Ok(None);
        };
        let (rate, burst) = (rate.get(), burst.max(1));
        let d = shared
            .rate(subject, rate, burst)
            .await
            .map_err(RateError::Unavailable)?;
        let refill = |missing: u32| (missing as u64).div_ceil(rate as u64);
        if d.allowed {
            Ok(Some(RateInfo {
                limit: burst,
                remaining: d.remaining,
                reset_secs: refill(burst - d.remaining),
            }))
        } else {
            Err(RateError::Limited(RateLimited {
                info: RateInfo {
                    limit: burst,
                    remaining: 0,
                    reset_secs: refill(burst),
                },
                retry_after: d.retry_after,
            }))
        }
    }

    /// The local (governor) decision.
    pub fn check_local(
        &self,
        subject: &str,
        limits: &Quota,
    ) -> Result<Option<RateInfo>, RateLimited> {
        let (Some(rate), burst) = (NonZeroU32::new(limits.rate_per_second), limits.burst) else {
            return Ok(None);
        };
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = {
            let mut map = self.by_quota.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((rate.get(), burst.get()))
                .or_insert_with(|| {
                    let quota = governor::Quota::per_second(rate).allow_burst(burst);
                    let limiter: RateLimiter<_, _, _, NoOpMiddleware<C::Instant>> =
                        RateLimiter::new(
                            quota,
                            DefaultKeyedStateStore::default(),
                            self.clock.clone(),
                        );
                    Arc::new(limiter.with_middleware::<StateInformationMiddleware>())
                })
                .clone()
        };
        let refill = |missing: u32| (missing as u64).div_ceil(rate.get() as u64);
        match limiter.check_key(&subject.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(Some(RateInfo {
                    limit: burst.get(),
                    remaining,
                    reset_secs: refill(burst.get() - remaining),
                }))
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(RateLimited {
                    info: RateInfo {
                        limit: burst.get(),
                        remaining: 0,
                        reset_secs: refill(burst.get()),
                    },
                    retry_after: wait,
                })
            }
        }
    }

    /// Forgets callers whose buckets are full again, so memory stays bounded by the
    /// number of recently active keys.
    pub fn prune(&self) {
        let map = self.by_quota.lock().unwrap_or_else(|p| p.into_inner());
        for l in map.values() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Per-caller caps on invocations in flight. Locally, a count per subject with work in
/// flight, judged against the caller's quota at each acquire: a quota changed in the keys
/// file applies to the next call, and a subject's entry goes when its last place is
/// given back (nothing to evict, so a long batch's count is never forgotten and the cap
/// never doubles; the map holds only callers with work in flight). With `[shared]`
/// configured the places are leases in Redis, counted across replicas, that expire after
/// `lease` if a replica dies holding them.
pub struct Concurrency {
    local: Arc<Mutex<HashMap<String, u32>>>,
    shared: Option<(Arc<Shared>, Duration)>,
}

/// A place among a caller's invocations in flight; dropping it gives it back.
pub enum Permit {
    Local(LocalPermit),
    Shared(SharedPermit),
}

/// A place counted in this process; dropping it gives it back.
pub struct LocalPermit {
    counts: Arc<Mutex<HashMap<String, u32>>>,
    subject: String,
}

impl Drop for LocalPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.subject) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            local: Arc::new(Mutex::new(HashMap::new())),
            shared: None,
        }
    }
}

impl Concurrency {
    /// Caps counted in Redis; a lease outlives a dead replica by at most `lease`.
    pub fn shared(shared: Arc<Shared>, lease: Duration) -> Self {
        Concurrency {
            shared: Some((shared, lease)),
            ..Concurrency::default()
        }
    }

    /// A place, `Ok(None)` when the caller already has `max` invocations in flight.
    pub async fn acquire(&self, subject: &str, max: u32) -> Result<Option<Permit>, SharedError> {
        match &self.shared {
            None => Ok(self.try_acquire(subject, max).map(Permit::Local)),
            Some(_) if max == 0 => Ok(None),
            Some((shared, lease)) => Ok(shared
                .acquire(subject, max, *lease)
                .await?
                .map(Permit::Shared)),
        }
    }

    /// A permit, or `None` when the caller already has `max` invocations in flight.
    pub fn try_acquire(&self, subject: &str, max: u32) -> Option<LocalPermit> {
        let mut counts = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.get(subject).copied().unwrap_or(0);
        if n >= max {
            return None;
        }
        counts.insert(subject.to_string(), n + 1);
        Some(LocalPermit {
            counts: self.local.clone(),
            subject: subject.to_string(),
        })
    }

    /// Subjects with places held here (what the local map holds).
    pub fn subjects_in_flight(&self) -> usize {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Global admission: at most `limit` invocations inside the gateway at once.
pub struct Admission {
    in_flight: AtomicUsize,
    limit: usize,
}

/// An admitted invocation; dropping it frees the place.
pub struct AdmissionSlot<'a>(&'a Admission);

impl Drop for AdmissionSlot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Like [`AdmissionSlot`], owning its admission (for spawned tasks).
pub struct OwnedAdmissionSlot(Arc<Admission>);

impl Drop for OwnedAdmissionSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Admission of at most `limit` invocations at once.
    pub fn new(limit: usize) -> Self {
        Admission {
            in_flight: AtomicUsize::new(0),
            limit,
        }
    }

    fn reserve(&self) -> bool {
        let prev = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if prev >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Admits one invocation, or `None` (shed) when the gateway is full.
    pub fn try_admit(&self) -> Option<AdmissionSlot<'_>> {
        self.reserve().then(|| AdmissionSlot(self))
    }

    /// Like [`Admission::try_admit`], for a permit that must outlive the borrow (moved into
    /// a spawned task).
    pub fn try_admit_owned(self: Arc<Self>) -> Option<OwnedAdmissionSlot> {
        self.reserve().then(|| OwnedAdmissionSlot(self))
    }

    /// Invocations admitted now (a metric).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32) -> Quota {
        Quota {
            rate_per_second: rate,
            burst,
            ..Quota::default()
        }
    }

    #[test]
    fn burst_then_refusal_and_other_keys_unaffected() {
        let r = RateLimits::default();
        let l = limits(1, 3);
        for i in 0..3 {
            let info = r.check_local("a", &l).unwrap().unwrap();
            assert_eq!(info.remaining, 2 - i);
        }
        let refused = r.check_local("a", &l).unwrap_err();
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1)
        );
        assert!(
            r.check_local("b", &l).is_ok(),
            "another key has its own bucket"
        );
        assert!(
            r.check_local("a", &limits(0, 0)).unwrap().is_none(),
            "rate 0 = unlimited"
        );
    }

    #[test]
    fn the_bucket_refills_with_time_on_the_limiters_clock() {
        let clock = governor::clock::FakeRelativeClock::default();
        let r = RateLimits::with_clock(clock.clone());
        let l = limits(2, 2);
        r.check_local("a", &l).unwrap();
        r.check_local("a", &l).unwrap();
        let refused = r.check_local("a", &l).unwrap_err();
        assert_eq!(
            refused.retry_after,
            Duration::from_millis(500),
            "one token per 500 ms"
        );
        assert_eq!(refused.info.reset_secs, 1);
        clock.advance(Duration::from_millis(499));
        assert!(r.check_local("a", &l).is_err(), "not yet");
        clock.advance(Duration::from_millis(1));
        let info = r.check_local("a", &l).unwrap().unwrap();
        assert_eq!(info.remaining, 0, "exactly one token came back");
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            r.check_local("a", &l).unwrap().unwrap().remaining,
            1,
            "full again, minus this one"
        );
    }

    #[test]
    fn concurrency_cap_and_admission() {
        let c = Concurrency::default();
        let p1 = c.try_acquire("k", 2).unwrap();
        let _p2 = c.try_acquire("k", 2).unwrap();
        assert!(c.try_acquire("k", 2).is_none());
        drop(p1);
        let p3 = c.try_acquire("k", 2).unwrap();
        // A lowered quota applies at once; a raised one too.
        assert!(c.try_acquire("k", 1).is_none());
        assert!(c.try_acquire("k", 3).is_some());
        drop((p3, _p2));
        // Nothing is kept for a subject with nothing in flight.
        assert_eq!(c.subjects_in_flight(), 0);
        for i in 0..10_000 {
            drop(c.try_acquire(&format!("s{i}"), 1).unwrap());
        }
        assert_eq!(c.subjects_in_flight(), 0);
        let a = Admission::new(1);
        let g = a.try_admit().unwrap();
        assert!(a.try_admit().is_none());
        drop(g);
        assert!(a.try_admit().is_some());
    }
}
