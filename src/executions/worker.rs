//! The workers: each takes the next queued execution the store hands out (tenants take
//! turns, each under its running cap), runs it, and records how it ended. A job the
//! gateway or its caller has no room for is given back to the queue, not failed. A write
//! of the end that fails is tried again; a result that still cannot be stored ends the
//! job `failed` with `result_not_stored`.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::run::RunError;
use super::AsyncEngine;
use crate::store::{JobEnd, JobRecord, JobRequest, Status};

/// Attempts at storing a result before it is given up as `result_not_stored`.
const STORE_ATTEMPTS: u32 = 4;
/// How long recording that failure is tried (the store may come back).
const FAILURE_RECORD_FOR: Duration = Duration::from_secs(60);

impl AsyncEngine {
    /// The most executions of one tenant running at once.
    fn max_running(&self) -> usize {
        match self.settings.max_running_per_tenant {
            0 => self.settings.workers.saturating_sub(1).max(1),
            n => n,
        }
    }

    /// One worker: takes queued executions until shutdown.
    pub async fn worker(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = self.settings.poll_interval_ms;
        let max_running = self.max_running();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let next = self
                .store
                .claim_next(crate::store::now(), max_running)
                .await;
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
    async fn run(&self, mut job: JobRecord) -> bool {
        let token = CancellationToken::new();
        self.running().insert(job.id.clone(), token.clone());
        let outcome = tokio::select! {
            r = self.execute(&mut job) => Some(r),
            _ = token.cancelled() => None,
        };
        self.running().remove(&job.id);
        let Some(outcome) = outcome else {
            return true; // cancelled: the store already says so
        };
        match outcome {
            Ok(v) => self.record(&job, Status::Completed, Some(v), None).await,
            Err(RunError::Failed(e)) => self.record(&job, Status::Failed, None, Some(e)).await,
            Err(RunError::Busy) => {
                if let Err(e) = self.store.release(&job.id).await {
                    // Still claimed: a restart (or, shared, another replica) runs it.
                    tracing::error!(error = %e, execution = %job.id, "cannot give an execution back to the queue");
                }
                return false;
            }
        }
        true
    }

    /// Runs a claimed job with its stored caller and request.
    async fn execute(&self, job: &mut JobRecord) -> Result<String, RunError> {
        let caller = job.caller.clone().map_err(|e| e.to_string())?;
        let request = job
            .request
            .take()
            .unwrap_or_else(|| {
                Err(crate::store::Unreadable(
                    "stored request unreadable: not loaded".into(),
                ))
            })
            .map_err(|e| e.to_string())?;
        // A Judge0 submission's end needs its Judge0 fields (its callback is Judge0's).
        if let JobRequest::Judge0(..) = &request {
            job.request = Some(Ok(request.clone()));
        }
        self.runner.run(&job.id, &caller, request).await
    }

    /// Records a job's end. A write that fails is tried again ([`STORE_ATTEMPTS`], with
    /// backoff); a result that still cannot be stored (too large for the store, the store
    /// down or full) ends the job `failed` with `result_not_stored`, which is tried for
    /// [`FAILURE_RECORD_FOR`]. Either way its callback goes with the recorded end.
    async fn record(
        &self,
        job: &JobRecord,
        status: Status,
        result: Option<String>,
        error: Option<String>,
    ) {
        let result = result.map(Arc::new);
        let mut delay = Duration::from_millis(250);
        let mut last_error = String::new();
        for attempt in 1..=STORE_ATTEMPTS {
            let end = self.end(job, status, result.clone(), error.clone());
            match self.store.finish(&job.id, &end).await {
                Ok(done) => {
                    if done {
                        crate::metrics::execution_finished(status.as_str());
                    }
                    return;
                }
                Err(e) => last_error = e.to_string(),
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
            let end = self.end(job, Status::Failed, None, Some(error.clone()));
            match self.store.finish(&job.id, &end).await {
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

    /// The end of `job` as recorded now, with its callback if it asked for one.
    pub(super) fn end(
        &self,
        job: &JobRecord,
        status: Status,
        result: Option<Arc<String>>,
        error: Option<String>,
    ) -> JobEnd {
        let at = crate::store::now();
        JobEnd {
            status,
            callback: self.callback(
                job,
                status,
                result.as_deref().map(String::as_str),
                error.as_deref(),
                at,
            ),
            result,
            error,
            at,
        }
    }
}
