//! deadpool's side of a tenant's pool: creating containers (claimed from the language's
//! warm nursery when it can) and deciding, when one is returned, whether it may serve again.

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration;

use crate::agent::short;
use crate::config::LanguageSettings;
use crate::container::Container;
use crate::docker;
use crate::error::PoolError;
use crate::pool::LanguagePool;

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
    /// Idle containers of one tenant retired to make room for another (tenant affinity).
    pub retired_reclaimed: u64,
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
    pub retired_reclaimed: AtomicU64,
    pub retired_failure: AtomicU64,
}

/// Creates and recycles containers for deadpool: one manager per tenant sub-pool of a
/// language (or variant) pool.
pub struct Manager {
    /// The language pool this tenant pool is carved from (it owns the tenant pools).
    pub(crate) lp: Weak<LanguagePool>,
}

impl managed::Manager for Manager {
    type Type = Container;
    type Error = PoolError;

    async fn create(&self) -> Result<Container, PoolError> {
        // A tenant's pool grows only by claiming a fresh container from the language's
        // shared idle set (or a cold start in a free slot): never one another tenant used.
        let lp = self.lp.upgrade().ok_or(PoolError::ShuttingDown)?;
        lp.claim_fresh().await
    }

    async fn recycle(&self, c: &mut Container, _: &Metrics) -> RecycleResult<PoolError> {
        let Some(lp) = self.lp.upgrade() else {
            return Err(RecycleError::message("pool closed"));
        };
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
            &lp.settings,
        ) {
            Some(Retire::Failure) => return retire(&lp.lifecycle.retired_failure, "failure"),
            Some(Retire::MaxUses) => return retire(&lp.lifecycle.retired_max_uses, "max_uses"),
            Some(Retire::MaxAge) => return retire(&lp.lifecycle.retired_max_age, "max_age"),
            None => {}
        }
        // No ping: an idle container is clean (it went back to the pool only after its
        // `clean` line) and alive as far as Docker's events say; one that died since is
        // caught by the call, which then runs elsewhere (`lost_container`).
        lp.lifecycle.recycled.fetch_add(1, Ordering::Relaxed);
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
