//! Container lifecycle, the warm pools and the agent protocol client.
//!
//! Architecture Invariant: this crate is the only code that talks to Docker. The gateway
//! asks it to run an [`Invocation`] and gets an [`Execution`] or a [`PoolError`]; it never
//! sees a container's file system (all file work happens inside, through the agent).
#![forbid(unsafe_code)]

mod agent;
mod cache;
mod config;
mod container;
mod docker;
mod error;
mod health;
mod isolation;
mod manager;
mod pool;
mod queue;
mod warm;
mod wrap;

pub use bollard::Docker;
pub use config::EngineSettings;
pub use config::{ContainerLimits, LanguageSettings, PoolSettings};
pub use container::Container;
pub use docker::{list_instance, remove_instance};
pub use error::{AgentError, PoolError, UnknownPackages};
pub use health::HealthSnapshot;
pub use isolation::{LABEL_INSTANCE, LABEL_LANGUAGE, LABEL_MANAGED};
pub use manager::LifecycleSnapshot;
pub use pool::{Execution, Invocation, Lease, PoolStatus, Pools, SessionResources};
pub use wrap::wrap;

/// Connects to the local Docker engine (`DOCKER_HOST` or the default socket).
pub async fn connect() -> Result<Docker, PoolError> {
    connect_to(&EngineSettings::default()).await
}

/// Connects to the engine `engine` names (a remote one over TCP with TLS, if configured)
/// and negotiates the API version, so the same binary works against Debian's Docker 20.10
/// (API 1.41) and newer engines.
pub async fn connect_to(engine: &EngineSettings) -> Result<Docker, PoolError> {
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
    .map_err(PoolError::Docker)?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(PoolError::Docker)?;
    docker.ping().await.map_err(PoolError::Docker)?;
    Ok(docker)
}
