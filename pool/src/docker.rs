//! Docker's view of this gateway's containers: listing them by label, removing them, and
//! tracking removals that outlive the handle that started them.

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use codebeaker_proto::Language;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::agent::short;
use crate::error::PoolError;
use crate::isolation::{LABEL_INSTANCE, LABEL_LANGUAGE};

/// Removals started by dropped handles. Process-wide: a removal outlives the pool that
/// started it, and the process must not exit before it is done.
pub(crate) static REMOVALS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// The books: every container this process created or adopted and has not yet seen
/// removed, which of them Docker reported dead, and removals that failed (retried by the
/// reconcile loop). Process-wide like [`REMOVALS`]: container ids are unique, and a
/// removal outlives the handle that started it.
pub(crate) static BOOKS: std::sync::LazyLock<std::sync::Mutex<Books>> =
    std::sync::LazyLock::new(Default::default);

#[derive(Default)]
pub(crate) struct Books {
    live: HashMap<String, Language>,
    dead: HashSet<String>,
    failed_removals: HashSet<String>,
}

pub(crate) fn books() -> std::sync::MutexGuard<'static, Books> {
    BOOKS.lock().unwrap_or_else(|p| p.into_inner())
}

impl Books {
    /// A container this process now owns (just created, or re-adopted).
    pub(crate) fn register(&mut self, id: &str, language: Language) {
        self.live.insert(id.to_string(), language);
    }

    pub(crate) fn knows(&self, id: &str) -> bool {
        self.live.contains_key(id)
    }

    /// Docker says it stopped: it must never be handed out again. Returns whether it was
    /// ours and newly dead.
    pub(crate) fn mark_dead(&mut self, id: &str) -> bool {
        self.live.contains_key(id) && self.dead.insert(id.to_string())
    }

    pub(crate) fn is_dead(&self, id: &str) -> bool {
        self.dead.contains(id)
    }

    fn forget(&mut self, id: &str) {
        self.live.remove(id);
        self.dead.remove(id);
        self.failed_removals.remove(id);
    }

    /// Removals to try again.
    pub(crate) fn failed_removals(&self) -> Vec<String> {
        self.failed_removals.iter().cloned().collect()
    }
}

/// Waits (up to `limit`) until every removal started by a dropped handle has finished.
pub async fn removals_settled(limit: Duration) -> bool {
    REMOVALS.close();
    let done = tokio::time::timeout(limit, REMOVALS.wait()).await.is_ok();
    REMOVALS.reopen();
    done
}

/// Force-removes a container. A failure (the engine is down, say) is logged and put in
/// the books: the reconcile loop retries it until it succeeds, and the startup sweep
/// catches anything that survives the process. Returns whether the container is gone.
pub async fn remove(docker: &Docker, id: &str) -> bool {
    if id.is_empty() {
        return true;
    }
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => {
            tracing::debug!(container = %short(id), "container removed");
            books().forget(id);
            true
        }
        // Gone already: nothing left to do.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            books().forget(id);
            true
        }
        // Being removed by the other path (a dropped handle and a sweep can race).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => false,
        Err(e) => {
            tracing::warn!(container = %short(id), error = %e, "container removal failed; will retry");
            books().failed_removals.insert(id.to_string());
            false
        }
    }
}

/// One of this instance's containers as Docker lists it.
pub(crate) struct Listed {
    pub id: String,
    pub language: Option<Language>,
    /// Docker's state: created, running, paused, restarting, exited, removing, dead.
    pub state: String,
    /// Unix seconds.
    pub created: i64,
}

/// Lists this instance's containers with their state.
pub(crate) async fn list_states(docker: &Docker, instance: &str) -> Result<Vec<Listed>, PoolError> {
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
            let language = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_LANGUAGE))
                .and_then(|l| Language::parse(l));
            let state = c
                .state
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            Some(Listed {
                id: c.id?,
                language,
                state,
                created: c.created.unwrap_or(0),
            })
        })
        .collect())
}

/// Lists this instance's containers: (id, language label, running).
pub async fn list_instance(
    docker: &Docker,
    instance: &str,
) -> Result<Vec<(String, Option<Language>, bool)>, PoolError> {
    Ok(list_states(docker, instance)
        .await?
        .into_iter()
        .map(|c| {
            let running = c.state == ContainerSummaryStateEnum::RUNNING.to_string();
            (c.id, c.language, running)
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

/// What a package variant's image says about itself (`docker/build-variants.sh` labels).
pub(crate) struct VariantImage {
    pub language: Language,
    pub packages: std::collections::BTreeMap<String, String>,
    pub size: i64,
}

/// Reads a variant image's labels; `None` (logged) when the image is missing or is not a
/// variant (no valid language and package labels).
pub(crate) async fn variant_image(docker: &Docker, image: &str) -> Option<VariantImage> {
    let Ok(info) = docker.inspect_image(image).await else {
        tracing::warn!(%image, "package variant not built (make images VARIANTS=<name>); requests for its packages get 422");
        return None;
    };
    let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
    let language = labels.get(LABEL_LANGUAGE).and_then(|l| Language::parse(l));
    let packages = labels
        .get("codebeaker.packages")
        .and_then(|p| serde_json::from_str(p).ok());
    match (language, packages) {
        (Some(language), Some(packages)) => Some(VariantImage {
            language,
            packages,
            size: info.size.unwrap_or(0),
        }),
        _ => {
            tracing::warn!(%image, "image has no valid codebeaker.language and codebeaker.packages labels (docker/build-variants.sh sets them): not offered as a variant");
            None
        }
    }
}
