//! The webhook callback filed with an execution's end, in the same store transaction.

use chrono::{DateTime, Utc};

use super::{AsyncEngine, ExecutionResource};
use crate::store::{to_millis, Delivery, JobRecord, Status};

impl AsyncEngine {
    /// The callback of a job that ends with `status` at `at`, if it asked for one: its
    /// payload is the execution as `GET /v1/executions/{id}` shows it, stored without the
    /// result (the store puts the stored result in when sending it:
    /// [`crate::store::with_result`]), so that the callback never holds a second copy.
    pub(super) fn callback(
        &self,
        job: &JobRecord,
        status: Status,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Option<Delivery> {
        let url = job.callback_url.clone()?;
        let subject = job.caller.as_ref().ok()?.subject.clone();
        let mut last = ExecutionResource::of(job, 0, usize::MAX);
        last.status = status;
        last.completed_at = Some(at);
        last.result = None;
        last.error = error.map(str::to_string);
        let payload = serde_json::to_string(&last).ok()?;
        let now = to_millis(at);
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
}
