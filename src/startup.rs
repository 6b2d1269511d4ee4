//! Building and running the gateway: `build` binds and warms, `run` serves until shutdown.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use codebeaker_pool::{PoolError, Pools};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::config::{ConfigError, Settings};
use crate::routes::{execute, meta};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the Docker engine is not reachable ({0}); start dockerd or set DOCKER_HOST")]
    Docker(#[source] PoolError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A gateway that is bound and warming, not yet serving.
pub struct Application {
    listener: TcpListener,
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
        let docker = codebeaker_pool::connect()
            .await
            .map_err(StartupError::Docker)?;
        let listener = TcpListener::bind(settings.server.bind)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.server.bind,
                source,
            })?;
        let pools = Pools::start(docker, settings.pool.clone(), shutdown.child_token())
            .await
            .map_err(StartupError::Docker)?;
        Ok(Application {
            listener,
            state: AppState {
                settings: Arc::new(settings),
                pools,
            },
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn pools(&self) -> Arc<Pools> {
        self.state.pools.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight requests
    /// finish within the grace period, and removes this gateway's containers.
    pub async fn run(self) -> std::io::Result<()> {
        let grace = Duration::from_millis(self.state.settings.server.shutdown_grace_ms);
        let pools = self.state.pools.clone();
        let router = router(self.state);
        let token = self.shutdown.clone();
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        pools.shutdown(grace).await;
        served
    }
}

/// The route table. `/v1` routes pass the auth layer; health probes do not.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.limits.max_body_bytes;
    let v1 = Router::new()
        .route("/v1/execute", post(execute::execute))
        .route("/v1/languages", get(meta::languages))
        .layer(axum::middleware::from_fn(crate::auth::authenticate));
    Router::new()
        .merge(v1)
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        // The body limit applies before JSON parsing: an oversized body is refused (413)
        // without being buffered.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return ctrl_c.await.unwrap_or(()),
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    }
}
