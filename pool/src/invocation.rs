//! What the gateway hands the pools ([`Invocation`]) and what it gets back
//! ([`RunOutput`]): the pool's request and result types, distinct from the gateway's
//! async execution records and HTTP responses.

use codebeaker_proto::{Language, RawJson, RunOutcome};
use std::sync::Arc;
use std::time::Duration;

/// One invocation as the gateway hands it to the pools.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub language: Language,
    /// Shared: a batch's items all point at one copy of its code.
    pub code: Arc<str>,
    /// Written verbatim to `input.json` (validated and compacted at the edge).
    pub input: RawJson,
    pub timeout: Duration,
    pub compile_timeout: Duration,
    /// Lower memory limit for this invocation only (must not exceed the container's).
    pub memory_mb: Option<u64>,
    pub stream_limit_bytes: u64,
    pub result_limit_bytes: u64,
    /// Run `code` as the whole program, without the language's wrapper (the seeds' API,
    /// and `mode: "plain"`): success is exit code 0, there is no result value.
    pub plain: bool,
    /// Packages the program needs: it runs on the smallest variant image that has them
    /// all (none: the language's default image).
    pub packages: Vec<String>,
    /// Whose call this is: with tenant affinity, it runs only on a container that never
    /// served another tenant.
    pub tenant: Arc<str>,
    /// A fresh process per call, or a resident instance of the program.
    pub isolation: Isolation,
    /// The program's stdin (none for a resident instance).
    pub stdin: String,
    /// Its arguments and the files written beside it (none for a resident instance);
    /// shared by a batch's items.
    pub args: Arc<[String]>,
    pub files: Arc<[codebeaker_proto::ProgramFile]>,
}

/// What one call is isolated from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A fresh process per call, in a container cleaned after every call: nothing of one
    /// call reaches the next.
    #[default]
    Call,
    /// A resident instance per (tenant, language, program, packages, memory limit): the
    /// program is loaded once and called per input with fresh top-level variables;
    /// module-level state persists between calls of one instance.
    Program,
}

/// What one invocation's run on a pooled container gave back, with where the time went.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub outcome: RunOutcome,
    pub container_id: String,
    /// Time spent waiting for a container (queue and, rarely, a cold start).
    pub queue_wait: Duration,
    /// Time of the agent round trip.
    pub run_time: Duration,
}

/// What a session may use of the host, beyond the pool's container defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionResources {
    /// A memory limit below the container's (MiB).
    pub memory_mb: Option<u64>,
    /// Docker's relative CPU weight for the container (`--cpu-shares`).
    pub cpu_shares: Option<u64>,
}
