//! Container lifecycle counters of one pool: how many were created, recycled, and
//! retired for each reason. Shared by the pool and the leases taken from it; exposed to
//! the gateway as a [`LifecycleSnapshot`] (metrics, `/v1/languages`).

use std::sync::atomic::{AtomicU64, Ordering};

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
pub(crate) struct Lifecycle {
    pub(crate) created: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) retired_max_uses: AtomicU64,
    pub(crate) retired_max_age: AtomicU64,
    pub(crate) retired_idle: AtomicU64,
    pub(crate) retired_reclaimed: AtomicU64,
    pub(crate) retired_failure: AtomicU64,
}

impl Lifecycle {
    pub(crate) fn snapshot(&self) -> LifecycleSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LifecycleSnapshot {
            created: get(&self.created),
            recycled: get(&self.recycled),
            retired_max_uses: get(&self.retired_max_uses),
            retired_max_age: get(&self.retired_max_age),
            retired_idle: get(&self.retired_idle),
            retired_reclaimed: get(&self.retired_reclaimed),
            retired_failure: get(&self.retired_failure),
        }
    }
}
