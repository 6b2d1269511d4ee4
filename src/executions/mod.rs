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
            ExecutionsError::NotFound => "execution_not_found",
            ExecutionsError::IdempotencyMismatch => "idempotency_key_reused",
            ExecutionsError::TenantQueueFull(_) | ExecutionsError::QueueFull(_) => "queue_full",
            ExecutionsError::Store(e) => e.kind(),
        }
    }
    fn class(&self) -> crate::failure::Class {
        match self {
            ExecutionsError::Request(e) => e.class(),
            ExecutionsError::NotFound | ExecutionsError::IdempotencyMismatch => {
                crate::failure::Class::Caller
            }
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
