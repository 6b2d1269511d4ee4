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
            spread(&c.id),
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

/// A container's own share (0 to 1/4) taken off `max_uses` and `max_age_secs`. Containers
/// warmed together and served in turn reach a fixed limit together: their replacements
/// would all start at once, on the cores the running calls need (the soak's tail). Spread
/// by the container's id, so each keeps its limit across checkouts.
fn spread(id: &str) -> f64 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (h % 1000) as f64 / 4000.0
}

/// The recycle rules, before the liveness ping: a broken container or one abandoned
/// mid-call (its reply may still arrive) is retired first, then one past its use count,
/// then one past its age; both limits less the container's `spread`.
fn retirement(
    broken: bool,
    in_flight: bool,
    uses: usize,
    age: Duration,
    lang: &LanguageSettings,
    spread: f64,
) -> Option<Retire> {
    let keep = 1.0 - spread.clamp(0.0, 0.25);
    let max_uses = ((lang.max_uses as f64 * keep).ceil() as usize).max(1);
    let max_age = Duration::from_secs(lang.max_age_secs).mul_f64(keep);
    if broken || in_flight {
        Some(Retire::Failure)
    } else if uses >= max_uses {
        Some(Retire::MaxUses)
    } else if age >= max_age {
        Some(Retire::MaxAge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_spread_by_container_so_retirements_do_not_bunch() {
        let lang = LanguageSettings {
            max_uses: 1000,
            ..LanguageSettings::default()
        };
        let limits: Vec<usize> = (0..8)
            .map(|i| {
                let id = format!("{i:064x}");
                (0..=1000)
                    .find(|&u| {
                        retirement(false, false, u, Duration::ZERO, &lang, spread(&id)).is_some()
                    })
                    .unwrap()
            })
            .collect();
        assert!(
            limits.iter().all(|&l| (750..=1000).contains(&l)),
            "{limits:?}"
        );
        let distinct: std::collections::HashSet<_> = limits.iter().collect();
        assert!(distinct.len() >= 6, "eight containers retire at {limits:?}");
    }

    #[test]
    fn recycle_rules_retire_failures_then_uses_then_age() {
        let lang = LanguageSettings {
            max_uses: 3,
            max_age_secs: 60,
            ..LanguageSettings::default()
        };
        let fresh = Duration::from_secs(1);
        assert_eq!(retirement(false, false, 0, fresh, &lang, 0.0), None);
        assert_eq!(
            retirement(false, false, 2, Duration::from_secs(59), &lang, 0.0),
            None
        );
        assert_eq!(
            retirement(true, false, 0, fresh, &lang, 0.0),
            Some(Retire::Failure)
        );
        assert_eq!(
            retirement(false, true, 0, fresh, &lang, 0.0),
            Some(Retire::Failure),
            "abandoned mid-call"
        );
        assert_eq!(
            retirement(false, false, 3, fresh, &lang, 0.0),
            Some(Retire::MaxUses)
        );
        assert_eq!(
            retirement(false, false, 0, Duration::from_secs(60), &lang, 0.0),
            Some(Retire::MaxAge)
        );
        assert_eq!(
            retirement(true, false, 9, Duration::from_secs(600), &lang, 0.0),
            Some(Retire::Failure),
            "a failure is counted as a failure whatever else is true"
        );
    }
}
