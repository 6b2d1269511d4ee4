//! The start-up sweep of an earlier run's containers (same `pool.instance` label):
//! running session containers whose agent still holds a session are re-adopted (the
//! session manager takes them over); everything else is removed.

use std::time::Duration;

use crate::agent::short;
use crate::config::PoolSettings;
use crate::container::{self, Container};
use crate::docker::Engine;
use crate::error::StartError;

/// How long re-attaching to one container may take.
const REATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Sweeps this instance's containers: returns the re-adopted sessions with their stored
/// metadata.
pub(crate) async fn sweep(
    engine: &Engine,
    settings: &PoolSettings,
) -> Result<Vec<(Container, serde_json::Value)>, StartError> {
    let mut adopted = Vec::new();
    let mut removed = 0;
    for (id, language, running) in engine.list_instance(&settings.instance).await? {
        if let (true, Some(language)) = (running, language) {
            let attempt = tokio::time::timeout(
                REATTACH_TIMEOUT,
                container::reattach(engine, &id, language, settings.limits.memory_mb),
            )
            .await;
            match attempt {
                Ok(Ok((c, Some(meta)))) => {
                    adopted.push((c, meta));
                    continue;
                }
                // Removed just below: its handle must not remove it a second time.
                Ok(Ok((mut c, None))) => c.leave_running(),
                Ok(Err(e)) => {
                    tracing::warn!(container = %short(&id), error = %e, "cannot re-adopt container")
                }
                Err(_) => tracing::warn!(container = %short(&id), "re-adoption timed out"),
            }
        }
        engine.remove(&id).await;
        removed += 1;
    }
    if removed > 0 {
        tracing::warn!(removed, instance = %settings.instance, "removed leftover containers of an earlier run");
    }
    if !adopted.is_empty() {
        tracing::info!(
            sessions = adopted.len(),
            "re-adopted session containers of an earlier run"
        );
    }
    Ok(adopted)
}
