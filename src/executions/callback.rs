//! The webhook callback filed with an execution's end, in the same store transaction.

use chrono::{DateTime, Utc};

use super::{AsyncEngine, ExecutionResource};
use crate::store::{to_millis, Delivery, JobRecord, JobRequest, Status};

impl AsyncEngine {
    /// The callback of a job that ends with `status` at `at`, if it asked for one: its
    /// payload is the execution as `GET /v1/executions/{id}` shows it, stored without the
    /// result (the store puts the stored result in when sending it:
    /// [`crate::store::with_result`]), so that the callback never holds a second copy.
    pub(super) fn callback(
        &self,
        job: &JobRecord,
        status: Status,
        result: Option<&str>,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Option<Delivery> {
        let url = job.callback_url.clone()?;
        let subject = job.caller.as_ref().ok()?.subject.clone();
        // A Judge0 submission's callback is Judge0's: a PUT of the submission.
        if let Some(Ok(JobRequest::Judge0(_, meta))) = &job.request {
            let payload = crate::judge0::callback_body(meta, job, status, result, error, at)?;
            return Some(delivery(job, subject, url, "PUT", payload, at));
        }
        let mut last = ExecutionResource::of(job, 0, usize::MAX);
        last.status = status;
        last.completed_at = Some(at);
        last.result = None;
        last.error = error.map(str::to_string);
        let payload = serde_json::to_string(&last).ok()?;
        Some(delivery(job, subject, url, "POST", payload, at))
    }
}

/// A pending callback of `job`, due now.
fn delivery(
    job: &JobRecord,
    subject: String,
    url: String,
    method: &str,
    payload: String,
    at: DateTime<Utc>,
) -> Delivery {
    {
        let now = to_millis(at);
        Delivery {
            id: uuid::Uuid::new_v4().to_string(),
            execution_id: job.id.clone(),
            tenant: job.tenant.clone(),
            subject,
            url,
            method: method.to_string(),
            payload,
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            delivered_at: None,
        }
    }
}
