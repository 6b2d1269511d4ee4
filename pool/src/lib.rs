//! Container lifecycle, the warm pools and the agent protocol client.
//!
//! Architecture Invariant: this crate is the only code that talks to Docker, and all of
//! its Docker calls are in `docker.rs` ([`Engine`]). The gateway asks it to run an
//! [`Invocation`] and gets a [`RunOutput`] or a [`PoolError`]; it never sees a
//! container's file system (all file work happens inside, through the agent), and no
//! Docker (bollard) type crosses this crate's API.
//!
//! The modules depend in one direction (checked by `tests/architecture.rs`):
//! `pools` (the facade) → `adopt`, `select`, `run`, `lease`, `warm`, `health` →
//! `language_pool` → `container` → `docker` → `agent`, `isolation`, and the leaves
//! (`error`, `config`, `lifecycle`, `queue`, `recycle`, `cache`, `wrap`, `invocation`).
#![forbid(unsafe_code)]

mod adopt;
mod agent;
mod artifacts;
mod cache;
mod config;
mod container;
mod docker;
mod error;
mod health;
mod instance;
mod invocation;
mod isolation;
mod language_pool;
mod lease;
mod lifecycle;
mod pools;
mod queue;
mod recycle;
mod run;
mod select;
mod warm;
mod wrap;

pub use config::EngineSettings;
pub use config::{ContainerLimits, InstanceSettings, LanguageSettings, PoolSettings};
pub use container::Container;
pub use docker::Engine;
pub use error::{AgentError, ErrorClass, PoolError, StartError, UnknownPackages};
pub use health::HealthSnapshot;
pub use instance::Instance;
pub use invocation::{Invocation, Isolation, RunOutput, SessionResources};
pub use isolation::{LABEL_INSTANCE, LABEL_LANGUAGE, LABEL_MANAGED};
pub use language_pool::PoolStatus;
pub use lease::Lease;
pub use lifecycle::LifecycleSnapshot;
pub use pools::Pools;
pub use wrap::{has_resident_form, wrap};

/// Connects to the local Docker engine (`DOCKER_HOST` or the default socket).
pub async fn connect() -> Result<Engine, StartError> {
    connect_to(&EngineSettings::default()).await
}

/// Connects to the engine `engine` names (a remote one over TCP with TLS, if configured)
/// and negotiates the API version, so the same binary works against Debian's Docker 20.10
/// (API 1.41) and newer engines.
pub async fn connect_to(engine: &EngineSettings) -> Result<Engine, StartError> {
    Engine::connect(engine).await
}

/// Lists this instance's containers: (id, language label, running).
pub async fn list_instance(
    engine: &Engine,
    instance: &str,
) -> Result<Vec<(String, Option<codebeaker_proto::Language>, bool)>, StartError> {
    engine.list_instance(instance).await
}

/// Removes every container labelled with `instance`: leftovers of an earlier run that
/// crashed, or of this run at shutdown. Returns how many were removed.
pub async fn remove_instance(engine: &Engine, instance: &str) -> Result<usize, StartError> {
    engine.remove_instance(instance).await
}
