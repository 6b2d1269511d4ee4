//! Async executions: accepted at once (202), queued durably, run by workers, polled.
//!
//! A request is validated when it is submitted (so a 202 means it can run), stored in the
//! [`JobStore`] before the answer leaves, and taken by one of `executions.workers`
//! workers in submission order. The queue is the admission: queued work waits its turn
//! instead of being shed, and its depth is bounded per tenant (429) and in total (503).
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
            let callback = self.callback(&job, Status::Cancelled, None, Some(error), now);
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
    /// the execution as `GET /v1/executions/{id}` shows it.
    fn callback(
        &self,
        job: &Job,
        status: Status,
        result: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Option<Delivery> {
        let url = job.callback_url.clone()?;
        let mut last = job.clone();
        last.status = status;
        last.result = result.map(str::to_string);
        last.error = error.map(str::to_string);
        last.finished_at = Some(now);
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

    /// One worker: takes queued executions until shutdown.
    pub async fn worker(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let store = self.store.clone();
            let next = blocking(move || store.claim_next(now_ms())).await;
            match next {
                Ok(Some(job)) => self.run(job).await,
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot take the next execution");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(poll * 4) => {}
                    }
                }
            }
        }
    }

    async fn run(&self, job: Job) {
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
            return; // cancelled: the store already says so
        };
        let (status, result, error) = match outcome {
            Ok(v) => (Status::Completed, Some(v.to_string()), None),
            Err(e) => (Status::Failed, None, Some(e)),
        };
        let (store, id) = (self.store.clone(), job.id.clone());
        let now = now_ms();
        let callback = self.callback(&job, status, result.as_deref(), error.as_deref(), now);
        match blocking(move || {
            store.finish(
                &id,
                status,
                result.as_deref(),
                error.as_deref(),
                now,
                callback.as_ref(),
            )
        })
        .await
        {
            Ok(true) => crate::metrics::execution_finished(status.as_str()),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, execution = %job.id, "cannot store an execution's result")
            }
        }
    }

    /// Runs a claimed job: its result, or why it could not run.
    async fn execute(&self, job: &Job) -> Result<Value, String> {
        let caller: StoredCaller = serde_json::from_str(&job.caller)
            .map_err(|e| format!("stored caller unreadable: {e}"))?;
        let caller = caller.principal();
        let body: Value = serde_json::from_str(&job.request)
            .map_err(|e| format!("stored request unreadable: {e}"))?;
        let started = Instant::now();
        if job.kind == "batch" {
            let req: BatchRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
            let plan = batch::plan(&self.invoker, &caller, req).map_err(|e| e.to_string())?;
            let mut summary = BatchSummary {
                batch_id: job.id.clone(),
                total_items: plan.len(),
                concurrency: plan.concurrency(),
                started_at: chrono::Utc::now(),
                ..BatchSummary::default()
            };
            use futures_util::StreamExt;
            let mut results: Vec<ItemResult> =
                batch::run_plan(self.invoker.clone(), plan, Arc::new(()))
                    .collect()
                    .await;
            results.sort_by_key(|r| r.index);
            for r in &results {
                summary.add(r);
            }
            summary.completed_at = chrono::Utc::now();
            summary.total_duration_ms = started.elapsed().as_millis() as u64;
            let mut v = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
            v["results"] = serde_json::to_value(&results).map_err(|e| e.to_string())?;
            Ok(v)
        } else {
            let req: ExecuteRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
            let inv = requests::invocation(req, &self.invoker.settings, &caller)
                .map_err(|e| e.to_string())?;
            let resp = self
                .invoker
                .run(inv, None, started)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, execution = %job.id, "an async execution could not run");
                    "the sandbox failed before the program could finish; it was not your program's fault".to_string()
                })?;
            let mut v = serde_json::to_value(&resp).map_err(|e| e.to_string())?;
            v["executionId"] = json!(job.id);
            Ok(v)
        }
    }

    /// Removes finished executions older than the retention, every minute until shutdown.
    pub async fn purger(self: Arc<Self>, shutdown: CancellationToken) {
        let every = Duration::from_secs(60);
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
