//! Building and running the gateway: `build` binds and warms, `run` serves until shutdown.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use codebeaker_pool::{Pools, StartError};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Authenticator, SetupError};
use crate::invoke::Invoker;
use crate::limits::{Admission, Concurrency, RateLimits};

use crate::config::{ConfigError, Settings};
use crate::routes::{batch, compat, execute, executions, meta, sessions};
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::state::AppState;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    // Configuration, or a file it names (keys file, PEM keys): exit code 64.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the Docker engine is not reachable ({0}); start dockerd or set DOCKER_HOST")]
    Docker(#[source] StartError),
    /// A pool setting that names an unusable path (exit code 64).
    #[error(transparent)]
    PoolPath(StartError),
    #[error(transparent)]
    Auth(#[from] SetupError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// `[shared]` names a Redis that does not answer (exit code 64).
    #[error("{0}; check shared.redis_url")]
    Shared(#[from] crate::shared::SharedError),
    /// `languages.dir` holds a broken recipe, or `languages.enabled` names none (exit 64).
    #[error("languages: {0}")]
    Recipe(#[from] codebeaker_recipe::RecipeError),
    #[error("languages.enabled: {0}")]
    UnknownLanguage(#[from] codebeaker_recipe::UnknownLanguage),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl StartupError {
    /// Caused by the configuration or the files it names (the process exits with 64).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StartupError::Config(_)
                | StartupError::Auth(_)
                | StartupError::Store(_)
                | StartupError::PoolPath(_)
                | StartupError::Shared(_)
                | StartupError::Recipe(_)
                | StartupError::UnknownLanguage(_)
        )
    }
}

/// A gateway that is bound and warming, not yet serving.
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    shutdown: CancellationToken,
}

impl Application {
    /// Validates the settings, connects to Docker, removes leftovers of an earlier run,
    /// starts warming the pools and binds the listener (port 0 picks a free port).
    pub async fn build(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, StartupError> {
        settings.validate()?;
        // Every background task of this process, joined under the one shutdown deadline.
        let tasks = tokio_util::task::TaskTracker::new();
        let auth = Arc::new(Authenticator::new(&settings.auth)?);
        // Before Docker and the port: a bad database path, or a Redis that does not answer,
        // is a configuration error.
        let shared = match settings.shared.enabled() {
            true => Some(Shared::connect(&settings.shared, &settings.pool.instance).await?),
            false => None,
        };
        let retention = settings.executions.retention_secs;
        let store: Arc<dyn crate::store::JobStore> = match &shared {
            Some(s) => Arc::new(crate::store::RedisStore::connect(s, retention).await?),
            None => Arc::new(crate::store::SqliteStore::open(
                &settings.executions.database,
            )?),
        };
        let docker = codebeaker_pool::connect_to(&settings.pool.engine)
            .await
            .map_err(StartupError::Docker)?;
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind { addr, source })
        };
        let listener = bind(settings.server.bind).await?;
        let metrics_listener = match settings.server.metrics_bind {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        // Before the pools sweep this instance's leftovers: a second live process with the
        // same label must be refused before it touches the first one's containers.
        if let Some(s) = &shared {
            let local = listener.local_addr().map_err(|source| StartupError::Bind {
                addr: settings.server.bind,
                source,
            })?;
            let advertise = match settings.shared.advertise_url.as_str() {
                // The others cannot reach "0.0.0.0": the address must be given.
                "" if local.ip().is_unspecified() => {
                    return Err(StartupError::Config(ConfigError::Invalid(format!(
                        "shared.advertise_url must be set when server.bind is {local} (the other replicas need an address they can reach)"
                    ))))
                }
                "" => format!("http://{local}"),
                url => url.trim_end_matches('/').to_string(),
            };
            s.set_advertise(advertise);
            s.claim_instance().await?;
            tasks.spawn(s.clone().heartbeat(shutdown.child_token()));
        }
        // The signal stops only the pools' warmers and health loops: they keep serving the
        // requests that drain after it, and stop taking work in `stop` once the drain is over.
        let recipes = Arc::new(
            codebeaker_recipe::Registry::load(&settings.languages.dir)?
                .only(&settings.languages.enabled)?,
        );
        tracing::info!(
            dir = %settings.languages.dir.display(),
            languages = ?recipes.languages().map(|l| l.name()).collect::<Vec<_>>(),
            "language recipes loaded"
        );
        let anonymous = match settings.compat.anonymous {
            false => None,
            true => {
                let p = crate::auth::anonymous(&settings.compat, &recipes)
                    .map_err(|m| StartupError::Config(ConfigError::Invalid(m)))?;
                // Loud on purpose: anyone who reaches this port can run code as this caller.
                tracing::warn!(
                    tenant = %p.tenant,
                    rate_per_second = p.quota.rate_per_second,
                    max_concurrent = p.quota.max_concurrent,
                    "compat.anonymous is ON: requests without a credential to the Piston and Judge0 APIs run code as the anonymous caller"
                );
                Some(Arc::new(p))
            }
        };
        let mut pool_settings = settings.pool.clone();
        pool_settings.languages_dir = settings.languages.dir.clone();
        let pools = Pools::start(
            docker,
            pool_settings,
            recipes,
            settings.instances.clone(),
            shutdown.child_token(),
            tasks.clone(),
        )
        .await
        .map_err(|e| match e {
            StartError::CompileCache { .. } => StartupError::PoolPath(e),
            e => StartupError::Docker(e),
        })?;
        let rate = Arc::new(match &shared {
            Some(s) => RateLimits::shared(s.clone()),
            None => RateLimits::default(),
        });
        let reload_every = settings.auth.reload_interval_ms;
        tasks.spawn(crate::auth::keys::watch(
            auth.keys.clone(),
            reload_every,
            shutdown.child_token(),
        ));
        tasks.spawn(prune_rate_limits(rate.clone(), shutdown.child_token()));
        tasks.spawn(crate::metrics::upkeep(
            crate::metrics::install(),
            Duration::from_secs(5),
            shutdown.child_token(),
        ));
        let sessions = Sessions::new(
            pools.clone(),
            settings.sessions.clone(),
            shared.as_ref().map(|s| s.instance.clone()),
        );
        tasks.spawn(crate::sessions::janitor(
            sessions.clone(),
            shutdown.child_token(),
        ));
        let settings = Arc::new(settings);
        let admission = Arc::new(Admission::new(settings.limits.admission_limit.get()));
        let invoker = Arc::new(Invoker {
            settings: settings.clone(),
            pools: pools.clone(),
            admission: admission.clone(),
            // A lease outlives a replica that died holding it by at most the longest call.
            concurrency: match &shared {
                Some(s) => Concurrency::shared(
                    s.clone(),
                    settings.limits.max_timeout_ms
                        + settings.limits.compile_timeout_ms
                        + Duration::from_secs(30),
                ),
                None => Concurrency::default(),
            },
        });
        let executions = crate::executions::AsyncEngine::new(
            store,
            invoker.clone(),
            auth.clone(),
            settings.executions.clone(),
            settings.webhooks.clone(),
        );
        let crate::store::Recovered { requeued, failed } = executions.recover().await?;
        if requeued + failed > 0 {
            tracing::warn!(
                requeued,
                failed,
                "executions that were running when the gateway stopped"
            );
        }
        for _ in 0..settings.executions.workers {
            tasks.spawn(executions.clone().worker(shutdown.clone()));
        }
        tasks.spawn(executions.clone().purger(shutdown.child_token()));
        if shared.is_some() {
            let every = settings.shared.visibility_timeout_ms / 4;
            tasks.spawn(executions.clone().renewer(every, shutdown.child_token()));
        }
        tasks.spawn(crate::webhooks::sender(
            executions.store(),
            auth.clone(),
            settings.webhooks.clone(),
            shutdown.child_token(),
        ));
        let state = AppState {
            settings,
            pools,
            auth,
            rate,
            admission,
            invoker,
            metrics: crate::metrics::install(),
            sessions,
            executions,
            anonymous,
            shared,
            shutdown: shutdown.clone(),
            tasks,
        };
        Ok(Application {
            listener,
            metrics_listener,
            state,
            shutdown,
        })
    }

    /// The port the API listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The port `/metrics` is served on when it has its own listener.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// The pools (tests and the binary wait for them to warm).
    pub fn pools(&self) -> Arc<Pools> {
        self.state.pools.clone()
    }

    /// The session manager.
    pub fn sessions(&self) -> Arc<Sessions> {
        self.state.sessions.clone()
    }

    /// The credential stores (tests reload the keys file through it instead of waiting
    /// for the file watcher).
    pub fn auth(&self) -> Arc<Authenticator> {
        self.state.auth.clone()
    }

    /// Serves until `shutdown` is cancelled, or until the server stops by itself (an accept
    /// error); both end in the same [`Application::stop`] sequence.
    pub async fn run(self) -> std::io::Result<()> {
        let tasks = self.state.tasks.clone();
        if let Some(l) = self.metrics_listener {
            let metrics_router = Router::new()
                .route("/metrics", get(meta::metrics))
                .with_state(self.state.clone());
            let token = self.shutdown.clone();
            tasks.spawn(async move {
                let _ = axum::serve(l, metrics_router)
                    .with_graceful_shutdown(async move { token.cancelled().await })
                    .await;
            });
        }
        let server_settings = &self.state.settings.server;
        let limits = crate::serve::ConnectionLimits {
            header_read_timeout: server_settings.header_read_timeout_ms,
            max_connections: server_settings.max_connections.get(),
        };
        let stopping = Stopping {
            grace: server_settings.shutdown_grace_ms,
            pools: self.state.pools.clone(),
            sessions: self.state.sessions.clone(),
            tasks,
            shutdown: self.shutdown.clone(),
        };
        let mut server = tokio::spawn(crate::serve::serve(
            self.listener,
            router(self.state),
            limits,
            self.shutdown.clone(),
        ));
        let finished = tokio::select! {
            r = &mut server => Some(r),
            _ = self.shutdown.cancelled() => None,
        };
        stopping.stop(server, finished).await
    }
}

/// What the shutdown sequence needs once the state has gone into the router.
struct Stopping {
    grace: Duration,
    pools: Arc<Pools>,
    sessions: Arc<Sessions>,
    tasks: tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
}

impl Stopping {
    /// The one shutdown sequence, all within one `server.shutdown_grace_ms` counted from
    /// its start: signal every task; stop accepting and let in-flight requests, WebSocket
    /// commands and session commands finish; join every background task; keep live
    /// sessions' containers for the next process; then (only now) stop the pools, remove
    /// every other container and wait for the removals.
    async fn stop(
        self,
        mut server: tokio::task::JoinHandle<std::io::Result<()>>,
        finished: Option<Result<std::io::Result<()>, tokio::task::JoinError>>,
    ) -> std::io::Result<()> {
        // An accept error stops the server without the signal: the tasks still need it.
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + self.grace;
        let served = match finished {
            Some(r) => Ok(r),
            None => tokio::time::timeout_at(deadline, &mut server).await,
        };
        self.tasks.close();
        let tasks_done = tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_ok();
        if served.is_err() || !tasks_done {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                "requests still running when the grace period ended; closing them"
            );
        }
        server.abort();
        // Live sessions survive a restart: their containers stay up for re-adoption.
        let keep = self.sessions.detach_all(deadline).await;
        self.pools.shutdown_keeping(deadline, &keep).await;
        match served {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            // Cut at the deadline: the drain's result is unknown, not an error.
            Err(_) => Ok(()),
        }
    }
}

/// The route table. `/v1` routes pass the auth layer; probes, metrics, the console and the API
/// document do not.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.limits.max_body_bytes.get();
    let body_read_timeout_ms = state.settings.server.body_read_timeout_ms;
    let batch_body_limit = state.settings.limits.max_batch_body_bytes.get();
    let v1 = Router::new()
        .route("/v1/execute", post(execute::execute))
        .route(
            "/v1/execute/batch",
            // A batch carries many inputs: its own, larger body limit.
            post(batch::batch).layer(DefaultBodyLimit::max(batch_body_limit)),
        )
        .route("/api/execute", post(compat::execute))
        .route("/api/execute/async", post(executions::seed_submit))
        .route("/api/execute/status/{id}", get(executions::seed_status))
        .route(
            "/v1/executions",
            post(executions::submit)
                .get(executions::list)
                // An async batch carries many inputs, as a sync one does.
                .layer(DefaultBodyLimit::max(batch_body_limit)),
        )
        .route(
            "/v1/executions/{id}",
            get(executions::get).delete(executions::cancel),
        )
        .route("/v1/webhooks/dead", get(executions::dead_letters))
        .route("/v1/webhooks/secret", get(executions::webhook_secret))
        .route("/v1/languages", get(meta::languages))
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route(
            "/v1/sessions/{id}",
            get(sessions::get).delete(sessions::close),
        )
        .route("/v1/sessions/{id}/commands", post(sessions::command))
        .route(
            crate::routes::auth::WEBSOCKET_PATH,
            get(crate::jsonrpc::upgrade),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::routes::auth::authenticate,
        ));
    let mut open = Router::new()
        .route("/healthz", get(meta::healthz))
        // The seeds' name for it.
        .route("/health", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        // The web console: public static files that call `/v1` with the user's key.
        .merge(crate::routes::console::router());
    if state.settings.server.metrics_bind.is_none() {
        open = open.route("/metrics", get(meta::metrics));
    }
    let mut router = Router::new().merge(v1).merge(open);
    if state.settings.compat.piston {
        let piston = Router::new()
            .route("/api/v2/runtimes", get(crate::routes::piston::runtimes))
            .route("/api/v2/execute", post(crate::routes::piston::execute))
            .route(
                "/api/v2/{*rest}",
                axum::routing::any(crate::routes::piston::not_found),
            )
            // On its routes only: a path no route has stays a 404, not a 401.
            .route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), crate::error::Dialect::Piston),
                crate::routes::auth::authenticate_compat,
            ));
        router = router.merge(piston);
    }
    if state.settings.compat.judge0 {
        use crate::routes::judge0 as j;
        let judge0 = Router::new()
            .route("/about", get(j::about))
            .route("/version", get(j::version))
            .route("/config_info", get(j::config_info))
            .route("/statuses", get(j::statuses))
            .route("/languages", get(j::list_languages))
            .route("/languages/all", get(j::all_languages))
            .route("/languages/{id}", get(j::language))
            .route("/submissions", post(j::create))
            // Before `/{token}`: "batch" is not a token.
            .route(
                "/submissions/batch",
                post(j::create_batch).get(j::show_batch),
            )
            .route("/submissions/{token}", get(j::show).delete(j::delete))
            .route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), crate::error::Dialect::Judge0),
                crate::routes::auth::authenticate_compat,
            ));
        router = router.merge(judge0);
    }
    router
        // After routing, so the route template is known and labels stay low-cardinality.
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        // The body limit applies before JSON parsing: an oversized body is refused (413)
        // without being buffered.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(RequestBodyTimeoutLayer::new(body_read_timeout_ms))
                .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::request_span))
                .layer(PropagateRequestIdLayer::x_request_id())
                // A bug that panics in a handler answers 500 `internal` and keeps the
                // connection (and the other requests on it); it never takes them down.
                .layer(CatchPanicLayer::custom(crate::error::panic_response)),
        )
        .with_state(state)
}

async fn prune_rate_limits(rate: Arc<RateLimits>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => rate.prune(),
        }
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
