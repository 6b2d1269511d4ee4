//! Every call this crate makes to the Docker engine, behind one handle: [`Engine`].
//!
//! The rest of the crate never names a Docker API: it asks the engine to create, attach,
//! start, update, inspect, list or remove a container, or to follow its events. The
//! engine also owns the two pieces of state that outlive any one container handle:
//! - the **books**: every container this engine created or adopted and has not seen
//!   removed, which of them Docker reported dead, and removals that failed (the reconcile
//!   loop retries them);
//! - the **removals** started by dropped handles, which shutdown waits for
//!   ([`Engine::removals_settled`]).
//!
//! Both were process-wide statics once; they are the engine's now, and the engine is
//! owned by the `Pools` that made it (and cloned into every container it made).

use bollard::container::AttachContainerResults;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, ContainerUpdateBody};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use codebeaker_proto::Language;
use futures_util::{Stream, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio_util::task::TaskTracker;

use crate::agent::{short, AgentConn};
use crate::config::EngineSettings;
use crate::error::{PoolError, StartError};
use crate::isolation::{LABEL_INSTANCE, LABEL_LANGUAGE};

/// A connection to one Docker engine, with this gateway's books of its containers and
/// the removals in flight. Cheap to clone (all clones share the books).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    books: Arc<Mutex<Books>>,
    removals: TaskTracker,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// The books: see the module docs.
#[derive(Default)]
pub(crate) struct Books {
    live: HashMap<String, Language>,
    dead: HashSet<String>,
    failed_removals: HashSet<String>,
}

impl Books {
    fn forget(&mut self, id: &str) {
        self.live.remove(id);
        self.dead.remove(id);
        self.failed_removals.remove(id);
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

/// What a package variant's image says about itself (`docker/build-variants.sh` labels).
pub(crate) struct VariantImage {
    pub language: Language,
    pub packages: std::collections::BTreeMap<String, String>,
    pub size: i64,
}

/// Docker's view of a container that is not running (see [`Engine::stopped`]).
pub(crate) struct Stopped {
    /// When it stopped, if Docker says.
    pub finished_at: Option<SystemTime>,
    /// Whether the OOM killer took it.
    pub oom_killed: bool,
}

impl Engine {
    /// Connects to the engine `engine` names (a remote one over TCP with TLS, if
    /// configured) and negotiates the API version, so the same binary works against
    /// Debian's Docker 20.10 (API 1.41) and newer engines.
    pub async fn connect(engine: &EngineSettings) -> Result<Engine, StartError> {
        let docker = match (engine.host.as_str(), engine.tls_dir.as_os_str().is_empty()) {
            ("", true) => Docker::connect_with_defaults(),
            (host, true) => Docker::connect_with_host(host),
            (host, false) => {
                let host = match host {
                    "" => "tcp://127.0.0.1:2376",
                    h => h,
                };
                let dir = &engine.tls_dir;
                Docker::connect_with_ssl(
                    host,
                    &dir.join("key.pem"),
                    &dir.join("cert.pem"),
                    &dir.join("ca.pem"),
                    120,
                    bollard::API_DEFAULT_VERSION,
                )
            }
        }
        .map_err(StartError::Engine)?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(StartError::Engine)?;
        docker.ping().await.map_err(StartError::Engine)?;
        Ok(Engine {
            docker,
            books: Arc::default(),
            removals: TaskTracker::new(),
        })
    }

    /// Tracks removals on the owner's task tracker (the gateway's one tracker), so that
    /// its shutdown joins them with everything else.
    pub(crate) fn track_on(&mut self, tasks: TaskTracker) {
        self.removals = tasks;
    }

    /// Whether the engine answers.
    pub async fn alive(&self) -> bool {
        self.docker.ping().await.is_ok()
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A container this engine's owner now holds (just created, or re-adopted).
    pub(crate) fn register(&self, id: &str, language: Language) {
        self.books().live.insert(id.to_string(), language);
    }

    pub(crate) fn knows(&self, id: &str) -> bool {
        self.books().live.contains_key(id)
    }

    /// Docker says it stopped: it must never be handed out again. Returns whether it was
    /// ours and newly dead.
    pub(crate) fn mark_dead(&self, id: &str) -> bool {
        let mut b = self.books();
        b.live.contains_key(id) && b.dead.insert(id.to_string())
    }

    pub(crate) fn is_dead(&self, id: &str) -> bool {
        self.books().dead.contains(id)
    }

    /// Whether `id` is one of ours and Docker has not reported it dead or gone.
    pub(crate) fn is_alive(&self, id: &str) -> bool {
        let b = self.books();
        b.live.contains_key(id) && !b.dead.contains(id)
    }

    /// Removals to try again.
    pub(crate) fn failed_removals(&self) -> Vec<String> {
        self.books().failed_removals.iter().cloned().collect()
    }

    /// Creates (not starts) a container named `name`, and puts it in the books.
    pub(crate) async fn create(
        &self,
        name: &str,
        language: Language,
        body: ContainerCreateBody,
    ) -> Result<String, PoolError> {
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(name).build()),
                body,
            )
            .await
            .map_err(PoolError::CreateContainer)?;
        self.register(&created.id, language);
        Ok(created.id)
    }

    pub(crate) async fn start(&self, id: &str) -> Result<(), PoolError> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(PoolError::StartContainer)
    }

    /// Opens the agent's channel: the container's stdin, stdout and stderr as a live
    /// stream (no replay of earlier output).
    pub(crate) async fn attach(&self, id: &str) -> Result<AgentConn, PoolError> {
        let opts = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .build();
        let streams: AttachContainerResults = self
            .docker
            .attach_container(id, Some(opts))
            .await
            .map_err(PoolError::AttachContainer)?;
        Ok(AgentConn::new(id.to_string(), streams))
    }

    /// Applies new limits to a running container.
    pub(crate) async fn update(
        &self,
        id: &str,
        body: ContainerUpdateBody,
    ) -> Result<(), PoolError> {
        self.docker
            .update_container(id, body)
            .await
            .map_err(PoolError::UpdateContainer)
    }

    /// Docker's state of `id` if it is no longer running (`None`: running, or unknown).
    pub(crate) async fn stopped(&self, id: &str) -> Option<Stopped> {
        let info = self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()?;
        let state = info.state.filter(|s| s.running != Some(true))?;
        Some(Stopped {
            finished_at: state
                .finished_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339(t).ok()),
            oom_killed: state.oom_killed == Some(true),
        })
    }

    /// The ids of this instance's containers that die or are destroyed, as the engine
    /// reports them, until the stream fails or ends.
    pub(crate) fn deaths(
        &self,
        instance: &str,
    ) -> impl Stream<Item = Result<Option<String>, String>> + Send + 'static {
        let filters = HashMap::from([
            ("type", vec!["container".to_string()]),
            ("label", vec![format!("{LABEL_INSTANCE}={instance}")]),
            ("event", vec!["die".to_string(), "destroy".to_string()]),
        ]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        self.docker.events(Some(opts)).map(|e| {
            e.map(|ev| ev.actor.and_then(|a| a.id))
                .map_err(|e| e.to_string())
        })
    }

    /// Force-removes a container. A failure (the engine is down, say) is logged and put
    /// in the books: the reconcile loop retries it until it succeeds, and the startup
    /// sweep catches anything that survives the process. Returns whether it is gone.
    pub async fn remove(&self, id: &str) -> bool {
        if id.is_empty() {
            return true;
        }
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => {
                tracing::debug!(container = %short(id), "container removed");
                self.books().forget(id);
                true
            }
            // Gone already: nothing left to do.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                self.books().forget(id);
                true
            }
            // Being removed by the other path (a dropped handle and a sweep can race).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => false,
            Err(e) => {
                tracing::warn!(container = %short(id), error = %e, "container removal failed; will retry");
                self.books().failed_removals.insert(id.to_string());
                false
            }
        }
    }

    /// Removes `id` in the background, tracked so that shutdown can wait for it (a
    /// dropped container handle). Outside a runtime there is nothing to do it with: the
    /// reconcile loop or the next start's sweep removes it.
    pub(crate) fn remove_in_background(&self, id: String) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let _guard = rt.enter();
            let engine = self.clone();
            self.removals.spawn(async move { engine.remove(&id).await });
        }
    }

    /// Waits (up to `limit`) until every removal started by a dropped handle has finished.
    pub(crate) async fn removals_settled(&self, limit: Duration) -> bool {
        self.removals.close();
        let done = tokio::time::timeout(limit, self.removals.wait())
            .await
            .is_ok();
        self.removals.reopen();
        done
    }

    /// Lists this instance's containers with their state.
    pub(crate) async fn list_states(
        &self,
        instance: &str,
    ) -> Result<Vec<Listed>, bollard::errors::Error> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_INSTANCE}={instance}")],
        )]);
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let language = c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_LANGUAGE))
                    .and_then(|l| Language::new(l));
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
        &self,
        instance: &str,
    ) -> Result<Vec<(String, Option<Language>, bool)>, StartError> {
        Ok(self
            .list_states(instance)
            .await
            .map_err(StartError::Engine)?
            .into_iter()
            .map(|c| {
                let running = c.state == ContainerSummaryStateEnum::RUNNING.to_string();
                (c.id, c.language, running)
            })
            .collect())
    }

    /// Removes every container labelled with `instance`: leftovers of an earlier run that
    /// crashed, or of this run at shutdown. Returns how many were removed.
    pub async fn remove_instance(&self, instance: &str) -> Result<usize, StartError> {
        self.remove_instance_except(instance, &Default::default())
            .await
    }

    /// Like [`Engine::remove_instance`], sparing the containers in `keep` (live sessions).
    pub(crate) async fn remove_instance_except(
        &self,
        instance: &str,
        keep: &HashSet<String>,
    ) -> Result<usize, StartError> {
        let ids: Vec<String> = self
            .list_instance(instance)
            .await?
            .into_iter()
            .map(|(id, _, _)| id)
            .filter(|id| !keep.contains(id))
            .collect();
        futures_util::future::join_all(ids.iter().map(|id| self.remove(id))).await;
        Ok(ids.len())
    }

    /// Reads a variant image's labels; `None` (logged) when the image is missing or is not
    /// a variant (no valid language and package labels).
    /// Whether the engine has `image` (`false` when it cannot be asked either).
    pub(crate) async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    pub(crate) async fn variant_image(&self, image: &str) -> Option<VariantImage> {
        let Ok(info) = self.docker.inspect_image(image).await else {
            tracing::warn!(%image, "package variant not built (make images VARIANTS=<name>); requests for its packages get 422");
            return None;
        };
        let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
        let language = labels.get(LABEL_LANGUAGE).and_then(|l| Language::new(l));
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
}
