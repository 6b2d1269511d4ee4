//! The warmer: keeps each pool's `min_idle` containers ready ahead of demand, and gives
//! back what demand no longer needs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::error::PoolError;
use crate::pool::{LanguagePool, Pools};

/// The warmer only reclaims a tenant's container idle at least this long: one idle for
/// less is in use between calls, and taking it would trade one cold start for another.
const RECLAIM_AFTER: Duration = Duration::from_secs(1);

/// Keeps `min_idle` warm containers available for one pool until shutdown: containers no
/// tenant has used yet (with tenant affinity, a tenant's idle containers serve only it).
pub(crate) async fn warm_loop(pools: Arc<Pools>, lp: Arc<LanguagePool>) {
    let interval = Duration::from_millis(pools.settings.warm_interval_ms);
    let mut backoff = interval;
    loop {
        shrink(&pools, &lp);
        let st = lp.status();
        let deficit = st.min_idle.saturating_sub(st.shared_idle + st.warming);
        // Every slot held by tenants: the longest-idle tenant container makes room, so
        // that a tenant's first call still finds a warm container.
        if deficit > 0 && lp.slots.available_permits() == 0 && pools.settings.tenant_affinity {
            lp.reclaim_idle(RECLAIM_AFTER);
        }
        // At most two at a time: container start is CPU-heavy and we have few cores.
        let mut n = 0;
        while n < deficit && st.warming + n < 2 {
            let Ok(slot) = lp.slots.clone().try_acquire_owned() else {
                break;
            };
            n += 1;
            lp.warming.fetch_add(1, Ordering::Relaxed);
            let (pools_for_task, pool) = (pools.clone(), lp.clone());
            pools.tasks.spawn(async move {
                // Not cancelled by shutdown: a creation in progress finishes (bounded by the
                // create timeout) and removes itself, so shutdown can wait for it.
                // One warming start at a time across all pools: starts are CPU-heavy
                // (runc, mounts, the agent's preload) and share the cores with the calls
                // running now; a caller that needs a container at once starts its own
                // (`Manager::create`) without waiting here.
                let gate = pools_for_task.warming_gate.clone().acquire_owned().await;
                let res = pool.create_detached().await;
                drop(gate);
                match res {
                    Ok(mut c) if !pools_for_task.shutdown.is_cancelled() => {
                        c.slot = Some(slot);
                        pool.nursery
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(c)
                    }
                    Ok(_) => {}
                    Err(PoolError::ShuttingDown) => {}
                    Err(e) => {
                        tracing::error!(pool = %pool.name, error = %e, "warming a container failed")
                    }
                }
                pool.warming.fetch_sub(1, Ordering::Relaxed);
            });
        }
        // Back off while creations keep failing (e.g. a missing image), so a broken
        // setup logs once a few seconds instead of spinning.
        backoff = if lp.status().total == 0 && n > 0 {
            (backoff * 2).min(Duration::from_secs(10))
        } else {
            interval
        };
        tokio::select! {
            _ = pools.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

/// Gives back idle containers demand no longer needs. With tenant affinity: every
/// tenant's container unused for `tenant_idle_secs`. Without: those a burst left idle for
/// `idle_shrink_secs`, beyond `min_idle` (the nursery counts as idle and is kept first).
fn shrink(pools: &Pools, lp: &LanguagePool) {
    let s = &pools.settings;
    let (after, mut excess) = if s.tenant_affinity {
        (s.tenant_idle_secs, usize::MAX)
    } else {
        let st = lp.status();
        (s.idle_shrink_secs, st.idle.saturating_sub(st.min_idle))
    };
    if after == 0 || excess == 0 {
        lp.forget_empty_tenants();
        return;
    }
    let after = Duration::from_secs(after);
    let removed = lp.retain_idle(|c| {
        if excess > 0 && c.idle_since.elapsed() >= after {
            excess -= 1;
            false
        } else {
            true
        }
    });
    if !removed.is_empty() {
        lp.lifecycle
            .retired_idle
            .fetch_add(removed.len() as u64, Ordering::Relaxed);
        tracing::debug!(pool = %lp.name, n = removed.len(), "idle containers given back");
    }
    drop(removed);
    lp.forget_empty_tenants();
}
