//! The pool layer's errors: [`StartError`] when the pools cannot start, [`PoolError`]
//! when one request cannot be served (its [`PoolError::class`] says whose fault it is),
//! [`AgentError`] under it for one container's agent. The gateway maps them to HTTP and
//! JSON-RPC, once per transport.

use codebeaker_proto::Language;
use std::time::Duration;

/// A failure talking to one container's agent. Any of these retires the container.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("encoding the request: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("writing to the container: {0}")]
    Io(#[source] std::io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("attach stream: {0}")]
    Attach(#[source] bollard::errors::Error),
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
    /// The language is enabled but its image is not built: the operator's to fix.
    #[error("the image {image} of language {language} is not built on this gateway's Docker engine: build it with `docker/build-images.sh {recipe}` (or `make images`)")]
    ImageMissing {
        language: Language,
        image: String,
        /// The image recipe that builds it (`languages/<recipe>/image/`).
        recipe: String,
    },
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
    #[error("pool.agent_bundle {path}: {source}")]
    AgentBundle {
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
    /// `"isolation": "program"` for a program that has no resident form.
    #[error("{language} {} cannot run as a resident instance (\"isolation\": \"program\"); use \"isolation\": \"call\"", if *plain { "plain programs" } else { "programs" })]
    NoResidentForm { language: Language, plain: bool },
    #[error("building the {language} pool: {source}")]
    Build {
        language: Language,
        #[source]
        source: deadpool::managed::BuildError,
    },
    /// deadpool failed in a way that is not Docker's doing (a hook, no runtime).
    #[error("the {language} pool failed: {source}")]
    Checkout {
        language: Language,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A batch lease was asked to run another language than its container's.
    #[error("the {asked} pool failed: a {lease} lease cannot run {asked}")]
    WrongLease { lease: Language, asked: Language },
}

/// Why the pools could not start (the gateway exits).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine cannot be reached, or refused to list our containers.
    #[error("docker: {0}")]
    Engine(#[source] bollard::errors::Error),
    /// The shared compile cache's directory (or the key source) is unusable: a
    /// configuration error.
    #[error("pool.compile_cache_dir {path}: {source}")]
    CompileCache {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whose fault a [`PoolError`] is, said once for every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request asked for something this gateway does not offer (a disabled language,
    /// unknown packages).
    Caller,
    /// Busy or stopping: retrying later may help. `retry_after` is when a container is
    /// expected to be free, if the pool knows.
    Overload { retry_after: Option<Duration> },
    /// The Docker engine could not give a container at all (down or restarting): an
    /// outage to retry, not a failure of a sandbox that ran.
    EngineUnavailable,
    /// The gateway cannot serve this (an enabled language whose image is not built) until
    /// its operator acts: retrying soon will not help.
    Unavailable,
    /// Anything else: the sandbox failed, not the program.
    Internal,
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
    /// Whose fault this is (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            PoolError::Disabled(_)
            | PoolError::UnknownPackages(_)
            | PoolError::NoResidentForm { .. } => ErrorClass::Caller,
            PoolError::Exhausted { retry_after, .. } => ErrorClass::Overload {
                retry_after: Some(*retry_after),
            },
            PoolError::ShuttingDown => ErrorClass::Overload { retry_after: None },
            PoolError::ImageMissing { .. } => ErrorClass::Unavailable,
            PoolError::CreateContainer(_)
            | PoolError::AttachContainer(_)
            | PoolError::StartContainer(_)
            | PoolError::CreateTimeout(_) => ErrorClass::EngineUnavailable,
            _ => ErrorClass::Internal,
        }
    }

    /// True when waiting and retrying may help (the caller should get `Retry-After`).
    pub fn is_overload(&self) -> bool {
        matches!(self.class(), ErrorClass::Overload { .. })
    }

    /// True when the Docker engine could not give a container at all (it is down or
    /// restarting): an outage to retry, not a failure of a sandbox that ran.
    pub fn is_engine_unavailable(&self) -> bool {
        self.class() == ErrorClass::EngineUnavailable
    }
}
