//! Async executions: accepted at once (202), queued durably, run by workers, polled.
//!
//! A request is validated when it is submitted (so a 202 means it can run), stored in the
//! [`JobStore`] before the answer leaves, and taken by one of `executions.workers`
//! workers in submission order. The queue is the admission: queued work waits its turn
//! instead of being shed, and its depth is bounded per tenant (429) and in total (503).
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

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::batch::{self, BatchRequest, BatchSummary, ItemResult};
use crate::config::{ExecutionSettings, WebhookSettings};
use crate::domain::{Principal, Quota, Scope, Via};
use crate::invoke::Invoker;
use crate::limits::{OwnedAdmissionSlot, Permit};
use crate::requests::{self, ExecuteRequest, RequestError};
use crate::store::{Delivery, Job, JobStore, Status, StoreError};

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

/// The caller of a job, kept with it: the job runs with the caller's own quota.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCaller {
    subject: String,
    tenant: String,
    scopes: Vec<Scope>,
    quota: Quota,
    jwt: bool,
}

impl StoredCaller {
    fn of(p: &Principal) -> Self {
        StoredCaller {
            subject: p.subject.clone(),
            tenant: p.tenant.clone(),
            scopes: p.scopes.clone(),
            quota: p.quota.clone(),
            jwt: p.via == Via::Jwt,
        }
    }

    fn principal(self) -> Principal {
        Principal {
            subject: self.subject,
            tenant: self.tenant,
            scopes: self.scopes,
            quota: self.quota,
            via: if self.jwt { Via::Jwt } else { Via::ApiKey },
        }
    }
}

/// Why a claimed job did not produce a result.
enum RunError {
    /// The job failed, for this reason (shown to the caller).
    Failed(String),
    /// The gateway's admission or the caller's `max_concurrent` is full: run it later.
    Busy,
}

impl From<String> for RunError {
    fn from(e: String) -> Self {
        RunError::Failed(e)
    }
}

/// The places a running job holds (as a synchronous call would): dropped when it ends.
struct Held {
    _admitted: Vec<OwnedAdmissionSlot>,
    _permits: Vec<Permit>,
}

/// A batch's result as stored: the summary, then every item (the view pages them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredBatch<'a> {
    #[serde(flatten)]
    summary: &'a BatchSummary,
    results_offset: usize,
    results_total: usize,
    results: &'a [ItemResult],
}

/// Attempts at storing a result before it is given up as `result_not_stored`.
const STORE_ATTEMPTS: u32 = 4;
/// How long recording that failure is tried (the store may come back).
const FAILURE_RECORD_FOR: Duration = Duration::from_secs(60);

/// An execution as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub execution_id: String,
    /// `execute` or `batch`.
    pub kind: String,
    #[schema(value_type = String)]
    pub status: Status,
    #[schema(value_type = String)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<String>)]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(value_type = Option<String>)]
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The result when completed: an execute response, or a batch summary with its
    /// `results` (paged with `offset` and `limit`).
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    pub attempts: i64,
    /// The webhook callback's deliveries, when the execution asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub callbacks: Option<Vec<Delivery>>,
}

fn at(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl ExecutionView {
    /// The job as the API shows it; a batch's results from `offset`, at most `limit`.
    pub fn of(job: &Job, offset: usize, limit: usize) -> ExecutionView {
        let mut result = job
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<Value>(r).ok());
        if let Some(Value::Array(items)) = result.as_mut().and_then(|r| r.get_mut("results")) {
            let total = items.len();
            let page: Vec<Value> = items.drain(..).skip(offset).take(limit).collect();
            if let Some(r) = result.as_mut() {
                r["results"] = Value::Array(page);
                r["resultsOffset"] = json!(offset);
                r["resultsTotal"] = json!(total);
            }
        }
        ExecutionView {
            execution_id: job.id.clone(),
            kind: job.kind.clone(),
            status: job.status,
            created_at: at(job.created_at),
            started_at: job.started_at.map(at),
            completed_at: job.finished_at.map(at),
            result,
            error: job.error.clone(),
            attempts: job.attempts,
            callbacks: None,
        }
    }
}

/// The async engine: submission, lookup, cancellation and the workers.
pub struct Executions {
    store: Arc<dyn JobStore>,
    invoker: Arc<Invoker>,
    auth: Arc<Authenticator>,
    settings: ExecutionSettings,
    webhooks: WebhookSettings,
    wake: Notify,
    /// Running jobs' cancellation, by id.
    running: Mutex<HashMap<String, CancellationToken>>,
}

/// Runs a store call off the async threads (SQLite commits wait for the disk).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())))
}

impl Executions {
    /// The engine over `store`; call [`Executions::recover`] then start the workers.
    pub fn new(
        store: Arc<dyn JobStore>,
        invoker: Arc<Invoker>,
        auth: Arc<Authenticator>,
        settings: ExecutionSettings,
        webhooks: WebhookSettings,
    ) -> Arc<Self> {
        Arc::new(Executions {
            store,
            invoker,
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
    pub fn recover(&self) -> Result<(usize, usize), StoreError> {
        self.store.recover(now_ms())
    }

    /// Validates and queues `body` (an execute or a batch body). The same
    /// `idempotency_key` with the same body returns the first execution.
    pub async fn submit(
        &self,
        caller: &Principal,
        body: Value,
        idempotency_key: Option<String>,
    ) -> Result<(Job, bool), ExecutionsError> {
        let callback_url = match body.get("callbackUrl") {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => {
                crate::webhooks::check_url(url, self.webhooks.allow_private).await?;
                if self.auth.webhook_secret(&caller.subject).is_none() {
                    return Err(RequestError::Invalid(
                        "callbackUrl: this credential has no webhook signing secret (keys made by `codebeaker keys create` have one; tokens need auth.jwt.webhook_secret)".into(),
                    )
                    .into());
                }
                Some(url.clone())
            }
            Some(_) => {
                return Err(RequestError::Invalid("callbackUrl must be a string".into()).into())
            }
        };
        let kind = if body.get("items").is_some() {
            "batch"
        } else {
            "execute"
        };
        self.validate(caller, kind, body.clone())?;
        let request = body.to_string();
        let hash = hex_sha256(request.as_bytes());
        let tenant = caller.tenant.clone();
        if let Some(key) = idempotency_key.clone() {
            let store = self.store.clone();
            let t = tenant.clone();
            if let Some(existing) = blocking(move || store.by_idempotency_key(&t, &key)).await? {
                return if existing.request_hash == hash {
                    Ok((existing, false))
                } else {
                    Err(ExecutionsError::IdempotencyMismatch)
                };
            }
        }
        let store = self.store.clone();
        let t = tenant.clone();
        let (mine, total, _) = blocking(move || store.queued(&t)).await?;
        if mine >= self.settings.max_queued_per_tenant {
            return Err(ExecutionsError::TenantQueueFull(mine));
        }
        if total >= self.settings.max_queued {
            return Err(ExecutionsError::QueueFull(total));
        }
        let job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            tenant,
            caller: serde_json::to_string(&StoredCaller::of(caller)).unwrap_or_default(),
            kind: kind.into(),
            request,
            status: Status::Queued,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            attempts: 0,
            idempotency_key,
            request_hash: hash,
            callback_url,
        };
        let store = self.store.clone();
        let stored = job.clone();
        match blocking(move || store.insert(&stored)).await {
            Ok(()) => {}
            // Two submissions with one key at once: the other one won; answer with it.
            Err(StoreError::Duplicate) => {
                let store = self.store.clone();
                let (t, k) = (
                    job.tenant.clone(),
                    job.idempotency_key.clone().unwrap_or_default(),
                );
                let existing = blocking(move || store.by_idempotency_key(&t, &k)).await?;
                return match existing {
                    Some(e) if e.request_hash == job.request_hash => Ok((e, false)),
                    _ => Err(ExecutionsError::IdempotencyMismatch),
                };
            }
            Err(e) => return Err(e.into()),
        }
        self.wake.notify_one();
        Ok((job, true))
    }

    /// The request must run as it is: checked with the same rules as the sync routes.
    fn validate(&self, caller: &Principal, kind: &str, body: Value) -> Result<(), RequestError> {
        let bad = |e: serde_json::Error| RequestError::Invalid(format!("invalid request: {e}"));
        if kind == "batch" {
            let req: BatchRequest = serde_json::from_value(body).map_err(bad)?;
            batch::plan(&self.invoker, caller, req).map(|_| ())
        } else {
            let req: ExecuteRequest = serde_json::from_value(body).map_err(bad)?;
            let inv = requests::invocation(req, &self.invoker.settings, caller)?;
            requests::packages_available(&self.invoker.pools, &inv)
        }
    }

    /// The caller's tenant's execution.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Job, ExecutionsError> {
        let (store, t, id) = (self.store.clone(), caller.tenant.clone(), id.to_string());
        blocking(move || store.get(&t, &id))
            .await?
            .ok_or(ExecutionsError::NotFound)
    }

    /// The caller's tenant's executions, newest first.
    pub async fn list(
        &self,
        caller: &Principal,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<Job>, ExecutionsError> {
        let (store, t) = (self.store.clone(), caller.tenant.clone());
        Ok(blocking(move || store.list(&t, status, limit)).await?)
    }

    /// Cancels: a queued execution never runs; a running one is stopped (see the module
    /// comment). A finished one is left as it is.
    pub async fn cancel(&self, caller: &Principal, id: &str) -> Result<Job, ExecutionsError> {
        let job = self.get(caller, id).await?;
        if !job.status.is_final() {
            let (store, jid) = (self.store.clone(), job.id.clone());
            let now = now_ms();
            let error = "cancelled by the caller";
            let callback = self.callback(&job, Status::Cancelled, Some(error), now);
            blocking(move || {
                store.finish(
                    &jid,
                    Status::Cancelled,
                    None,
                    Some(error),
                    now,
                    callback.as_ref(),
                )
            })
            .await?;
            if let Some(token) = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&job.id)
            {
                token.cancel();
            }
            crate::metrics::execution_finished(Status::Cancelled.as_str());
        }
        self.get(caller, id).await
    }

    /// The callback of a job that ends with `status`, if it asked for one: its payload is
    /// the execution as `GET /v1/executions/{id}` shows it, stored without the result
    /// (the store puts the stored result in when sending it: [`crate::store::with_result`]),
    /// so that the callback never holds a second copy of it.
    fn callback(
        &self,
        job: &Job,
        status: Status,
        error: Option<&str>,
        now: i64,
    ) -> Option<Delivery> {
        let url = job.callback_url.clone()?;
        // The job without its request and result (neither is in the payload).
        let last = Job {
            id: job.id.clone(),
            tenant: job.tenant.clone(),
            caller: String::new(),
            kind: job.kind.clone(),
            request: String::new(),
            status,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: Some(now),
            result: None,
            error: error.map(str::to_string),
            attempts: job.attempts,
            idempotency_key: None,
            request_hash: String::new(),
            callback_url: None,
        };
        let payload = serde_json::to_string(&ExecutionView::of(&last, 0, usize::MAX)).ok()?;
        let subject = serde_json::from_str::<StoredCaller>(&job.caller)
            .ok()?
            .subject;
        Some(Delivery {
            id: uuid::Uuid::new_v4().to_string(),
            execution_id: job.id.clone(),
            tenant: job.tenant.clone(),
            subject,
            url,
            payload,
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            delivered_at: None,
        })
    }

    /// The callbacks of the caller's execution `id`, or (with `None`) its dead letters.
    pub async fn deliveries(
        &self,
        caller: &Principal,
        id: Option<&str>,
    ) -> Result<Vec<Delivery>, ExecutionsError> {
        let (store, t, id) = (
            self.store.clone(),
            caller.tenant.clone(),
            id.map(str::to_string),
        );
        Ok(blocking(move || store.deliveries(&t, id.as_deref(), 100)).await?)
    }

    /// Queue depth and the age of the oldest queued execution (for metrics).
    pub async fn queue_depth(&self) -> (usize, Option<Duration>) {
        let store = self.store.clone();
        match blocking(move || store.queued("")).await {
            Ok((_, total, oldest)) => (
                total,
                oldest.map(|ms| Duration::from_millis((now_ms() - ms).max(0) as u64)),
            ),
            Err(_) => (0, None),
        }
    }

    /// The most executions of one tenant running at once.
    fn max_running(&self) -> usize {
        match self.settings.max_running_per_tenant {
            0 => self.settings.workers.saturating_sub(1).max(1),
            n => n,
        }
    }

    /// One worker: takes queued executions until shutdown.
    pub async fn worker(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let max_running = self.max_running();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let store = self.store.clone();
            let next = blocking(move || store.claim_next(now_ms(), max_running)).await;
            let pause = match next {
                Ok(Some(job)) => {
                    if self.run(job).await {
                        continue;
                    }
                    // Given back (the gateway or its caller is full): let others go first.
                    poll
                }
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot take the next execution");
                    poll * 4
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Runs a claimed job and records its end; false when it was given back to the queue.
    async fn run(&self, job: Job) -> bool {
        let token = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id.clone(), token.clone());
        let outcome = tokio::select! {
            r = self.execute(&job) => Some(r),
            _ = token.cancelled() => None,
        };
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job.id);
        let Some(outcome) = outcome else {
            return true; // cancelled: the store already says so
        };
        match outcome {
            Ok(v) => self.record(&job, Status::Completed, Some(v), None).await,
            Err(RunError::Failed(e)) => self.record(&job, Status::Failed, None, Some(e)).await,
            Err(RunError::Busy) => {
                let (store, id) = (self.store.clone(), job.id.clone());
                if let Err(e) = blocking(move || store.release(&id)).await {
                    // Still claimed: a restart (or, shared, another replica) runs it.
                    tracing::error!(error = %e, execution = %job.id, "cannot give an execution back to the queue");
                }
                return false;
            }
        }
        true
    }

    /// Records a job's end. A write that fails is tried again ([`STORE_ATTEMPTS`], with
    /// backoff); a result that still cannot be stored (too large for the store, the store
    /// down or full) ends the job `failed` with `result_not_stored`, which is tried for
    /// [`FAILURE_RECORD_FOR`]. Either way its callback goes with the recorded end.
    async fn record(
        &self,
        job: &Job,
        status: Status,
        mut result: Option<String>,
        error: Option<String>,
    ) {
        let mut delay = Duration::from_millis(250);
        let mut last_error = String::new();
        for attempt in 1..=STORE_ATTEMPTS {
            let now = now_ms();
            let callback = self.callback(job, status, error.as_deref(), now);
            let (store, id, err) = (self.store.clone(), job.id.clone(), error.clone());
            // The result goes to the blocking thread and comes back: never copied.
            let result_here = result.take();
            let written = tokio::task::spawn_blocking(move || {
                let result = result_here;
                let r = store.finish(
                    &id,
                    status,
                    result.as_deref(),
                    err.as_deref(),
                    now,
                    callback.as_ref(),
                );
                (r, result)
            })
            .await;
            match written {
                Ok((Ok(done), _)) => {
                    if done {
                        crate::metrics::execution_finished(status.as_str());
                    }
                    return;
                }
                Ok((Err(e), back)) => {
                    result = back;
                    last_error = e.to_string();
                }
                Err(e) => {
                    last_error = e.to_string();
                    break;
                }
            }
            tracing::warn!(error = %last_error, execution = %job.id, attempt, "storing an execution's end failed");
            if attempt < STORE_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        drop(result);
        tracing::error!(error = %last_error, execution = %job.id, "an execution's result could not be stored; recording it as failed");
        let error = "result_not_stored: the execution ran, but its result could not be stored (the store refused or did not answer the write); run it again".to_string();
        let until = Instant::now() + FAILURE_RECORD_FOR;
        let mut delay = Duration::from_millis(250);
        loop {
            let now = now_ms();
            let callback = self.callback(job, Status::Failed, Some(&error), now);
            let (store, id, err) = (self.store.clone(), job.id.clone(), error.clone());
            match blocking(move || {
                store.finish(
                    &id,
                    Status::Failed,
                    None,
                    Some(&err),
                    now,
                    callback.as_ref(),
                )
            })
            .await
            {
                Ok(done) => {
                    if done {
                        crate::metrics::execution_finished(Status::Failed.as_str());
                    }
                    return;
                }
                Err(e) if Instant::now() + delay < until => {
                    tracing::warn!(error = %e, execution = %job.id, "recording an execution as failed failed; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
                Err(e) => {
                    tracing::error!(error = %e, execution = %job.id, "cannot record an execution's end; it stays running until it is taken over or the gateway restarts");
                    self.store.abandon(&job.id);
                    return;
                }
            }
        }
    }

    /// Takes `n` places of the gateway's admission and of the caller's `max_concurrent`,
    /// all or none.
    async fn take_places(&self, caller: &Principal, n: usize) -> Option<Held> {
        let mut admitted = Vec::with_capacity(n);
        for _ in 0..n {
            admitted.push(self.invoker.admission.clone().try_admit_owned()?);
        }
        let mut permits = Vec::with_capacity(n);
        for _ in 0..n {
            match self
                .invoker
                .concurrency
                .acquire(&caller.subject, caller.quota.max_concurrent)
                .await
            {
                Ok(Some(p)) => permits.push(p),
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count an async execution against its caller's max_concurrent; running it later");
                    return None;
                }
            }
        }
        Some(Held {
            _admitted: admitted,
            _permits: permits,
        })
    }

    /// Runs a claimed job: its result (serialized), or why it could not run.
    async fn execute(&self, job: &Job) -> Result<String, RunError> {
        let caller: StoredCaller = serde_json::from_str(&job.caller)
            .map_err(|e| format!("stored caller unreadable: {e}"))?;
        let caller = caller.principal();
        let body: Value = serde_json::from_str(&job.request)
            .map_err(|e| format!("stored request unreadable: {e}"))?;
        let started = Instant::now();
        let budget = self.invoker.settings.limits.max_batch_result_bytes;
        if job.kind == "batch" {
            let req: BatchRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
            let ids: Vec<String> = req.items.iter().map(|i| i.id.clone()).collect();
            // The plan's own result budget: items past it are not kept, and not run.
            let plan = batch::plan(&self.invoker, &caller, req)
                .map_err(|e| e.to_string())?
                .with_result_budget(budget);
            let _held = self
                .take_places(&caller, plan.concurrency())
                .await
                .ok_or(RunError::Busy)?;
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(self.settings.max_run_secs);
            let mut summary = BatchSummary {
                batch_id: job.id.clone(),
                total_items: plan.len(),
                concurrency: plan.concurrency(),
                started_at: chrono::Utc::now(),
                ..BatchSummary::default()
            };
            use futures_util::StreamExt;
            let mut slots: Vec<Option<ItemResult>> = ids.iter().map(|_| None).collect();
            // Why the items without a result have none: (kind, message).
            let mut cut: Option<(&'static str, String)> = None;
            let mut items = Box::pin(batch::run_plan(self.invoker.clone(), plan, Arc::new(())));
            loop {
                let r = match tokio::time::timeout_at(deadline, items.next()).await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(_) => {
                        cut = Some((
                            "skipped",
                            format!(
                                "not run: the execution reached its deadline (executions.max_run_secs = {} s)",
                                self.settings.max_run_secs
                            ),
                        ));
                        break;
                    }
                };
                let index = r.index;
                if let Some(slot) = slots.get_mut(index) {
                    *slot = Some(r);
                }
            }
            // Dropping the stream stops the items not yet started.
            drop(items);
            let results: Vec<ItemResult> = slots
                .into_iter()
                .zip(ids)
                .enumerate()
                .map(|(index, (r, id))| {
                    r.unwrap_or_else(|| {
                        let (kind, message) = cut.clone().unwrap_or_else(|| {
                            ("sandbox_failure", "this item gave no result".to_string())
                        });
                        batch::not_run(index, id, kind, message)
                    })
                })
                .collect();
            for r in &results {
                summary.add(r);
            }
            summary.completed_at = chrono::Utc::now();
            summary.total_duration_ms = started.elapsed().as_millis() as u64;
            Ok(serde_json::to_string(&StoredBatch {
                summary: &summary,
                results_offset: 0,
                results_total: results.len(),
                results: &results,
            })
            .map_err(|e| e.to_string())?)
        } else {
            let req: ExecuteRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
            let inv = requests::invocation(req, &self.invoker.settings, &caller)
                .map_err(|e| e.to_string())?;
            let _held = self.take_places(&caller, 1).await.ok_or(RunError::Busy)?;
            let mut resp = self
                .invoker
                .run(inv, None, started)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, execution = %job.id, "an async execution could not run");
                    "the sandbox failed before the program could finish; it was not your program's fault".to_string()
                })?;
            resp.execution_id = job.id.clone();
            let v = serde_json::to_string(&resp).map_err(|e| e.to_string())?;
            if v.len() > budget {
                return Err(RunError::Failed(format!(
                    "result_budget_exceeded: the result ({} bytes) is above limits.max_batch_result_bytes ({budget} bytes)",
                    v.len()
                )));
            }
            Ok(v)
        }
    }

    /// Removes finished executions and settled callbacks older than the retention, every
    /// minute (or half the retention, if shorter) until shutdown.
    pub async fn purger(self: Arc<Self>, shutdown: CancellationToken) {
        let every = Duration::from_secs((self.settings.retention_secs / 2).clamp(1, 60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let before = now_ms() - (self.settings.retention_secs as i64) * 1000;
            let store = self.store.clone();
            match blocking(move || store.purge(before)).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "old executions purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging old executions failed"),
            }
        }
    }

    /// Renews this replica's claims on the executions it runs, every `every`, so that no
    /// other replica takes them over while this one is alive (a shared store only).
    pub async fn renewer(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let store = self.store.clone();
            match blocking(move || store.renew()).await {
                Ok(lost) => {
                    // Cancelled through another replica, or taken over by one (this replica
                    // stopped renewing in time): stop running them here.
                    let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                    for id in lost {
                        if let Some(token) = running.get(&id) {
                            tracing::warn!(execution_id = %id, "no longer this replica's to run; stopping it");
                            token.cancel();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing claims on running executions failed")
                }
            }
        }
    }
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
