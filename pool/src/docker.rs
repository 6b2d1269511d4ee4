//! Docker's view of this gateway's containers: listing them by label, removing them, and
//! tracking removals that outlive the handle that started them.

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use codebeaker_proto::Language;
use std::collections::HashMap;
use std::time::Duration;

use crate::agent::short;
use crate::error::PoolError;
use crate::isolation::{LABEL_INSTANCE, LABEL_LANGUAGE};

/// Removals started by dropped handles. Process-wide: a removal outlives the pool that
/// started it, and the process must not exit before it is done.
pub(crate) static REMOVALS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// Waits (up to `limit`) until every removal started by a dropped handle has finished.
pub async fn removals_settled(limit: Duration) -> bool {
    REMOVALS.close();
    let done = tokio::time::timeout(limit, REMOVALS.wait()).await.is_ok();
    REMOVALS.reopen();
    done
}

/// Force-removes a container, logging (not returning) failures: removal is best effort
/// and the startup sweep catches anything that survives.
pub async fn remove(docker: &Docker, id: &str) {
    if id.is_empty() {
        return;
    }
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => tracing::debug!(container = %short(id), "container removed"),
        // Gone already, or being removed by the other path (a dropped handle and the
        // shutdown sweep can race): both mean the container is going away.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => {}
        Err(e) => tracing::warn!(container = %short(id), error = %e, "container removal failed"),
    }
}

/// Lists this instance's containers: (id, language label, running).
pub async fn list_instance(
    docker: &Docker,
    instance: &str,
) -> Result<Vec<(String, Option<Language>, bool)>, PoolError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(PoolError::Docker)?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let lang = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_LANGUAGE))
                .and_then(|l| Language::parse(l));
            let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
            Some((c.id?, lang, running))
        })
        .collect())
}

/// Removes every container labelled with `instance`: leftovers of an earlier run that
/// crashed, or of this run at shutdown. Returns how many were removed.
pub async fn remove_instance(docker: &Docker, instance: &str) -> Result<usize, PoolError> {
    remove_instance_except(docker, instance, &Default::default()).await
}

/// Like [`remove_instance`], sparing the containers in `keep` (live sessions).
pub async fn remove_instance_except(
    docker: &Docker,
    instance: &str,
    keep: &std::collections::HashSet<String>,
) -> Result<usize, PoolError> {
    let ids: Vec<String> = list_instance(docker, instance)
        .await?
        .into_iter()
        .map(|(id, _, _)| id)
        .filter(|id| !keep.contains(id))
        .collect();
    futures_util::future::join_all(ids.iter().map(|id| remove(docker, id))).await;
    Ok(ids.len())
}
