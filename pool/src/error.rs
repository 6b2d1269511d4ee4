//! The pool layer's errors. The gateway maps them to HTTP in one place.

use codebeaker_proto::Language;
use std::time::Duration;

/// A failure talking to one container's agent. Any of these retires the container.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("encoding the request: {0}")]
    Encode(serde_json::Error),
    #[error("writing to the container: {0}")]
    Io(std::io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("attach stream: {0}")]
    Attach(bollard::errors::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("the agent exited")]
    Closed,
    #[error("the agent reported a failure: {0}")]
    Failed(String),
}

/// Why the pool could not run an invocation. None of these is the program's fault.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("language {0} is not enabled on this gateway")]
    Disabled(Language),
    #[error("no {language} container became free within {waited:?}")]
    Exhausted {
        language: Language,
        waited: Duration,
        /// When one is expected to be free.
        retry_after: Duration,
    },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("creating a container: {0}")]
    CreateContainer(#[source] bollard::errors::Error),
    #[error("attaching to a container: {0}")]
    AttachContainer(#[source] bollard::errors::Error),
    #[error("starting a container: {0}")]
    StartContainer(#[source] bollard::errors::Error),
    #[error("updating a container's limits: {0}")]
    UpdateContainer(#[source] bollard::errors::Error),
    #[error("creating a container took longer than {0:?}")]
    CreateTimeout(Duration),
    #[error("agent in container {container}: {source}")]
    Agent {
        container: String,
        #[source]
        source: AgentError,
    },
    #[error("docker: {0}")]
    Docker(#[source] bollard::errors::Error),
    #[error("pool.agent_bundle {path}: {source}")]
    AgentBundle {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pool.compile_cache_dir {path}: {source}")]
    CompileCache {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The container was gone before the work reached it: nothing ran, so the caller may
    /// run it again elsewhere.
    #[error("container {container} was gone before the work reached it: {source}")]
    NotStarted {
        container: String,
        #[source]
        source: Box<PoolError>,
    },
    /// A request named packages that no built variant of its language has.
    #[error("{0}")]
    UnknownPackages(Box<UnknownPackages>),
    #[error("building the {0} pool: {1}")]
    Build(Language, String),
    #[error("the {0} pool failed: {1}")]
    Checkout(Language, String),
}

/// What [`PoolError::UnknownPackages`] tells the caller: what it asked for that no variant
/// has, and what the variants of its language do have.
#[derive(Debug, Clone)]
pub struct UnknownPackages {
    pub language: Language,
    pub missing: Vec<String>,
    /// Variant name to its packages and their versions.
    pub available: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// Variants of the language that are configured but whose image is not built.
    pub unbuilt: Vec<String>,
}

impl std::fmt::Display for UnknownPackages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no {} image has {}; ",
            self.language,
            self.missing.join(", ")
        )?;
        if self.available.is_empty() {
            write!(f, "no {} variant with packages is available", self.language)?;
        } else {
            let list: Vec<String> = self
                .available
                .iter()
                .map(|(v, pkgs)| {
                    let p: Vec<String> = pkgs.iter().map(|(n, ver)| format!("{n} {ver}")).collect();
                    format!("{v}: {}", p.join(", "))
                })
                .collect();
            write!(f, "available: {}", list.join("; "))?;
        }
        if !self.unbuilt.is_empty() {
            write!(
                f,
                " (configured but not built: {}; see `make images VARIANTS=...`)",
                self.unbuilt.join(", ")
            )?;
        }
        Ok(())
    }
}

impl PoolError {
    /// True when waiting and retrying may help (the caller should get `Retry-After`).
    pub fn is_overload(&self) -> bool {
        matches!(self, PoolError::Exhausted { .. } | PoolError::ShuttingDown)
    }

    /// True when the Docker engine could not give a container at all (it is down or
    /// restarting): an outage to retry, not a failure of a sandbox that ran.
    pub fn is_engine_unavailable(&self) -> bool {
        matches!(
            self,
            PoolError::Docker(_)
                | PoolError::CreateContainer(_)
                | PoolError::AttachContainer(_)
                | PoolError::StartContainer(_)
                | PoolError::CreateTimeout(_)
        )
    }
}
