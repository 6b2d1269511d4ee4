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
//!
//! # Pool lifecycle
//!
//! - **Startup** ([`Pools::start`]): sweep this instance's containers (label
//!   `codebeaker.instance=<instance>`, `adopt.rs`): a running session container whose agent
//!   still holds a session is kept for the gateway's session manager
//!   ([`Pools::take_adopted`]), everything else (leftovers of a crashed run) is removed.
//!   Then build one `LanguagePool` per enabled language and one per configured package
//!   variant whose image exists (`select.rs`; its language and allow-list read from the
//!   image's `codebeaker.language` / `codebeaker.packages` labels; a missing image is
//!   listed as an unbuilt variant, looked for again on a miss), and start a warmer per
//!   pool and the health loops, all on the owner's one task tracker.
//! - **Slots and tenants** (`language_pool.rs`): a pool has `max_size` slots (a
//!   semaphore); every container holds one from creation to removal (a session container
//!   gives its slot back when it leaves the pool), so the pool never exceeds `max_size`
//!   however its containers are split. Containers live in the **nursery** (started, never
//!   used) or in a **tenant's sub-pool**, a deadpool pool capped at the tenant's share
//!   (`tenant_max_share × max_size`). A returned container goes back to its tenant's
//!   sub-pool only: by construction no container moves between tenants. A sub-pool grows
//!   (its deadpool `Manager::create` → `LanguagePool::claim_now`) by taking a nursery
//!   container, else starting one in a free slot, else retiring the longest-idle container
//!   of another tenant to free a slot. While the warmer is creating containers for the
//!   pool, the claim finds none rather than duplicating them, and the checkout
//!   (`run.rs`) asks again until its own deadline. Without tenant affinity there is one
//!   sub-pool shared by all, capped at `max_size`.
//! - **Warm** (`warm.rs`): the warmer keeps `shared idle + warming ≥ min_idle` (shared
//!   idle: the nursery, plus, without affinity, the shared sub-pool's idle containers),
//!   creating at most two containers at a time per pool in free slots, and one start at a
//!   time across all pools (the warming gate; a caller that finds no container starts its
//!   own without waiting for it); with every slot held by tenants it reclaims the
//!   longest-idle tenant container first. `/readyz` is 200 once every pool reached its
//!   minimum once. Idle containers are given back: a tenant's after `tenant_idle_secs`
//!   (affinity), or a burst's beyond `min_idle` after `idle_shrink_secs` (no affinity);
//!   empty tenant sub-pools are forgotten. Idle resident instances (`instance.rs`) end
//!   after `instances.idle_secs`, or sooner when their tenant needs the container.
//! - **Docker's view** (`health.rs`): the engine's `die`/`destroy` events for the
//!   instance's label are followed (reopened with backoff when the stream drops, then a
//!   reconcile), and every `reconcile_interval_ms` a reconcile drops dead idle containers
//!   from the pool (the warmer refills it), removes dead and unknown containers, and
//!   retries failed removals. The gateway's session janitor closes sessions whose
//!   container Docker reported dead (`session_lost`).
//! - **Checkout / recycle** (`run.rs`, `recycle.rs`): see step 3 of the gateway's
//!   `invoke.rs`. **Retire:** after `max_uses` or `max_age_secs` (at checkout, each less the
//!   container's own spread of up to a quarter, from its id: containers warmed together
//!   would otherwise retire together and their replacements start at once, on the cores
//!   the calls need; a container at the unspread limit already leaves on its way back to
//!   the pool, so that no caller waits for its replacement), any agent or Docker failure,
//!   a request abandoned mid-call, no `clean` line, or an OOM kill. A retired container is
//!   force-removed in the background (its `Drop`; the [`Engine`] keeps the removals in
//!   flight). **Never above `max_size`:** every pooled container holds one of the pool's
//!   slots (see "Slots and tenants").
//! - **Shutdown:** the gateway's one shutdown sequence (`startup.rs`, `Stopping::stop`)
//!   cancels one token, which stops the warmers, health loops and the gateway's own
//!   background loops and stops accepting; requests, WebSocket and session commands and
//!   async workers drain on the one `TaskTracker` under one deadline
//!   (`shutdown_grace_ms` from the signal, spent once; a WebSocket finishes its commands,
//!   sends their replies, then closes with 1001 "going away"); live sessions' containers
//!   are kept for the next process. Only then does [`Pools::shutdown_keeping`] close the
//!   pools (no new work), let what still runs on the tracker finish within the same
//!   deadline, remove every other container of this instance, and wait (bounded) for the
//!   removals started by dropped handles.
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
