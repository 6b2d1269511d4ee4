//! Dropping finished executions and settled callbacks once their retention is over.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::AsyncEngine;

impl AsyncEngine {
    /// Removes finished executions and settled callbacks older than the retention, every
    /// minute (or half the retention, if shorter) until shutdown.
    pub async fn purger(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.settings.retention_secs / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let retention = chrono::Duration::seconds(self.settings.retention_secs.as_secs() as i64);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.store.purge(crate::store::now() - retention).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "old executions purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging old executions failed"),
            }
        }
    }
}
