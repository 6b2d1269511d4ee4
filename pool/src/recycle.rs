//! The recycle rules: when a container returned to its pool must not serve again (a
//! failure, its use count, its age), with each container's limits spread so that
//! containers warmed together do not all retire together. Pure functions; the tenant
//! sub-pool's deadpool manager (`language_pool.rs`) applies them.

use std::time::Duration;

use crate::config::LanguageSettings;

/// Why a returned container must not serve again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retire {
    Failure,
    MaxUses,
    MaxAge,
}

/// A container's own share (0 to 1/4) taken off `max_uses` and `max_age_secs`. Containers
/// warmed together and served in turn reach a fixed limit together: their replacements
/// would all start at once, on the cores the running calls need (the soak's tail). Spread
/// by the container's id, so each keeps its limit across checkouts.
pub(crate) fn spread(id: &str) -> f64 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (h % 1000) as f64 / 4000.0
}

/// The recycle rules, before the liveness ping: a broken container or one abandoned
/// mid-call (its reply may still arrive) is retired first, then one past its use count,
/// then one past its age; both limits less the container's `spread`.
pub(crate) fn retirement(
    broken: bool,
    in_flight: bool,
    uses: usize,
    age: Duration,
    lang: &LanguageSettings,
    spread: f64,
) -> Option<Retire> {
    let keep = 1.0 - spread.clamp(0.0, 0.25);
    let max_uses = ((lang.max_uses.get() as f64 * keep).ceil() as usize).max(1);
    let max_age = lang.max_age_secs.mul_f64(keep);
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
            max_uses: std::num::NonZeroUsize::new(1000).unwrap(),
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
            max_uses: std::num::NonZeroUsize::new(3).unwrap(),
            max_age_secs: Duration::from_secs(60),
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
