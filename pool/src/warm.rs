//! The warmer: keeps each language's `min_idle` containers ready ahead of demand.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::error::PoolError;
use crate::pool::{LanguagePool, Pools};

/// Keeps `min_idle` warm containers available for one language until shutdown.
pub(crate) async fn warm_loop(pools: Arc<Pools>, lp: Arc<LanguagePool>) {
    let interval = Duration::from_millis(pools.settings.warm_interval_ms);
    let mut backoff = interval;
    loop {
        // A container that came out of the nursery's creation after the pool had already
        // filled its slots another way: the language is above max_size; the extra goes.
        let over = lp.status().total.saturating_sub(lp.settings.max_size);
        if over > 0 {
            let mut nursery = lp.nursery.lock().unwrap_or_else(|p| p.into_inner());
            let n = over.min(nursery.len());
            let extra: Vec<_> = nursery.drain(..n).collect();
            drop(nursery);
            drop(extra);
        }
        shrink(&pools, &lp);
        let st = lp.status();
        let deficit = st.min_idle.saturating_sub(st.idle + st.warming);
        let room = st.max_size.saturating_sub(st.total);
        // At most two at a time: container start is CPU-heavy and we have few cores.
        let n = deficit.min(room).min(2usize.saturating_sub(st.warming));
        for _ in 0..n {
            lp.warming.fetch_add(1, Ordering::Relaxed);
            let (pools_for_task, pool) = (pools.clone(), lp.clone());
            pools.tasks.spawn(async move {
                // Not cancelled by shutdown: a creation in progress finishes (bounded by the
                // create timeout) and removes itself, so shutdown can wait for it.
                let res = pool.pool.manager().create_detached().await;
                match res {
                    Ok(c) if !pools_for_task.shutdown.is_cancelled() => {
                        pool.nursery.lock().unwrap_or_else(|p| p.into_inner()).push(c)
                    }
                    Ok(_) => {}
                    Err(PoolError::ShuttingDown) => {}
                    Err(e) => tracing::error!(language = %pool.language, error = %e, "warming a container failed"),
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

/// Gives back containers a burst left idle: those idle for `idle_shrink_secs`, beyond the
/// pool's `min_idle` (the nursery counts as idle and is kept first).
fn shrink(pools: &Pools, lp: &LanguagePool) {
    let after = pools.settings.idle_shrink_secs;
    if after == 0 {
        return;
    }
    let after = Duration::from_secs(after);
    let st = lp.status();
    let mut excess = st.idle.saturating_sub(st.min_idle);
    if excess == 0 {
        return;
    }
    let removed = lp
        .pool
        .retain(|_, m| {
            if excess > 0 && m.last_used() >= after {
                excess -= 1;
                false
            } else {
                true
            }
        })
        .removed;
    if !removed.is_empty() {
        lp.lifecycle
            .retired_idle
            .fetch_add(removed.len() as u64, Ordering::Relaxed);
        tracing::debug!(language = %lp.language, n = removed.len(), "idle containers given back");
    }
}
