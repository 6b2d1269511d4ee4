//! An execution as the HTTP API shows it (`GET /v1/executions/{id}`, lists, cancel, and
//! the payload of its webhook callback).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::store::{Delivery, JobKind, JobRecord, Status};

/// An execution as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResource {
    pub execution_id: String,
    /// `execute` or `batch`.
    #[schema(value_type = String)]
    pub kind: JobKind,
    #[schema(value_type = String)]
    pub status: Status,
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub completed_at: Option<DateTime<Utc>>,
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

impl ExecutionResource {
    /// The job as the API shows it; a batch's results from `offset`, at most `limit`.
    pub fn of(job: &JobRecord, offset: usize, limit: usize) -> ExecutionResource {
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
        ExecutionResource {
            execution_id: job.id.clone(),
            kind: job.kind,
            status: job.status,
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.finished_at,
            result,
            error: job.error.clone(),
            attempts: job.attempts,
            callbacks: None,
        }
    }
}
