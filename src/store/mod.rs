//! The durable store of async executions: queued work, running state, results and the
//! webhook callbacks.
//!
//! Behind an async trait ([`JobStore`]) with two engines: the default, an embedded SQLite
//! database in WAL mode with `synchronous = FULL` ([`sqlite::SqliteStore`]), so an
//! execution the gateway answered 202 for is on disk before the answer leaves; and Redis
//! for several gateways ([`redis::RedisStore`], on the `[shared]` Redis). What a store keeps is in
//! [`record`].

pub mod record;
pub mod redis;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub use self::redis::RedisStore;
pub use record::{
    from_millis, now, to_millis, with_result, Delivery, JobKind, JobRecord, JobRequest, Status,
    Unreadable,
};
pub use sqlite::SqliteStore;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("executions database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("executions database {path} is corrupt: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("executions database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Another execution already has this tenant's idempotency key.
    #[error("an execution with this idempotency key already exists")]
    Duplicate,
    /// The blocking thread that ran a database call panicked or was cancelled.
    #[error("executions database task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The shared store (Redis) did not answer: an outage, not a fault of the request.
    #[error("shared executions store (Redis): {0}")]
    Shared(#[source] ::redis::RedisError),
}

impl crate::failure::Failure for StoreError {
    fn kind(&self) -> &'static str {
        match self {
            StoreError::Shared(_) => "shared_state_unavailable",
            _ => "store_failure",
        }
    }
    fn class(&self) -> crate::failure::Class {
        crate::failure::Class::Internal {
            transient: matches!(self, StoreError::Shared(_)),
        }
    }
}

/// Queued executions, for admission (a tenant's and the total depth) and for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Queued executions of the tenant asked about.
    pub tenant: usize,
    /// Queued executions of every tenant.
    pub total: usize,
    /// When the oldest queued execution was created.
    pub oldest: Option<DateTime<Utc>>,
}

/// What [`JobStore::recover`] did with the executions that were running at a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Back in the queue (their first interruption).
    pub requeued: usize,
    /// Failed (interrupted a second time).
    pub failed: usize,
}

/// How an execution ended, as [`JobStore::finish`] records it.
#[derive(Debug, Clone)]
pub struct JobEnd {
    pub status: Status,
    /// The result (serialized), shared rather than copied: a write that fails is tried
    /// again with the same one, and it can be as large as `limits.max_batch_result_bytes`.
    pub result: Option<Arc<String>>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
    /// The callback to file with the end, in the same transaction.
    pub callback: Option<Delivery>,
}

/// What the async engine needs from a store.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new queued job (durably, before returning), with its request as the body
    /// was submitted.
    async fn insert(&self, job: &JobRecord, request: String) -> Result<(), StoreError>;
    /// The tenant's job with this idempotency key, if any (without its request).
    async fn by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, StoreError>;
    /// The job, if it belongs to `tenant` (without its request).
    async fn get(&self, tenant: &str, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// The job with its request, if it belongs to `tenant` (a Judge0 submission is shown
    /// with what it was submitted with).
    async fn get_with_request(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<JobRecord>, StoreError>;
    /// The tenant's jobs, newest first, optionally of one status; without their `result`
    /// and `request` (a list shows neither, and each can be tens of MB).
    async fn list(
        &self,
        tenant: &str,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError>;
    /// Takes a queued job (with its request) and marks it running: tenants with queued
    /// work take turns, and a tenant with `max_running` jobs running already is passed
    /// over, so that one tenant's long work cannot hold every worker. A tenant's own jobs
    /// run in submission order.
    async fn claim_next(
        &self,
        now: DateTime<Utc>,
        max_running: usize,
    ) -> Result<Option<JobRecord>, StoreError>;
    /// Gives back a job this worker claimed but could not start (the gateway or the caller
    /// was at its limit): queued again, its attempt not counted.
    async fn release(&self, id: &str) -> Result<(), StoreError>;
    /// This worker gives up on a job it claimed without recording an end (the store kept
    /// failing): a shared store stops renewing its claim, so that another replica runs it
    /// again after the visibility timeout; a single node re-runs it after a restart.
    fn abandon(&self, _id: &str) {}
    /// Records a final status (only for a job that is not final yet), and in the same
    /// transaction its callback, if any. Returns whether it did.
    async fn finish(&self, id: &str, end: &JobEnd) -> Result<bool, StoreError>;
    /// Pending callbacks due at `now` (Unix ms), oldest first.
    async fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError>;
    /// A callback was accepted.
    async fn delivered(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// A callback failed: try again at `next`, or, with `next` None, it is a dead letter.
    async fn delivery_failed(
        &self,
        id: &str,
        next: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Pending callbacks the sender took but could not start (their destination had its
    /// share in flight): due again at `at`, no attempt counted.
    async fn postpone_deliveries(&self, ids: &[String], at: i64) -> Result<(), StoreError>;
    /// The tenant's callbacks: of one execution, or (with `None`) its dead letters.
    async fn deliveries(
        &self,
        tenant: &str,
        execution_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Queued jobs: of this tenant, in total, and the oldest one's creation.
    async fn queued(&self, tenant: &str) -> Result<QueueDepth, StoreError>;
    /// After a restart: running jobs go back to the queue once; a job that was already
    /// restarted once is failed.
    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError>;
    /// Removes final jobs that finished before `before`, and callbacks settled (delivered
    /// or dead) that were created before it.
    async fn purge(&self, before: DateTime<Utc>) -> Result<usize, StoreError>;
    /// Renews this replica's claims on the jobs it is running, so that no other replica
    /// takes them over (a shared store's visibility timeout); nothing for a single node.
    /// Returns the jobs this replica was running that are no longer its own to run (taken
    /// over by another, cancelled, finished elsewhere): the caller stops them.
    async fn renew(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}
