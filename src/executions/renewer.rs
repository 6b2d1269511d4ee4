//! Renewing a shared store's claims on the executions this replica runs, and stopping the
//! ones it lost.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::AsyncEngine;

impl AsyncEngine {
    /// Renews this replica's claims on the executions it runs, every `every`, so that no
    /// other replica takes them over while this one is alive (a shared store only).
    pub async fn renewer(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.store.renew().await {
                Ok(lost) => {
                    // Cancelled through another replica, or taken over by one (this replica
                    // stopped renewing in time): stop running them here.
                    let running = self.running();
                    for id in lost {
                        if let Some(token) = running.get(&id) {
                            tracing::warn!(execution_id = %id, "no longer this replica's to run; stopping it");
                            token.cancel();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing claims on running executions failed")
                }
            }
        }
    }
}
