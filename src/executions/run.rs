//! Running one claimed execution: an invocation, or a batch with its overall deadline and
//! result budget, through the same [`Invoker`] as the synchronous routes, holding the
//! places a synchronous call would hold. Behind [`Runner`] so that the worker can be
//! tested without containers.

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

use crate::batch::{self, BatchRequest, BatchSummary, ItemResult};
use crate::config::ExecutionSettings;
use crate::domain::Principal;
use crate::invoke::Invoker;
use crate::limits::{OwnedAdmissionSlot, Permit};
use crate::requests::{self, ExecuteRequest, RequestError};
use crate::store::JobRequest;

/// Why a claimed job did not produce a result.
#[derive(Debug)]
pub enum RunError {
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

/// What the engine needs to check and run requests.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Whether `request` can run as it is: checked with the same rules as the sync routes.
    fn check(&self, caller: &Principal, request: JobRequest) -> Result<(), RequestError>;
    /// Runs execution `id`: its result (serialized), or why it could not run.
    async fn run(
        &self,
        id: &str,
        caller: &Principal,
        request: JobRequest,
    ) -> Result<String, RunError>;
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

/// The [`Runner`] on the gateway's invoker.
pub struct InvokerRunner {
    invoker: Arc<Invoker>,
    /// A batch's overall deadline (`executions.max_run_secs`).
    max_run_secs: std::time::Duration,
}

impl InvokerRunner {
    pub fn new(invoker: Arc<Invoker>, settings: &ExecutionSettings) -> InvokerRunner {
        InvokerRunner {
            invoker,
            max_run_secs: settings.max_run_secs,
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

    async fn batch(
        &self,
        id: &str,
        caller: &Principal,
        req: BatchRequest,
    ) -> Result<String, RunError> {
        let started = Instant::now();
        let budget = self.invoker.settings.limits.max_batch_result_bytes;
        let ids: Vec<String> = req.items.iter().map(|i| i.id.clone()).collect();
        // The plan's own result budget: items past it are not kept, and not run.
        let plan = batch::plan(&self.invoker, caller, req)
            .map_err(|e| e.to_string())?
            .with_result_budget(budget.get());
        let _held = self
            .take_places(caller, plan.concurrency())
            .await
            .ok_or(RunError::Busy)?;
        let deadline = tokio::time::Instant::now() + self.max_run_secs;
        let mut summary = BatchSummary {
            batch_id: id.to_string(),
            total_items: plan.len(),
            concurrency: plan.concurrency(),
            started_at: chrono::Utc::now(),
            ..BatchSummary::default()
        };
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
                            self.max_run_secs.as_secs()
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
    }

    async fn execute(
        &self,
        id: &str,
        caller: &Principal,
        req: ExecuteRequest,
    ) -> Result<String, RunError> {
        let started = Instant::now();
        let budget = self.invoker.settings.limits.max_batch_result_bytes;
        let inv = requests::invocation(
            req,
            &self.invoker.settings,
            self.invoker.pools.recipes(),
            caller,
        )
        .map_err(|e| e.to_string())?;
        let _held = self.take_places(caller, 1).await.ok_or(RunError::Busy)?;
        let mut resp = self.invoker.run(inv, None, started).await.map_err(|e| {
            tracing::warn!(error = %e, execution = %id, "an async execution could not run");
            "the sandbox failed before the program could finish; it was not your program's fault"
                .to_string()
        })?;
        resp.execution_id = id.to_string();
        let v = serde_json::to_string(&resp).map_err(|e| e.to_string())?;
        if v.len() > budget.get() {
            return Err(RunError::Failed(format!(
                "result_budget_exceeded: the result ({} bytes) is above limits.max_batch_result_bytes ({budget} bytes)",
                v.len()
            )));
        }
        Ok(v)
    }
}

#[async_trait]
impl Runner for InvokerRunner {
    fn check(&self, caller: &Principal, request: JobRequest) -> Result<(), RequestError> {
        match request {
            JobRequest::Judge0(inner, _) => self.check(caller, *inner),
            JobRequest::Batch(req) => batch::plan(&self.invoker, caller, req).map(|_| ()),
            JobRequest::Execute(req) => {
                let inv = requests::invocation(
                    req,
                    &self.invoker.settings,
                    self.invoker.pools.recipes(),
                    caller,
                )?;
                requests::packages_available(&self.invoker.pools, &inv)
            }
        }
    }

    async fn run(
        &self,
        id: &str,
        caller: &Principal,
        request: JobRequest,
    ) -> Result<String, RunError> {
        match request {
            JobRequest::Judge0(inner, _) => match *inner {
                JobRequest::Batch(req) => self.batch(id, caller, req).await,
                JobRequest::Execute(req) => self.execute(id, caller, req).await,
                JobRequest::Judge0(..) => Err(RunError::Failed("a nested Judge0 request".into())),
            },
            JobRequest::Batch(req) => self.batch(id, caller, req).await,
            JobRequest::Execute(req) => self.execute(id, caller, req).await,
        }
    }
}
