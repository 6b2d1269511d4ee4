//! Async executions: accepted at once (202), queued durably, run by workers, polled.
//!
//! The engine ([`AsyncEngine`]) is one job per file:
//! - `submit.rs`: a request is validated when it is submitted (so a 202 means it can run),
//!   checked against the tenant's and the global queue depth (429, 503), and stored in
//!   the [`JobStore`] before the answer leaves. An `Idempotency-Key` with the same body
//!   answers with the first execution; with another body it is refused.
//! - `lookup.rs`: an execution, a tenant's list, its callbacks, the queue's depth.
//! - `worker.rs`: `executions.workers` workers take queued executions and record how each
//!   ended; `run.rs` runs one (an invocation or a batch) through the invoker.
//! - `cancel.rs`, `purger.rs`, `renewer.rs`, `callback.rs`: cancelling, dropping old
//!   executions, renewing a shared store's claims, and the webhook callback filed with an
//!   execution's end.
//! - `resource.rs`: an execution as the HTTP API shows it ([`ExecutionResource`]).
//!
//! The queue is the admission: queued work waits its turn instead of being shed.
//!
//! Fairness: tenants with queued work take turns, and no tenant runs more than
//! `executions.max_running_per_tenant` at once (by default one worker is always left to
//! the others). A worker takes the same places a synchronous call would: one of the
//! gateway's admission and of the caller's `max_concurrent` per item run at once; when it
//! cannot get them it gives the execution back to the queue (it is not failed) and waits.
//! A batch has an overall deadline (`executions.max_run_secs`) and a budget for its stored
//! result (`limits.max_batch_result_bytes`): the items past either are not run.
//!
//! Every result the worker got is recorded: the write is retried, and if it cannot be
//! stored the execution ends `failed` with `result_not_stored` (and its callback is sent).
//!
//! After a crash, executions that were queued run; executions that were running are run
//! again once (at-least-once), and one interrupted a second time is failed with that
//! reason. A cancelled queued execution never runs; cancelling a running one discards its
//! result and stops the batch items not yet started (a program already running on a
//! container finishes or hits its time limit there, and the container comes back clean).
//!
//! # How it works: the store and the webhooks
//!
//! `POST /v1/executions` (`routes/executions.rs`) → `AsyncEngine::submit` (`submit.rs`):
//! the body is checked as the synchronous route would check it (`requests::invocation`
//! and the packages, or `batch::plan`), the callback URL against internal addresses, the
//! tenant's and the global queue depth, then the job is inserted in the [`JobStore`]
//! (`JobStore::insert`) before the 202 leaves. The store is async: SQLite (the default,
//! `store/sqlite/`, WAL with `synchronous = FULL`, so the job is on disk before the 202)
//! runs its calls on tokio's blocking threads inside the store; Redis (`store/redis/`,
//! with `[shared]`) holds the same queue for several gateways on its own async
//! `ConnectionManager`. `executions.workers` worker tasks (`worker.rs`, on the gateway's
//! one task tracker: shutdown stops them taking work and waits, within the grace, for the
//! jobs they run) claim the next job (`JobStore::claim_next`: tenants with queued work
//! take turns, a tenant at `max_running_per_tenant` is passed over, a tenant's own jobs
//! run in submission order; the job becomes `running`, `attempts + 1`), run it through
//! the same `Invoker` as the synchronous routes (`run.rs`: `Invoker::run`, or
//! `batch::run_plan`), as its stored caller with its stored quota, and record the final
//! status and, in the same transaction, the callback delivery (`JobStore::finish`). A job
//! that finds the gateway's admission or the caller's `max_concurrent` full goes back to
//! the queue (`JobStore::release`), its attempt not counted. At startup,
//! `AsyncEngine::recover` (`JobStore::recover`) re-queues running jobs once and fails
//! those interrupted twice.
//!
//! `webhooks::sender` takes due deliveries from the same store and POSTs each in its own
//! task, at most 32 at once and 4 per `host:port`; one whose destination is full is put
//! off (`JobStore::postpone_deliveries`, no attempt counted) for about as long as that
//! destination's oldest delivery has been in flight, so a receiver that never answers
//! holds only its own 4 slots. Each attempt signs with the caller's secret (a key's own,
//! or a token tenant's derived from `auth.jwt.webhook_secret`), reschedules a failure with
//! backoff and jitter, and marks the last failure dead. The HTTP client resolves a host
//! through the webhooks' checked resolver only (one lookup, 2 s bound, refused whole if
//! any address is internal; no proxy, no redirects), so the address checked is the
//! address connected to; an IP-literal host is checked before the request. SQLite hands a
//! pending delivery out again until its outcome is recorded, so the sender skips the ids
//! it has in flight; Redis leases the ones it hands out (10 minutes).

mod callback;
mod cancel;
mod lookup;
mod purger;
mod renewer;
mod resource;
mod run;
mod submit;
mod worker;

pub use resource::ExecutionResource;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::{ExecutionSettings, WebhookSettings};
use crate::invoke::Invoker;
use crate::requests::RequestError;
use crate::store::{JobStore, Recovered, StoreError};
use run::{InvokerRunner, Runner};

/// Why an async request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionsError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("execution not found")]
    NotFound,
    /// The seeds' status route: the execution exists but has no result yet.
    #[error("execution {0} has no result yet ({1}); ask again later")]
    NoResultYet(String, &'static str),
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    #[error("this tenant already has {0} executions queued; retry later")]
    TenantQueueFull(usize),
    #[error("the execution queue is full ({0} queued); retry later")]
    QueueFull(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::failure::Failure for ExecutionsError {
    fn kind(&self) -> &'static str {
        match self {
            ExecutionsError::Request(e) => e.kind(),
            ExecutionsError::NotFound | ExecutionsError::NoResultYet(..) => "execution_not_found",
            ExecutionsError::IdempotencyMismatch => "idempotency_key_reused",
            ExecutionsError::TenantQueueFull(_) | ExecutionsError::QueueFull(_) => "queue_full",
            ExecutionsError::Store(e) => e.kind(),
        }
    }
    fn class(&self) -> crate::failure::Class {
        match self {
            ExecutionsError::Request(e) => e.class(),
            ExecutionsError::NotFound
            | ExecutionsError::NoResultYet(..)
            | ExecutionsError::IdempotencyMismatch => crate::failure::Class::Caller,
            ExecutionsError::TenantQueueFull(_) => crate::failure::OVER_QUOTA,
            ExecutionsError::QueueFull(_) => crate::failure::BUSY,
            ExecutionsError::Store(e) => e.class(),
        }
    }
}

/// The async engine: submission, lookup, cancellation, the workers and their upkeep.
pub struct AsyncEngine {
    store: Arc<dyn JobStore>,
    /// Checks requests when submitted and runs them when claimed.
    runner: Arc<dyn Runner>,
    auth: Arc<Authenticator>,
    settings: ExecutionSettings,
    webhooks: WebhookSettings,
    /// Woken by a submission, so an idle worker does not wait for its next poll.
    wake: Notify,
    /// Running jobs' cancellation, by id.
    running: Mutex<HashMap<String, CancellationToken>>,
}

impl AsyncEngine {
    /// The engine over `store`; call [`AsyncEngine::recover`] then start the workers.
    pub fn new(
        store: Arc<dyn JobStore>,
        invoker: Arc<Invoker>,
        auth: Arc<Authenticator>,
        settings: ExecutionSettings,
        webhooks: WebhookSettings,
    ) -> Arc<Self> {
        let runner = Arc::new(InvokerRunner::new(invoker, &settings));
        Self::with_runner(store, runner, auth, settings, webhooks)
    }

    fn with_runner(
        store: Arc<dyn JobStore>,
        runner: Arc<dyn Runner>,
        auth: Arc<Authenticator>,
        settings: ExecutionSettings,
        webhooks: WebhookSettings,
    ) -> Arc<Self> {
        Arc::new(AsyncEngine {
            store,
            runner,
            auth,
            settings,
            webhooks,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// The store (the webhook sender shares it).
    pub fn store(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    /// After a restart: running jobs are re-queued once, or failed the second time.
    pub async fn recover(&self) -> Result<Recovered, StoreError> {
        self.store.recover(crate::store::now()).await
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
